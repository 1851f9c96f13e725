"""tconv.torch's modules against their torch.nn namesakes, with the same weights: forward and backward (input,
weight and bias gradients) for padding='same' / 'valid' / numbers, every padding_mode, and ConvTranspose's
forward(input, output_size); and the same refusals as torch."""

import random

import pytest
import torch

import tconv.torch as tt

CONV = {1: (tt.Conv1d, torch.nn.Conv1d), 2: (tt.Conv2d, torch.nn.Conv2d), 3: (tt.Conv3d, torch.nn.Conv3d)}
CONV_TRANSPOSE = {1: (tt.ConvTranspose1d, torch.nn.ConvTranspose1d),
                  2: (tt.ConvTranspose2d, torch.nn.ConvTranspose2d),
                  3: (tt.ConvTranspose3d, torch.nn.ConvTranspose3d)}
MODES = ["zeros", "reflect", "replicate", "circular"]


def pair(classes, dtype, **kwargs):
    """Our module and torch's with the same parameters."""
    ours, theirs = classes[0](**kwargs).to(dtype), classes[1](**kwargs).to(dtype)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def run_both(ours, theirs, x, **forward_args):
    """(output, [grad_input, grad of each parameter]) of each module for loss = sum(y * g), g fixed."""
    results = []
    g = None
    for module in (ours, theirs):
        xi = x.detach().clone().requires_grad_(True)
        y = module(xi, **forward_args)
        if g is None:
            g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
        (y * g).sum().backward()
        results.append((y.detach(), [xi.grad] + [p.grad for p in module.parameters()]))
        module.zero_grad()
    return results


def assert_same(results, dtype, what):
    tolerance = 1e-10 if dtype == torch.float64 else 2e-4
    (y0, grads0), (y1, grads1) = results
    assert y0.shape == y1.shape, what
    torch.testing.assert_close(y0, y1, rtol=tolerance, atol=tolerance, msg=lambda m: f"output of {what}: {m}")
    for name, a, b in zip(["input", "weight", "bias"], grads0, grads1):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance, msg=lambda m: f"grad {name} of {what}: {m}")


def conv_case(seed):
    rng = random.Random(seed)
    rank = rng.choice([1, 2, 3])
    groups = rng.choice([1, 2])
    kernel = [rng.randint(1, 4) for _ in range(rank)]
    dilation = [rng.randint(1, 2) for _ in range(rank)]
    padding = rng.choice(["same", "valid", rng.randint(0, 2), tuple(rng.randint(0, 2) for _ in range(rank))])
    stride = 1 if padding == "same" else rng.choice([1, 2, [rng.randint(1, 3) for _ in range(rank)]])
    mode = MODES[seed % 4]
    # Sizes beyond every padding amount (reflect needs padding < size) and the dilated kernel.
    sizes = [rng.randint((k - 1) * d + 1, (k - 1) * d + 4) for k, d in zip(kernel, dilation)]
    sizes = [max(n, 4) for n in sizes]
    kwargs = dict(in_channels=groups * rng.randint(1, 3), out_channels=groups * rng.randint(1, 3), kernel_size=kernel,
                  stride=stride, padding=padding, dilation=dilation, groups=groups, bias=rng.random() < 0.75,
                  padding_mode=mode)
    batch = rng.choice([None, 1, 2])
    shape = ([] if batch is None else [batch]) + [kwargs["in_channels"]] + sizes
    return rank, kwargs, shape, torch.float64 if seed % 5 else torch.float32


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")  # torch's own module
@pytest.mark.parametrize("seed", range(120))
def test_conv_modules_match_torch_nn(seed):
    rank, kwargs, shape, dtype = conv_case(seed)
    torch.manual_seed(seed)
    ours, theirs = pair(CONV[rank], dtype, **kwargs)
    x = torch.randn(shape, dtype=dtype)
    try:
        theirs(x)
    except RuntimeError as refusal:  # torch 1.13's circular padding takes no unbatched input: the same refusal
        assert kwargs["padding_mode"] == "circular" and len(shape) == rank + 1
        with pytest.raises(RuntimeError, match=str(refusal)):
            ours(x)
        return
    assert_same(run_both(ours, theirs, x), dtype, f"{kwargs} on {shape}")


def test_conv_sweep_covers_every_mode_and_padding():
    cases = [conv_case(seed) for seed in range(120)]
    assert {c[1]["padding_mode"] for c in cases} == set(MODES)
    for mode in MODES:
        paddings = {c[1]["padding"] if isinstance(c[1]["padding"], str) else "number" for c in cases
                    if c[1]["padding_mode"] == mode}
        assert paddings == {"same", "valid", "number"}, mode
    assert {c[0] for c in cases} == {1, 2, 3}
    assert any(len(c[2]) == c[0] + 1 for c in cases)  # unbatched
    # 'same' with an odd total (one more at the end), where torch's own module pads unequally
    assert any(c[1]["padding"] == "same" and any(d * (k - 1) % 2 for d, k in zip(c[1]["dilation"],
                                                                                c[1]["kernel_size"])) for c in cases)


def conv_transpose_case(seed):
    rng = random.Random(seed)
    rank = rng.choice([1, 2, 3])
    groups = rng.choice([1, 2])
    kernel = [rng.randint(1, 4) for _ in range(rank)]
    stride = [rng.randint(1, 3) for _ in range(rank)]
    dilation = [rng.randint(1, 2) for _ in range(rank)]
    padding = [rng.randint(0, (k - 1) * d // 2) for k, d in zip(kernel, dilation)]
    sizes = [rng.randint(1, 4) for _ in range(rank)]
    kwargs = dict(in_channels=groups * rng.randint(1, 3), out_channels=groups * rng.randint(1, 3), kernel_size=kernel,
                  stride=stride, padding=padding, dilation=dilation, groups=groups, bias=rng.random() < 0.75)
    output_size = None
    if seed % 3:
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in zip(sizes, stride, padding, dilation,
                                                                                    kernel)]
        output_size = [m + rng.randint(0, s - 1) for m, s in zip(smallest, stride)]
    else:
        kwargs["output_padding"] = [rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation)]
    batch = rng.choice([None, 1, 2])
    shape = ([] if batch is None else [batch]) + [kwargs["in_channels"]] + sizes
    if output_size is not None and seed % 2:
        output_size = shape[:-rank] + output_size  # torch takes the full shape too
    return rank, kwargs, shape, output_size, torch.float64 if seed % 5 else torch.float32


@pytest.mark.parametrize("seed", range(90))
def test_conv_transpose_modules_match_torch_nn(seed):
    rank, kwargs, shape, output_size, dtype = conv_transpose_case(seed)
    torch.manual_seed(seed)
    ours, theirs = pair(CONV_TRANSPOSE[rank], dtype, **kwargs)
    x = torch.randn(shape, dtype=dtype)
    forward_args = {} if output_size is None else dict(output_size=output_size)
    assert_same(run_both(ours, theirs, x, **forward_args), dtype, f"{kwargs} on {shape}, output_size={output_size}")


def test_conv_transpose_sweep_reaches_both_ends_of_output_size():
    cases = [conv_transpose_case(seed) for seed in range(90)]
    extras = set()
    for rank, kwargs, shape, output_size, _ in cases:
        if output_size is None:
            continue
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                    zip(shape[-rank:], kwargs["stride"], kwargs["padding"], kwargs["dilation"], kwargs["kernel_size"])]
        extras.update((o - m, s) for o, m, s in zip(output_size[-rank:], smallest, kwargs["stride"]) if s > 1)
    assert any(e == 0 for e, _ in extras) and any(e == s - 1 for e, s in extras)
    assert any(c[3] is not None and len(c[3]) > c[0] for c in cases)  # output_size as the full shape


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv_transpose_refuses_other_padding_modes_as_torch_does(rank, mode):
    ours, theirs = CONV_TRANSPOSE[rank]
    with pytest.raises(ValueError) as expected:
        theirs(2, 2, 3, padding_mode=mode)
    with pytest.raises(ValueError) as got:
        ours(2, 2, 3, padding_mode=mode)
    assert str(got.value) == str(expected.value)
    # Set after construction, the forward pass refuses it with torch's forward's message.
    mine, reference = ours(2, 2, 3), theirs(2, 2, 3)
    mine.padding_mode = reference.padding_mode = mode
    x = torch.randn(1, 2, *[4] * rank)
    with pytest.raises(ValueError) as expected:
        reference(x)
    with pytest.raises(ValueError) as got:
        mine(x)
    assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("kwargs", [dict(padding="same", stride=2), dict(padding="full"), dict(padding_mode="mirror")])
def test_conv_refusals_are_torch_refusals(kwargs):
    with pytest.raises(ValueError) as expected:
        torch.nn.Conv2d(2, 2, 3, **kwargs)
    with pytest.raises(ValueError) as got:
        tt.Conv2d(2, 2, 3, **kwargs)
    assert str(got.value) == str(expected.value)


def test_conv_transpose_output_size_out_of_range_is_torch_refusal():
    mine = tt.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    reference = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError) as expected:
        reference(x, output_size=[9, 9])
    with pytest.raises(ValueError) as got:
        mine(x, output_size=[9, 9])
    assert str(got.value) == str(expected.value)


def test_functional_same_and_padding_end_are_differentiable():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    for ours, theirs in [
        (lambda: tt.conv(x, w, b, padding="same", dilation=(1, 2)),
         lambda: F_conv_same(x, w, b)),
        (lambda: tt.conv(x, w, b, stride=2, padding=(0, 2), padding_end=(1, 0)),
         lambda: torch.nn.functional.conv2d(torch.nn.functional.pad(x, [2, 0, 0, 1]), w, b, stride=2)),
        (lambda: tt.conv_transpose(x, w.transpose(0, 1), None, stride=2, padding=(1, 0), padding_end=(0, 2),
                                   output_padding=1),
         lambda: torch.nn.functional.conv_transpose2d(x, w.transpose(0, 1), None, stride=2,
                                                      output_padding=1)[..., 1:, :-2]),
    ]:
        grads = []
        for f in (ours, theirs):
            y = f()
            grads.append([y.detach()] + list(torch.autograd.grad((y * y).sum(), [x, w, b], allow_unused=True)))
        for a, e in zip(*grads):
            if e is None:
                assert a is None
            else:
                torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def F_conv_same(x, w, b):
    """torch's padding='same' for a 4x3 kernel with dilation (1, 2): totals 3 and 4, the odd unit at the end."""
    return torch.nn.functional.conv2d(torch.nn.functional.pad(x, [2, 2, 1, 2]), w, b, dilation=(1, 2))
