"""ONNX's Conv and ConvTranspose operators on tconv.

    tconv.onnx.conv(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                    pads=None, strides=None)
    tconv.onnx.conv_transpose(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                              output_padding=None, output_shape=None, pads=None, strides=None)

The attributes are spelled and mean what they mean in the ONNX operator
specification (opset 11 and later): lists with one value per spatial axis,
pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...]. X is [N, C, spatial...],
W is ONNX's (and PyTorch's) weight layout. How each padding split and output
size is computed, and where ONNX Runtime differs, is in docs/conventions.md.
"""

import math

from . import _array, _padding, conv as _conv, conv_transpose as _conv_transpose

__all__ = ["conv", "conv_transpose"]

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _ints(name, value, count, default):
    """An ONNX INTS attribute of exactly `count` values, or `default` repeated when absent."""
    if value is None:
        return [default] * count
    if not isinstance(value, (tuple, list)) or not all(_padding.is_int(v) for v in value):
        raise TypeError(f"{name} must be a list of ints, got {value!r}")
    if len(value) != count:
        raise ValueError(f"{name} {list(value)} must have {count} values")
    return [int(v) for v in value]


class _Attributes:
    """The attributes shared by Conv and ConvTranspose, checked against X and W."""

    def __init__(self, X, W, auto_pad, dilations, kernel_shape, pads, strides):
        self.rank = _padding.spatial_rank(W, "W")
        if X.ndim != self.rank + 2:
            raise ValueError(f"X must have {self.rank + 2} dimensions [N, C, spatial...] for a W of shape "
                             f"{list(W.shape)}, got {X.ndim} (shape {list(X.shape)})")
        if auto_pad not in AUTO_PADS:
            raise ValueError(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {auto_pad!r}")
        if pads is not None and auto_pad != "NOTSET":
            raise ValueError(f"pads ({list(pads)}) cannot be used with auto_pad={auto_pad!r} (only with NOTSET)")
        self.auto_pad = auto_pad
        self.kernel = list(W.shape[2:])
        if kernel_shape is not None and _ints("kernel_shape", kernel_shape, self.rank, 0) != self.kernel:
            raise ValueError(f"kernel_shape {list(kernel_shape)} must match W's spatial dimensions {self.kernel}")
        self.inputs = list(X.shape[2:])
        self.strides = _ints("strides", strides, self.rank, 1)
        self.dilations = _ints("dilations", dilations, self.rank, 1)
        all_pads = _ints("pads", pads, 2 * self.rank, 0)
        if any(p < 0 for p in all_pads):
            raise ValueError(f"pads {all_pads} must be non-negative")
        self.begins, self.ends = all_pads[:self.rank], all_pads[self.rank:]

    def effective_kernels(self):
        return [_padding.effective_kernel(k, d) for k, d in zip(self.kernel, self.dilations)]


def conv(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """ONNX Conv: Y[N, M, out...]. SAME_UPPER / SAME_LOWER pad so that out = ceil(in / stride), the odd unit
    at the end / the beginning; VALID pads nothing."""
    X, W = _array("X", X), _array("W", W)
    a = _Attributes(X, W, auto_pad, dilations, kernel_shape, pads, strides)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max(0, (math.ceil(n / s) - 1) * s + k - n)
                  for n, s, k in zip(a.inputs, a.strides, a.effective_kernels())]
        a.begins, a.ends = _padding.splits(totals, extra_at_end=auto_pad == "SAME_UPPER")
    return _conv(X, W, B, stride=a.strides, padding=a.begins, dilation=a.dilations, groups=group,
                 padding_end=a.ends)


def conv_transpose(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, output_padding=None,
                   output_shape=None, pads=None, strides=None):
    """ONNX ConvTranspose. With output_shape (or SAME_UPPER / SAME_LOWER, which ask for in * stride) the pads
    are total_padding = stride*(in-1) + output_padding + ((kernel-1)*dilation+1) - out, split with the odd unit
    at the beginning for SAME_LOWER and at the end otherwise; a negative total pads nothing and adds the missing
    elements at the end (they hold the bias)."""
    X, W = _array("X", X), _array("W", W)
    a = _Attributes(X, W, auto_pad, dilations, kernel_shape, pads, strides)
    adjust = _ints("output_padding", output_padding, a.rank, 0)
    targets = None
    if output_shape is not None:
        if pads is not None:
            raise ValueError(f"pads ({list(pads)}) cannot be used with output_shape ({list(output_shape)}): "
                             f"output_shape sets the pads")
        shape = list(output_shape)
        targets = _ints("output_shape", shape[2:] if len(shape) == a.rank + 2 else shape, a.rank, 0)
        if any(t < 1 for t in targets):
            raise ValueError(f"output_shape {shape} must be positive")
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        targets = [n * s for n, s in zip(a.inputs, a.strides)]
    extra = [0] * a.rank
    if targets is not None:
        naturals = [s * (n - 1) + p + k for n, s, p, k in zip(a.inputs, a.strides, adjust, a.effective_kernels())]
        totals = [natural - target for natural, target in zip(naturals, targets)]
        extra = [max(0, -t) for t in totals]
        a.begins, a.ends = _padding.splits([max(0, t) for t in totals], extra_at_end=auto_pad != "SAME_LOWER")
    y = _conv_transpose(X, W, B, stride=a.strides, padding=a.begins, output_padding=adjust, groups=group,
                        dilation=a.dilations, padding_end=a.ends)
    return _padding.extend_end(y, extra, B)
