"""TensorFlow's tf.nn convolutions on tconv.

    tconv.tf.conv1d(input, filters, stride, padding, data_format="NWC", dilations=None)
    tconv.tf.conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None)
    tconv.tf.conv3d(input, filters, strides, padding, data_format="NDHWC", dilations=None)
    tconv.tf.conv1d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NWC",
                              dilations=None)
    tconv.tf.conv2d_transpose(..., data_format="NHWC"), tconv.tf.conv3d_transpose(..., data_format="NDHWC")

Arguments as tf.nn takes them: filters [k..., in_channels/groups, out_channels]
for a convolution and [k..., out_channels, in_channels] for a transposed one;
channels last by default (or data_format "NCW"/"NCHW"/"NCDHW"); strides and
dilations an int, one value per spatial dimension or one per input dimension
(1 for batch and channels); padding "SAME", "VALID" or explicit
[[0, 0], [begin, end]..., [0, 0]] pairs in data_format's order; output_shape
the full output shape. Channels-last arrays run on tconv's channels-last
kernels as they are (no transposes). See docs/conventions.md.
"""

import math

import numpy as np

from . import _array, _padding, conv as _conv, conv_transpose as _conv_transpose

__all__ = ["conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose", "conv3d_transpose"]

LAYOUTS = {1: ("NWC", "NCW"), 2: ("NHWC", "NCHW"), 3: ("NDHWC", "NCDHW")}


class _Call:
    """One tf.nn call's arguments in tconv's terms: channels-first input, weight [a, b, k...], per-dimension
    strides and dilations."""

    def __init__(self, rank, input, filters, strides, padding, data_format, dilations):
        if data_format not in LAYOUTS[rank]:
            raise ValueError(f"data_format must be {' or '.join(LAYOUTS[rank])} for a {rank}-D convolution, "
                             f"got {data_format!r}")
        self.rank = rank
        self.channels_last = data_format == LAYOUTS[rank][0]
        x = _array("input", input)
        f = _array("filters", filters)
        for name, a in (("input", x), ("filters", f)):
            if a.ndim != rank + 2:
                raise ValueError(f"{name} must have {rank + 2} dimensions for a {rank}-D convolution, got {a.ndim} "
                                 f"(shape {list(a.shape)})")
        self.input = x
        self.layout = "channels_last" if self.channels_last else "channels_first"
        self.channels = x.shape[-1] if self.channels_last else x.shape[1]
        self.sizes = list(x.shape[1:-1] if self.channels_last else x.shape[2:])
        self.filters = f
        # [k..., a, b] -> [b, a, k...]: TF's filters in PyTorch's (and tconv's) weight layout.
        self.weight = np.transpose(f, (rank + 1, rank) + tuple(range(rank)))
        self.kernel = list(f.shape[:rank])
        self.strides = self._spatial("strides", strides)
        self.dilations = self._spatial("dilations", 1 if dilations is None else dilations)
        self.padding = padding
        self.explicit = self._explicit(padding)

    def _spatial(self, name, value):
        """An int, or rank values, or rank + 2 values with 1 for batch and channels."""
        if isinstance(value, (tuple, list)) and len(value) == self.rank + 2:
            channel = self.rank + 1 if self.channels_last else 1
            if value[0] != 1 or value[channel] != 1:
                raise ValueError(f"{name} {list(value)} must be 1 for the batch and channel dimensions")
            value = [v for i, v in enumerate(value) if i not in (0, channel)]
        values = _padding.per_dim(name, value, self.rank)
        if any(v < 1 for v in values):
            raise ValueError(f"{name} {values} must be positive")
        return values

    def _explicit(self, padding):
        """(begins, ends) of explicit padding pairs, or None for 'SAME' / 'VALID'."""
        if isinstance(padding, str):
            if padding not in ("SAME", "VALID"):
                raise ValueError(f"padding must be 'SAME', 'VALID' or a list of [begin, end] pairs, got {padding!r}")
            return None
        pairs = [list(p) for p in padding] if isinstance(padding, (tuple, list)) else None
        if (pairs is None or len(pairs) != self.rank + 2
                or not all(len(p) == 2 and all(_padding.is_int(v) and v >= 0 for v in p) for p in pairs)):
            raise ValueError(f"explicit padding {padding!r} must be {self.rank + 2} [begin, end] pairs of "
                             f"non-negative ints, one per input dimension")
        channel = self.rank + 1 if self.channels_last else 1
        if pairs[0] != [0, 0] or pairs[channel] != [0, 0]:
            raise ValueError(f"explicit padding {pairs} must be [0, 0] for the batch and channel dimensions")
        spatial = [p for i, p in enumerate(pairs) if i not in (0, channel)]
        return [p[0] for p in spatial], [p[1] for p in spatial]

    def conv_padding(self, sizes):
        """(begins, ends) of a convolution over spatial `sizes` and its output sizes, as TensorFlow pads: SAME
        gives ceil(size / stride) outputs, the odd unit of padding at the end; VALID pads nothing."""
        kernels = [_padding.effective_kernel(k, d) for k, d in zip(self.kernel, self.dilations)]
        if self.explicit is not None:
            begins, ends = self.explicit
        elif self.padding == "SAME":
            totals = [max(0, (math.ceil(n / s) - 1) * s + k - n) for n, s, k in zip(sizes, self.strides, kernels)]
            begins, ends = _padding.splits(totals)
        else:
            begins, ends = [0] * self.rank, [0] * self.rank
        outputs = [(n + b + e - k) // s + 1 for n, b, e, k, s in zip(sizes, begins, ends, kernels, self.strides)]
        return begins, ends, outputs


def _convolution(rank, input, filters, strides, padding, data_format, dilations):
    call = _Call(rank, input, filters, strides, padding, data_format, dilations)
    channels, group_channels = call.channels, call.filters.shape[rank]
    if channels % group_channels:
        raise ValueError(f"input depth ({channels}) must be a multiple of the filters' in_channels "
                         f"({group_channels}, filters dimension {rank})")
    begins, ends, _ = call.conv_padding(call.sizes)
    return _conv(call.input, call.weight, stride=call.strides, padding=begins, dilation=call.dilations,
                 groups=channels // group_channels, padding_end=ends, layout=call.layout)


def _convolution_transpose(rank, input, filters, output_shape, strides, padding, data_format, dilations):
    """The gradient of the convolution (same filters, strides, padding) whose input has output_shape: the
    input's spatial sizes must be that convolution's output sizes."""
    call = _Call(rank, input, filters, strides, padding, data_format, dilations)
    shape = [int(v) for v in output_shape]
    if len(shape) != rank + 2:
        raise ValueError(f"output_shape {shape} must have {rank + 2} values (the full output shape)")
    channels = shape[-1] if call.channels_last else shape[1]
    sizes = shape[1:-1] if call.channels_last else shape[2:]
    if shape[0] != call.input.shape[0] or channels != call.filters.shape[rank]:
        raise ValueError(f"output_shape {shape} must have the input's batch ({call.input.shape[0]}) and the "
                         f"filters' out_channels ({call.filters.shape[rank]}, filters dimension {rank})")
    begins, ends, outputs = call.conv_padding(sizes)
    inputs = call.sizes
    if outputs != inputs:
        raise ValueError(f"output_shape {shape} does not fit the input's spatial sizes {inputs}: a convolution with "
                         f"padding {call.padding!r}, strides {call.strides}, dilations {call.dilations} and kernel "
                         f"{call.kernel} maps spatial sizes {sizes} to {outputs}")
    kernels = [_padding.effective_kernel(k, d) for k, d in zip(call.kernel, call.dilations)]
    naturals = [(n - 1) * s + k - b - e for n, s, k, b, e in zip(inputs, call.strides, kernels, begins, ends)]
    return _conv_transpose(call.input, call.weight, stride=call.strides, padding=begins,
                           output_padding=[t - n for t, n in zip(sizes, naturals)], dilation=call.dilations,
                           padding_end=ends, layout=call.layout)


def conv1d(input, filters, stride, padding, data_format="NWC", dilations=None):
    """tf.nn.conv1d: filters [width, in_channels/groups, out_channels]."""
    return _convolution(1, input, filters, stride, padding, data_format, dilations)


def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None):
    """tf.nn.conv2d: filters [height, width, in_channels/groups, out_channels]."""
    return _convolution(2, input, filters, strides, padding, data_format, dilations)


def conv3d(input, filters, strides, padding, data_format="NDHWC", dilations=None):
    """tf.nn.conv3d: filters [depth, height, width, in_channels/groups, out_channels]."""
    return _convolution(3, input, filters, strides, padding, data_format, dilations)


def conv1d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NWC", dilations=None):
    """tf.nn.conv1d_transpose: filters [width, out_channels, in_channels]."""
    return _convolution_transpose(1, input, filters, output_shape, strides, padding, data_format, dilations)


def conv2d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NHWC", dilations=None):
    """tf.nn.conv2d_transpose: filters [height, width, out_channels, in_channels]."""
    return _convolution_transpose(2, input, filters, output_shape, strides, padding, data_format, dilations)


def conv3d_transpose(input, filters, output_shape, strides, padding="SAME", data_format="NDHWC", dilations=None):
    """tf.nn.conv3d_transpose: filters [depth, height, width, out_channels, in_channels]."""
    return _convolution_transpose(3, input, filters, output_shape, strides, padding, data_format, dilations)
