"""Benchmark driver: tconv against every CPU peer on one suite, in one run.

--op conv_transpose (the default) measures the suite's transposed convolutions
(table in bench/latest.md); --op conv measures the convolutions they are the
gradients of, the same geometry read the other way (input [N, Cout, transposed
output spatial...], output [N, Cin, suite input spatial...], weight
[Cin, Cout/g, k...], no output_padding; table in bench/latest_conv.md). Every
implementation gets the same --op.

Run by Debian's /usr/bin/python3 (it has PyTorch 1.13, used as the reference
output); bench/run.sh builds tconv_bench first. Builds and installs nothing.

Each round runs every implementation in turn (round 1: all of them, round 2:
all of them again, ...), each in its own process, and every implementation
keeps, per case, its best time over all rounds. The FMA peak and the streaming
copy bandwidth (for the depthwise case's GB/s) are measured in the same rounds. Round 1 also checks every peer's output against PyTorch's (or,
for the C++ peers, against tconv's, inside tconv_bench).
"""
import argparse
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import peers  # noqa: E402  (suite reading and the shared data)

# Peers that choose their kernels from the CPU with no cap to set: left out of --isa avx2.
UNCAPPED = ("xnnpack", "onnxruntime", "openvino")

PIP_HINT = "python3 -m pip install onnxruntime openvino onnx  (into the pyenv python3 first on PATH)"


def sh(argv, env):
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr.strip()[-500:]))
    return p.stdout


def probe(python, code):
    try:
        p = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def backends(bench_bin, env):
    """(label, argv or None, note) for every implementation, tconv first."""
    out, missing = [], []
    built = sh([bench_bin, "--impl", "list"], env).split() if os.path.exists(bench_bin) else []
    for label, how in [("tconv", "bash bench/run.sh builds it"),
                       ("tconv_nhwc", "bash bench/run.sh builds it"),
                       ("onednn_blocked", "apt-get install libdnnl-dev, then rerun bench/run.sh"),
                       ("onednn_nchw", "apt-get install libdnnl-dev, then rerun bench/run.sh"),
                       ("xnnpack", "apt-get install libxnnpack-dev libpthreadpool0, then rerun bench/run.sh")]:
        if label in built:
            out.append((label, [bench_bin, "--impl", label]))
        else:
            out.append((label, None))
            missing.append("%s: not built (%s)" % (label, how))
    peers_py = os.path.join(HERE, "peers.py")
    v = probe("/usr/bin/python3", "import torch; print(torch.__version__)")
    if v:
        out.append(("torch_%s" % ".".join(v.split(".")[:2]), ["/usr/bin/python3", peers_py, "--impl", "torch"]))
    else:
        out.append(("torch_1.13", None))
        missing.append("torch_1.13: /usr/bin/python3 cannot import torch (apt-get install python3-torch)")
    py = shutil.which("python3") or "python3"
    py_real = os.path.realpath(probe(py, "import sys; print(sys.executable)") or py)
    other = py_real != os.path.realpath("/usr/bin/python3")
    v2 = probe(py, "import torch; print(torch.__version__)") if other else None
    if v2 and int(v2.split(".")[0]) >= 2:
        out.append(("torch_%s" % ".".join(v2.split(".")[:2]), [py, peers_py, "--impl", "torch"]))
    else:
        out.append(("torch_2.x", None))
        missing.append("torch_2.x: not installed in %s (optional; python3 -m pip install torch)" % py)
    for label in ["onnxruntime", "openvino"]:
        if probe(py, "import %s, onnx" % label) is not None:
            out.append((label, [py, peers_py, "--impl", label]))
        else:
            out.append((label, None))
            missing.append("%s: %s cannot import it; install with: %s" % (label, py, PIP_HINT))
    return out, missing


def write_references(cases, verify_dir, op):
    """PyTorch's output (in float64) for every case, on peers.make_data's data."""
    import torch
    torch.set_num_threads(2)
    for i, c in enumerate(cases):
        x, w, b = peers.make_data(c, i, op)
        with torch.no_grad():
            y = peers.torch_fn(c, op)(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                      torch.from_numpy(b).double())
        if list(y.shape) != peers.y_shape(c, op):
            raise RuntimeError("%s: PyTorch's %s output is %s, expected %s"
                               % (c["name"], op, list(y.shape), peers.y_shape(c, op)))
        np.savez(os.path.join(verify_dir, c["name"] + ".npz"), y=y.float().numpy())


def flops(c):
    """The same count for the transposed convolution and the convolution read from it."""
    return 2.0 * c["n"] * c["cin"] * (c["cout"] // c["g"]) * c["k"] ** c["dims"] * math.prod(c["spatial"])


def bytes_moved(c):
    w = c["cin"] * (c["cout"] // c["g"]) * c["k"] ** c["dims"]
    return 4.0 * (c["n"] * c["cin"] * math.prod(c["spatial"]) + w + math.prod(peers.out_shape(c)))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=os.path.join(ROOT, "../shared/bench/suite_public.txt"))
    ap.add_argument("--op", choices=["conv_transpose", "conv"], default="conv_transpose",
                    help="measure the suite's transposed convolutions, or the convolutions they are the gradients of")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=0.3, help="seconds of timed runs per case per round")
    ap.add_argument("--max-iters", type=int, default=20)
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--only", help="comma-separated implementations to run (tconv always runs)")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: hold tconv (TCONV_ISA), oneDNN and PyTorch (ONEDNN/DNNL_MAX_CPU_ISA, "
                    "ATEN_CPU_CAPABILITY) to AVX2, as on a CPU without AVX-512; peers with no such cap are left out")
    ap.add_argument("--output", help="markdown copy of the table (default bench/latest.md, with --op conv "
                    "bench/latest_conv.md; '' for none)")
    args = ap.parse_args()
    if args.output is None:
        args.output = os.path.join(HERE, ("latest_conv" if args.op == "conv" else "latest") +
                                   ("_avx2" if args.isa == "avx2" else "") + ".md")

    cases = peers.read_suite(args.suite)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OMP_PROC_BIND="false")
    if args.isa == "avx2":
        env.update(TCONV_ISA="avx2", ONEDNN_MAX_CPU_ISA="AVX2", DNNL_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    bench_bin = os.path.join(args.build_dir, "bench", "tconv_bench")
    impls, missing = backends(bench_bin, env)
    if args.isa == "avx2":
        uncapped = [l for l, a in impls if a is not None and l in UNCAPPED]
        impls = [(l, a) for l, a in impls if l not in UNCAPPED]
        missing += ["%s: no way to hold it to AVX2 from outside (it picks its kernels from the CPU alone)" % l
                    for l in uncapped]
    if args.only:
        keep = set(args.only.split(",")) | {"tconv", "tconv_nhwc"}
        impls = [(l, a) for l, a in impls if l in keep]
    common = ["--suite", args.suite, "--budget", str(args.budget), "--max-iters", str(args.max_iters),
              "--min-iters", str(args.min_iters), "--threads", str(args.threads), "--op", args.op, "--json"]
    verify_dir = tempfile.mkdtemp(prefix="tconv_bench_ref_")
    write_references(cases, verify_dir, args.op)

    best = {l: {} for l, _ in impls}      # label -> case -> seconds
    info = {l: {} for l, _ in impls}      # label -> case -> last result dict
    errs = {l: {} for l, _ in impls}      # label -> case -> max abs error of round 1
    failures = {}
    peak = 0.0
    peak_isa = "?"
    bandwidth = 0.0
    for rnd in range(args.rounds):
        p = json.loads(sh([bench_bin, "--impl", "peak", "--threads", str(args.threads), "--json"], env))
        peak, peak_isa = max(peak, p["gflops"]), p["isa"]
        bw = json.loads(sh([bench_bin, "--impl", "bandwidth", "--threads", str(args.threads), "--json"], env))
        bandwidth = max(bandwidth, bw["gbs"])
        for label, argv in impls:
            if argv is None:
                continue
            extra = []
            if rnd == 0:
                extra = ["--verify"] if argv[0] == bench_bin else ["--verify-dir", verify_dir]
            print("round %d/%d: %s" % (rnd + 1, args.rounds, label), file=sys.stderr, flush=True)
            try:
                res = json.loads(sh(argv + common + extra, env))
            except (RuntimeError, ValueError) as e:
                failures[label] = str(e)
                continue
            if res.get("available", False) and res.get("op", "conv_transpose") != args.op:
                failures[label] = "measured %s, not %s (an older build?)" % (res.get("op"), args.op)
                continue
            if not res.get("available", False):
                failures[label] = res.get("why", "not available")
                continue
            for r in res["cases"]:
                info[label][r["name"]] = r
                if r["seconds"] > 0:
                    best[label][r["name"]] = min(best[label].get(r["name"], 1e30), r["seconds"])
                if rnd == 0 and r["max_abs_err"] >= 0:
                    errs[label][r["name"]] = r["max_abs_err"]
    shutil.rmtree(verify_dir, ignore_errors=True)

    # tconv_nhwc (channels-last in and out) has its own table below.
    labels = [l for l, _ in impls if l != "tconv_nhwc"]
    peer_labels = [l for l in labels if l != "tconv"]
    lines = []
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    what = ("convolution forward (conv): the suite's cases read as convolutions, input [N, Cout, transposed "
            "output spatial], output [N, Cin, suite input spatial]" if args.op == "conv"
            else "transposed convolution (conv_transpose)")
    lines.append("tconv benchmark, %s, %s" % (what, now))
    lines.append("CPU: %s; %d threads; float32 NCHW; %d rounds interleaved, best per case; suite %s"
                 % (cpu_model(), args.threads, args.rounds, os.path.relpath(args.suite, ROOT)))
    if args.isa == "avx2":
        lines.append("ISA held to AVX2 (TCONV_ISA=avx2, ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2): this "
                     "machine computing as a CPU without AVX-512 would")
    lines.append("FMA peak measured in this run (%s, %d threads): %.1f GFLOP/s" % (peak_isa, args.threads, peak))
    lines.append("")
    lines.append("GFLOP/s (useful work: 2*N*Cin*(Cout/g)*prod(k)*prod(suite input spatial)); '-' = peer does not run "
                 "this case")
    lines.append("")
    head = ["case"] + labels + ["best peer", "tconv/best", "tconv %peak"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    ratios = []
    for c in cases:
        n = c["name"]
        gf = {l: flops(c) / best[l][n] * 1e-9 for l in labels if n in best[l]}
        row = [n] + [("%.1f" % gf[l]) if l in gf else "-" for l in labels]
        peers_here = [l for l in peer_labels if l in gf]
        if peers_here and "tconv" in gf:
            bp = max(peers_here, key=lambda l: gf[l])
            ratio = gf["tconv"] / gf[bp]
            ratios.append(ratio)
            row += [bp, "%.2f" % ratio]
        else:
            row += ["-", "-"]
        row.append("%.1f%%" % (100 * gf["tconv"] / peak) if "tconv" in gf and peak > 0 else "-")
        lines.append("| " + " | ".join(row) + " |")
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        lines.append("")
        lines.append("Geometric mean of tconv/best-peer over %d cases: %.2f (cases where tconv is slower: %d)"
                     % (len(ratios), geo, sum(r < 1 for r in ratios)))
    dw = [c for c in cases if c["g"] > 1 and c["g"] == c["cin"]]
    for c in dw:
        n = c["name"]
        parts = ["%s %.1f" % (l, bytes_moved(c) / best[l][n] * 1e-9) for l in labels if n in best[l]]
        lines.append("")
        lines.append("Depthwise %s, GB/s (input + weight + output once, %.2f MB): %s"
                     % (n, bytes_moved(c) / 1e6, ", ".join(parts)))
        if "tconv" in best and n in best["tconv"] and bandwidth > 0:
            lines.append("Streaming copy bandwidth measured in this run (%d threads, 256 MB, read + write): %.1f GB/s;"
                         " tconv moves this case's bytes at %.0f%% of it (they stay in cache between runs)"
                         % (args.threads, bandwidth, 100 * bytes_moved(c) / best["tconv"][n] * 1e-9 / bandwidth))
    nhwc = best.get("tconv_nhwc", {})
    if nhwc:
        lines.append("")
        lines.append("Channels-last (NHWC in and out; input layout prepared untimed for both), GFLOP/s: tconv's "
                     "channels-last engine against XNNPACK, which is NHWC-native:")
        lines.append("")
        lines.append("| case | tconv_nhwc | xnnpack | tconv_nhwc/xnnpack | tconv (NCHW) | tconv_nhwc implementation |")
        lines.append("|---|---:|---:|---:|---:|---|")
        nhwc_ratios = []
        for c in cases:
            n = c["name"]
            if n not in nhwc:
                continue
            g_nhwc = flops(c) / nhwc[n] * 1e-9
            g_x = flops(c) / best["xnnpack"][n] * 1e-9 if n in best.get("xnnpack", {}) else None
            g_t = flops(c) / best["tconv"][n] * 1e-9 if n in best.get("tconv", {}) else None
            if g_x:
                nhwc_ratios.append(g_nhwc / g_x)
            lines.append("| %s | %.1f | %s | %s | %s | %s |" % (
                n, g_nhwc, "%.1f" % g_x if g_x else "-", "%.2f" % (g_nhwc / g_x) if g_x else "-",
                "%.1f" % g_t if g_t else "-", info["tconv_nhwc"][n].get("detail", "-")))
        if nhwc_ratios:
            geo = math.exp(sum(math.log(r) for r in nhwc_ratios) / len(nhwc_ratios))
            lines.append("")
            lines.append("Geometric mean of tconv_nhwc/xnnpack over %d cases: %.2f (slower on %d)"
                         % (len(nhwc_ratios), geo, sum(r < 1 for r in nhwc_ratios)))
        exact = [n for n, e in errs.get("tconv_nhwc", {}).items() if e == 0]
        lines.append("tconv_nhwc output equal to tconv's NCHW output transposed, bit for bit: %d of %d cases"
                     % (len(exact), len(errs.get("tconv_nhwc", {}))))
    lines.append("")
    lines.append("tconv's choice per case, and what the oneDNN variants chose:")
    lines.append("")
    dnnl = [l for l in labels if l.startswith("onednn")]
    head = ["case", "tconv implementation", "tconv workspace bytes", "tconv ms"] + ["%s impl" % l for l in dnnl]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---", "---", "---:", "---:"] + ["---"] * len(dnnl)) + "|")
    for c in cases:
        n = c["name"]
        t = info.get("tconv", {}).get(n, {})
        row = [n, t.get("detail", "-") or "-", str(t.get("workspace_bytes", "-")),
               "%.3f" % (best["tconv"][n] * 1e3) if n in best.get("tconv", {}) else "-"]
        for l in dnnl:
            r = info[l].get(n, {})
            row.append((r.get("detail") or "-") + (" (not timed)" if r.get("skipped") else ""))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Correctness (round 1, max abs difference over all cases; C++ peers vs tconv, Python peers vs "
                 "PyTorch in float64):")
    for l in peer_labels:
        if errs.get(l):
            worst = max(errs[l].items(), key=lambda kv: kv[1])
            lines.append("- %s: %.2g on %d cases (worst %s)" % (l, worst[1], len(errs[l]), worst[0]))
    skipped = {}
    for l in labels:
        for n, r in info[l].items():
            if r.get("skipped"):
                skipped.setdefault((l, r["skipped"]), []).append(n)
    if skipped or missing or failures:
        lines.append("")
        lines.append("Not measured:")
        for (l, why), names in skipped.items():
            lines.append("- %s on %s: %s" % (l, ", ".join(names), why))
        for m in missing:
            lines.append("- " + m)
        for l, why in failures.items():
            lines.append("- %s failed: %s" % (l, why))
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            if args.op == "conv":
                f.write("# Latest benchmark run: convolution forward\n\nProduced by `bash bench/run.sh --op conv`.\n\n")
            else:
                f.write("# Latest benchmark run\n\nProduced by `bash bench/run.sh`.\n\n")
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
