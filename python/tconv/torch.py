"""PyTorch bridge: tconv's forward and backward passes inside torch.autograd.

    import tconv.torch
    layer = tconv.torch.ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1)

Conv1d/2d/3d and ConvTranspose1d/2d/3d subclass their torch.nn namesakes, so
they take the same constructor arguments, hold the same parameters under the
same state_dict keys and initialize them the same way; only the convolution
itself (forward and backward) runs on tconv. conv() and conv_transpose() are
the functional forms. Tensors must live on the CPU and be float32 or float64;
they go to NumPy and back without a copy where their layout allows.

As in torch.nn: ConvNd takes padding='same' / 'valid' (tconv pads the two ends
unequally itself, no padded copy) and padding_mode 'zeros', 'reflect',
'replicate' or 'circular' (the input is padded by torch.nn.functional.pad, so
autograd differentiates the padding, then convolved by tconv without padding);
ConvTransposeNd takes only padding_mode='zeros' (refused as torch refuses) and
forward(input, output_size=...).

Importing tconv does not import this module: torch is needed only here.
"""

import torch
import torch.nn.functional as F

import tconv
from tconv import _padding

__all__ = ["conv", "conv_transpose", "ConvFunction",
           "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]


def _numpy(name, tensor):
    if tensor.device.type != "cpu":
        raise TypeError(f"{name} must be a CPU tensor for tconv, got one on {tensor.device}")
    return tensor.detach().numpy()


class ConvFunction(torch.autograd.Function):
    """op ('conv' or 'conv_transpose') of (input, weight, bias) with tconv's
    forward, and tconv's backward for input, weight and bias gradients.
    params: the keyword arguments of tconv.conv / tconv.conv_transpose besides bias."""

    @staticmethod
    def forward(ctx, input, weight, bias, op, params):
        ctx.op = op
        ctx.params = params
        ctx.has_bias = bias is not None
        ctx.save_for_backward(input, weight)
        forward = tconv.conv if op == "conv" else tconv.conv_transpose
        bias_array = None if bias is None else _numpy("bias", bias)
        return torch.from_numpy(forward(_numpy("input", input), _numpy("weight", weight), bias_array, **params))

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        backward = tconv.conv_backward if ctx.op == "conv" else tconv.conv_transpose_backward
        grad_input, grad_weight, grad_bias = backward(
            _numpy("grad_output", grad_output), _numpy("input", input), _numpy("weight", weight),
            bias=ctx.has_bias, **ctx.params)
        return (torch.from_numpy(grad_input), torch.from_numpy(grad_weight),
                None if grad_bias is None else torch.from_numpy(grad_bias), None, None)


def _padding_amounts(weight, stride, padding, dilation, padding_end):
    """(padding, padding_end) with padding='same' / 'valid' resolved by torch's rule (the odd unit of
    dilation * (kernel - 1) at the end), so that the backward pass gets numbers."""
    if not isinstance(padding, str):
        return padding, padding_end
    if padding_end is not None:
        raise ValueError(f"padding_end ({padding_end!r}) cannot be combined with padding={padding!r}")
    rank = _padding.spatial_rank(weight)
    if padding == "valid":
        return [0] * rank, [0] * rank
    if padding != "same":
        raise ValueError(f"padding must be an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
    if any(s != 1 for s in _padding.per_dim("stride", stride, rank)):
        raise ValueError(f"padding='same' needs stride 1 in every dimension, got stride={stride!r}")
    dilations = _padding.per_dim("dilation", dilation, rank)
    return _padding.splits([d * (k - 1) for d, k in zip(dilations, weight.shape[2:])])


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_end=None):
    """torch.nn.functional.conv1d/2d/3d computed by tconv, differentiable. padding may be 'same' or 'valid';
    padding_end (tconv's extension) makes it asymmetric."""
    padding, padding_end = _padding_amounts(weight, stride, padding, dilation, padding_end)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_end=padding_end)
    return ConvFunction.apply(input, weight, bias, "conv", params)


def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                   padding_end=None):
    """torch.nn.functional.conv_transpose1d/2d/3d computed by tconv, differentiable. padding_end (tconv's
    extension) makes the cropping asymmetric."""
    params = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups,
                  padding_end=padding_end)
    return ConvFunction.apply(input, weight, bias, "conv_transpose", params)


class _TconvConv:
    """Replaces torch.nn.ConvNd's convolution call; everything else is torch's."""

    def _conv_forward(self, input, weight, bias):
        # Padding modes other than zeros are applied by torch (so autograd
        # differentiates them); tconv then convolves unpadded. Zero padding,
        # 'same' (possibly one more at the end) and 'valid' are tconv's own.
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return conv(input, weight, bias, self.stride, 0, self.dilation, self.groups)
        return conv(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class _TconvConvTranspose:
    """Replaces torch.nn.ConvTransposeNd.forward; output_size works as in torch."""

    def forward(self, input, output_size=None):
        if self.padding_mode != "zeros":
            raise ValueError(f"Only `zeros` padding mode is supported for {type(self).__name__}")
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size,
                                              len(self.kernel_size), self.dilation)
        return conv_transpose(input, self.weight, self.bias, self.stride, self.padding, tuple(output_padding),
                              self.groups, self.dilation)


class Conv1d(_TconvConv, torch.nn.Conv1d):
    """torch.nn.Conv1d running on tconv."""


class Conv2d(_TconvConv, torch.nn.Conv2d):
    """torch.nn.Conv2d running on tconv."""


class Conv3d(_TconvConv, torch.nn.Conv3d):
    """torch.nn.Conv3d running on tconv."""


class ConvTranspose1d(_TconvConvTranspose, torch.nn.ConvTranspose1d):
    """torch.nn.ConvTranspose1d running on tconv."""


class ConvTranspose2d(_TconvConvTranspose, torch.nn.ConvTranspose2d):
    """torch.nn.ConvTranspose2d running on tconv."""


class ConvTranspose3d(_TconvConvTranspose, torch.nn.ConvTranspose3d):
    """torch.nn.ConvTranspose3d running on tconv."""
