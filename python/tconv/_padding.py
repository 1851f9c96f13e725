"""Shared arithmetic of the framework conventions (tconv.conv's padding='same',
tconv.onnx, tconv.tf): per-dimension parameters, padding splits, input padding
modes and outputs extended at their end. See docs/conventions.md."""

import numbers

import numpy as np

# torch.nn.ConvNd's padding_mode -> numpy.pad's mode.
NUMPY_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def per_dim(name, value, rank):
    """An int or a sequence of ints as a list of `rank` ints (one value is repeated)."""
    if is_int(value):
        return [int(value)] * rank
    if isinstance(value, (tuple, list)) and all(is_int(v) for v in value):
        if len(value) == 1:
            return [int(value[0])] * rank
        if len(value) == rank:
            return [int(v) for v in value]
        raise ValueError(f"{name} {list(value)} has {len(value)} values but the convolution is {rank}-D "
                         f"(give one value, or one per spatial dimension)")
    raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")


def spatial_rank(weight, name="weight"):
    """The number of spatial dimensions of a [*, *, kernel...] weight (1, 2 or 3)."""
    if weight.ndim not in (3, 4, 5):
        raise ValueError(f"{name} must have 3, 4 or 5 dimensions (1-, 2- or 3-D convolution), got {weight.ndim} "
                         f"(shape {list(weight.shape)})")
    return weight.ndim - 2


def effective_kernel(kernel, dilation):
    """The extent of a dilated kernel: (kernel - 1) * dilation + 1."""
    return (kernel - 1) * dilation + 1


def split(total, extra_at_end=True):
    """(begin, end) halves of `total` padding; an odd unit goes to the end, or to the beginning."""
    small, big = total // 2, total - total // 2
    return (small, big) if extra_at_end else (big, small)


def splits(totals, extra_at_end=True):
    """Per-dimension (begins, ends) lists of the halves of `totals`."""
    pairs = [split(t, extra_at_end) for t in totals]
    return [b for b, _ in pairs], [e for _, e in pairs]


def spatial_axes(ndim, rank, channels_last=False):
    """The axes of the spatial dimensions of an ndim-D activation: the last `rank` ones,
    or the `rank` before the last when channels come last."""
    end = ndim - 1 if channels_last else ndim
    return list(range(end - rank, end))


def pad_input(x, begins, ends, mode, channels_last=False):
    """x padded on its spatial dimensions as torch.nn.ConvNd pads for padding_mode `mode`."""
    rank = len(begins)
    axes = spatial_axes(x.ndim, rank, channels_last)
    sizes = [x.shape[a] for a in axes]
    for d, (b, e, n) in enumerate(zip(begins, ends, sizes)):
        for amount in (b, e):
            if amount < 0:
                raise ValueError(f"padding ({amount}) must be non-negative")
            if mode == "reflect" and amount >= n:
                raise ValueError(f"padding ({amount}) must be smaller than the input size ({n}) of spatial "
                                 f"dimension {d} for padding_mode='reflect'")
            if mode == "circular" and amount > n:
                raise ValueError(f"padding ({amount}) must be at most the input size ({n}) of spatial "
                                 f"dimension {d} for padding_mode='circular'")
    widths = [(0, 0)] * x.ndim
    for axis, b, e in zip(axes, begins, ends):
        widths[axis] = (b, e)
    return np.pad(x, widths, mode=NUMPY_PAD_MODES[mode])


def extend_end(y, extra, bias):
    """y grown by extra[d] elements at the end of each spatial dimension; the new elements hold the bias
    (zero without one), as a transposed convolution writes nothing there."""
    rank = len(extra)
    if not any(extra):
        return y
    shape = y.shape[:y.ndim - rank] + tuple(n + e for n, e in zip(y.shape[y.ndim - rank:], extra))
    out = np.zeros(shape, dtype=y.dtype)
    if bias is not None:
        out += np.asarray(bias, dtype=y.dtype).reshape((-1,) + (1,) * rank)
    out[(Ellipsis,) + tuple(slice(0, n) for n in y.shape[y.ndim - rank:])] = y
    return out
