"""The three reference ways of computing a (transposed) convolution.

Each takes op ('conv' or 'conv_transpose') and the same arguments as
tconv.conv / tconv.conv_transpose, and returns the same numbers:

- gather:  every output element sums the input elements its window covers;
- matrix:  the convolution matrix (tconv.conv_matrix), or its transpose, times the flattened input;
- scatter: every input element adds itself times the kernel into the output window it reaches.
"""

from . import _tconv


def _compute(method, op, input, weight, bias, stride, padding, output_padding, dilation, groups):
    from . import _array, _params  # the package's argument normalization
    return _tconv.reference(method, op, _array("input", input), _array("weight", weight),
                            _array("bias", bias, optional=True),
                            _params(stride, padding, output_padding, dilation, groups))


def gather(op, input, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    return _compute("gather", op, input, weight, bias, stride, padding, output_padding, dilation, groups)


def matrix(op, input, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    return _compute("matrix", op, input, weight, bias, stride, padding, output_padding, dilation, groups)


def scatter(op, input, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    return _compute("scatter", op, input, weight, bias, stride, padding, output_padding, dilation, groups)
