"""The Python API: the walk-through numbers, argument checking, conv_matrix,
the reference methods, prepared operators and unusual array layouts."""

import numpy as np
import pytest

import tconv
import torch_reference

# The walk-through: a 4x4 input, a 3x3 kernel, the 2x2 result and the 4x16 matrix.
WALKTHROUGH_INPUT = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], dtype=np.float32)
WALKTHROUGH_KERNEL = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=np.float32)
WALKTHROUGH_OUTPUT = [[122, 148], [126, 134]]
WALKTHROUGH_MATRIX = [
    [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0],
    [0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0],
    [0, 0, 0, 0, 0, 1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1],
]
SCATTER_INPUT = np.array([[1, 2], [3, 4]], dtype=np.float32)
SCATTER_KERNEL = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
SCATTER_OUTPUT = [[1, 4, 7, 6], [7, 23, 33, 24], [19, 53, 63, 42], [21, 52, 59, 36]]

WALKTHROUGH = [
    ("conv", WALKTHROUGH_INPUT, WALKTHROUGH_KERNEL, WALKTHROUGH_OUTPUT),
    ("conv_transpose", SCATTER_INPUT, SCATTER_KERNEL, SCATTER_OUTPUT),
]
ENGINE = {"conv": tconv.conv, "conv_transpose": tconv.conv_transpose}
METHODS = {"gather": tconv.reference.gather, "matrix": tconv.reference.matrix, "scatter": tconv.reference.scatter}


def as_batch(image):
    return image[None, None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, image, kernel, expected", WALKTHROUGH, ids=["conv", "conv_transpose"])
def test_walkthrough_engine(op, image, kernel, expected, dtype):
    got = ENGINE[op](as_batch(image).astype(dtype), as_batch(kernel).astype(dtype))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got[0, 0], expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op, image, kernel, expected", WALKTHROUGH, ids=["conv", "conv_transpose"])
def test_walkthrough_reference_methods(op, image, kernel, expected, method):
    np.testing.assert_array_equal(METHODS[method](op, as_batch(image), as_batch(kernel))[0, 0], expected)


def test_walkthrough_conv_matrix():
    np.testing.assert_array_equal(tconv.conv_matrix([1, 4, 4], as_batch(WALKTHROUGH_KERNEL)), WALKTHROUGH_MATRIX)


def test_walkthrough_transpose_is_matrix_transpose():
    matrix = np.array(WALKTHROUGH_MATRIX, dtype=np.float32)
    got = tconv.conv_transpose(as_batch(SCATTER_INPUT), as_batch(WALKTHROUGH_KERNEL))
    np.testing.assert_array_equal(got.ravel(), matrix.T @ SCATTER_INPUT.ravel())


# --- argument checking -------------------------------------------------------------------------

X = np.ones((1, 4, 5, 5), dtype=np.float32)
W = np.ones((4, 4, 3, 3), dtype=np.float32)


@pytest.mark.parametrize("call, message", [
    (lambda: tconv.conv(X.astype(np.int32), W), "input must be float32 or float64, got int32"),
    (lambda: tconv.conv(X, W.astype(np.int64)), "weight must be float32 or float64, got int64"),
    (lambda: tconv.conv(X, W, bias=np.ones(4, dtype=np.int16)), "bias must be float32 or float64"),
    (lambda: tconv.conv(X.astype(np.float16), W), "input must be float32 or float64, got float16"),
    (lambda: tconv.conv(X.astype(np.complex64), W), "input must be float32 or float64"),
    (lambda: tconv.conv(None, W), "input must be an array, got None"),
    (lambda: tconv.conv(X.astype(np.float64), W), "input is float64 but the weight is float32"),
    (lambda: tconv.conv(X, W, bias=np.ones(4)), "bias is float64 but the weight is float32"),
    (lambda: tconv.conv(X, W, stride="2"), "stride must be an int or a non-empty tuple of ints"),
    (lambda: tconv.conv(X, W, padding=1.5), "padding must be an int or a non-empty tuple of ints"),
    (lambda: tconv.conv(X, W, dilation=()), "dilation must be an int or a non-empty tuple of ints"),
    (lambda: tconv.conv(X, W, stride=True), "stride must be an int"),
    (lambda: tconv.conv(X, W, groups=2.0), "groups must be an int"),
    (lambda: tconv.conv_transpose(X, W, output_padding=[1, None]), "output_padding must be an int"),
], ids=lambda value: None if callable(value) else value[:40])
def test_type_errors(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda: tconv.conv_transpose(X, W, stride=2, output_padding=2),
     r"output_padding \(2\) must be smaller than stride \(2\) or dilation \(1\)"),
    (lambda: tconv.conv(X, W[:3], groups=4), r"out_channels \(3, weight dimension 0\) is not divisible by groups \(4\)"),
    (lambda: tconv.conv_transpose(X[:, :3], W[:3], groups=4),
     r"in_channels \(3, weight dimension 0\) is not divisible by groups \(4\)"),
    (lambda: tconv.conv(X[..., :2, :2], W), "computed output size is 0 x 0: input 2x2 is too small for kernel 3x3"),
    (lambda: tconv.conv_transpose(X[..., :1, :1], W, padding=3), "computed output size is -3 x -3: padding 3x3 crops"),
    (lambda: tconv.conv(X, W, stride=0), r"stride \(0\) must be positive"),
    (lambda: tconv.conv(X, W, dilation=(1, 0)), r"dilation \(0\) must be positive"),
    (lambda: tconv.conv(X, W, padding=-1), r"padding \(-1\) must be non-negative"),
    (lambda: tconv.conv(X, W, groups=0), r"groups \(0\) must be positive"),
    (lambda: tconv.conv(X, W, stride=(1, 2, 3)), "stride has 3 values but the convolution is 2-D"),
    (lambda: tconv.conv(X[0, 0], W), r"input must have 3 \(unbatched\) or 4 \(batched\) dimensions"),
    (lambda: tconv.conv(X, W[0, 0]), "weight must have 3, 4 or 5 dimensions"),
    (lambda: tconv.conv(X[:, :3], W), "input has 3 channels but the weight expects 4"),
    (lambda: tconv.conv(X, W, bias=np.ones(3, np.float32)), r"bias must have shape \[4\]"),
    (lambda: tconv.conv(X[:, :, :0], W), "input dimension 2 has size 0"),
    (lambda: tconv.output_shape("deconv", X.shape, W.shape), "op must be 'conv' or 'conv_transpose'"),
    (lambda: tconv.set_num_threads(0), r"threads \(0\) must be positive"),
    (lambda: tconv.Conv(W, implementation="no-such-kernel"), "implementation 'no-such-kernel' does not exist"),
], ids=lambda value: None if callable(value) else value[:40])
def test_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- conv_matrix ---------------------------------------------------------------------------------

MATRIX_CASES = [  # input shape, weight shape, stride, padding, dilation, groups
    ((1, 7), (2, 1, 3), 2, 1, 1, 1),
    ((2, 5, 6), (3, 2, 2, 3), (2, 1), (1, 0), (1, 2), 1),
    ((4, 5, 5), (6, 2, 3, 3), 3, 2, 1, 2),
    ((3, 6, 4), (3, 1, 3, 2), 1, 1, 2, 3),
    ((2, 3, 4, 3), (2, 2, 2, 2, 2), (1, 2, 1), 1, 1, 1),
]


def orientation_output_padding(input_size, kernel, stride, padding, dilation):
    """output_padding that makes conv_transpose's output as large as conv's input."""
    return (input_size + 2 * padding - dilation * (kernel - 1) - 1) % stride


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("input_shape, weight_shape, stride, padding, dilation, groups", MATRIX_CASES)
def test_conv_matrix_is_the_convolution_and_its_transpose(input_shape, weight_shape, stride, padding, dilation,
                                                         groups, dtype):
    rng = np.random.default_rng(len(input_shape) * 10 + groups)
    x = rng.uniform(-1, 1, input_shape).astype(dtype)
    w = rng.uniform(-1, 1, weight_shape).astype(dtype)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    matrix = tconv.conv_matrix(input_shape, w, **params)
    y = torch_reference.compute("conv", x, w, **params)
    assert matrix.shape == (y.size, x.size)
    assert matrix.dtype == dtype
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(matrix @ x.ravel(), y.ravel(), atol=tolerance)
    np.testing.assert_array_equal(tconv.conv_matrix((1,) + input_shape, w, **params), matrix)

    rank = len(input_shape) - 1
    per_dim = [np.broadcast_to(value, rank) for value in (stride, padding, dilation)]
    output_padding = tuple(int(orientation_output_padding(size, k, s, p, d))
                           for size, k, s, p, d in zip(input_shape[1:], weight_shape[2:], *per_dim))
    back = tconv.conv_transpose(y, w, output_padding=output_padding, **params)
    assert back.shape == x.shape
    np.testing.assert_allclose(back.ravel(), matrix.T @ y.ravel(), atol=tolerance)


# --- reference methods, output_shape, prepared operators --------------------------------------------

REFERENCE_CASES = [  # op, input shape, weight shape, parameters
    ("conv", (2, 4, 9), (6, 2, 3), dict(stride=2, padding=1, dilation=2, groups=2)),
    ("conv_transpose", (1, 3, 4, 5), (3, 2, 3, 2), dict(stride=(2, 3), padding=1, output_padding=(1, 2))),
    ("conv_transpose", (4, 3, 2, 3), (4, 1, 2, 2, 2), dict(stride=2, dilation=(1, 2, 1), groups=4)),
    ("conv", (3, 5, 4, 6), (6, 1, 1, 3, 2), dict(padding=(0, 1, 2), groups=3)),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("op, input_shape, weight_shape, params", REFERENCE_CASES)
def test_reference_methods_match_torch(op, input_shape, weight_shape, params, method):
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, input_shape)
    w = rng.uniform(-1, 1, weight_shape)
    output_channels = weight_shape[0] if op == "conv" else weight_shape[1] * params.get("groups", 1)
    b = rng.uniform(-1, 1, output_channels)
    expected = torch_reference.compute(op, x, w, b, **params)
    np.testing.assert_allclose(METHODS[method](op, x, w, b, **params), expected, rtol=0, atol=1e-12)
    assert tconv.output_shape(op, x.shape, w.shape, **params) == expected.shape


@pytest.mark.parametrize("implementation", [""] + tconv.available_implementations())
@pytest.mark.parametrize("op, input_shape, weight_shape, params", REFERENCE_CASES)
def test_prepared_operator(op, input_shape, weight_shape, params, implementation):
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, input_shape).astype(np.float32)
    w = rng.uniform(-1, 1, weight_shape).astype(np.float32)
    prepared_class = tconv.Conv if op == "conv" else tconv.ConvTranspose
    try:
        prepared = prepared_class(w, implementation=implementation, **params)
    except ValueError as refusal:
        assert "was forced but" in str(refusal)
        pytest.skip(f"{implementation} does not take this problem: {refusal}")
    assert prepared.implementation in tconv.available_implementations()
    assert prepared.reason
    expected = torch_reference.compute(op, x, w, **params)
    assert prepared.output_shape(x.shape) == expected.shape
    assert prepared.workspace_bytes(x.shape) >= 0
    assert isinstance(prepared.strategy(x.shape), str)
    for sample, want in ((x, expected), (-x, -expected)):  # one operator, several inputs
        np.testing.assert_allclose(prepared(sample), want, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()))


def test_set_num_threads_round_trips():
    saved = tconv.num_threads()
    try:
        tconv.set_num_threads(1)
        assert tconv.num_threads() == 1
    finally:
        tconv.set_num_threads(saved)


# --- array layouts -----------------------------------------------------------------------------------

LAYOUTS = {
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "fortran_order": np.asfortranarray,
    "negative_strides": lambda a: np.ascontiguousarray(a[:, :, ::-1, ::-1])[:, :, ::-1, ::-1],
    "every_other_element": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_layouts_give_the_same_numbers(op, layout, dtype):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 4, 6, 5)).astype(dtype)
    w = rng.uniform(-1, 1, (4, 2, 3, 2)).astype(dtype)
    b = rng.uniform(-1, 1, 4).astype(dtype)
    x_laid, w_laid = LAYOUTS[layout](x), LAYOUTS[layout](w)
    assert np.array_equal(x_laid, x) and np.array_equal(w_laid, w)
    b_laid = b.astype(b.dtype.newbyteorder(">")) if layout == "big_endian" else b
    got = ENGINE[op](x_laid, w_laid, b_laid, stride=2, groups=2)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, ENGINE[op](x, w, b, stride=2, groups=2))
    np.testing.assert_allclose(got, torch_reference.compute(op, x, w, b, stride=2, groups=2), rtol=0,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_memory_limit_refuses_a_call_before_allocating():
    machine = tconv.max_bytes()
    assert machine > 1 << 20
    weight = np.ones((1, 1, 3, 3), dtype=np.float32)
    operator = tconv.ConvTranspose(weight, stride=64, implementation="direct")
    tconv.set_max_bytes(1 << 20)
    try:
        assert tconv.max_bytes() == 1 << 20
        with pytest.raises(ValueError, match=r"conv_transpose output 1x1x1219x1219 "
                           r"\(5943844 bytes\) with workspace \(\d+ bytes for \d+ threads\) needs \d+ bytes, more than "
                           r"the limit of 1048576 bytes"):
            operator(np.ones((1, 1, 20, 20), dtype=np.float32))
        assert operator(np.ones((1, 1, 2, 2), dtype=np.float32)).shape == (1, 1, 67, 67)
    finally:
        tconv.set_max_bytes(0)
    assert tconv.max_bytes() == machine
