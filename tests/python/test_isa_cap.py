# TCONV_ISA caps the instruction sets the kernels may use, so that this machine
# dispatches and computes as a CPU without AVX-512 (or without AVX2) would. It
# is read once per process, so each cap runs in a child interpreter.
import json
import os
import subprocess
import sys

import pytest

import tconv

CHILD = r"""
import json, sys
import numpy as np
import tconv
cases = [  # kind, input shape, weight shape, stride, padding, groups (small cousins of the suite's cases)
    ("conv_transpose", (2, 16, 4, 4), (16, 8, 4, 4), 2, 1, 1),
    ("conv_transpose", (1, 8, 9, 9), (8, 8, 3, 3), 1, 1, 1),
    ("conv_transpose", (1, 6, 20), (6, 16, 16), 8, 4, 1),
    ("conv_transpose", (1, 8, 7, 7), (8, 1, 4, 4), 2, 1, 8),
    ("conv", (2, 5, 16, 16), (16, 5, 4, 4), 2, 1, 1),
    ("conv", (1, 8, 12, 12), (8, 1, 3, 3), 1, 1, 8),
]
rng = np.random.default_rng(3)
out = {"available": tconv.available_implementations(), "cases": []}
for kind, x_shape, w_shape, stride, padding, groups in cases:
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[1] * groups if kind == "conv_transpose" else w_shape[0]).astype(np.float32)
    prepared = tconv.Conv if kind == "conv" else tconv.ConvTranspose
    op = prepared(w, b, stride=stride, padding=padding, groups=groups)
    want = tconv.reference.gather(kind, x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                  stride=stride, padding=padding, groups=groups)
    got = op(x)
    out["cases"].append({"implementation": op.implementation,
                         "error": float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want)))))})
print(json.dumps(out))
"""


def run_capped(cap):
    env = {**os.environ, "TCONV_ISA": cap}
    # A sanitizer build's module needs its runtime loaded first (scripts/hardening.sh says which).
    if os.environ.get("TCONV_TEST_PYTHON_PRELOAD"):
        env.update(LD_PRELOAD=os.environ["TCONV_TEST_PYTHON_PRELOAD"], ASAN_OPTIONS="detect_leaks=0")
    return subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, env=env)


AVX2_FAMILIES = {"depthwise_avx2", "depthwise_conv_avx2", "scatter_gemm_avx2", "row_dot_avx2", "channels_last_igemm_avx2",
                 "plane_gemm_avx2", "phase_gemm_avx2", "igemm_avx2", "direct"}


@pytest.mark.parametrize("cap, allowed", [("avx2", AVX2_FAMILIES), ("portable", {"direct"})])
def test_capped_dispatch_uses_only_the_allowed_families_and_matches_the_reference(cap, allowed):
    native = set(tconv.available_implementations())
    result = run_capped(cap)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["available"]) == allowed & native
    for case in report["cases"]:
        assert case["implementation"] in allowed
        assert case["error"] < 1e-5, case
    if cap == "avx2" and "phase_gemm_avx2" in native:
        assert any(case["implementation"] == "phase_gemm_avx2" for case in report["cases"])


def test_an_unknown_cap_is_a_value_error_naming_the_choices():
    result = run_capped("sse9")
    assert result.returncode != 0
    assert "ValueError: TCONV_ISA ('sse9') must be avx512, avx2 or portable" in result.stderr
