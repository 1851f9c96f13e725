"""tconv explain / tconv.explain: the SVG is well-formed and has one cell per
grid element, the overlap map and the matrix agree with direct counts, the
seed's 4x16 matrix is drawn with its values, the pictures render to PNG, and
the values shown are what `tconv run` computes."""

import itertools
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tconv

CLI = os.environ.get("TCONV_CLI")
needs_cli = pytest.mark.skipif(CLI is None, reason="TCONV_CLI (the path of the tconv executable) is not set")
SVG_NS = "{http://www.w3.org/2000/svg}"

# The walk-through of `tconv demo`: a 4x4 input and this 3x3 kernel.
SEED_INPUT = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], dtype=np.float32)
SEED_KERNEL = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=np.float32)
SEED_MATRIX = [[1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
               [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
               [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
               [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1]]

# (op, input size, kernel size, stride, padding, output_padding, dilation)
CASES = [
    ("conv", (4, 4), (3, 3), 1, 0, 0, 1),
    ("conv", (7, 6), (3, 2), 2, 1, 0, 1),
    ("conv", (9,), (3,), 2, 2, 0, 2),
    ("conv", (8, 8), (3, 3), (2, 3), (1, 0), 0, (1, 2)),
    ("conv_transpose", (3, 3), (3, 3), 2, 0, 0, 1),
    ("conv_transpose", (3, 3), (3, 3), 2, 1, 1, 1),
    ("conv_transpose", (4, 3), (4, 3), (3, 2), (2, 0), (1, 1), 1),
    ("conv_transpose", (5,), (3,), 2, 1, 1, 1),
    ("conv_transpose", (3, 4), (2, 3), 1, 1, 0, 2),
]


def per_dim(value, rank):
    return list(value) if isinstance(value, tuple) else [value] * rank


def expected_output_size(op, size, kernel, stride, padding, output_padding, dilation):
    """PyTorch's documented formulas, one dimension at a time."""
    if op == "conv":
        return [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in zip(size, kernel, stride, padding, dilation)]
    return [(i - 1) * s - 2 * p + d * (k - 1) + op_ + 1
            for i, k, s, p, op_, d in zip(size, kernel, stride, padding, output_padding, dilation)]


def direct_links(op, size, kernel, stride, padding, dilation, out_size):
    """Every (input cell, output cell) pair a kernel tap links, by brute force over
    all input cells, taps and output cells: the relation of each operation's definition."""
    links = []
    for in_pos in itertools.product(*map(range, size)):
        for tap in itertools.product(*map(range, kernel)):
            for out_pos in itertools.product(*map(range, out_size)):
                # conv reads input (big) at out*s - p + t*d; conv_transpose writes output (big) at in*s - p + t*d
                small, big = (out_pos, in_pos) if op == "conv" else (in_pos, out_pos)
                if all(b == i * s - p + t * d for i, b, t, s, p, d in zip(small, big, tap, stride, padding, dilation)):
                    links.append((in_pos, out_pos, tap))
    return links


def explain_case(case, **values):
    op, size, kernel, stride, padding, output_padding, dilation = case
    return tconv.explain(op, size, kernel, stride=stride, padding=padding, output_padding=output_padding,
                         dilation=dilation, **values)


def cells(svg, kind):
    root = ET.fromstring(svg)
    return [r for r in root.iter(SVG_NS + "rect") if "cell" in r.get("class", "").split()
            and kind in r.get("class").split()]


def position(rect):
    return int(rect.get("data-row")), int(rect.get("data-col"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}")
def test_svg_has_one_cell_per_element_and_the_frames(case):
    op, size, kernel, stride, padding, output_padding, dilation = case
    rank = len(size)
    stride, padding, output_padding, dilation = (per_dim(v, rank) for v in (stride, padding, output_padding, dilation))
    out = expected_output_size(op, size, kernel, stride, padding, output_padding, dilation)
    svg = explain_case(case).svg
    assert svg.startswith("<?xml")

    assert len(cells(svg, "input")) == np.prod(size)
    assert len(cells(svg, "kernel")) == np.prod(kernel)
    assert len(cells(svg, "output")) == np.prod(out)
    assert len(cells(svg, "overlap")) == np.prod(out)
    assert len(cells(svg, "matrix")) == np.prod(out) * np.prod(size)
    assert len(cells(svg, "matrix-transpose")) == np.prod(out) * np.prod(size)
    assert len(cells(svg, "highlight")) == 1

    if op == "conv":
        framed = np.prod([i + 2 * p for i, p in zip(size, padding)])
        assert len(cells(svg, "padding")) == framed - np.prod(size)
        assert cells(svg, "cropped") == [] and cells(svg, "output-padding") == []
    else:
        # The full output before cropping reaches p cells before the output and p - op past it.
        framed = np.prod([o + p + max(0, p - op_) for o, p, op_ in zip(out, padding, output_padding)])
        assert len(cells(svg, "cropped")) == framed - np.prod(out)
        assert cells(svg, "padding") == []
        grid_out = [1] * (2 - rank) + out
        grid_op = [0] * (2 - rank) + output_padding
        padded = sum(1 for r, c in itertools.product(range(grid_out[0]), range(grid_out[1]))
                     if r >= grid_out[0] - grid_op[0] or c >= grid_out[1] - grid_op[1])
        assert len(cells(svg, "output-padding")) == padded


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}")
def test_overlap_matrix_and_touched_cells_match_a_direct_count(case):
    op, size, kernel, stride, padding, output_padding, dilation = case
    rank = len(size)
    stride, padding, output_padding, dilation = (per_dim(v, rank) for v in (stride, padding, output_padding, dilation))
    out = expected_output_size(op, size, kernel, stride, padding, output_padding, dilation)
    weight = np.arange(1, np.prod(kernel) + 1, dtype=np.float64).reshape(kernel) * 0.5 + 1
    e = explain_case(case, weight=weight)

    overlap = np.zeros(out, dtype=np.int64)
    matrix = np.zeros((np.prod(out), np.prod(size)))
    touched = [set() for _ in range(np.prod(size))]
    for in_pos, out_pos, tap in direct_links(op, size, kernel, stride, padding, dilation, out):
        overlap[out_pos] += 1
        in_flat, out_flat = np.ravel_multi_index(in_pos, size), np.ravel_multi_index(out_pos, out)
        matrix[out_flat, in_flat] += weight[tap]
        touched[in_flat].add(out_flat)

    np.testing.assert_array_equal(e.overlap, overlap)
    np.testing.assert_array_equal(e.matrix, matrix)
    assert [sorted(t) for t in touched] == e.touched
    drawn = {position(r)[1] if rank == 1 else position(r): int(r.get("data-count")) for r in cells(e.svg, "overlap")}
    assert drawn == {(p[0] if rank == 1 else p): int(overlap[p]) for p in np.ndindex(*out)}


def test_strided_transposed_convolution_overlap_is_a_checkerboard():
    e = tconv.explain("conv_transpose", (3, 3), (3, 3), stride=2)
    line = np.array([1, 1, 2, 1, 2, 1, 1])
    np.testing.assert_array_equal(e.overlap, np.outer(line, line))


def test_seed_matrix_is_drawn_with_its_values():
    e = tconv.explain("conv", (4, 4), weight=SEED_KERNEL)
    np.testing.assert_array_equal(e.matrix, SEED_MATRIX)
    root = ET.fromstring(e.svg)
    texts = [(float(t.get("x")), float(t.get("y")), t.text) for t in root.iter(SVG_NS + "text")]
    drawn = np.full((4, 16), np.nan)
    for rect in cells(e.svg, "matrix"):
        row, col = position(rect)
        drawn[row, col] = float(rect.get("data-value"))
        x, y, size = float(rect.get("x")), float(rect.get("y")), float(rect.get("width"))
        labels = [text for tx, ty, text in texts if x < tx < x + size and y < ty < y + size]
        assert labels == [str(SEED_MATRIX[row][col])], (row, col)
    np.testing.assert_array_equal(drawn, SEED_MATRIX)
    # The transpose beside it holds the same numbers, transposed.
    transposed = np.zeros((16, 4))
    for rect in cells(e.svg, "matrix-transpose"):
        transposed[position(rect)] = float(rect.get("data-value"))
    np.testing.assert_array_equal(transposed, np.array(SEED_MATRIX).T)


def test_highlighted_cell_marks_its_window_column_and_row():
    e = tconv.explain("conv_transpose", (3, 3), (3, 3), stride=2, padding=1, highlight=(0, 0))
    # Input (0, 0) reaches output rows and columns -1, 0, 1: four inside, five in the cropped border.
    inside = {position(r) for r in cells(e.svg, "output") if "reached" in r.get("class").split()}
    cropped = {position(r) for r in cells(e.svg, "cropped") if "reached" in r.get("class").split()}
    assert inside == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert cropped == {(-1, -1), (-1, 0), (-1, 1), (0, -1), (1, -1)}
    root = ET.fromstring(e.svg)
    assert len([r for r in root.iter(SVG_NS + "rect") if r.get("class") == "marked-column"]) == 1
    assert len([r for r in root.iter(SVG_NS + "rect") if r.get("class") == "marked-row"]) == 1


def test_notebook_display_is_the_svg():
    e = tconv.explain("conv", (4, 4), (3, 3))
    assert e._repr_svg_() == e.svg
    ET.fromstring(e._repr_svg_())
    assert "floor((4 + 2*0 - 1*(3-1) - 1) / 1) + 1 = 2" in e.text


def test_values_are_what_tconv_conv_returns():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    e = tconv.explain("conv_transpose", input=x, weight=w, stride=2, padding=1, output_padding=1)
    expected = tconv.conv_transpose(x[None, None], w[None, None], stride=2, padding=1, output_padding=1)[0, 0]
    np.testing.assert_array_equal(e.output, expected)
    np.testing.assert_allclose(e.matrix @ x.ravel(), expected.ravel(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (dict(input_shape=(4, 4, 4), kernel_shape=(3, 3, 3)), "1-D and 2-D"),
    (dict(input_shape=(4, 4), kernel_shape=(3,)), "kernel_size"),
    (dict(input_shape=(4, 4), kernel_shape=(3, 3), highlight=(4, 0)), "highlight"),
    (dict(input_shape=(2, 2), kernel_shape=(3, 3)), "too small"),
    (dict(input_shape=(4, 4), input=np.zeros((2, 4, 4), np.float32), kernel_shape=(3, 3)), "one channel"),
    (dict(input_shape=(5, 5), input=np.zeros((4, 4), np.float32), kernel_shape=(3, 3)), "one channel of size 5x5"),
    (dict(input=np.zeros((2, 3, 4, 4), np.float32), kernel_shape=(3, 3)), "not one channel"),
    (dict(input_shape=(4, 4)), "kernel_size is missing"),
    (dict(input_shape=(48, 48), kernel_shape=(1, 1)), "small convolutions"),
])
def test_bad_requests_are_refused_with_a_message(bad, message):
    with pytest.raises(ValueError, match=message):
        tconv.explain("conv", **bad)


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@needs_cli
@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="rsvg-convert (librsvg2-bin) is not installed")
@pytest.mark.parametrize("args", [
    ["conv", "--input", "{seed_input}", "--weight", "{seed_kernel}"],
    ["conv_transpose", "--input-shape", "3,3", "--kernel-shape", "3,3", "--stride", "2", "--padding", "1",
     "--output-padding", "1"],
], ids=["seed", "stride2-checkerboard"])
def test_pictures_render_to_png(tmp_path, args):
    """The two pictures of docs/explain.md, drawn as there."""
    np.save(tmp_path / "seed_input.npy", SEED_INPUT)
    np.save(tmp_path / "seed_kernel.npy", SEED_KERNEL)
    args = [a.format(seed_input=tmp_path / "seed_input.npy", seed_kernel=tmp_path / "seed_kernel.npy") for a in args]
    svg, png = tmp_path / "explain.svg", tmp_path / "explain.png"
    result = subprocess.run([CLI, "explain", *args, "--svg", str(svg)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    root = ET.parse(svg).getroot()
    rendered = subprocess.run(["rsvg-convert", str(svg), "-o", str(png)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert png_size(png) == (round(float(root.get("width"))), round(float(root.get("height"))))


@needs_cli
def test_cli_text_shows_sizes_formula_matrix_and_touched_cells():
    result = subprocess.run([CLI, "explain", "conv", "--input-shape", "4,4", "--kernel-shape", "3,3"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "input 4x4" in text and "output 2x2" in text
    assert "H_out = floor((H_in + 2*padding - dilation*(k-1) - 1) / stride) + 1 = floor((4 + 2*0 - 1*(3-1) - 1) / 1) + 1 = 2" in text
    assert "   1 2 3 0 4 5 6 0 7 8 9 0 0 0 0 0\n" in text
    assert "  x5(1,1) -> y0(0,0) y1(0,1) y2(1,0) y3(1,1)\n" in text
    assert "  x0(0,0) -> y0(0,0)\n" in text


@needs_cli
def test_cli_prints_a_pattern_when_the_matrix_is_too_wide():
    result = subprocess.run([CLI, "explain", "conv", "--input-shape", "4,4", "--kernel-shape", "3,3"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "30"})
    assert result.returncode == 0, result.stderr
    assert "  ###.###.###.....\n" in result.stdout
    assert "  .....###.###.###\n" in result.stdout


@needs_cli
def test_cli_refuses_3d():
    result = subprocess.run([CLI, "explain", "conv", "--input-shape", "4,4,4", "--kernel-shape", "3,3,3"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "explain draws 1-D and 2-D convolutions" in result.stderr


@needs_cli
@pytest.mark.parametrize("op, flags", [
    ("conv", ["--stride", "1"]),
    ("conv_transpose", ["--stride", "2", "--padding", "1", "--output-padding", "1"]),
])
def test_cli_values_are_what_tconv_run_writes(tmp_path, op, flags):
    rng = np.random.default_rng(11)
    x = rng.integers(-5, 6, (1, 1, 4, 4)).astype(np.float32)
    w = rng.integers(-3, 4, (1, 1, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    run = subprocess.run([CLI, "run", op, "--input", tmp_path / "x.npy", "--weight", tmp_path / "w.npy", *flags,
                          "--output", tmp_path / "y.npy"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    y = np.load(tmp_path / "y.npy")[0, 0]
    result = subprocess.run([CLI, "explain", op, "--input", tmp_path / "x.npy", "--weight", tmp_path / "w.npy", *flags,
                             "--svg", tmp_path / "e.svg"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "e.svg").read_text()
    texts = [(float(t.get("x")), float(t.get("y")), t.text) for t in ET.fromstring(svg).iter(SVG_NS + "text")]
    shown = np.full(y.shape, np.nan)
    for rect in cells(svg, "output"):
        x0, y0, size = float(rect.get("x")), float(rect.get("y")), float(rect.get("width"))
        labels = [text for tx, ty, text in texts if x0 < tx < x0 + size and y0 < ty < y0 + size and text[0] != "\u00d7"]
        assert len(labels) == 1
        shown[position(rect)] = float(labels[0])
    np.testing.assert_array_equal(shown, y)


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="input_shape"):
        tconv.explain("conv", (4, "a"), (3, 3))
    with pytest.raises(TypeError, match="weight must be float32 or float64"):
        tconv.explain("conv", (4, 4), weight=np.ones((3, 3), dtype=np.int64))
