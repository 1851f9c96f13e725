"""Forward + backward (input, weight and bias gradients) of tconv against PyTorch.

    PYTHONPATH=build/python /usr/bin/python3 bench/gradients.py [--threads N] [--repeats R]

Prints one table row per case: best-of-R milliseconds for tconv's forward,
tconv's backward, and one training step (forward + backward) of tconv, of
torch with its oneDNN (mkldnn) backend, and of torch with it switched off.
Every column computes the same three gradients from the same data.
"""

import argparse
import time

import numpy as np
import torch

import tconv

CASES = [
    # name, op, input shape, weight shape, params
    ("dcgan_256_128_8x8_k4s2", "conv_transpose", (8, 256, 8, 8), (256, 128, 4, 4), dict(stride=2, padding=1)),
    ("unet_128_64_32x32_k2s2", "conv_transpose", (4, 128, 32, 32), (128, 64, 2, 2), dict(stride=2)),
    ("hifigan_1d_256_128_k16s8", "conv_transpose", (4, 256, 64), (256, 128, 16), dict(stride=8, padding=4)),
    ("vnet_3d_32_16_8c_k2s2", "conv_transpose", (2, 32, 8, 8, 8), (32, 16, 2, 2, 2), dict(stride=2)),
    ("conv_s1_k3_64_32x32", "conv", (8, 64, 32, 32), (64, 64, 3, 3), dict(padding=1)),
    ("conv_s2_k3_64_128_32x32", "conv", (8, 64, 32, 32), (128, 64, 3, 3), dict(stride=2, padding=1)),
]

TORCH_OPS = {
    "conv": {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d, 5: torch.nn.functional.conv3d},
    "conv_transpose": {3: torch.nn.functional.conv_transpose1d, 4: torch.nn.functional.conv_transpose2d,
                       5: torch.nn.functional.conv_transpose3d},
}


def best_ms(step, repeats):
    step()  # warm-up: packing, allocations, thread start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def measure(op, input_shape, weight_shape, params, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape, dtype=np.float32)
    w = rng.standard_normal(weight_shape, dtype=np.float32)
    out_channels = weight_shape[0] if op == "conv" else weight_shape[1]
    b = rng.standard_normal(out_channels, dtype=np.float32)
    forward = tconv.conv if op == "conv" else tconv.conv_transpose
    backward = tconv.conv_backward if op == "conv" else tconv.conv_transpose_backward
    grad_y = rng.standard_normal(forward(x, w, b, **params).shape, dtype=np.float32)

    row = {
        "tconv fwd": best_ms(lambda: forward(x, w, b, **params), repeats),
        "tconv bwd": best_ms(lambda: backward(grad_y, x, w, **params), repeats),
    }
    row["tconv fwd+bwd"] = best_ms(lambda: (forward(x, w, b, **params), backward(grad_y, x, w, **params)), repeats)

    torch_op = TORCH_OPS[op][len(input_shape)]
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    grad_yt = torch.tensor(grad_y)

    def torch_step():
        xt.grad = wt.grad = bt.grad = None
        torch_op(xt, wt, bt, **params).backward(grad_yt)

    for label, enabled in (("torch+oneDNN fwd+bwd", True), ("torch native fwd+bwd", False)):
        with torch.backends.mkldnn.flags(enabled=enabled):
            row[label] = best_ms(torch_step, repeats)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=tconv.num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tconv.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)

    print(f"forward + backward, float32, {args.threads} threads, best of {args.repeats}, milliseconds; "
          f"torch {torch.__version__}")
    columns = None
    for name, op, input_shape, weight_shape, params in CASES:
        row = measure(op, input_shape, weight_shape, params, args.repeats)
        if columns is None:
            columns = list(row)
            print("| case | " + " | ".join(columns) + " | torch+oneDNN / tconv |")
            print("|---|" + "---:|" * (len(columns) + 1))
        speedup = row["torch+oneDNN fwd+bwd"] / row["tconv fwd+bwd"]
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + f" | {speedup:.2f} |")


if __name__ == "__main__":
    main()
