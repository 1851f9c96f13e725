"""tconv: convolution and transposed convolution with PyTorch's semantics.

    tconv.conv(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1)
    tconv.conv_transpose(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1)
    tconv.conv_backward(grad_output, x, w, stride=1, padding=0, dilation=1, groups=1, bias=True)
    tconv.conv_transpose_backward(grad_output, x, w, stride=1, padding=0, output_padding=0, groups=1,
                                  dilation=1, bias=True)

take NumPy arrays (float32 or float64, any strides) laid out as PyTorch's
tensors and return what torch.nn.functional.conv{1,2,3}d / conv_transpose{1,2,3}d
return. Bad parameters raise ValueError, bad dtypes TypeError, with a message
that names the parameter, its value and the rule.
"""

import numbers

import numpy as np

from . import _tconv
from . import reference  # noqa: F401  (tconv.reference.gather / matrix / scatter)

__all__ = [
    "conv", "conv_transpose", "conv_matrix", "output_shape", "Conv", "ConvTranspose",
    "set_num_threads", "num_threads", "available_implementations", "reference",
    "conv_backward", "conv_transpose_backward",
]

set_num_threads = _tconv.set_num_threads
num_threads = _tconv.num_threads
available_implementations = _tconv.available_implementations


def _spatial(name, value):
    """An int or a sequence of ints, as a list (one value, or one per dimension)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [int(value)]
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return [int(v) for v in value]
    raise TypeError(f"{name} must be an int or a non-empty tuple of ints, got {value!r}")


def _params(stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"groups must be an int, got {groups!r}")
    return _tconv.make_params(_spatial("stride", stride), _spatial("padding", padding),
                              _spatial("output_padding", output_padding), _spatial("dilation", dilation),
                              int(groups))


def _array(name, value, optional=False):
    """A float32/float64 NumPy array in native byte order (no copy when it already is one)."""
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} must be an array, got None")
    array = np.asarray(value)
    if array.dtype.kind != "f" or array.dtype.itemsize not in (4, 8):
        raise TypeError(f"{name} must be float32 or float64, got {array.dtype}")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _operands(input, weight, bias):
    return _array("input", input), _array("weight", weight), _array("bias", bias, optional=True)


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d/2d/3d: weight is [C_out, C_in/groups, k...]."""
    x, w, b = _operands(input, weight, bias)
    return _tconv.compute("conv", x, w, b, _params(stride, padding, 0, dilation, groups))


def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d/2d/3d: weight is [C_in, C_out/groups, k...]."""
    x, w, b = _operands(input, weight, bias)
    return _tconv.compute("conv_transpose", x, w, b, _params(stride, padding, output_padding, dilation, groups))


def conv_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, bias=True):
    """(grad_input, grad_weight, grad_bias) of conv(input, weight, ...) given the output's gradient;
    grad_bias is None when bias is False (the forward had no bias)."""
    return _tconv.backward("conv", _array("grad_output", grad_output), _array("input", input),
                           _array("weight", weight), _params(stride, padding, 0, dilation, groups), bool(bias))


def conv_transpose_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                            bias=True):
    """(grad_input, grad_weight, grad_bias) of conv_transpose(input, weight, ...) given the output's gradient;
    grad_bias is None when bias is False (the forward had no bias)."""
    return _tconv.backward("conv_transpose", _array("grad_output", grad_output), _array("input", input),
                           _array("weight", weight), _params(stride, padding, output_padding, dilation, groups),
                           bool(bias))


def conv_matrix(input_shape, weight, stride=1, padding=0, dilation=1, groups=1):
    """The dense matrix M of conv(x, weight) for one sample of `input_shape`
    ([C, spatial...] or [1, C, spatial...]): shape (output elements, input elements),
    so conv(x).ravel() == M @ x.ravel() and conv_transpose(y).ravel() == M.T @ y.ravel()."""
    return _tconv.conv_matrix([int(d) for d in input_shape], _array("weight", weight),
                              _params(stride, padding, 0, dilation, groups))


def output_shape(op, input_shape, weight_shape, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """The output shape of `op` ('conv' or 'conv_transpose'), or the ValueError it would raise."""
    return tuple(_tconv.output_shape(op, [int(d) for d in input_shape], [int(d) for d in weight_shape],
                                     _params(stride, padding, output_padding, dilation, groups)))


class _Prepared:
    """A convolution with its weights packed once; call it on inputs."""

    _op = None

    def __init__(self, weight, bias, params, implementation):
        self._operator = _tconv.Operator(self._op, _array("weight", weight), _array("bias", bias, optional=True),
                                         params, implementation)

    def __call__(self, input):
        return self._operator(_array("input", input))

    @property
    def implementation(self):
        """The kernel family chosen at creation."""
        return self._operator.implementation

    @property
    def reason(self):
        """Why that kernel family was chosen."""
        return self._operator.reason

    def output_shape(self, input_shape):
        return tuple(self._operator.output_shape([int(d) for d in input_shape]))

    def workspace_bytes(self, input_shape):
        """Scratch memory one call on an input of this shape allocates."""
        return self._operator.workspace_bytes([int(d) for d in input_shape])


class Conv(_Prepared):
    _op = "conv"

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, implementation=""):
        super().__init__(weight, bias, _params(stride, padding, 0, dilation, groups), implementation)


class ConvTranspose(_Prepared):
    _op = "conv_transpose"

    def __init__(self, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                 implementation=""):
        super().__init__(weight, bias, _params(stride, padding, output_padding, dilation, groups), implementation)


from .explain import Explanation, explain  # noqa: E402  (needs _array and _params above)
__all__ += ["explain", "Explanation"]
