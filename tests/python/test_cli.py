"""The command-line tool: demo, run and shape on .npy files, and how it refuses
bad invocations and bad files (exit status 2, one message, no output file)."""

import os
import re
import resource
import signal
import struct
import subprocess
import time

import numpy as np
import pytest

import tconv as tconv_module  # `tconv` below runs the command-line tool
import torch_reference

CLI = os.environ.get("TCONV_CLI")
pytestmark = pytest.mark.skipif(CLI is None, reason="TCONV_CLI (the path of the tconv executable) is not set")

EXIT_BAD_INPUT = 2


def tconv(*args, env=None):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=60,
                          env=None if env is None else {**os.environ, **env})


def printed_matrices(text):
    """Every matrix the demo prints, as a list of rows of numbers."""
    matrices, current = [], None
    for line in text.splitlines():
        row = re.fullmatch(r"\s*\[([-\d.\se+]*)\]\s*", line)
        if row:
            current.append([float(v) for v in row.group(1).split()])
        else:
            current = []
            matrices.append(current)
    return [m for m in matrices if m]


def test_demo_prints_the_walkthrough_numbers():
    result = tconv("demo")
    assert result.returncode == 0, result.stderr
    matrices = printed_matrices(result.stdout)
    assert [[122, 148], [126, 134]] in matrices
    assert [[1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
            [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
            [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1]] in matrices
    assert [[1, 4, 7, 6], [7, 23, 33, 24], [19, 53, 63, 42], [21, 52, 59, 36]] in matrices
    assert "DISAGREE" not in result.stdout
    assert "All ways agree." in result.stdout


# op, input shape, weight shape, bias, CLI flags, the same flags as torch keywords
RUN_CASES = [
    ("conv", (2, 3, 9, 8), (4, 3, 3, 2), True, {"--stride": "2,1", "--padding": "1"}, dict(stride=(2, 1), padding=1)),
    ("conv", (3, 7), (6, 1, 3), False, {"--groups": "3", "--dilation": "2"}, dict(groups=3, dilation=2)),
    ("conv_transpose", (1, 2, 5, 4), (2, 3, 3, 3), True,
     {"--stride": "2", "--padding": "1", "--output-padding": "1,0"}, dict(stride=2, padding=1, output_padding=(1, 0))),
    ("conv_transpose", (2, 4, 3, 2, 3), (4, 1, 2, 2, 2), False, {"--groups": "2", "--stride": "1,2,1"},
     dict(groups=2, stride=(1, 2, 1))),
]


def save_operands(directory, op, input_shape, weight_shape, bias, params, dtype=np.float32):
    rng = np.random.default_rng(len(input_shape) + len(weight_shape))
    arrays = {"input": rng.uniform(-1, 1, input_shape).astype(dtype),
              "weight": rng.uniform(-1, 1, weight_shape).astype(dtype)}
    if bias:
        out_channels = weight_shape[0] if op == "conv" else weight_shape[1] * params.get("groups", 1)
        arrays["bias"] = rng.uniform(-1, 1, out_channels).astype(dtype)
    paths = {}
    for name, array in arrays.items():
        paths[name] = directory / f"{name}.npy"
        np.save(paths[name], array)
    return arrays, paths


def operand_flags(paths):
    return [token for name, path in paths.items() for token in (f"--{name}", path)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, input_shape, weight_shape, bias, flags, params", RUN_CASES)
def test_run_matches_torch(tmp_path, op, input_shape, weight_shape, bias, flags, params, dtype):
    arrays, paths = save_operands(tmp_path, op, input_shape, weight_shape, bias, params, dtype)
    output = tmp_path / "output.npy"
    result = tconv("run", op, *operand_flags(paths), *[t for flag in flags.items() for t in flag], "--output", output)
    assert result.returncode == 0, result.stderr
    got = np.load(output)
    expected = torch_reference.compute(op, arrays["input"], arrays["weight"], arrays.get("bias"), **params)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=(1e-5 if dtype == np.float32 else 1e-12))

    shape = tconv("shape", op, "--input-shape", ",".join(map(str, input_shape)),
                  "--weight-shape", ",".join(map(str, weight_shape)), *[t for flag in flags.items() for t in flag])
    assert shape.returncode == 0, shape.stderr
    assert shape.stdout.strip() == ",".join(map(str, expected.shape))


@pytest.mark.parametrize("rewrite", [lambda a: a.astype(a.dtype.newbyteorder(">")), np.asfortranarray],
                         ids=["big_endian", "fortran_order"])
def test_run_reads_any_byte_order_and_layout(tmp_path, rewrite):
    op, input_shape, weight_shape, bias, flags, _ = RUN_CASES[0]
    arrays, paths = save_operands(tmp_path, op, input_shape, weight_shape, bias, {})
    flag_tokens = [t for flag in flags.items() for t in flag]
    assert tconv("run", op, *operand_flags(paths), *flag_tokens, "--output", tmp_path / "native.npy").returncode == 0
    for name, array in arrays.items():
        np.save(paths[name], rewrite(array))
    result = tconv("run", op, *operand_flags(paths), *flag_tokens, "--output", tmp_path / "rewritten.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "rewritten.npy"), np.load(tmp_path / "native.npy"))


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_run_reads_every_npy_format_version(tmp_path, version):
    op, input_shape, weight_shape, bias, flags, _ = RUN_CASES[0]
    arrays, paths = save_operands(tmp_path, op, input_shape, weight_shape, bias, {}, np.float64)
    flag_tokens = [t for flag in flags.items() for t in flag]
    assert tconv("run", op, *operand_flags(paths), *flag_tokens, "--output", tmp_path / "native.npy").returncode == 0
    for name, array in arrays.items():
        with open(paths[name], "wb") as file:
            np.lib.format.write_array(file, array.astype(">f8"), version=version)
    result = tconv("run", op, *operand_flags(paths), *flag_tokens, "--output", tmp_path / "rewritten.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "rewritten.npy"), np.load(tmp_path / "native.npy"))


def test_run_reads_and_writes_an_empty_batch(tmp_path):
    _, paths = save_operands(tmp_path, "conv", (0, 2, 5, 5), (3, 2, 3, 3), True, {})
    result = tconv("run", "conv", *operand_flags(paths), "--output", tmp_path / "output.npy")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "output.npy").shape == (0, 3, 3, 3)


# --- --convention onnx ---------------------------------------------------------------------------

# op, input shape, weight shape, bias, CLI flags, the same attributes as tconv.onnx keywords
ONNX_RUN_CASES = [
    ("conv_transpose", (1, 1, 3, 3), (1, 2, 3, 3), True, {"--strides": "3,2", "--pads": "1,2,1,2"},
     dict(strides=[3, 2], pads=[1, 2, 1, 2])),
    ("conv_transpose", (2, 2, 3, 4), (2, 3, 3, 3), True, {"--strides": "2,2", "--auto-pad": "SAME_UPPER"},
     dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ("conv_transpose", (1, 2, 4, 3), (2, 2, 2, 3), False,
     {"--strides": "2,3", "--auto-pad": "SAME_LOWER", "--dilations": "2,1", "--output-padding": "1,0"},
     dict(strides=[2, 3], auto_pad="SAME_LOWER", dilations=[2, 1], output_padding=[1, 0])),
    ("conv_transpose", (1, 2, 3, 3), (2, 2, 3, 3), True, {"--strides": "3,2", "--output-shape": "1,4,10,8",
                                                          "--group": "2", "--kernel-shape": "3,3"},
     dict(strides=[3, 2], output_shape=[1, 4, 10, 8], group=2, kernel_shape=[3, 3])),
    ("conv_transpose", (1, 2, 2, 3, 2), (2, 1, 2, 2, 3), True, {"--strides": "2,1,3", "--output-shape": "3,4,6"},
     dict(strides=[2, 1, 3], output_shape=[3, 4, 6])),
    ("conv", (1, 2, 6, 7), (3, 2, 3, 3), True, {"--strides": "2,2", "--auto-pad": "SAME_LOWER"},
     dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ("conv", (2, 4, 9, 8), (6, 2, 3, 2), False,
     {"--group": "2", "--pads": "0,1,2,0", "--dilations": "2,1", "--kernel-shape": "3,2"},
     dict(group=2, pads=[0, 1, 2, 0], dilations=[2, 1], kernel_shape=[3, 2])),
    ("conv", (3, 2, 11), (4, 2, 4), True, {"--strides": "3", "--auto-pad": "VALID"}, dict(strides=[3], auto_pad="VALID")),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, input_shape, weight_shape, bias, flags, attributes", ONNX_RUN_CASES)
def test_run_onnx_convention_matches_tconv_onnx(tmp_path, op, input_shape, weight_shape, bias, flags, attributes,
                                                dtype):
    arrays, paths = save_operands(tmp_path, op, input_shape, weight_shape, bias,
                                  {"groups": attributes.get("group", 1)}, dtype)
    output = tmp_path / "output.npy"
    flag_tokens = [t for flag in flags.items() for t in flag]
    result = tconv("run", op, "--convention", "onnx", *operand_flags(paths), *flag_tokens, "--output", output)
    assert result.returncode == 0, result.stderr
    got = np.load(output)
    function = tconv_module.onnx.conv if op == "conv" else tconv_module.onnx.conv_transpose
    expected = function(arrays["input"], arrays["weight"], arrays.get("bias"), **attributes)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)

    shape = tconv("shape", op, "--convention", "onnx", "--input-shape", ",".join(map(str, input_shape)),
                  "--weight-shape", ",".join(map(str, weight_shape)), *flag_tokens)
    assert shape.returncode == 0, shape.stderr
    assert shape.stdout.strip() == ",".join(map(str, expected.shape))


def test_run_convention_torch_is_the_default(tmp_path):
    op, input_shape, weight_shape, bias, flags, _ = RUN_CASES[0]
    _, paths = save_operands(tmp_path, op, input_shape, weight_shape, bias, {})
    flag_tokens = [t for flag in flags.items() for t in flag]
    assert tconv("run", op, *operand_flags(paths), *flag_tokens, "--output", tmp_path / "a.npy").returncode == 0
    result = tconv("run", op, "--convention", "torch", *operand_flags(paths), *flag_tokens, "--output",
                   tmp_path / "b.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


# --- refusals ------------------------------------------------------------------------------------

def npy_bytes(array):
    """What np.save writes for `array`: header and data."""
    import io
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD_INPUT = npy_bytes(np.ones((1, 2, 4, 4), dtype=np.float32))


def with_header(descr=b"'<f4'", fortran=b"False", shape=b"(1, 2, 4, 4)", extra=b"", open_brace=b"{"):
    """GOOD_INPUT's data under a version 1.0 header made of these pieces."""
    header = open_brace + b"'descr': " + descr + b", 'fortran_order': " + fortran + b", " + extra + \
        b"'shape': " + shape + b", }"
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + GOOD_INPUT[128:]

BAD_INPUT_FILES = {  # the bytes of input.npy, the message
    "truncated_data": (GOOD_INPUT[:-5], "truncated data: expected 128 bytes for shape (1, 2, 4, 4), found 123"),
    "truncated_header": (GOOD_INPUT[:40], "truncated header"),
    "bad_magic": (b"\x93NUMPI" + GOOD_INPUT[6:], "not a .npy file (bad magic)"),
    "empty": (b"", "not a .npy file (bad magic)"),
    "int_dtype": (npy_bytes(np.ones((1, 2, 4, 4), dtype=np.int32)), "unsupported dtype '<i4'"),
    "float16": (npy_bytes(np.ones((1, 2, 4, 4), dtype=np.float16)), "unsupported dtype '<f2'"),
    "no_descr": (GOOD_INPUT.replace(b"'descr'", b"'dtype'"), "malformed header: no 'descr' entry"),
    "no_shape": (GOOD_INPUT.replace(b"'shape'", b"'shapo'"), "malformed header: no 'shape' tuple"),
    "bad_shape": (GOOD_INPUT.replace(b"(1, 2, 4, 4)", b"(1, 2, x, 4)"), "malformed shape (1, 2, x, 4)"),
    "trailing_bytes": (GOOD_INPUT + b"\0\0\0\0", "trailing bytes after the data"),
    "bad_version": (GOOD_INPUT[:6] + b"\x07" + GOOD_INPUT[7:], "unsupported .npy format version 7"),
    "object_array": (npy_bytes(np.array([None, 1.0], dtype=object)), "unsupported dtype '|O'"),
    "structured_array": (npy_bytes(np.zeros(2, dtype=[("a", "<f4"), ("b", "<f8")])),
                         "unsupported dtype [('a', '<f4'), ('b', '<f8')] (structured arrays are not read"),
    "complex": (npy_bytes(np.ones(3, dtype=np.complex64)), "unsupported dtype '<c8'"),
    "negative_dimension": (with_header(shape=b"(1, -2, 4, 4)"), "shape dimension -2 is negative"),
    "huge_dimension": (with_header(shape=b"(1, 2, 4, 9999999999999999999)"),
                       "shape dimension 9999999999999999999 is too large"),
    "size_overflows": (with_header(shape=b"(4294967296, 4294967296, 4)"),
                       "data of shape 4294967296x4294967296x4 has more than 2^64 bytes"),
    "size_beyond_the_file": (with_header(shape=b"(1048576, 1048576)"),
                             "truncated data: expected 4398046511104 bytes for shape (1048576, 1048576), found 128"),
    "one_element_tuple_without_comma": (with_header(shape=b"(32)"),
                                        "malformed shape (32): a one-element tuple needs a comma"),
    "unknown_key": (with_header(extra=b"'extra': 1, "), "malformed header: unknown key 'extra'"),
    "duplicate_key": (with_header(extra=b"'descr': '<f4', "), "malformed header: key 'descr' appears twice"),
    "fortran_order_not_bool": (with_header(fortran=b"0"), "malformed header: fortran_order is 0, not True or False"),
    "not_a_dictionary": (with_header(open_brace=b"["), "malformed header: expected '{' at byte 0 of the header"),
    "text_after_dictionary": (with_header(extra=b"} x"), "malformed header: unexpected text after the dictionary"),
    "unterminated_string": (with_header(descr=b"'<f4"), "malformed header: expected ',' at byte"),
}


@pytest.fixture
def good_operands(tmp_path):
    """A valid conv problem on disk: input [1, 2, 4, 4], weight [3, 2, 3, 3]."""
    _, paths = save_operands(tmp_path, "conv", (1, 2, 4, 4), (3, 2, 3, 3), False, {})
    return paths


def assert_refused(result, message, directory, files_before):
    assert result.returncode == EXIT_BAD_INPUT, (result.returncode, result.stderr)
    assert message in result.stderr
    assert result.stderr.startswith("tconv: ") and result.stderr.count("\n") == 1, result.stderr
    assert sorted(os.listdir(directory)) == files_before, "the refused run left a file behind"


@pytest.mark.parametrize("name", BAD_INPUT_FILES)
def test_bad_npy_files_are_refused(tmp_path, good_operands, name):
    contents, message = BAD_INPUT_FILES[name]
    good_operands["input"].write_bytes(contents)
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", "conv", *operand_flags(good_operands), "--output", tmp_path / "output.npy")
    assert_refused(result, message, tmp_path, files_before)


def test_missing_file_is_refused(tmp_path, good_operands):
    good_operands["weight"] = tmp_path / "nowhere.npy"
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", "conv", *operand_flags(good_operands), "--output", tmp_path / "output.npy")
    assert_refused(result, "nowhere.npy: cannot open: No such file or directory", tmp_path, files_before)


BAD_INVOCATIONS = [  # the operation and the flags after the operands, the message
    (["conv", "--stride", "2,x"], "--stride: '2,x' is not a comma-separated list of integers"),
    (["conv", "--stride", ""], "--stride: '' is not a comma-separated list of integers"),
    (["conv", "--groups", "1,1"], "--groups takes one integer, got '1,1'"),
    (["conv", "--strides", "2"], "unknown option '--strides'"),
    (["conv", "--stride", "1", "--stride", "2"], "--stride given twice"),
    (["conv", "--stride"], "--stride needs a value"),
    (["deconv"], "unknown operation 'deconv' (expected conv or conv_transpose)"),
    (["conv", "--output-padding", "1"], "output_padding (1) applies to conv_transpose only"),
    (["conv", "--padding", "-1"], "padding (-1) must be non-negative"),
    (["conv", "--stride", "0"], "stride (0) must be positive"),
    (["conv", "--dilation", "1,1,1"], "dilation has 3 values but the convolution is 2-D"),
    (["conv", "--groups", "2"], "out_channels (3, weight dimension 0) is not divisible by groups (2)"),
    (["conv", "--dilation", "2"], "computed output size is 0 x 0"),
    (["conv_transpose"], "input has 2 channels but the weight's dimension 0 (in_channels) is 3"),
    # --convention onnx, and the flags of one convention given to the other
    (["conv", "--convention", "caffe"], "--convention must be torch or onnx, got 'caffe'"),
    (["conv", "--strides", "2,2"], "unknown option '--strides' (an ONNX attribute: add --convention onnx)"),
    (["conv", "--convention", "torch", "--auto-pad", "VALID"], "unknown option '--auto-pad' (an ONNX attribute"),
    (["conv", "--convention", "onnx", "--stride", "2"], "--stride is a flag of the torch convention"),
    (["conv", "--convention", "onnx", "--padding", "1"], "--padding is a flag of the torch convention"),
    (["conv", "--convention", "onnx", "--groups", "1"], "--groups is a flag of the torch convention"),
    (["conv", "--convention", "onnx", "--dilation", "1"], "--dilation is a flag of the torch convention"),
    (["conv", "--convention", "onnx", "--auto-pad", "SAME"],
     "auto_pad must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got 'SAME'"),
    (["conv", "--convention", "onnx", "--auto-pad", "VALID", "--pads", "1,1,1,1"],
     "pads ([1, 1, 1, 1]) cannot be used with auto_pad='VALID' (only with NOTSET)"),
    (["conv", "--convention", "onnx", "--pads", "1,1"], "pads [1, 1] must have 4 values"),
    (["conv", "--convention", "onnx", "--pads", "1,x,1,1"], "--pads: '1,x,1,1' is not a comma-separated list"),
    (["conv", "--convention", "onnx", "--strides", "0,1"], "strides [0, 1] must be positive"),
    (["conv", "--convention", "onnx", "--group", "1,1"], "--group takes one integer, got '1,1'"),
    (["conv", "--convention", "onnx", "--kernel-shape", "2,2"],
     "kernel_shape [2, 2] must match W's spatial dimensions [3, 3]"),
    (["conv", "--convention", "onnx", "--output-shape", "4,4"], "output_shape ([4, 4]) is a ConvTranspose attribute"),
    (["conv", "--convention", "onnx", "--dilations", "2,2", "--auto-pad", "VALID"], "computed output size is 0 x 0"),
    (["conv_transpose", "--convention", "onnx", "--output-shape", "4,4", "--pads", "0,0,0,0"],
     "pads ([0, 0, 0, 0]) cannot be used with output_shape ([4, 4]): output_shape sets the pads"),
    (["conv_transpose", "--convention", "onnx", "--output-shape", "0,4"], "output_shape [0, 4] must be positive"),
]


@pytest.mark.parametrize("arguments, message", BAD_INVOCATIONS, ids=[m[:40] for _, m in BAD_INVOCATIONS])
def test_bad_invocations_are_refused(tmp_path, good_operands, arguments, message):
    op, *flags = arguments
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", op, *operand_flags(good_operands), "--output", tmp_path / "output.npy", *flags)
    assert_refused(result, message, tmp_path, files_before)


@pytest.mark.parametrize("missing", ["--input", "--weight", "--output"])
def test_missing_required_flag_is_refused(tmp_path, good_operands, missing):
    tokens = [*operand_flags(good_operands), "--output", tmp_path / "output.npy"]
    at = tokens.index(missing)
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", "conv", *tokens[:at], *tokens[at + 2:])
    assert_refused(result, f"missing {missing}", tmp_path, files_before)


@pytest.mark.parametrize("overwritten", ["input", "weight"])
def test_output_over_an_operand_is_refused(tmp_path, good_operands, overwritten):
    before = good_operands[overwritten].read_bytes()
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", "conv", *operand_flags(good_operands), "--output", good_operands[overwritten])
    assert_refused(result, f"is also --{overwritten}; write the result elsewhere", tmp_path, files_before)
    assert good_operands[overwritten].read_bytes() == before


@pytest.mark.parametrize("arguments, message", [
    (["shape", "conv", "--input-shape", "1,2,4,4", "--weight-shape", "3,2,5,5"], "computed output size is 0 x 0"),
    (["shape", "conv", "--input-shape", "1,2,4,4,4", "--weight-shape", "3,2,3,3"], "input must have 3 (unbatched) or 4"),
    (["shape", "conv", "--input-shape", "1,2,4,4"], "missing --weight-shape"),
    (["shape", "conv", "--input-shape", "1,2,a,4", "--weight-shape", "3,2,3,3"], "--input-shape: '1,2,a,4' is not"),
    (["shape", "conv", "--input-shape", "1,2,4,4", "--weight-shape", "3,2,3,4611686018427387904"],
     "has more than 2^56 elements"),
    (["transpose"], "unknown command 'transpose'"),
    (["shape", "conv", "--convention", "onnx", "--input-shape", "1,2,4,4", "--weight-shape", "3,2,3,3", "--padding",
      "1"], "--padding is a flag of the torch convention"),
    (["shape", "conv", "--convention", "onnx", "--input-shape", "2,4,4", "--weight-shape", "3,2,3,3"],
     "X must have 4 dimensions [N, C, spatial...] for a W of shape [3, 2, 3, 3], got 3"),
])
def test_bad_shape_queries_are_refused(arguments, message):
    result = tconv(*arguments)
    assert result.returncode == EXIT_BAD_INPUT
    assert message in result.stderr


def test_zero_dimensional_file_is_read_and_refused_as_a_bias(tmp_path, good_operands):
    good_operands["bias"] = tmp_path / "bias.npy"
    np.save(good_operands["bias"], np.float32(1.5))
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", "conv", *operand_flags(good_operands), "--output", tmp_path / "output.npy")
    assert_refused(result, "bias must have shape [3] (one value per output channel), got []", tmp_path, files_before)


LIMIT_NOTE = "(set by TCONV_MAX_BYTES or set_max_bytes; default: the machine's physical memory)"


@pytest.mark.parametrize("limit, flags, message", [
    ("100", [], "input.npy: data of shape (1, 2, 4, 4) needs 128 bytes, more than the limit of 100 bytes " + LIMIT_NOTE),
    ("10000", ["--padding", "20"], "conv output 1x3x42x42 (21168 bytes) with workspace"),
    ("lots", [], "TCONV_MAX_BYTES ('lots') must be a positive integer number of bytes"),
    ("-5", [], "TCONV_MAX_BYTES ('-5') must be a positive integer number of bytes"),
], ids=["file_over_limit", "output_over_limit", "not_a_number", "negative"])
def test_memory_limit_is_enforced_before_allocating(tmp_path, good_operands, limit, flags, message):
    files_before = sorted(os.listdir(tmp_path))
    result = tconv("run", "conv", *operand_flags(good_operands), "--output", tmp_path / "output.npy", *flags,
                   env={"TCONV_MAX_BYTES": limit})
    assert_refused(result, message, tmp_path, files_before)


def test_unwritable_output_is_refused(tmp_path, good_operands):
    files_before = sorted(os.listdir(tmp_path))
    output = tmp_path / "no_such_folder" / "output.npy"
    result = tconv("run", "conv", *operand_flags(good_operands), "--output", output)
    assert_refused(result, f"{output}: cannot write: No such file or directory", tmp_path, files_before)


# Writing the result: the data goes to an unnamed file (O_TMPFILE) in the output's folder, linked to the output's
# name only when complete, so no moment of a run leaves a partial file behind.
needs_unnamed_files = pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="no O_TMPFILE on this system")


def large_run(directory):
    """Operands of a run whose output (32x1x1021x1021 float32, 133 MB) takes a while to write; its flags and the
    expected output."""
    x = np.random.default_rng(7).random((32, 1, 256, 256), dtype=np.float32)
    np.save(directory / "x.npy", x)
    np.save(directory / "w.npy", np.ones((1, 1, 1, 1), dtype=np.float32))
    expected = np.zeros((32, 1, 1021, 1021), dtype=np.float32)
    expected[:, :, ::4, ::4] = x
    flags = ["conv_transpose", "--input", directory / "x.npy", "--weight", directory / "w.npy", "--stride", 4]
    return flags, expected


def assert_unnamed_files_supported(directory):
    try:
        os.close(os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError as e:
        pytest.skip(f"the test folder's filesystem has no unnamed files (O_TMPFILE: {e}); tconv then writes a "
                    "named temporary file, which a kill leaves behind (docs/errors.md)")


def writing_output(pid, directory, inputs):
    """Whether process `pid` holds a file of `directory` open that is none of `inputs`: the result being written
    (an unnamed file shows as '#inode (deleted)')."""
    folder = os.path.realpath(directory)
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:  # it has ended, or one descriptor closed meanwhile
        return False
    return any(os.path.dirname(link) == folder and os.path.basename(link) not in inputs for link in links)


@needs_unnamed_files
@pytest.mark.parametrize("moment", ["at once", "after 0.1 s", "after 0.3 s", "while writing"])
def test_killed_run_leaves_no_partial_file(tmp_path, moment):
    assert_unnamed_files_supported(tmp_path)
    flags, expected = large_run(tmp_path)
    output = tmp_path / "y.npy"
    inputs = sorted(os.listdir(tmp_path))
    process = subprocess.Popen([CLI, "run", *map(str, flags), "--output", str(output)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if moment == "while writing":
            deadline = time.monotonic() + 60
            while (process.poll() is None and time.monotonic() < deadline
                   and not writing_output(process.pid, tmp_path, inputs)):
                time.sleep(0.001)
        elif moment != "at once":
            time.sleep(float(moment.split()[1]))
        process.kill()
    finally:
        stderr = process.communicate(timeout=60)[1]
    # Whenever the kill landed: the folder holds the inputs, and the output only if it is complete.
    assert process.returncode in (0, -signal.SIGKILL), (process.returncode, stderr)
    left = sorted(set(os.listdir(tmp_path)) - set(inputs))
    assert left in ([], [output.name]), f"the killed run left {left}"
    if left or process.returncode == 0:
        np.testing.assert_array_equal(np.load(output), expected)


def without_room_to_write(limit_bytes):
    """For subprocess: writes beyond `limit_bytes` fail with EFBIG (SIGXFSZ ignored) instead of killing."""
    def set_limits():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return set_limits


@pytest.mark.parametrize("existing", [False, True], ids=["new output", "existing output"])
def test_failed_write_leaves_no_file(tmp_path, existing):
    flags, _ = large_run(tmp_path)
    output = tmp_path / "y.npy"
    if existing:
        output.write_bytes(b"the previous result")
    files_before = sorted(os.listdir(tmp_path))
    result = subprocess.run([CLI, "run", *map(str, flags), "--output", str(output)], capture_output=True, text=True,
                            timeout=60, preexec_fn=without_room_to_write(1 << 20))
    assert_refused(result, f"{output}: write failed: File too large", tmp_path, files_before)
    if existing:
        assert output.read_bytes() == b"the previous result"


def test_layout_flag_runs_channels_last_files(tmp_path):
    rng = np.random.default_rng(23)
    x = rng.uniform(-1, 1, (2, 5, 6, 8)).astype(np.float32)  # N, H, W, C
    w = rng.uniform(-1, 1, (8, 3, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    result = tconv("run", "conv_transpose", "--input", str(tmp_path / "x.npy"), "--weight", str(tmp_path / "w.npy"),
                   "--stride", "2", "--padding", "1", "--layout", "nhwc", "--output", str(tmp_path / "y.npy"))
    assert result.returncode == 0, result.stderr
    expected = tconv_module.conv_transpose(x, w, stride=2, padding=1, layout="nhwc")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
    assert tconv("shape", "conv_transpose", "--input-shape", "2,5,6,8", "--weight-shape", "8,3,3,3", "--stride", "2",
                 "--layout", "nhwc").stdout.strip() == "2,11,13,3"
    refused = tconv("shape", "conv", "--input-shape", "1,5,5,3", "--weight-shape", "2,3,3,3", "--layout", "hwc")
    assert refused.returncode == 2
    assert refused.stderr.strip() == ("tconv: --layout must be nchw, ncw, ncdhw, channels_first, nhwc, nwc, ndhwc or "
                                      "channels_last, got 'hwc'")
