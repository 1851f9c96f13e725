"""tconv: convolution and transposed convolution with PyTorch's semantics.

    tconv.conv(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_end=None,
               padding_mode="zeros")
    tconv.conv_transpose(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                         padding_end=None, output_size=None)
    tconv.conv_backward(grad_output, x, w, stride=1, padding=0, dilation=1, groups=1, bias=True,
                        padding_end=None)
    tconv.conv_transpose_backward(grad_output, x, w, stride=1, padding=0, output_padding=0, groups=1,
                                  dilation=1, bias=True, padding_end=None)

take NumPy arrays (float32 or float64, any strides) laid out as PyTorch's
tensors and return what torch.nn.functional.conv{1,2,3}d / conv_transpose{1,2,3}d
return. Bad parameters raise ValueError, bad dtypes TypeError, with a message
that names the parameter, its value and the rule. padding_end (one value or
one per dimension) makes the padding asymmetric: padding is then the amount at
the beginning of each dimension and padding_end the amount at the end.
tconv.onnx and tconv.tf take ONNX's and TensorFlow's conventions
(docs/conventions.md).
"""

import numbers

import numpy as np

from . import _padding, _tconv
from . import reference  # noqa: F401  (tconv.reference.gather / matrix / scatter)

__all__ = [
    "conv", "conv_transpose", "conv_matrix", "output_shape", "Conv", "ConvTranspose",
    "set_num_threads", "num_threads", "set_max_bytes", "max_bytes", "available_implementations", "reference",
    "conv_backward", "conv_transpose_backward",
]

set_num_threads = _tconv.set_num_threads
num_threads = _tconv.num_threads
available_implementations = _tconv.available_implementations
# The most bytes one call may allocate for output and workspace (default: the
# environment variable TCONV_MAX_BYTES, else physical memory; 0 restores it).
set_max_bytes = _tconv.set_max_bytes
max_bytes = _tconv.max_bytes


def _spatial(name, value):
    """An int or a sequence of ints, as a list (one value, or one per dimension)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [int(value)]
    if isinstance(value, (tuple, list)) and value and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return [int(v) for v in value]
    raise TypeError(f"{name} must be an int or a non-empty tuple of ints, got {value!r}")


_CHANNELS_FIRST = ("nchw", "ncw", "ncdhw", "channels_first")
_CHANNELS_LAST = ("nhwc", "nwc", "ndhwc", "channels_last")


def _channels_last(layout):
    """True for a channels-last layout name ('nhwc', 'nwc', 'ndhwc', 'channels_last'), False for channels-first."""
    if not isinstance(layout, str):
        raise TypeError(f"layout must be a string, got {layout!r}")
    if layout.lower() in _CHANNELS_LAST:
        return True
    if layout.lower() in _CHANNELS_FIRST:
        return False
    raise ValueError(f"layout must be one of {', '.join(_CHANNELS_FIRST + _CHANNELS_LAST)}, got {layout!r}")


def _params(stride=1, padding=0, output_padding=0, dilation=1, groups=1, padding_end=None, layout="nchw"):
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool):
        raise TypeError(f"groups must be an int, got {groups!r}")
    return _tconv.make_params(_spatial("stride", stride), _spatial("padding", padding),
                              _spatial("output_padding", output_padding), _spatial("dilation", dilation),
                              int(groups), None if padding_end is None else _spatial("padding_end", padding_end),
                              _channels_last(layout))


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


def _torch_conv_padding(x, w, stride, padding, dilation, padding_end, padding_mode, channels_last=False):
    """(input, padding, padding_end) that run torch.nn.ConvNd's padding ('same', 'valid' or amounts) and
    padding_mode as a zero-padded convolution: other modes pad the input here and pass padding 0."""
    if isinstance(padding, str):
        if padding_end is not None:
            raise ValueError(f"padding_end ({padding_end!r}) cannot be combined with padding={padding!r}")
        rank = _padding.spatial_rank(w)
        if padding == "valid":
            padding, padding_end = [0] * rank, [0] * rank
        elif padding == "same":
            if any(s != 1 for s in _padding.per_dim("stride", stride, rank)):
                raise ValueError(f"padding='same' needs stride 1 in every dimension, got stride={stride!r}")
            dilations = _padding.per_dim("dilation", dilation, rank)
            padding, padding_end = _padding.splits([d * (k - 1) for d, k in zip(dilations, w.shape[2:])])
        else:
            raise ValueError(f"padding must be an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
    if padding_mode == "zeros":
        return x, padding, padding_end
    if padding_mode not in _padding.NUMPY_PAD_MODES:
        raise ValueError(f"padding_mode must be 'zeros', 'reflect', 'replicate' or 'circular', got {padding_mode!r}")
    rank = _padding.spatial_rank(w)
    begins = _padding.per_dim("padding", padding, rank)
    ends = begins if padding_end is None else _padding.per_dim("padding_end", padding_end, rank)
    return _padding.pad_input(x, begins, ends, padding_mode, channels_last), 0, None


def _torch_output_padding(x, w, stride, padding, padding_end, dilation, output_size, channels_last=False):
    """The output_padding that makes conv_transpose's output output_size, with
    torch.nn.ConvTransposeNd.forward(input, output_size)'s rule."""
    rank = _padding.spatial_rank(w)
    sizes = _padding.per_dim("output_size", list(output_size), len(output_size))
    axes = _padding.spatial_axes(x.ndim, rank, channels_last)
    if len(sizes) == x.ndim:
        sizes = [sizes[a] for a in axes]
    if len(sizes) != rank:
        raise ValueError(f"output_size {list(output_size)} must have {rank} or {x.ndim} elements for a {rank}-D "
                         f"transposed convolution of a {x.ndim}-D input")
    strides = _padding.per_dim("stride", stride, rank)
    begins = _padding.per_dim("padding", padding, rank)
    ends = begins if padding_end is None else _padding.per_dim("padding_end", padding_end, rank)
    dilations = _padding.per_dim("dilation", dilation, rank)
    inputs = [x.shape[a] for a in axes]
    smallest = [(n - 1) * s - b - e + d * (k - 1) + 1
                for n, s, b, e, d, k in zip(inputs, strides, begins, ends, dilations, w.shape[2:])]
    largest = [m + s - 1 for m, s in zip(smallest, strides)]
    if any(not m <= n <= top for m, n, top in zip(smallest, sizes, largest)):
        raise ValueError(f"output_size: requested an output size of {sizes}, but valid sizes range from {smallest} "
                         f"to {largest} (for an input of {list(inputs)}): from (input-1)*stride - padding_begin - "
                         f"padding_end + dilation*(kernel-1) + 1 up to stride-1 more")
    return [n - m for n, m in zip(sizes, smallest)]


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_end=None, padding_mode="zeros",
         layout="nchw"):
    """torch.nn.functional.conv1d/2d/3d: weight is [C_out, C_in/groups, k...]. padding may also be 'same'
    (stride 1; the odd unit of dilation*(kernel-1) at the end) or 'valid'; padding_mode is torch.nn.ConvNd's.
    layout='nhwc' (or 'nwc', 'ndhwc', 'channels_last') takes and returns [N, spatial..., C] activations,
    computed in place by the channels-last kernels; the weight keeps PyTorch's layout."""
    x, w, b = _operands(input, weight, bias)
    x, padding, padding_end = _torch_conv_padding(x, w, stride, padding, dilation, padding_end, padding_mode,
                                                  _channels_last(layout))
    return _tconv.compute("conv", x, w, b, _params(stride, padding, 0, dilation, groups, padding_end, layout))


def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                   padding_end=None, output_size=None, layout="nchw"):
    """torch.nn.functional.conv_transpose1d/2d/3d: weight is [C_in, C_out/groups, k...]. output_size picks
    output_padding as torch.nn.ConvTransposeNd.forward(input, output_size) does. layout as in conv."""
    x, w, b = _operands(input, weight, bias)
    if output_size is not None:
        if any(_spatial("output_padding", output_padding)):
            raise ValueError(f"output_padding ({output_padding!r}) and output_size ({output_size!r}) both set the "
                             f"output size: give one of them")
        output_padding = _torch_output_padding(x, w, stride, padding, padding_end, dilation, output_size,
                                               _channels_last(layout))
    return _tconv.compute("conv_transpose", x, w, b,
                          _params(stride, padding, output_padding, dilation, groups, padding_end, layout))


def conv_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1, bias=True, padding_end=None,
                  layout="nchw"):
    """(grad_input, grad_weight, grad_bias) of conv(input, weight, ...) given the output's gradient;
    grad_bias is None when bias is False (the forward had no bias). padding_end and layout as in conv."""
    return _tconv.backward("conv", _array("grad_output", grad_output), _array("input", input),
                           _array("weight", weight), _params(stride, padding, 0, dilation, groups, padding_end, layout),
                           bool(bias))


def conv_transpose_backward(grad_output, input, weight, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                            bias=True, padding_end=None, layout="nchw"):
    """(grad_input, grad_weight, grad_bias) of conv_transpose(input, weight, ...) given the output's gradient;
    grad_bias is None when bias is False (the forward had no bias). padding_end and layout as in conv_transpose."""
    return _tconv.backward("conv_transpose", _array("grad_output", grad_output), _array("input", input),
                           _array("weight", weight),
                           _params(stride, padding, output_padding, dilation, groups, padding_end, layout), bool(bias))


def conv_matrix(input_shape, weight, stride=1, padding=0, dilation=1, groups=1):
    """The dense matrix M of conv(x, weight) for one sample of `input_shape`
    ([C, spatial...] or [1, C, spatial...]): shape (output elements, input elements),
    so conv(x).ravel() == M @ x.ravel() and conv_transpose(y).ravel() == M.T @ y.ravel()."""
    return _tconv.conv_matrix([int(d) for d in input_shape], _array("weight", weight),
                              _params(stride, padding, 0, dilation, groups))


def output_shape(op, input_shape, weight_shape, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
                 padding_end=None, layout="nchw"):
    """The output shape of `op` ('conv' or 'conv_transpose'), or the ValueError it would raise."""
    return tuple(_tconv.output_shape(op, [int(d) for d in input_shape], [int(d) for d in weight_shape],
                                     _params(stride, padding, output_padding, dilation, groups, padding_end, layout)))


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

    def strategy(self, input_shape):
        """How the implementation runs an input of this shape, where it chooses per
        shape (plane_gemm_avx512: the input read in place, split into its stride
        phases, or the channels-last detour); empty where it has one way."""
        return self._operator.strategy([int(d) for d in input_shape])


class Conv(_Prepared):
    _op = "conv"

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, implementation="",
                 padding_end=None, layout="nchw"):
        super().__init__(weight, bias, _params(stride, padding, 0, dilation, groups, padding_end, layout),
                         implementation)


class ConvTranspose(_Prepared):
    _op = "conv_transpose"

    def __init__(self, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                 implementation="", padding_end=None, layout="nchw"):
        super().__init__(weight, bias,
                         _params(stride, padding, output_padding, dilation, groups, padding_end, layout),
                         implementation)


from .explain import Explanation, explain  # noqa: E402  (needs _array and _params above)
from . import onnx, tf  # noqa: E402  (need conv and conv_transpose above)
__all__ += ["explain", "Explanation", "onnx", "tf"]
