"""ONNX's Conv and ConvTranspose operators on tconv.

    tconv.onnx.conv(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                    pads=None, strides=None)
    tconv.onnx.conv_transpose(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                              output_padding=None, output_shape=None, pads=None, strides=None)
    tconv.onnx.output_shape(op, input_shape, weight_shape, **attributes)

The attributes are spelled and mean what they mean in the ONNX operator
specification (opset 11 and later): lists with one value per spatial axis,
pads = [x1_begin, x2_begin, ..., x1_end, x2_end, ...], None for an absent
attribute. X is [N, C, spatial...], W is ONNX's (and PyTorch's) weight layout.
The attributes are resolved into tconv's parameters by the C++ library
(tconv/onnx.hpp), the same code `tconv run --convention onnx` uses. How each
padding split and output size is computed, and where ONNX Runtime differs, is
in docs/conventions.md.
"""

from . import _array, _padding, _tconv

__all__ = ["conv", "conv_transpose", "output_shape"]

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _ints(name, value):
    """An ONNX INTS attribute as a list of ints, or None when absent (its length is checked in C++)."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or not all(_padding.is_int(v) for v in value):
        raise TypeError(f"{name} must be a list of ints, got {value!r}")
    return [int(v) for v in value]


def _attributes(auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, output_padding=None,
                output_shape=None, pads=None, strides=None):
    if not isinstance(auto_pad, str):
        raise ValueError(f"auto_pad must be one of {', '.join(AUTO_PADS)}, got {auto_pad!r}")
    if not _padding.is_int(group):
        raise TypeError(f"group must be an int, got {group!r}")
    return _tconv.onnx_attributes(auto_pad, _ints("dilations", dilations), int(group),
                                  _ints("kernel_shape", kernel_shape), _ints("output_padding", output_padding),
                                  None if output_shape is None else _ints("output_shape", list(output_shape)),
                                  _ints("pads", pads), _ints("strides", strides))


def conv(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """ONNX Conv: Y[N, M, out...]. SAME_UPPER / SAME_LOWER pad so that out = ceil(in / stride), the odd unit
    at the end / the beginning; VALID pads nothing."""
    X, W, B = _array("X", X), _array("W", W), _array("B", B, optional=True)
    return _tconv.onnx_compute("conv", X, W, B, _attributes(auto_pad, dilations, group, kernel_shape, None, None,
                                                            pads, strides))


def conv_transpose(X, W, B=None, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, output_padding=None,
                   output_shape=None, pads=None, strides=None):
    """ONNX ConvTranspose. With output_shape (or SAME_UPPER / SAME_LOWER, which ask for in * stride) the pads
    are total_padding = stride*(in-1) + output_padding + ((kernel-1)*dilation+1) - out, split with the odd unit
    at the beginning for SAME_LOWER and at the end otherwise; a negative total pads nothing and adds the missing
    elements at the end (they hold the bias)."""
    X, W, B = _array("X", X), _array("W", W), _array("B", B, optional=True)
    return _tconv.onnx_compute("conv_transpose", X, W, B, _attributes(auto_pad, dilations, group, kernel_shape,
                                                                      output_padding, output_shape, pads, strides))


def output_shape(op, input_shape, weight_shape, **attributes):
    """The shape of Y for `op` ('conv' or 'conv_transpose') on X and W of these shapes, or the ValueError the
    call would raise."""
    return tuple(_tconv.onnx_output_shape(op, [int(d) for d in input_shape], [int(d) for d in weight_shape],
                                          _attributes(**attributes)))
