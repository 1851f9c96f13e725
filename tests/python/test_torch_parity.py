"""Parity with PyTorch at the edges of what it accepts.

A table of bad inputs, each refused by torch.nn.functional and by tconv with
the whole message (it names the parameter, its value and the rule), the same
message from every entry point: the one-shot calls, output_shape, the prepared
operators and the three reference methods. The corner cases torch accepts near
those rules are accepted with torch's numbers; the functions take torch's
arguments in torch's order; the walk-through's torch layer gives tconv's numbers."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv
import torch_reference

# (id, op, input shape, weight shape, bias shape, params, exception, whole message)
BAD = [
    ("output_padding_not_below_stride", "conv_transpose", (1, 2, 5, 5), (2, 3, 3, 3), None,
     dict(stride=2, output_padding=2), ValueError,
     "output_padding (2) must be smaller than stride (2) or dilation (1)"),
    ("output_padding_per_dimension", "conv_transpose", (1, 2, 5, 5), (2, 3, 3, 3), None,
     dict(stride=(2, 3), output_padding=(1, 3)), ValueError,
     "output_padding (3) must be smaller than stride (3) or dilation (1)"),
    ("negative_output_padding", "conv_transpose", (1, 2, 5, 5), (2, 3, 3, 3), None,
     dict(output_padding=-1), ValueError, "output_padding (-1) must be non-negative"),
    ("in_channels_not_divisible", "conv_transpose", (1, 6, 5, 5), (6, 1, 3, 3), None, dict(groups=4), ValueError,
     "in_channels (6, weight dimension 0) is not divisible by groups (4)"),
    ("out_channels_not_divisible", "conv", (1, 8, 5, 5), (6, 2, 3, 3), None, dict(groups=4), ValueError,
     "out_channels (6, weight dimension 0) is not divisible by groups (4)"),
    ("input_too_small", "conv", (1, 1, 2, 2), (1, 1, 5, 5), None, {}, ValueError,
     "computed output size is -2 x -2: input 2x2 is too small for kernel 5x5 with dilation 1x1 and padding 0x0"),
    ("input_too_small_one_dimension", "conv", (1, 1, 4, 3), (1, 1, 5, 5), None, {}, ValueError,
     "computed output size is 0 x -1: input 4x3 is too small for kernel 5x5 with dilation 1x1 and padding 0x0"),
    ("dilated_kernel_too_large_1d", "conv", (1, 1, 5), (1, 1, 3), None, dict(dilation=3), ValueError,
     "computed output size is -1: input 5 is too small for kernel 3 with dilation 3 and padding 0"),
    ("padding_crops_everything", "conv_transpose", (1, 1, 2, 2), (1, 1, 1, 1), None, dict(padding=1), ValueError,
     "computed output size is 0 x 0: padding 1x1 crops more than input 2x2 with stride 1x1, kernel 1x1, "
     "dilation 1x1 and output_padding 0x0 produces"),
    ("padding_crops_everything_3d", "conv_transpose", (1, 1, 2, 2, 2), (1, 1, 3, 3, 3), None, dict(padding=(0, 3, 0)),
     ValueError, "computed output size is 4 x -2 x 4: padding 0x3x0 crops more than input 2x2x2 with stride 1x1x1, "
     "kernel 3x3x3, dilation 1x1x1 and output_padding 0x0x0 produces"),
    ("zero_stride", "conv", (1, 2, 5, 5), (3, 2, 3, 3), None, dict(stride=0), ValueError, "stride (0) must be positive"),
    ("negative_stride", "conv_transpose", (1, 2, 5), (2, 3, 3), None, dict(stride=-2), ValueError,
     "stride (-2) must be positive"),
    ("zero_dilation", "conv", (1, 2, 5, 5), (3, 2, 3, 3), None, dict(dilation=(1, 0)), ValueError,
     "dilation (0) must be positive"),
    ("negative_padding", "conv", (1, 2, 5, 5), (3, 2, 3, 3), None, dict(padding=-1), ValueError,
     "padding (-1) must be non-negative"),
    ("zero_groups", "conv", (1, 2, 5, 5), (3, 2, 3, 3), None, dict(groups=0), ValueError,
     "groups (0) must be positive"),
    ("stride_with_three_values_in_2d", "conv", (1, 2, 5, 5), (3, 2, 3, 3), None, dict(stride=(1, 2, 3)), ValueError,
     "stride has 3 values but the convolution is 2-D (give one value, or one per spatial dimension)"),
    ("padding_with_two_values_in_3d", "conv_transpose", (1, 2, 5, 5, 5), (2, 3, 3, 3, 3), None, dict(padding=(1, 1)),
     ValueError, "padding has 2 values but the convolution is 3-D (give one value, or one per spatial dimension)"),
    ("input_rank_wrong", "conv", (1, 1, 5, 5, 5), (1, 1, 3), None, {}, ValueError,
     "input must have 2 (unbatched) or 3 (batched) dimensions for a 1-D convolution (the weight has 3), got 5 "
     "(shape 1x1x5x5x5)"),
    ("weight_rank_six", "conv_transpose", (1, 2, 5, 5, 5, 5), (2, 3, 3, 3, 3, 3), None, {}, ValueError,
     "weight must have 3, 4 or 5 dimensions ([C_in, C_out/groups, kernel...] for a 1-, 2- or 3-D convolution), "
     "got 6 (shape 2x3x3x3x3x3)"),
    ("kernel_size_zero", "conv", (1, 2, 5, 5), (3, 2, 0, 3), None, {}, ValueError,
     "kernel size (0, weight dimension 2) must be positive"),
    ("channel_mismatch", "conv", (1, 4, 5, 5), (3, 2, 3, 3), None, {}, ValueError,
     "input has 4 channels but the weight expects 2 (weight dimension 1 is 2, times groups 1)"),
    ("channel_mismatch_grouped", "conv", (1, 4, 5, 5), (4, 1, 3, 3), None, dict(groups=2), ValueError,
     "input has 4 channels but the weight expects 2 (weight dimension 1 is 1, times groups 2)"),
    ("transposed_channel_mismatch", "conv_transpose", (1, 3, 5, 5), (2, 3, 3, 3), None, {}, ValueError,
     "input has 3 channels but the weight's dimension 0 (in_channels) is 2"),
    ("bias_wrong_length", "conv", (1, 2, 5, 5), (3, 2, 3, 3), (4,), {}, ValueError,
     "bias must have shape [3] (one value per output channel), got [4]"),
    ("bias_two_dimensional", "conv", (1, 2, 5, 5), (3, 2, 3, 3), (3, 1), {}, ValueError,
     "bias must have shape [3] (one value per output channel), got [3, 1]"),
    ("transposed_bias_per_output_channel", "conv_transpose", (1, 2, 5, 5), (2, 3, 3, 3), (2,), {}, ValueError,
     "bias must have shape [3] (one value per output channel), got [2]"),
    ("empty_spatial_dimension", "conv_transpose", (1, 2, 0, 5), (2, 3, 3, 3), None, {}, ValueError,
     "input dimension 2 has size 0; only the batch dimension may be empty (input shape 1x2x0x5)"),
]


def arrays(input_shape, weight_shape, bias_shape, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, input_shape).astype(dtype)
    w = rng.uniform(-1, 1, weight_shape).astype(dtype)
    b = None if bias_shape is None else rng.uniform(-1, 1, bias_shape).astype(dtype)
    return x, w, b


def call(op, x, w, b, params):
    return (tconv.conv if op == "conv" else tconv.conv_transpose)(x, w, b, **params)


@pytest.mark.parametrize("name,op,input_shape,weight_shape,bias_shape,params,error,message", BAD,
                         ids=[row[0] for row in BAD])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_refused_like_torch_with_a_clear_message(name, op, input_shape, weight_shape, bias_shape, params, error,
                                                 message, dtype):
    x, w, b = arrays(input_shape, weight_shape, bias_shape, dtype)
    if w.ndim <= 5:  # torch has no 4-D convolution to ask
        with pytest.raises((RuntimeError, ValueError, TypeError)):
            torch_reference.compute(op, x, w, b, **params)
    with pytest.raises(error) as raised:
        call(op, x, w, b, params)
    assert str(raised.value) == message
    for method in ("gather", "matrix", "scatter"):
        with pytest.raises(error) as raised:
            getattr(tconv.reference, method)(op, x, w, b, **params)
        assert str(raised.value) == message, method
    if b is None:
        with pytest.raises(error) as raised:
            tconv.output_shape(op, x.shape, w.shape, **params)
        assert str(raised.value) == message


@pytest.mark.parametrize("name,op,input_shape,weight_shape,bias_shape,params,error,message", BAD,
                         ids=[row[0] for row in BAD])
def test_prepared_operator_refuses_at_creation_or_at_call(name, op, input_shape, weight_shape, bias_shape, params,
                                                          error, message):
    """What depends on the weight alone is refused when the operator is made; the rest when it is called."""
    x, w, b = arrays(input_shape, weight_shape, bias_shape)
    make = tconv.Conv if op == "conv" else tconv.ConvTranspose
    with pytest.raises(error) as raised:
        make(w, b, **params)(x)
    assert str(raised.value) == message


def test_unknown_names_are_value_errors():
    with pytest.raises(ValueError, match=r"^op must be 'conv' or 'conv_transpose', got 'deconv'$"):
        tconv.output_shape("deconv", (1, 1, 4, 4), (1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"^implementation 'nope' does not exist \(known: .*direct.*\)$"):
        tconv.ConvTranspose(np.zeros((1, 1, 3, 3), np.float32), implementation="nope")


def test_forcing_an_implementation_that_declines_says_why():
    declined = 0
    for name in tconv.available_implementations():
        try:
            tconv.ConvTranspose(np.zeros((1, 1, 3, 3), np.float64), implementation=name)
        except ValueError as refusal:
            assert str(refusal).startswith(f"implementation '{name}' was forced but ")
            declined += 1
    assert "direct" in tconv.available_implementations()
    assert declined < len(tconv.available_implementations())


def test_accepted_corner_cases_match_torch():
    """What torch accepts near the rules, tconv accepts with torch's shapes."""
    corners = [
        ("conv_transpose", (1, 2, 5, 5), (2, 3, 3, 3), dict(dilation=3, output_padding=2)),  # op >= stride, < dilation
        ("conv", (0, 2, 5, 5), (3, 2, 3, 3), {}),                                              # empty batch
        ("conv_transpose", (0, 2, 5, 5), (2, 3, 3, 3), dict(stride=2)),
        ("conv", (2, 5, 5), (3, 2, 3, 3), {}),                                                 # unbatched
        ("conv_transpose", (2, 5, 5, 5), (2, 3, 3, 3, 3), {}),
        ("conv", (1, 1, 5, 5), (1, 1, 3, 3), dict(stride=100)),                                # stride beyond the input
        ("conv", (1, 1, 5, 5), (1, 1, 3, 3), dict(padding=5)),                                 # padding beyond the kernel
        ("conv", (1, 1, 2, 2), (1, 1, 5, 5), dict(padding=2)),                                 # kernel larger than input
        ("conv_transpose", (1, 1, 1, 1), (1, 1, 7, 7), dict(padding=3)),                       # 1-pixel input, big kernel
    ]
    for op, input_shape, weight_shape, params in corners:
        x, w, _ = arrays(input_shape, weight_shape, None, np.float64)
        expected = torch_reference.compute(op, x, w, None, **params)
        got = call(op, x, w, None, params)
        assert got.shape == expected.shape, (op, input_shape, params)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        assert tconv.output_shape(op, input_shape, weight_shape, **params) == expected.shape


def test_functions_take_torchs_arguments_in_torchs_order():
    # torch's positional order first; tconv's extras (asymmetric padding, torch.nn's padding_mode and
    # forward(input, output_size), the activations' layout) after it.
    assert list(inspect.signature(tconv.conv).parameters) == [
        "input", "weight", "bias", "stride", "padding", "dilation", "groups", "padding_end", "padding_mode", "layout"]
    assert list(inspect.signature(tconv.conv_transpose).parameters) == [
        "input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation", "padding_end",
        "output_size", "layout"]
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (1, 4, 5, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, 6).astype(np.float32)
    tx, tw, tb = map(torch.from_numpy, (x, w, b))
    # Positional, exactly as torch.nn.functional takes them.
    expected = F.conv_transpose2d(tx, tw, tb, 2, 1, 1, 2, 2).numpy()
    np.testing.assert_allclose(tconv.conv_transpose(x, w, b, 2, 1, 1, 2, 2), expected, rtol=1e-5, atol=1e-5)
    w_conv = rng.uniform(-1, 1, (6, 2, 3, 3)).astype(np.float32)
    expected = F.conv2d(tx, torch.from_numpy(w_conv), tb, 2, 2, 2, 2).numpy()
    np.testing.assert_allclose(tconv.conv(x, w_conv, b, 2, 2, 2, 2), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_walkthrough_torch_layer_equals_the_scatter_and_tconv(dtype):
    small = np.array([[1, 2], [3, 4]])
    kernel = np.arange(1, 10).reshape(3, 3)
    expected = np.array([[1, 4, 7, 6], [7, 23, 33, 24], [19, 53, 63, 42], [21, 52, 59, 36]])
    x, w = small.astype(dtype)[None, None], kernel.astype(dtype)[None, None]
    # The scatter, written out: each input element times the kernel, added at its position.
    scattered = np.zeros((4, 4), dtype)
    for i in range(2):
        for j in range(2):
            scattered[i:i + 3, j:j + 3] += small[i, j] * kernel
    np.testing.assert_array_equal(scattered, expected)
    # torch.nn.ConvTranspose2d(1, 1, 3, 1, 0, bias=False) with that weight.
    layer = torch.nn.ConvTranspose2d(1, 1, 3, 1, 0, bias=False).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        torch_out = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(torch_out[0, 0], expected)
    np.testing.assert_array_equal(tconv.conv_transpose(x, w)[0, 0], expected)
    # Unbatched input, as torch accepts it.
    np.testing.assert_array_equal(tconv.conv_transpose(x[0], w)[0], expected)
