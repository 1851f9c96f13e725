"""Channels-last activations from Python: layout='nhwc' (or 'nwc', 'ndhwc', 'channels_last') on the functional
calls, the prepared operators, output_shape and the gradients, against torch on channels-first data transposed,
and the same bits as the channels-first computation transposed."""

import numpy as np
import pytest
import torch

import tconv
import torch_reference


def to_last(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def to_first(a):
    return np.moveaxis(a, -1, 1)


def random_problem(rng, op):
    rank = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 1, 2]))
    cin, cout = groups * int(rng.integers(1, 20)), groups * int(rng.integers(1, 20))
    size = [int(rng.integers(2, 9)) for _ in range(rank)]
    kernel = [int(rng.integers(1, 4)) for _ in range(rank)]
    stride = [int(rng.integers(1, 4)) for _ in range(rank)]
    dilation = [int(rng.integers(1, 3)) for _ in range(rank)]
    padding = [int(rng.integers(0, 2)) for _ in range(rank)]
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if op == "conv_transpose":
        params["output_padding"] = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)]
        weight_shape = (cin, cout // groups, *kernel)
    else:
        weight_shape = (cout, cin // groups, *kernel)
    x = rng.uniform(-1, 1, (int(rng.integers(1, 4)), cin, *size)).astype(np.float32)
    w = rng.uniform(-1, 1, weight_shape).astype(np.float32)
    b = rng.uniform(-1, 1, cout).astype(np.float32)
    return x, w, b, params


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_functional_calls_match_torch_and_the_channels_first_bits(op):
    rng = np.random.default_rng(3)
    function = tconv.conv if op == "conv" else tconv.conv_transpose
    compared = 0
    for _ in range(120):
        x, w, b, params = random_problem(rng, op)
        try:
            expected = torch_reference.compute(op, x, w, b, **params)
        except RuntimeError:
            continue  # torch refuses it (output too small): not a layout question
        first = function(x, w, b, **params)
        last = function(to_last(x), w, b, layout="nhwc", **params)
        assert last.shape == to_last(expected).shape
        np.testing.assert_allclose(to_first(last), expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(to_first(last), first)  # the same bits, transposed
        compared += 1
    assert compared > 80


def test_prepared_operators_take_the_layout_and_report_the_channels_last_engine():
    rng = np.random.default_rng(7)
    w = rng.uniform(-1, 1, (64, 32, 4, 4)).astype(np.float32)
    b = rng.uniform(-1, 1, 32).astype(np.float32)
    x = rng.uniform(-1, 1, (2, 9, 7, 64)).astype(np.float32)
    prepared = tconv.ConvTranspose(w, b, stride=2, padding=1, layout="nhwc")
    assert prepared.output_shape(x.shape) == (2, 18, 14, 32)
    expected = torch_reference.compute("conv_transpose", to_first(x), w, b, stride=2, padding=1)
    np.testing.assert_allclose(to_first(prepared(x)), expected, rtol=1e-4, atol=1e-4)
    if "igemm_avx512" in tconv.available_implementations():
        assert prepared.implementation == "igemm_avx512"
    assert tconv.output_shape("conv", (2, 9, 7, 64), (5, 64, 3, 3), layout="channels_last") == (2, 7, 5, 5)
    wc = rng.uniform(-1, 1, (5, 64, 3, 3)).astype(np.float32)
    conv = tconv.Conv(wc, stride=2, layout="nhwc")
    np.testing.assert_allclose(to_first(conv(x)), torch_reference.compute("conv", to_first(x), wc, stride=2),
                               rtol=1e-4, atol=1e-4)


def test_output_size_and_padding_modes_read_the_spatial_dimensions_of_channels_last_input():
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (1, 6, 5, 3)).astype(np.float32)  # N, H, W, C
    w = rng.uniform(-1, 1, (3, 4, 3, 3)).astype(np.float32)
    y = tconv.conv_transpose(x, w, stride=2, padding=1, output_size=(12, 10), layout="nhwc")
    expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(to_first(x).copy()), torch.from_numpy(w),
                                                    stride=2, padding=1, output_padding=(1, 1)).numpy()
    assert y.shape == (1, 12, 10, 4)
    np.testing.assert_allclose(to_first(y), expected, rtol=1e-5, atol=1e-5)
    wc = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    for mode in ("reflect", "replicate", "circular"):
        module = torch.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, bias=False)
        module.weight.data = torch.from_numpy(wc)
        with torch.no_grad():
            expected = module(torch.from_numpy(to_first(x).copy())).numpy()
        got = tconv.conv(x, wc, padding=(1, 2), padding_mode=mode, layout="nhwc")
        np.testing.assert_allclose(to_first(got), expected, rtol=1e-5, atol=1e-5, err_msg=mode)


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_gradients_take_the_layout(op):
    rng = np.random.default_rng(13)
    backward = tconv.conv_backward if op == "conv" else tconv.conv_transpose_backward
    function = tconv.conv if op == "conv" else tconv.conv_transpose
    for _ in range(20):
        x, w, _, params = random_problem(rng, op)
        x, w = x.astype(np.float64), w.astype(np.float64)
        try:
            y = function(x, w, **params)
        except ValueError:
            continue
        g = rng.uniform(-1, 1, y.shape)
        first = backward(g, x, w, **params)
        last = backward(to_last(g), to_last(x), w, layout="nhwc", **params)
        np.testing.assert_array_equal(to_first(last[0]), first[0])
        np.testing.assert_array_equal(last[1], first[1])
        np.testing.assert_array_equal(last[2], first[2])


def test_layout_names_and_errors():
    x = np.zeros((1, 4, 4, 3), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    for name in ("nhwc", "NHWC", "channels_last", "nwc", "ndhwc"):
        assert tconv.conv_transpose(x, w, layout=name).shape == (1, 6, 6, 2)
    with pytest.raises(ValueError, match=r"^layout must be one of nchw, ncw, ncdhw, channels_first, nhwc, nwc, "
                                         r"ndhwc, channels_last, got 'hwcn'$"):
        tconv.conv_transpose(x, w, layout="hwcn")
    with pytest.raises(TypeError, match="layout must be a string"):
        tconv.conv_transpose(x, w, layout=1)
    with pytest.raises(ValueError, match=r"^input has 4 channels \(its last dimension: layout channels_last\) but "
                                         r"the weight's dimension 0 \(in_channels\) is 3$"):
        tconv.conv_transpose(np.zeros((1, 3, 3, 4), np.float32), w, layout="nhwc")
    with pytest.raises(ValueError, match="conv_matrix orders elements channels-first"):
        tconv._tconv.conv_matrix([4, 4, 2], w, tconv._params(layout="nhwc"))
