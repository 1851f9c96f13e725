"""Gradients of conv and conv_transpose, checked against independent oracles:
torch.autograd, finite differences, the adjoint identity, and a torch.nn
training run."""

import random

import numpy as np
import pytest
import torch

import tconv
import tconv.torch as tt

TORCH_CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}
TORCH_CONV_TRANSPOSE = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
                        3: torch.nn.functional.conv_transpose3d}


def conv_output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation):
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def random_problem(seed, only_op=None):
    """A valid (op, dtype, input shape, weight shape, params, bias) drawn from every parameter
    (the op drawn too, unless only_op is given)."""
    rng = random.Random(seed)
    while True:
        drawn_op = rng.choice(["conv", "conv_transpose"])  # drawn either way: same stream for every caller
        op = only_op or drawn_op
        rank = rng.choice([1, 2, 3])
        max_size = {1: 12, 2: 7, 3: 5}[rank]
        groups = rng.choice([1, 1, 2, 3])
        # 6, 8 and 13 big channels per group go to the blocked weight-gradient family (its
        # vectors filled partly, fully, and over two chunks), fewer to the row-dot one
        in_per_group, out_per_group = rng.choice([1, 2, 3, 6, 8, 13]), rng.choice([1, 2, 3, 6, 8, 13])
        kernel = [rng.randint(1, 3) for _ in range(rank)]
        stride = [rng.randint(1, 3) for _ in range(rank)]
        dilation = [rng.randint(1, 2) for _ in range(rank)]
        padding = [rng.randint(0, 2) for _ in range(rank)]
        size = [rng.randint(1, max_size) for _ in range(rank)]
        output_padding = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)] if op == "conv_transpose" \
            else [0] * rank
        if op == "conv":
            out = [conv_output_size(*a) for a in zip(size, kernel, stride, padding, dilation)]
            weight_shape = [groups * out_per_group, in_per_group] + kernel
        else:
            out = [conv_transpose_output_size(*a) for a in zip(size, kernel, stride, padding, output_padding, dilation)]
            weight_shape = [groups * in_per_group, out_per_group] + kernel
        if min(out) < 1:
            continue
        batch = rng.choice([None, 1, 2, 3])  # None: unbatched input
        input_shape = ([] if batch is None else [batch]) + [groups * in_per_group] + size
        return dict(op=op, dtype=rng.choice([np.float32, np.float64]), input_shape=input_shape,
                    weight_shape=weight_shape, bias=rng.random() < 0.7, stride=stride, padding=padding,
                    output_padding=output_padding, dilation=dilation, groups=groups, rank=rank)


def torch_gradients(p, x, w, b, grad_output):
    """(output, grad_input, grad_weight, grad_bias) from torch.autograd."""
    x, w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    b = None if b is None else torch.tensor(b, requires_grad=True)
    if p["op"] == "conv":
        y = TORCH_CONV[p["rank"]](x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"])
    else:
        y = TORCH_CONV_TRANSPOSE[p["rank"]](x, w, b, p["stride"], p["padding"], p["output_padding"], p["groups"],
                                            p["dilation"])
    y.backward(torch.tensor(grad_output))
    return x.grad.numpy(), w.grad.numpy(), None if b is None else b.grad.numpy()


def tconv_gradients(p, x, w, grad_output):
    common = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"], bias=p["bias"])
    if p["op"] == "conv":
        return tconv.conv_backward(grad_output, x, w, **common)
    return tconv.conv_transpose_backward(grad_output, x, w, output_padding=p["output_padding"], **common)


def forward_output_shape(p):
    return tconv.output_shape(p["op"], p["input_shape"], p["weight_shape"], p["stride"], p["padding"],
                              p["output_padding"], p["dilation"], p["groups"])


def assert_close(actual, expected, dtype, what):
    assert actual.shape == expected.shape, what
    assert actual.dtype == dtype, what
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    tolerance = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * scale, err_msg=what)


@pytest.mark.parametrize("seed", range(320))
def test_matches_torch_autograd(seed):
    p = random_problem(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(p["input_shape"]).astype(p["dtype"])
    w = rng.standard_normal(p["weight_shape"]).astype(p["dtype"])
    out_channels = forward_output_shape(p)[-1 - p["rank"]]
    b = rng.standard_normal(out_channels).astype(p["dtype"]) if p["bias"] else None
    grad_output = rng.standard_normal(forward_output_shape(p)).astype(p["dtype"])

    expected = torch_gradients(p, x, w, b, grad_output)
    actual = tconv_gradients(p, x, w, grad_output)
    for name, a, e in zip(("input", "weight", "bias"), actual, expected):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, p["dtype"], f"grad_{name} of {p}")


def test_sweep_covers_every_parameter():
    problems = [random_problem(seed) for seed in range(320)]
    assert {p["op"] for p in problems} == {"conv", "conv_transpose"}
    assert {p["rank"] for p in problems} == {1, 2, 3}
    assert {p["dtype"] for p in problems} == {np.float32, np.float64}
    assert {p["bias"] for p in problems} == {True, False}
    assert any(len(p["input_shape"]) == p["rank"] + 1 for p in problems)  # unbatched
    assert any(p["groups"] > 1 for p in problems)
    big_per_group = [p["weight_shape"][1] for p in problems]  # conv: input side; conv_transpose: output side
    assert min(big_per_group) == 1 and max(big_per_group) == 13
    assert any(max(p["stride"]) > 1 and max(p["dilation"]) > 1 and max(p["padding"]) > 0 for p in problems)
    # output_padding of a whole stride or more (allowed when dilation is larger)
    assert any(op >= s for p in problems for op, s in zip(p["output_padding"], p["stride"]) if op > 0)


# --- asymmetric padding (padding_end) -------------------------------------------------------------

def random_asymmetric_problem(seed):
    """A valid problem whose padding differs at the two ends of (usually) every dimension."""
    rng = random.Random(seed)
    while True:
        op = rng.choice(["conv", "conv_transpose"])
        rank = rng.choice([1, 2, 3])
        max_size = {1: 10, 2: 6, 3: 4}[rank]
        groups = rng.choice([1, 1, 2])
        in_per_group, out_per_group = rng.choice([1, 2, 3, 8]), rng.choice([1, 2, 3, 8])
        kernel = [rng.randint(1, 4) for _ in range(rank)]
        stride = [rng.randint(1, 3) for _ in range(rank)]
        dilation = [rng.randint(1, 2) for _ in range(rank)]
        begins = [rng.randint(0, 3) for _ in range(rank)]
        ends = [rng.randint(0, 3) for _ in range(rank)]
        size = [rng.randint(1, max_size) for _ in range(rank)]
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        if op == "conv":
            output_padding = [0] * rank
            out = [(n + b + e - k) // s + 1 for n, b, e, k, s in zip(size, begins, ends, spans, stride)]
            weight_shape = [groups * out_per_group, in_per_group] + kernel
        else:
            output_padding = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)]
            out = [(n - 1) * s - b - e + k + a for n, s, b, e, k, a in zip(size, stride, begins, ends, spans,
                                                                             output_padding)]
            weight_shape = [groups * in_per_group, out_per_group] + kernel
        if min(out) < 1 or begins == ends:
            continue
        batch = rng.choice([None, 1, 2])  # None: unbatched input
        return dict(op=op, dtype=rng.choice([np.float32, np.float64]), rank=rank, groups=groups,
                    input_shape=([] if batch is None else [batch]) + [groups * in_per_group] + size,
                    weight_shape=weight_shape, bias=rng.random() < 0.7, stride=stride, dilation=dilation,
                    begins=begins, ends=ends, output_padding=output_padding, output_size=out)


def torch_asymmetric_gradients(p, x, w, b, grad_output):
    """torch.autograd through torch's own operations: conv = F.pad then an unpadded convolution;
    conv_transpose = an unpadded transposed convolution (with output_padding) cropped by begins / ends."""
    x, w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    b = None if b is None else torch.tensor(b, requires_grad=True)
    rank = p["rank"]
    if p["op"] == "conv":
        pads = [a for begin, end in zip(reversed(p["begins"]), reversed(p["ends"])) for a in (begin, end)]
        y = TORCH_CONV[rank](torch.nn.functional.pad(x, pads), w, b, p["stride"], 0, p["dilation"], p["groups"])
    else:
        full = TORCH_CONV_TRANSPOSE[rank](x, w, b, p["stride"], 0, p["output_padding"], p["groups"], p["dilation"])
        y = full[(Ellipsis,) + tuple(slice(begin, begin + n) for begin, n in zip(p["begins"], p["output_size"]))]
    assert list(y.shape[-rank:]) == p["output_size"]
    y.backward(torch.tensor(grad_output))
    return y.detach().numpy(), x.grad.numpy(), w.grad.numpy(), None if b is None else b.grad.numpy()


@pytest.mark.parametrize("seed", range(60))
def test_asymmetric_padding_matches_torch_autograd(seed):
    p = random_asymmetric_problem(7000 + seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(p["input_shape"]).astype(p["dtype"])
    w = rng.standard_normal(p["weight_shape"]).astype(p["dtype"])
    out_channels = p["weight_shape"][0] if p["op"] == "conv" else p["weight_shape"][1] * p["groups"]
    b = rng.standard_normal(out_channels).astype(p["dtype"]) if p["bias"] else None
    out_shape = p["input_shape"][:-1 - p["rank"]] + [out_channels] + p["output_size"]
    grad_output = rng.standard_normal(out_shape).astype(p["dtype"])
    common = dict(stride=p["stride"], padding=p["begins"], padding_end=p["ends"], dilation=p["dilation"],
                  groups=p["groups"])
    if p["op"] == "conv":
        forward = tconv.conv(x, w, b, **common)
        actual = tconv.conv_backward(grad_output, x, w, bias=p["bias"], **common)
    else:
        forward = tconv.conv_transpose(x, w, b, output_padding=p["output_padding"], **common)
        actual = tconv.conv_transpose_backward(grad_output, x, w, output_padding=p["output_padding"],
                                               bias=p["bias"], **common)
    expected_output, *expected = torch_asymmetric_gradients(p, x, w, b, grad_output)
    assert_close(forward, expected_output, p["dtype"], f"output of {p}")
    for name, a, e in zip(("input", "weight", "bias"), actual, expected):
        if e is None:
            assert a is None
        else:
            assert_close(a, e, p["dtype"], f"grad_{name} of {p}")


def test_asymmetric_sweep_covers_every_parameter():
    problems = [random_asymmetric_problem(7000 + seed) for seed in range(60)]
    assert {p["op"] for p in problems} == {"conv", "conv_transpose"}
    assert {p["rank"] for p in problems} == {1, 2, 3}
    assert {p["dtype"] for p in problems} == {np.float32, np.float64}
    assert any(len(p["input_shape"]) == p["rank"] + 1 for p in problems)  # unbatched
    assert any(p["groups"] > 1 for p in problems)
    assert any(max(p["stride"]) > 1 and max(p["dilation"]) > 1 for p in problems)
    # more padding at the beginning than at the end, and the other way round
    assert any(b > e for p in problems for b, e in zip(p["begins"], p["ends"]))
    assert any(b < e for p in problems for b, e in zip(p["begins"], p["ends"]))
    assert any(max(p["output_padding"]) > 0 for p in problems)


def test_padding_end_none_is_symmetric_padding():
    rng = np.random.default_rng(3)
    x, w, g = rng.standard_normal((1, 2, 7)), rng.standard_normal((3, 2, 3)), rng.standard_normal((1, 3, 4))
    for a, b in zip(tconv.conv_backward(g, x, w, stride=2, padding=1),
                    tconv.conv_backward(g, x, w, stride=2, padding=1, padding_end=1)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"padding_end \(-1\) must be non-negative"):
        tconv.conv_transpose_backward(g, x, w, padding_end=-1)


FINITE_DIFFERENCE_CASES = [
    ("conv", [1, 2, 6], [3, 2, 3], dict(stride=2, padding=1, dilation=1, groups=1)),
    ("conv", [2, 4, 5, 4], [4, 2, 2, 3], dict(stride=(1, 2), padding=(1, 0), dilation=(2, 1), groups=2)),
    ("conv", [3, 3, 3, 4], [3, 1, 2, 2, 1], dict(stride=(2, 1, 1), padding=(0, 1, 0), dilation=1, groups=3)),
    ("conv_transpose", [1, 2, 4], [2, 3, 3], dict(stride=3, padding=1, output_padding=2, dilation=1, groups=1)),
    ("conv_transpose", [2, 4, 3, 3], [4, 1, 2, 3],
     dict(stride=(1, 2), padding=(1, 1), output_padding=(1, 1), dilation=(2, 1), groups=2)),
    ("conv_transpose", [1, 2, 2, 3, 2], [2, 2, 2, 1, 2],
     dict(stride=2, padding=0, output_padding=(1, 0, 1), dilation=1, groups=1)),
]


@pytest.mark.parametrize("op,input_shape,weight_shape,params", FINITE_DIFFERENCE_CASES)
def test_finite_differences_float64(op, input_shape, weight_shape, params):
    rng = np.random.default_rng(len(input_shape) * 7 + weight_shape[0])
    forward = tconv.conv if op == "conv" else tconv.conv_transpose
    backward = tconv.conv_backward if op == "conv" else tconv.conv_transpose_backward
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(weight_shape)
    out_channels = weight_shape[0] if op == "conv" else weight_shape[1] * params["groups"]
    b = rng.standard_normal(out_channels)
    grad_output = rng.standard_normal(forward(x, w, b, **params).shape)

    def loss(x, w, b):
        return float(np.sum(forward(x, w, b, **params) * grad_output))

    def numeric_gradient(array, evaluate, step=1e-5):
        gradient = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + step
            above = evaluate()
            array[index] = saved - step
            below = evaluate()
            array[index] = saved
            gradient[index] = (above - below) / (2 * step)
        return gradient

    evaluate = lambda: loss(x, w, b)  # noqa: E731 (reads the arrays as they are perturbed)
    grad_input, grad_weight, grad_bias = backward(grad_output, x, w, **params)
    np.testing.assert_allclose(grad_input, numeric_gradient(x, evaluate), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_weight, numeric_gradient(w, evaluate), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(grad_bias, numeric_gradient(b, evaluate), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("seed", range(60))
def test_adjoint_identity(seed):
    """<conv(x, w), y> == <x, conv_transpose(y, w)>, output_padding making the transpose x's size."""
    p = random_problem(1000 + seed, only_op="conv")
    rank = p["rank"]
    size = p["input_shape"][-rank:]
    out = [conv_output_size(*a) for a in zip(size, p["weight_shape"][2:], p["stride"], p["padding"], p["dilation"])]
    channels_in = p["weight_shape"][1] * p["groups"]
    input_shape = [2, channels_in] + size
    output_padding = [s - conv_transpose_output_size(o, k, st, pd, 0, d)
                      for s, o, k, st, pd, d in zip(size, out, p["weight_shape"][2:], p["stride"], p["padding"],
                                                    p["dilation"])]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    w = rng.standard_normal(p["weight_shape"])
    y = rng.standard_normal([2, p["weight_shape"][0]] + out)
    common = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
    transposed = tconv.conv_transpose(y, w, output_padding=output_padding, **common)
    assert transposed.shape == x.shape
    left = np.sum(tconv.conv(x, w, **common) * y)
    right = np.sum(x * transposed)
    assert abs(left - right) <= 1e-10 * max(1.0, abs(left))
    # conv's input gradient is that same transpose
    np.testing.assert_allclose(tconv.conv_backward(y, x, w, bias=False, **common)[0], transposed, rtol=0, atol=1e-12)


def test_grad_output_shape_is_checked():
    x = np.zeros((1, 2, 6, 6), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"grad_output has shape 1x3x5x5 but the forward conv .* produces 1x3x4x4"):
        tconv.conv_backward(np.zeros((1, 3, 5, 5), np.float32), x, w)
    with pytest.raises(ValueError, match=r"grad_output has shape 3x4x4 .* produces 1x3x4x4"):
        tconv.conv_backward(np.zeros((3, 4, 4), np.float32), x, w)
    with pytest.raises(TypeError, match="grad_output is float64 but the weight is float32"):
        tconv.conv_backward(np.zeros((1, 3, 4, 4)), x, w)
    with pytest.raises(ValueError, match=r"output_padding \(2\) must be smaller than stride \(2\)"):
        tconv.conv_transpose_backward(np.zeros((1, 3, 13, 13), np.float32), x, w.transpose(1, 0, 2, 3).copy(),
                                      stride=2, output_padding=2)


def test_empty_batch_gives_zero_weight_and_bias_gradients():
    x = np.zeros((0, 2, 5), np.float64)
    w = np.ones((4, 2, 3))
    grad_input, grad_weight, grad_bias = tconv.conv_backward(np.zeros((0, 4, 3)), x, w)
    assert grad_input.shape == x.shape
    assert not grad_weight.any() and grad_weight.shape == w.shape
    assert not grad_bias.any() and grad_bias.shape == (4,)


MODULE_PAIRS = [
    (tt.Conv1d, torch.nn.Conv1d, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2), 1),
    (tt.Conv2d, torch.nn.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=(3, 2), dilation=(1, 2)), 2),
    (tt.Conv2d, torch.nn.Conv2d, dict(in_channels=2, out_channels=2, kernel_size=4, padding="same",
                                      padding_mode="reflect"), 2),
    (tt.Conv3d, torch.nn.Conv3d, dict(in_channels=2, out_channels=3, kernel_size=2, padding=1, bias=False), 3),
    (tt.ConvTranspose1d, torch.nn.ConvTranspose1d,
     dict(in_channels=4, out_channels=2, kernel_size=3, stride=2, output_padding=1, groups=2), 1),
    (tt.ConvTranspose2d, torch.nn.ConvTranspose2d,
     dict(in_channels=3, out_channels=5, kernel_size=4, stride=2, padding=1), 2),
    (tt.ConvTranspose3d, torch.nn.ConvTranspose3d,
     dict(in_channels=2, out_channels=2, kernel_size=(1, 2, 3), stride=(1, 2, 1), dilation=(1, 1, 2)), 3),
]


@pytest.mark.parametrize("ours,theirs,kwargs,rank", MODULE_PAIRS)
def test_modules_are_drop_in(ours, theirs, kwargs, rank):
    torch.manual_seed(0)
    mine = ours(**kwargs).double()
    reference = theirs(**kwargs).double()
    assert mine.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(mine.state_dict())
    x = torch.randn([2, kwargs["in_channels"]] + [5] * rank, dtype=torch.float64, requires_grad=True)
    outputs, gradients = [], []
    for module in (mine, reference):
        y = module(x)
        (y * y).sum().backward()
        outputs.append(y.detach())
        gradients.append([x.grad.clone()] + [p.grad.clone() for p in module.parameters()])
        x.grad = None
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*gradients):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_conv_transpose_module_output_size():
    torch.manual_seed(0)
    mine = tt.ConvTranspose2d(2, 3, kernel_size=3, stride=2, padding=1)
    x = torch.randn(1, 2, 4, 4)
    assert mine(x, output_size=[8, 8]).shape == (1, 3, 8, 8)
    assert mine(x).shape == (1, 3, 7, 7)


def test_stride_zero_gradient_from_sum():
    torch.manual_seed(0)
    mine = tt.Conv2d(2, 3, kernel_size=3)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    mine(x).sum().backward()
    expected = torch.autograd.grad(torch.nn.functional.conv2d(x, mine.weight, mine.bias).sum(), x)[0]
    torch.testing.assert_close(x.grad, expected)


def test_training_follows_torch_nn():
    """A conv + transposed-conv autoencoder trained with SGD on tconv follows
    the same loss curve as the same model in torch.nn, from the same weights."""
    torch.manual_seed(0)

    def model(conv, conv_transpose):
        return torch.nn.Sequential(conv(3, 8, kernel_size=3, stride=2, padding=1), torch.nn.Tanh(),
                                   conv_transpose(8, 3, kernel_size=3, stride=2, padding=1, output_padding=1))

    ours = model(tt.Conv2d, tt.ConvTranspose2d)
    theirs = model(torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    theirs.load_state_dict(ours.state_dict())
    images = torch.randn(8, 3, 12, 12)
    targets = torch.tanh(images.roll(1, dims=2))

    curves = []
    for net in (ours, theirs):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        curve = []
        for _ in range(300):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(net(images), targets)
            loss.backward()
            optimizer.step()
            curve.append(loss.item())
        curves.append(np.array(curve))
    assert curves[1][-1] < 0.7 * curves[1][0]  # it does learn
    np.testing.assert_allclose(curves[0], curves[1], rtol=1e-4)
