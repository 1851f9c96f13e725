"""PyTorch bridge: tconv's forward and backward passes inside torch.autograd.

    import tconv.torch
    layer = tconv.torch.ConvTranspose2d(16, 8, kernel_size=4, stride=2, padding=1)

Conv1d/2d/3d and ConvTranspose1d/2d/3d subclass their torch.nn namesakes, so
they take the same constructor arguments, hold the same parameters under the
same state_dict keys and initialize them the same way; only the convolution
itself (forward and backward) runs on tconv. conv() and conv_transpose() are
the functional forms. Tensors must live on the CPU and be float32 or float64;
they go to NumPy and back without a copy where their layout allows.

Importing tconv does not import this module: torch is needed only here.
"""

import torch
import torch.nn.functional as F

import tconv

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


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d/2d/3d computed by tconv, differentiable."""
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return ConvFunction.apply(input, weight, bias, "conv", params)


def conv_transpose(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d/2d/3d computed by tconv, differentiable."""
    params = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    return ConvFunction.apply(input, weight, bias, "conv_transpose", params)


class _TconvConv:
    """Replaces torch.nn.ConvNd's convolution call; everything else is torch's."""

    def _conv_forward(self, input, weight, bias):
        padding = self.padding
        # Padding modes other than zeros, and padding='same' (which may be
        # asymmetric), are applied by torch; tconv then convolves unpadded.
        if self.padding_mode != "zeros" or isinstance(padding, str):
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=mode)
            padding = 0
        return conv(input, weight, bias, self.stride, padding, self.dilation, self.groups)


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
