"""Framework conventions: asymmetric padding on every implementation, PyTorch's padding='same'/'valid',
padding_mode and output_size (against torch.nn modules), ONNX's Conv/ConvTranspose attributes and
TensorFlow's tf.nn convolutions (against PyTorch calls with explicit padding, built from each
framework's documented formulas). No expected value comes from tconv itself."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tconv


def functional(name, rank):
    return getattr(F, f"{name}{rank}d")


def torch_pad(x, begins, ends):
    """F.pad's argument order: last dimension first, (begin, end) each."""
    return F.pad(x, [a for b, e in zip(reversed(begins), reversed(ends)) for a in (b, e)])


def conv_oracle(x, w, b, strides, begins, ends, dilations, groups=1):
    """A convolution padded with begins/ends zeros: F.pad, then torch's convolution without padding."""
    rank = w.ndim - 2
    t = torch.from_numpy
    return functional("conv", rank)(torch_pad(t(x), begins, ends), t(w), None if b is None else t(b),
                                    stride=strides, dilation=dilations, groups=groups).numpy()


def crop_oracle(x, w, b, strides, begins, sizes, dilations, output_padding=0, groups=1):
    """A transposed convolution without padding, then `sizes` elements from `begins` on in each dimension
    (zeros where that runs past the end), plus the bias."""
    rank = w.ndim - 2
    full = functional("conv_transpose", rank)(torch.from_numpy(x), torch.from_numpy(w), None, stride=strides,
                                              output_padding=output_padding, groups=groups,
                                              dilation=dilations).numpy()
    out = np.zeros(full.shape[:2] + tuple(sizes), full.dtype)
    taken = tuple(slice(p, min(p + n, m)) for p, n, m in zip(begins, sizes, full.shape[2:]))
    out[(Ellipsis,) + tuple(slice(0, s.stop - s.start) for s in taken)] = full[(Ellipsis,) + taken]
    return out if b is None else out + b.reshape((-1,) + (1,) * rank)


def close(got, expected, atol=1e-9):
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol * max(1.0, np.abs(expected).max(initial=0)))


def uniform(rng, shape, dtype=np.float64):
    return rng.uniform(-1, 1, shape).astype(dtype)


# --- asymmetric padding, every implementation ------------------------------------------------------------------

ASYMMETRIC_CASES = [  # (op, input shape, weight shape, stride, begins, ends, dilation, groups)
    ("conv_transpose", (2, 4, 5, 6), (4, 3, 3, 3), 2, (0, 1), (2, 0), 1, 1),
    ("conv_transpose", (1, 8, 7, 5), (8, 8, 4, 4), (2, 3), (1, 3), (2, 0), 1, 1),
    ("conv_transpose", (1, 6, 5, 5), (6, 1, 3, 3), 2, (1, 0), (0, 2), 1, 6),       # depthwise
    ("conv_transpose", (1, 4, 6), (4, 2, 5), 3, (3,), (1,), 2, 1),
    ("conv_transpose", (1, 2, 3, 4, 3), (2, 2, 3, 2, 3), 2, (1, 0, 2), (0, 1, 1), 1, 1),
    ("conv", (2, 4, 7, 6), (3, 4, 3, 3), 2, (0, 2), (1, 0), 1, 1),
    ("conv", (1, 6, 8, 8), (6, 1, 3, 3), 1, (2, 0), (0, 1), 2, 6),                 # depthwise
    ("conv_transpose", (1, 5, 6, 9), (5, 18, 3, 3), 1, (2, 0), (0, 1), 1, 1),     # a vector of output channels
    ("conv", (1, 5, 9, 20), (17, 5, 3, 3), 1, (0, 2), (1, 0), (1, 2), 1),
    ("conv", (1, 3, 6, 80), (7, 3, 2, 40), (1, 9), (1, 10), (0, 3), 1, 1),          # long kernel rows
    ("conv_transpose", (2, 5, 6, 7), (5, 16, 3, 4), (1, 3), (1, 2), (0, 1), 1, 1),  # x stride 3, 16 channels out
    ("conv", (1, 5, 9, 20), (16, 5, 3, 4), (2, 3), (0, 2), (1, 0), 1, 1),           # (the channels-last detour)
    ("conv_transpose", (1, 3, 4, 3), (3, 2, 3, 64), (2, 32), (1, 16), (0, 5), 1, 1),  # huge rows at x stride 32
    ("conv_transpose", (1, 4, 5, 6), (4, 16, 3, 3), 1, (1, 0), (0, 2), 1, 1),     # 144 products an element (AVX2 detour)
    ("conv", (1, 5, 9, 20), (6, 5, 3, 4), (3, 2), (0, 2), (1, 0), 1, 1),            # phase planes (plane_gemm_avx2)
]


@pytest.mark.parametrize("implementation", tconv.available_implementations())
def test_asymmetric_padding_on_every_implementation(implementation):
    """In both layouts, so that the channels-last families are reached too."""
    rng = np.random.default_rng(5)
    ran = 0
    for (op, input_shape, weight_shape, stride, begins, ends, dilation, groups), layout in itertools.product(
            ASYMMETRIC_CASES, ("nchw", "nhwc")):
        x, w = uniform(rng, input_shape, np.float32), uniform(rng, weight_shape, np.float32)
        rank = w.ndim - 2
        strides, dilations = tconv._padding.per_dim("", stride, rank), tconv._padding.per_dim("", dilation, rank)
        prepared_class = tconv.Conv if op == "conv" else tconv.ConvTranspose
        try:
            prepared = prepared_class(w, stride=stride, padding=begins, padding_end=ends, dilation=dilation,
                                      groups=groups, implementation=implementation, layout=layout)
        except ValueError as refusal:
            assert "was forced but" in str(refusal)
            continue
        if op == "conv":
            expected = conv_oracle(x, w, None, strides, begins, ends, dilations, groups)
        else:
            naturals = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(x.shape[2:], strides, dilations,
                                                                            w.shape[2:])]
            sizes = [m - b - e for m, b, e in zip(naturals, begins, ends)]
            expected = crop_oracle(x, w, None, strides, begins, sizes, dilations, groups=groups)
        if layout == "nhwc":
            x, expected = np.ascontiguousarray(np.moveaxis(x, 1, -1)), np.moveaxis(expected, 1, -1)
        close(prepared(x), expected, atol=1e-5)
        function = tconv.conv if op == "conv" else tconv.conv_transpose
        close(function(x, w, stride=stride, padding=begins, padding_end=ends, dilation=dilation, groups=groups,
                       layout=layout), expected, atol=1e-5)
        ran += 1
    assert ran >= 1, f"{implementation} took none of the asymmetric cases"


def test_padding_end_is_checked():
    w = np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"padding_end \(-1\) must be non-negative"):
        tconv.conv_transpose(np.zeros((1, 1, 4, 4)), w, padding_end=-1)
    with pytest.raises(ValueError, match=r"padding_end has 3 values but the convolution is 2-D"):
        tconv.conv(np.zeros((1, 1, 4, 4)), w, padding_end=(1, 1, 1))


# --- PyTorch: padding='same'/'valid', padding_mode, output_size --------------------------------------------------

MODULES = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
TRANSPOSE_MODULES = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d, 3: torch.nn.ConvTranspose3d}


def module_output(module, x, w, b, **forward_args):
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(w))
        module.bias.copy_(torch.from_numpy(b))
        return module(torch.from_numpy(x), **forward_args).numpy()


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's own copy
def test_torch_padding_strings_and_modes_match_torch_modules():
    rng = np.random.default_rng(17)
    modes = ["zeros", "reflect", "replicate", "circular"]
    for case in range(160):
        rank = [1, 2, 2, 3][case % 4]
        groups = int(rng.choice([1, 2]))
        cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        kernel = [int(k) for k in rng.integers(1, 5, rank)]
        dilation = [int(d) for d in rng.integers(1, 3, rank)]
        sizes = [int(rng.integers(max(4, (k - 1) * d + 1), 9)) for k, d in zip(kernel, dilation)]  # > padding
        padding = ["same", "valid", int(rng.integers(0, 3))][case % 3]
        stride = 1 if padding == "same" else int(rng.integers(1, 3))
        mode = modes[(case // 3) % 4]
        module = MODULES[rank](cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups,
                               padding_mode=mode).double()
        x, w, b = uniform(rng, (2, cin, *sizes)), uniform(rng, (cout, cin // groups, *kernel)), uniform(rng, cout)
        got = tconv.conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
        close(got, module_output(module, x, w, b))


def test_torch_same_puts_the_odd_unit_at_the_end():
    # torch's rule: total padding dilation*(kernel-1) = 3 for a 4-wide kernel, 1 before and 2 after.
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    w = np.ones((1, 1, 4))
    np.testing.assert_array_equal(tconv.conv(x, w, padding="same")[0, 0], [1 + 2 + 3, 10, 14, 12, 9])


@pytest.mark.parametrize("call, message", [
    (lambda: tconv.conv(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), stride=2, padding="same"),
     r"padding='same' needs stride 1 in every dimension, got stride=2"),
    (lambda: tconv.conv(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), padding="full"),
     r"padding must be an int, a tuple of ints, 'same' or 'valid', got 'full'"),
    (lambda: tconv.conv(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), padding_mode="mirror"),
     r"padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got 'mirror'"),
    (lambda: tconv.conv(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), padding=3, padding_mode="reflect"),
     r"padding \(3\) must be smaller than the input size \(3\) of spatial dimension 0 for padding_mode='reflect'"),
    (lambda: tconv.conv(np.zeros((1, 1, 3)), np.zeros((1, 1, 3)), padding=4, padding_mode="circular"),
     r"padding \(4\) must be at most the input size \(3\) of spatial dimension 0 for padding_mode='circular'"),
    (lambda: tconv.conv(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), padding="same", padding_end=1),
     r"padding_end \(1\) cannot be combined with padding='same'"),
])
def test_torch_padding_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_torch_output_size_matches_torch_modules():
    rng = np.random.default_rng(23)
    for case in range(120):
        rank = [1, 2, 3][case % 3]
        stride = [int(s) for s in rng.integers(1, 4, rank)]
        kernel = [int(k) for k in rng.integers(1, 5, rank)]
        dilation = [int(d) for d in rng.integers(1, 3, rank)]
        sizes = [int(n) for n in rng.integers(1, 5, rank)]
        padding = [int(rng.integers(0, (k - 1) * d // 2 + 1)) for k, d in zip(kernel, dilation)]
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1
                    for n, s, p, d, k in zip(sizes, stride, padding, dilation, kernel)]
        end = case % 3  # the smallest size, the largest, or one between
        wanted = [m + (0 if end == 0 else s - 1 if end == 1 else int(rng.integers(0, s)))
                  for m, s in zip(smallest, stride)]
        module = TRANSPOSE_MODULES[rank](2, 3, kernel, stride=stride, padding=padding, dilation=dilation).double()
        x, w, b = uniform(rng, (1, 2, *sizes)), uniform(rng, (2, 3, *kernel)), uniform(rng, 3)
        output_size = wanted if case % 2 else [1, 3] + wanted
        got = tconv.conv_transpose(x, w, b, stride=stride, padding=padding, dilation=dilation, output_size=output_size)
        close(got, module_output(module, x, w, b, output_size=output_size))


def test_torch_output_size_out_of_range_is_refused_with_torch_rule():
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    # (4-1)*2 - 2*1 + 1*(3-1) + 1 = 7 up to 7 + stride - 1 = 8.
    with pytest.raises(ValueError, match=r"requested an output size of \[9, 8\], but valid sizes range from "
                                         r"\[7, 7\] to \[8, 8\] \(for an input of \[4, 4\]\)"):
        tconv.conv_transpose(x, w, stride=2, padding=1, output_size=(9, 8))
    with pytest.raises(ValueError, match=r"output_size \[8\] must have 2 or 4 elements"):
        tconv.conv_transpose(x, w, stride=2, padding=1, output_size=(8,))
    with pytest.raises(ValueError, match=r"output_padding \(1\) and output_size \(\(8, 8\)\) both set"):
        tconv.conv_transpose(x, w, stride=2, padding=1, output_padding=1, output_size=(8, 8))
    assert tconv.conv_transpose(x, w, stride=2, padding=1, output_size=(7, 8)).shape == (1, 1, 7, 8)


# --- ONNX ---------------------------------------------------------------------------------------------------------

# The ONNX operator documentation's ConvTranspose examples (test_convtranspose_pads, _autopad_same).
ONNX_X = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
ONNX_W = np.ones((1, 2, 3, 3), np.float32)
ONNX_PADS_Y = [[1, 1, 3], [1, 1, 3], [7, 4, 9], [7, 4, 9], [7, 4, 9], [13, 7, 15], [13, 7, 15]]
ONNX_SAME_UPPER_Y = [[0, 0, 1, 1, 3, 2], [0, 0, 1, 1, 3, 2], [3, 3, 8, 5, 12, 7], [3, 3, 7, 4, 9, 5],
                     [9, 9, 20, 11, 24, 13], [6, 6, 13, 7, 15, 8]]


def test_onnx_documented_examples():
    y = tconv.onnx.conv_transpose(ONNX_X, ONNX_W, strides=[3, 2], pads=[1, 2, 1, 2])
    assert y.shape == (1, 2, 7, 3)
    np.testing.assert_array_equal(y[0, 0], ONNX_PADS_Y)
    np.testing.assert_array_equal(y[0, 1], ONNX_PADS_Y)
    y = tconv.onnx.conv_transpose(ONNX_X, ONNX_W, strides=[2, 2], auto_pad="SAME_UPPER")
    np.testing.assert_array_equal(y[0, 0], ONNX_SAME_UPPER_Y)
    # SAME_LOWER crops the odd unit from the beginning instead.
    lower = tconv.onnx.conv_transpose(ONNX_X, ONNX_W, strides=[2, 2], auto_pad="SAME_LOWER")
    np.testing.assert_array_equal(lower[0, 0, :5, :5], np.array(ONNX_SAME_UPPER_Y)[1:, 1:])
    # test_convtranspose_output_shape: natural size 9x7, asked 10x8: one more row and column at the end.
    y = tconv.onnx.conv_transpose(ONNX_X, ONNX_W, strides=[3, 2], output_shape=[10, 8])
    assert y.shape == (1, 2, 10, 8)
    assert not y[0, :, 9, :].any() and not y[0, :, :, 7].any()
    np.testing.assert_array_equal(y[:, :, :9, :7], tconv.onnx.conv_transpose(ONNX_X, ONNX_W, strides=[3, 2]))


def onnx_conv_pads(auto_pad, sizes, strides, kernels):
    """The spec: SAME_* pads so that out = ceil(in / stride), odd unit at the end for SAME_UPPER."""
    totals = [max(0, (math.ceil(n / s) - 1) * s + k - n) for n, s, k in zip(sizes, strides, kernels)]
    lower = auto_pad == "SAME_LOWER"
    return [t - t // 2 if lower else t // 2 for t in totals], [t // 2 if lower else t - t // 2 for t in totals]


def test_onnx_conv_sweep_matches_torch_with_explicit_padding():
    rng = np.random.default_rng(31)
    odd = 0
    for case in range(300):
        rank = [1, 2, 2, 3][case % 4]
        auto_pad = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][(case // 4) % 4]
        group = int(rng.choice([1, 2]))
        kernels = [int(k) for k in rng.integers(1, 5, rank)]
        dilations = [int(d) for d in rng.integers(1, 3, rank)]
        strides = [int(s) for s in rng.integers(1, 4, rank)]
        effective = [(k - 1) * d + 1 for k, d in zip(kernels, dilations)]
        sizes = [int(rng.integers(e, e + 6)) for e in effective]
        X, W, B = uniform(rng, (2, 2 * group, *sizes)), uniform(rng, (group * 2, 2, *kernels)), uniform(rng, group * 2)
        attributes = dict(auto_pad=auto_pad, group=group, dilations=dilations, strides=strides)
        if auto_pad == "NOTSET":
            pads = [int(p) for p in rng.integers(0, 3, 2 * rank)]
            attributes["pads"] = pads
            begins, ends = pads[:rank], pads[rank:]
        elif auto_pad == "VALID":
            begins, ends = [0] * rank, [0] * rank
        else:
            begins, ends = onnx_conv_pads(auto_pad, sizes, strides, effective)
            odd += any((b + e) % 2 for b, e in zip(begins, ends))
        if case % 5 == 0:
            attributes["kernel_shape"] = kernels
        y = tconv.onnx.conv(X, W, B if case % 2 else None, **attributes)
        close(y, conv_oracle(X, W, B if case % 2 else None, strides, begins, ends, dilations, group))
        if auto_pad.startswith("SAME"):
            assert list(y.shape[2:]) == [math.ceil(n / s) for n, s in zip(sizes, strides)]
    assert odd > 20


def test_onnx_conv_transpose_sweep_matches_torch_with_cropping():
    rng = np.random.default_rng(37)
    seen = {"odd": 0, "smallest": 0, "beyond": 0}
    for case in range(320):
        rank = [1, 2, 2, 3][case % 4]
        mode = ["pads", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape"][(case // 4) % 5]
        group = int(rng.choice([1, 2]))
        kernels = [int(k) for k in rng.integers(1, 5, rank)]
        dilations = [int(d) for d in rng.integers(1, 3, rank)]
        strides = [int(s) for s in rng.integers(1, 4, rank)]
        adjust = [int(rng.integers(0, max(s, d))) for s, d in zip(strides, dilations)]
        sizes = [int(n) for n in rng.integers(1, 5, rank)]
        X, W, B = uniform(rng, (1, 2 * group, *sizes)), uniform(rng, (2 * group, 2, *kernels)), uniform(rng, 2 * group)
        # The spec: output = stride*(in-1) + output_padding + ((kernel-1)*dilation+1) - pads.
        naturals = [s * (n - 1) + a + (k - 1) * d + 1 for s, n, a, k, d in zip(strides, sizes, adjust, kernels,
                                                                                dilations)]
        attributes = dict(group=group, dilations=dilations, strides=strides, output_padding=adjust)
        if mode == "pads":
            pads = [int(rng.integers(0, (m - 1) // 2 + 1)) for m in naturals] * 2
            pads = [int(rng.integers(0, p + 1)) for p in pads]
            attributes["pads"] = pads
            begins, targets = pads[:rank], [m - b - e for m, b, e in zip(naturals, pads[:rank], pads[rank:])]
        elif mode == "VALID":
            attributes["auto_pad"] = "VALID"
            begins, targets = [0] * rank, naturals
        else:
            if mode == "output_shape":  # from 1 (all but one cropped) to 3 beyond the natural size
                targets = [int(rng.choice([1, m, m + 1, m + 3, int(rng.integers(1, m + 4))])) for m in naturals]
                attributes["output_shape"] = targets if case % 2 else [1, 2 * group] + targets
                if case % 3 == 0:
                    attributes["auto_pad"] = "SAME_UPPER"
            else:  # SAME_* asks for in * stride
                attributes["auto_pad"] = mode
                targets = [n * s for n, s in zip(sizes, strides)]
            totals = [m - t for m, t in zip(naturals, targets)]
            lower = mode == "SAME_LOWER"
            begins = [max(0, t - t // 2 if lower else t // 2) for t in totals]
            seen["odd"] += any(t > 0 and t % 2 for t in totals)
            seen["smallest"] += 1 in targets
            seen["beyond"] += any(t < 0 for t in totals)
        y = tconv.onnx.conv_transpose(X, W, B, **attributes)
        close(y, crop_oracle(X, W, B, strides, begins, targets, dilations, adjust, group))
    assert min(seen.values()) > 10, seen


@pytest.mark.parametrize("call, message", [
    (lambda: tconv.onnx.conv(ONNX_X, ONNX_W[:, :1], auto_pad="SAME"),
     r"auto_pad must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got 'SAME'"),
    (lambda: tconv.onnx.conv(ONNX_X, ONNX_W[:, :1], auto_pad="VALID", pads=[1, 1, 1, 1]),
     r"pads \(\[1, 1, 1, 1\]\) cannot be used with auto_pad='VALID'"),
    (lambda: tconv.onnx.conv(ONNX_X, ONNX_W[:, :1], pads=[1, 1]), r"pads \[1, 1\] must have 4 values"),
    (lambda: tconv.onnx.conv(ONNX_X, ONNX_W[:, :1], pads=[1, 1, -1, 0]), r"pads \[1, 1, -1, 0\] must be non-negative"),
    (lambda: tconv.onnx.conv(ONNX_X, ONNX_W[:, :1], kernel_shape=[2, 2]),
     r"kernel_shape \[2, 2\] must match W's spatial dimensions \[3, 3\]"),
    (lambda: tconv.onnx.conv(ONNX_X[0], ONNX_W[:, :1]), r"X must have 4 dimensions \[N, C, spatial...\]"),
    (lambda: tconv.onnx.conv_transpose(ONNX_X, ONNX_W, output_shape=[4, 4], pads=[0, 0, 0, 0]),
     r"pads \(\[0, 0, 0, 0\]\) cannot be used with output_shape \(\[4, 4\]\)"),
    (lambda: tconv.onnx.conv_transpose(ONNX_X, ONNX_W, output_shape=[0, 4]), r"output_shape \[0, 4\] must be positive"),
    (lambda: tconv.onnx.conv_transpose(ONNX_X, ONNX_W, strides=[2, 2], output_padding=[2, 0]),
     r"output_padding \(2\) must be smaller than stride \(2\) or dilation \(1\)"),
])
def test_onnx_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- TensorFlow ---------------------------------------------------------------------------------------------------

def tf_pads(padding, sizes, strides, effective):
    """TensorFlow's padding: SAME gives ceil(in / stride) outputs with
    pad_along = max((out - 1) * stride + filter - in, 0), pad_before = pad_along // 2."""
    if padding == "VALID":
        return [0] * len(sizes), [0] * len(sizes)
    along = [max((math.ceil(n / s) - 1) * s + k - n, 0) for n, s, k in zip(sizes, strides, effective)]
    return [a // 2 for a in along], [a - a // 2 for a in along]


def tf_case(rng, case):
    """Random arguments in TensorFlow's spellings and the oracle's per-dimension values."""
    rank = [1, 2, 2, 3][case % 4]
    channels_last = case % 3 != 0
    data_format = tconv.tf.LAYOUTS[rank][0 if channels_last else 1]
    kernels = [int(k) for k in rng.integers(1, 5, rank)]
    dilation = int(rng.integers(1, 3))
    stride = 1 if dilation > 1 and case % 2 else int(rng.integers(1, 4))
    strides, dilations = [stride] * rank, [dilation] * rank
    spelled = [stride, [stride] * rank, [1] + [stride] * rank + [1]][case % 3]
    effective = [(k - 1) * dilation + 1 for k in kernels]
    explicit = case % 5 == 4
    padding = "SAME" if case % 2 else "VALID"
    begins = ends = None
    if explicit:
        begins, ends = [int(p) for p in rng.integers(0, 3, rank)], [int(p) for p in rng.integers(0, 3, rank)]
        pairs = [[b, e] for b, e in zip(begins, ends)]
        padding = [[0, 0]] + pairs + [[0, 0]] if channels_last else [[0, 0], [0, 0]] + pairs
    return dict(rank=rank, channels_last=channels_last, data_format=data_format, kernels=kernels, strides=strides,
                dilations=dilations, spelled=spelled, dilation_spelled=[dilation] * rank if case % 2 else dilation,
                effective=effective, padding=padding, begins=begins, ends=ends)


def to_channels_last(a, yes):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)) if yes else a


def test_tf_conv_sweep_matches_torch_with_explicit_padding():
    rng = np.random.default_rng(41)
    for case in range(300):
        c = tf_case(rng, case)
        rank, groups = c["rank"], int(rng.choice([1, 2]))
        sizes = [int(rng.integers(e, e + 6)) for e in c["effective"]]
        x = uniform(rng, (2, 2 * groups, *sizes))
        filters = uniform(rng, (*c["kernels"], 2, 2 * groups))  # [k..., in/groups, out]
        begins, ends = (c["begins"], c["ends"]) if c["begins"] is not None else tf_pads(
            c["padding"], sizes, c["strides"], c["effective"])
        w = np.transpose(filters, (rank + 1, rank) + tuple(range(rank)))
        expected = conv_oracle(x, w, None, c["strides"], begins, ends, c["dilations"], groups)
        got = getattr(tconv.tf, f"conv{rank}d")(to_channels_last(x, c["channels_last"]), filters, c["spelled"],
                                                c["padding"], data_format=c["data_format"],
                                                dilations=c["dilation_spelled"])
        close(got, to_channels_last(expected, c["channels_last"]))
        if c["padding"] == "SAME":
            assert list(expected.shape[2:]) == [math.ceil(n / s) for n, s in zip(sizes, c["strides"])]


def test_tf_conv_transpose_sweep_is_the_gradient_of_the_convolution():
    """TensorFlow defines conv{1,2,3}d_transpose as the gradient of conv{1,2,3}d with respect to its input:
    the oracle is torch.autograd through the padded convolution of an input of output_shape."""
    rng = np.random.default_rng(43)
    ends_seen, ran = set(), 0
    for case in range(340):
        c = tf_case(rng, case)
        rank = c["rank"]
        # Output sizes over every size a convolution maps onto the same input size, both ends included.
        targets = [int(rng.integers(e, e + 3 * s + 1)) for e, s in zip(c["effective"], c["strides"])]
        begins, ends = (c["begins"], c["ends"]) if c["begins"] is not None else tf_pads(
            c["padding"], targets, c["strides"], c["effective"])
        sizes = [(t + b + e - k) // s + 1 for t, b, e, k, s in zip(targets, begins, ends, c["effective"],
                                                                    c["strides"])]
        if min(sizes) < 1:
            continue
        ends_seen.update((t + b + e - k) % s == 0 for t, b, e, k, s in zip(targets, begins, ends, c["effective"],
                                                                            c["strides"]) if s > 1)
        filters = uniform(rng, (*c["kernels"], 3, 2))  # [k..., out, in]
        x = uniform(rng, (2, 2, *sizes))
        w = torch.from_numpy(np.transpose(filters, (rank + 1, rank) + tuple(range(rank))).copy())  # [in, out, k...]
        source = torch.zeros((2, 3, *targets), dtype=torch.float64, requires_grad=True)
        y = functional("conv", rank)(torch_pad(source, begins, ends), w, stride=c["strides"],
                                     dilation=c["dilations"])
        expected = torch.autograd.grad(y, source, torch.from_numpy(x))[0].numpy()
        output_shape = [2, *targets, 3] if c["channels_last"] else [2, 3, *targets]
        got = getattr(tconv.tf, f"conv{rank}d_transpose")(to_channels_last(x, c["channels_last"]), filters,
                                                          output_shape, c["spelled"], c["padding"],
                                                          data_format=c["data_format"],
                                                          dilations=c["dilation_spelled"])
        close(got, to_channels_last(expected, c["channels_last"]))
        ran += 1
    assert ran >= 300
    assert ends_seen == {True, False}  # the smallest and the largest output size of an input size


def test_tf_documented_sizes():
    # tf.nn.conv2d: SAME gives ceil(7 / 2) = 4, VALID ceil((7 - 3 + 1) / 2) = 3.
    x, f = np.zeros((1, 7, 7, 1)), np.zeros((3, 3, 1, 1))
    assert tconv.tf.conv2d(x, f, 2, "SAME").shape == (1, 4, 4, 1)
    assert tconv.tf.conv2d(x, f, [1, 2, 2, 1], "VALID").shape == (1, 3, 3, 1)
    # conv2d_transpose back to any size whose SAME convolution is 4: 7 or 8.
    y = np.zeros((1, 4, 4, 1))
    assert tconv.tf.conv2d_transpose(y, f, [1, 8, 7, 1], 2).shape == (1, 8, 7, 1)


@pytest.mark.parametrize("call, message", [
    (lambda: tconv.tf.conv2d_transpose(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), [1, 9, 9, 1], 2),
     r"output_shape \[1, 9, 9, 1\] does not fit the input's spatial sizes \[4, 4\]: a convolution with padding "
     r"'SAME', strides \[2, 2\], dilations \[1, 1\] and kernel \[3, 3\] maps spatial sizes \[9, 9\] to \[5, 5\]"),
    (lambda: tconv.tf.conv2d_transpose(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 2, 1)), [1, 8, 8, 1], 2),
     r"output_shape \[1, 8, 8, 1\] must have the input's batch \(1\) and the filters' out_channels \(2"),
    (lambda: tconv.tf.conv2d(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), [2, 1, 1, 1], "SAME"),
     r"strides \[2, 1, 1, 1\] must be 1 for the batch and channel dimensions"),
    (lambda: tconv.tf.conv2d(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), 1, "SAME", data_format="NCW"),
     r"data_format must be NHWC or NCHW for a 2-D convolution, got 'NCW'"),
    (lambda: tconv.tf.conv2d(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), 1, "FULL"),
     r"padding must be 'SAME', 'VALID' or a list of \[begin, end\] pairs, got 'FULL'"),
    (lambda: tconv.tf.conv2d(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), 1, [[1, 1], [1, 1], [1, 1], [0, 0]]),
     r"explicit padding .* must be \[0, 0\] for the batch and channel dimensions"),
    (lambda: tconv.tf.conv2d(np.zeros((1, 4, 4, 3)), np.zeros((3, 3, 2, 1)), 1, "SAME"),
     r"input depth \(3\) must be a multiple of the filters' in_channels \(2, filters dimension 2\)"),
])
def test_tf_refusals(call, message):
    with pytest.raises(ValueError, match=message):
        call()
