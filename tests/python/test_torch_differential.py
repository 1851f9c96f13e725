"""A seeded randomized differential sweep of tconv against torch.nn.functional.

Every case draws an operation, a rank, a dtype and every parameter (as an int
or a per-dimension tuple), lays the input out contiguous or as a transposed,
sliced or reversed NumPy view, and in about one case out of eight breaks one
rule PyTorch enforces. Whatever torch does decides the verdict: where it
raises, tconv must raise ValueError (TypeError for a dtype mismatch); where it
returns, tconv must return the same shape, dtype and values.
"""

import random

import numpy as np
import pytest
import tconv
import torch_reference

CASE_COUNT = 600
BROKEN_SHARE = 0.12  # with the transposed cases whose padding crops everything, torch refuses about 18%
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-10}


def spelled(rng, values):
    """An int where every dimension agrees (and a coin says so), else a tuple."""
    if len(set(values)) == 1 and rng.random() < 0.5:
        return values[0]
    return tuple(values)


def layout(rng, array):
    """The same values as a contiguous array or as one of three non-contiguous views."""
    kind = rng.choice(["contiguous", "contiguous", "transposed", "sliced", "reversed"])
    if kind == "transposed":
        return np.ascontiguousarray(array.T).T, kind
    if kind == "sliced":
        padded = np.zeros(tuple(2 * d for d in array.shape), dtype=array.dtype)
        padded[tuple(slice(None, None, 2) for _ in array.shape)] = array
        return padded[tuple(slice(None, None, 2) for _ in array.shape)], kind
    if kind == "reversed":
        flipped = np.ascontiguousarray(array[..., ::-1])
        return flipped[..., ::-1], kind
    return array, kind


BREAKAGES = [
    "groups_not_dividing", "output_too_small", "negative_padding", "zero_stride", "zero_dilation",
    "channel_mismatch", "bias_wrong_shape", "too_many_values", "dtype_mismatch", "input_rank_wrong",
]
TRANSPOSE_BREAKAGES = BREAKAGES + ["output_padding_too_big", "negative_output_padding"]


def draw_case(seed):
    """Everything one case needs, drawn from `seed` alone."""
    rng = random.Random(seed)
    op = rng.choice(["conv", "conv_transpose"])
    rank = rng.choice([1, 1, 2, 2, 2, 3])
    max_size = {1: 9, 2: 6, 3: 4}[rank]
    dtype = rng.choice([np.float32, np.float64])
    depthwise = rng.random() < 0.2
    groups = rng.randint(2, 4) if depthwise else rng.choice([1, 1, 2, 3])
    in_per_group = 1 if depthwise else rng.randint(1, 3)
    out_per_group = rng.randint(1, 3)
    in_channels, out_channels = in_per_group * groups, out_per_group * groups

    sizes, kernel, stride, padding, dilation, output_padding = [], [], [], [], [], []
    for _ in range(rank):
        sizes.append(1 if rng.random() < 0.15 else rng.randint(1, max_size))
        kernel.append(rng.randint(1, 4))
        stride.append(rng.randint(1, 3))
        dilation.append(rng.randint(1, 3))
        padding.append(rng.randint(0, 2))
        output_padding.append(rng.randint(0, max(stride[-1], dilation[-1]) - 1) if op == "conv_transpose" else 0)
        if op == "conv":
            # Kernels larger than the input are kept where the padding makes room for them.
            room = sizes[-1] + 2 * padding[-1] - dilation[-1] * (kernel[-1] - 1)
            if room < 1:
                padding[-1] += (2 - room) // 2

    batch = rng.choice([None, 1, 1, 2, 2, 3, 0])  # None: unbatched
    weight_shape = ([out_channels, in_per_group] if op == "conv" else [in_channels, out_per_group]) + kernel
    input_shape = ([] if batch is None else [batch]) + [in_channels] + sizes
    bias_shape = [out_channels] if rng.random() < 0.5 else None
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if op == "conv_transpose":
        params["output_padding"] = output_padding
    input_dtype = dtype

    breakages = TRANSPOSE_BREAKAGES if op == "conv_transpose" else BREAKAGES
    breakage = rng.choice(breakages) if rng.random() < BROKEN_SHARE else None
    d = rng.randrange(rank)
    if breakage == "output_padding_too_big":
        params["output_padding"] = list(output_padding)
        params["output_padding"][d] = max(stride[d], dilation[d]) + rng.randint(0, 1)
    elif breakage == "negative_output_padding":
        params["output_padding"] = list(output_padding)
        params["output_padding"][d] = -1
    elif breakage == "groups_not_dividing":
        params["groups"] = weight_shape[0] + 1
    elif breakage == "output_too_small":
        if op == "conv":
            kernel[d] = sizes[d] + 2
            params["padding"][d] = 0
        else:
            params["padding"][d] = (sizes[d] - 1) * stride[d] + dilation[d] * (kernel[d] - 1) + 2
    elif breakage == "negative_padding":
        params["padding"][d] = -rng.randint(1, 2)
    elif breakage == "zero_stride":
        params["stride"][d] = 0
    elif breakage == "zero_dilation":
        params["dilation"][d] = 0
    elif breakage == "channel_mismatch":
        input_shape[0 if batch is None else 1] += 1
    elif breakage == "bias_wrong_shape":
        bias_shape = rng.choice([[out_channels + 1], [out_channels, 1]])
    elif breakage == "too_many_values":
        name = rng.choice(["stride", "padding", "dilation"])
        params[name] = params[name] + [1]
    elif breakage == "dtype_mismatch":
        input_dtype = np.float64 if dtype == np.float32 else np.float32
    elif breakage == "input_rank_wrong":
        input_shape = [2] + input_shape if batch is not None else input_shape[1:]
    weight_shape = weight_shape[:2] + kernel

    for name in ("stride", "padding", "dilation", "output_padding"):
        if name in params:
            params[name] = spelled(rng, params[name])
    return dict(seed=seed, op=op, rank=rank, dtype=dtype, input_dtype=input_dtype, input_shape=input_shape,
                weight_shape=weight_shape, bias_shape=bias_shape, params=params, breakage=breakage,
                layout_seed=rng.random())


def describe(case):
    return (f"seed {case['seed']}: {case['op']}{case['rank']}d {np.dtype(case['dtype']).name} "
            f"input {case['input_shape']} weight {case['weight_shape']} bias {case['bias_shape']} "
            f"{case['params']} breakage={case['breakage']}")


def operands(case):
    """The operands as NumPy arrays, the input possibly a non-contiguous view of its values."""
    data = np.random.default_rng(case["seed"])
    x = data.uniform(-1, 1, case["input_shape"]).astype(case["input_dtype"])
    w = data.uniform(-1, 1, case["weight_shape"]).astype(case["dtype"])
    b = None if case["bias_shape"] is None else data.uniform(-1, 1, case["bias_shape"]).astype(case["dtype"])
    x_view, x_layout = layout(random.Random(case["layout_seed"]), x)
    assert np.array_equal(x_view, x)
    return (x_view, w, b), x_layout


def torch_outcome(case, numpy_operands):
    """torch's result, or the exception it raised. torch skips its checks for an
    empty batch (it accepts zero dilation or mixed dtypes there), so an empty
    batch takes its verdict and shape from the same problem with one sample."""
    x, w, b = numpy_operands
    empty_batch = x.ndim == w.ndim and x.shape[0] == 0
    if empty_batch:
        x = np.zeros((1,) + x.shape[1:], x.dtype)
    try:
        result = torch_reference.compute(case["op"], x, w, b, **case["params"])
    except (RuntimeError, ValueError, TypeError) as refusal:
        return refusal
    return result[:0] if empty_batch else result


def tconv_call(case, numpy_operands):
    function = tconv.conv if case["op"] == "conv" else tconv.conv_transpose
    return function(*numpy_operands, **case["params"])


CASES = [draw_case(seed) for seed in range(CASE_COUNT)]


def test_sweep_has_both_verdicts_in_proportion():
    refused = sum(isinstance(torch_outcome(case, operands(case)[0]), Exception) for case in CASES)
    assert 0.12 * CASE_COUNT <= refused <= 0.25 * CASE_COUNT, f"torch refused {refused} of {CASE_COUNT} cases"


@pytest.mark.parametrize("case", CASES, ids=[f"seed{case['seed']}" for case in CASES])
def test_tconv_matches_torch(case):
    numpy_operands, x_layout = operands(case)
    context = f"{describe(case)} layout={x_layout}"
    expected = torch_outcome(case, numpy_operands)
    if isinstance(expected, Exception):
        refusal = TypeError if case["input_dtype"] != case["dtype"] else ValueError
        with pytest.raises(refusal):
            tconv_call(case, numpy_operands)
        return
    try:
        got = tconv_call(case, numpy_operands)
    except (ValueError, TypeError) as error:
        pytest.fail(f"tconv refused what torch accepts: {error}\n{context}")
    assert got.shape == expected.shape, context
    assert got.dtype == expected.dtype, context
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    error = float(np.abs(got - expected).max(initial=0.0))
    assert error <= TOLERANCE[case["dtype"]] * scale, f"max error {error} (scale {scale})\n{context}"
