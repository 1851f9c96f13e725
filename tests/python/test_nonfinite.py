"""NaN and Inf propagate as PyTorch propagates them, through every implementation.

For each implementation this CPU has (forced with implementation=), each
operation, and a NaN, +Inf or -Inf placed in the input or in the weight, tconv's
output equals torch's: NaN where torch has NaN, the same infinities, and the
finite values within rounding.

Every case runs in both layouts (channels-first and channels-last), so the
channels-last families are reached too. The phase_gemm_*, igemm_* and row_scatter_* families
multiply weights by zeros standing for positions outside the input, and 0 * Inf = NaN where PyTorch, which never forms those
products, has a number. So they decline a transposed convolution whose weight
is not finite: forcing them is refused with that reason, and the automatic
choice takes a family that computes what PyTorch computes.
"""

import numpy as np
import pytest

import tconv
import torch_reference

PREPARED = {"conv": tconv.Conv, "conv_transpose": tconv.ConvTranspose}

# Problems to try for each implementation, in order, until one is accepted:
# (input shape, weight shape, groups, parameters replacing PARAMS[op]). Same weight shape for both operations.
PROBLEMS = [
    ((2, 4, 7, 6), (4, 4, 3, 3), 1, None),  # dense
    ((2, 4, 7, 6), (4, 1, 3, 3), 4, None),  # depthwise
    ((1, 3, 4, 3), (3, 2, 3, 64), 1, dict(stride=(2, 32), padding=(1, 16), output_padding=(1, 0))),  # huge x rows
]
# No padding for conv: with padding and a non-finite weight, PyTorch's own CPU
# result depends on its backend (float32 through oneDNN never multiplies the
# weight by the padding, as tconv does; float64 through im2col does, and
# 0 * Inf = NaN). conv_transpose's padding crops the output and is safe.
PARAMS = {"conv": dict(stride=2), "conv_transpose": dict(stride=2, padding=1, output_padding=1)}

NONFINITE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def prepared_operator(op, implementation, rng, dtype, layout):
    """Operands for the first problem `implementation` accepts, and its parameters."""
    for input_shape, weight_shape, groups, replaced in PROBLEMS:
        weight = rng.uniform(-1, 1, weight_shape).astype(dtype)
        params = dict(PARAMS[op] if replaced is None else replaced, groups=groups, layout=layout)
        try:
            PREPARED[op](weight, implementation=implementation, **params)
        except (ValueError, TypeError):
            continue
        return input_shape, weight, params
    pytest.skip(f"{implementation} takes none of the problems for {op} in {np.dtype(dtype).name}")


def declines_nonfinite_weights(op, implementation, where):
    if where != "weight":
        return False
    if op == "conv":
        return implementation == "depthwise_conv_avx2"
    return implementation.startswith(("phase_gemm", "igemm", "channels_last_igemm", "row_scatter"))


CASES = [
    pytest.param(op, implementation, where, value, dtype, layout,
                 id=f"{op}-{implementation}-{layout}-{where}-{value}-{np.dtype(dtype).name}")
    for op in PREPARED
    for implementation in tconv.available_implementations()
    for where in ("input", "weight")
    for value in NONFINITE
    for dtype in (np.float32, np.float64)
    for layout in ("nchw", "nhwc")
]


@pytest.mark.parametrize("op, implementation, where, value, dtype, layout", CASES)
def test_nonfinite_values_propagate_like_torch(op, implementation, where, value, dtype, layout):
    rng = np.random.default_rng(11)
    input_shape, weight, params = prepared_operator(op, implementation, rng, dtype, layout)
    x = rng.uniform(-1, 1, input_shape).astype(dtype)
    target = x if where == "input" else weight
    target[(0,) * target.ndim] = NONFINITE[value]                   # a corner
    target[tuple(d // 2 for d in target.shape)] = NONFINITE[value]  # and the middle
    bias = rng.uniform(-1, 1, weight.shape[0] if op == "conv" else weight.shape[1] * params["groups"])
    bias = bias.astype(dtype)

    expected = torch_reference.compute(op, x, weight, bias, **{k: v for k, v in params.items() if k != "layout"})
    if declines_nonfinite_weights(op, implementation, where):
        with pytest.raises(ValueError, match="was forced but the weight holds NaN or infinity"):
            PREPARED[op](weight, bias, implementation=implementation, **params)
        implementation = ""  # the automatic choice
    channels_last = layout == "nhwc"
    got = PREPARED[op](weight, bias, implementation=implementation, **params)(
        np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x)
    if channels_last:
        got = np.moveaxis(got, -1, 1)
    assert not np.isfinite(expected).all(), "the case should reach the output"
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance, equal_nan=True)
