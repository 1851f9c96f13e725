"""Python peers of the tconv benchmark: PyTorch, ONNX Runtime, OpenVINO.

Run by whichever interpreter has the peer (bench/run.py decides):

    python3 bench/peers.py --impl torch|onnxruntime|openvino --suite FILE [--op conv_transpose|conv]
        [--budget 0.3] [--max-iters 20] [--min-iters 3] [--threads 2] [--verify-dir DIR]

Prints one JSON object like tconv_bench --json: per case the best time of one
round. Each case: model built / weights prepared once (untimed), one warm-up
run, then timed runs until `budget` seconds or `max-iters` runs (at least
`min-iters`). With --verify-dir, DIR holds <case>.npz with the reference output
(computed by run.py with PyTorch on the same data) and the largest absolute
difference is reported. Data comes from make_data(), which run.py shares.

--op conv measures the convolution each suite case (a transposed convolution)
is the gradient of: input [N, Cout, transposed output spatial...], weight
[Cin, Cout/g, k...] (PyTorch's conv layout), output [N, Cin, suite input
spatial...], same stride, padding, dilation, groups; no output_padding.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def read_suite(path):
    cases = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].split()
            if not line:
                continue
            name, dims, n, cin, cout, spatial, k, s, p, op, d, g = line
            cases.append(dict(name=name, dims=int(dims), n=int(n), cin=int(cin), cout=int(cout),
                              spatial=[int(v) for v in spatial.split(",")], k=int(k), s=int(s), p=int(p),
                              op=int(op), d=int(d), g=int(g)))
    return cases


def out_shape(c):
    """The output shape of the suite's transposed convolution."""
    return [c["n"], c["cout"]] + [(i - 1) * c["s"] - 2 * c["p"] + c["d"] * (c["k"] - 1) + c["op"] + 1
                                  for i in c["spatial"]]


def x_shape(c, op="conv_transpose"):
    """The measured operation's input: the suite's input, or (conv) the transposed convolution's output."""
    return out_shape(c) if op == "conv" else [c["n"], c["cin"]] + c["spatial"]


def y_shape(c, op="conv_transpose"):
    """The measured operation's output: the other one of the two."""
    return [c["n"], c["cin"]] + c["spatial"] if op == "conv" else out_shape(c)


def make_data(c, index, op="conv_transpose"):
    """Input, weight ([Cin, Cout/g, k...] as PyTorch, for both operations) and bias; the same in every
    interpreter."""
    rng = np.random.RandomState(1234 + index)
    x = (rng.random_sample(x_shape(c, op)) * 2 - 1).astype(np.float32)
    w = (rng.random_sample([c["cin"], c["cout"] // c["g"]] + [c["k"]] * c["dims"]) * 2 - 1).astype(np.float32)
    fan_in = (c["cout"] if op == "conv" else c["cin"]) // c["g"] * c["k"] ** c["dims"]
    w *= np.float32(1.0 / np.sqrt(fan_in))
    b = (rng.random_sample([y_shape(c, op)[1]]) * 2 - 1).astype(np.float32)
    return x, w, b


def torch_fn(c, op):
    """The PyTorch function (F.conv_transpose{1,2,3}d or F.conv{1,2,3}d) with the case's parameters bound."""
    import torch.nn.functional as F
    if op == "conv":
        fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[c["dims"]]
        return lambda x, w, b: fn(x, w, b, stride=c["s"], padding=c["p"], dilation=c["d"], groups=c["g"])
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[c["dims"]]
    return lambda x, w, b: fn(x, w, b, stride=c["s"], padding=c["p"], output_padding=c["op"], groups=c["g"],
                              dilation=c["d"])


def time_best(fn, args):
    fn()  # warm-up
    best, iters, start = float("inf"), 0, time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        best = min(best, t1 - t0)
        iters += 1
        if iters >= args.min_iters and (t1 - start >= args.budget or iters >= args.max_iters):
            return best, iters


# Each backend: backend(threads, op) -> prepare; prepare(case, x, w, b) -> (run, output, detail);
# run() computes into/returns output.

def torch_backend(threads, op):
    import torch
    torch.set_num_threads(threads)
    detail = "torch " + torch.__version__

    def prepare(c, x, w, b):
        xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
        fn = torch_fn(c, op)
        box = {}

        def run():
            with torch.no_grad():
                box["y"] = fn(xt, wt, bt)

        return run, lambda: box["y"].numpy(), detail

    return prepare


def onnx_model(c, w, b, op="conv_transpose"):
    """One ConvTranspose node, or (op conv) one Conv node: W [Cin, Cout/g, k...] is right for both."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    d = c["dims"]
    attrs = dict(kernel_shape=[c["k"]] * d, strides=[c["s"]] * d, pads=[c["p"]] * (2 * d), dilations=[c["d"]] * d,
                 group=c["g"])
    if op == "conv":
        node = helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)
    else:
        node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], output_padding=[c["op"]] * d, **attrs)
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape(c, op))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape(c, op))],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by older runtimes too
    onnx.checker.check_model(model)
    return model


def onnxruntime_backend(threads, op):
    import onnxruntime as ort
    detail = "onnxruntime " + ort.__version__

    def prepare(c, x, w, b):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(onnx_model(c, w, b, op).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        y = np.empty(y_shape(c, op), np.float32)
        io = sess.io_binding()
        io.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(x))
        io.bind_ortvalue_output("y", ort.OrtValue.ortvalue_from_numpy(y))
        return (lambda: sess.run_with_iobinding(io)), (lambda: y), detail

    return prepare


def openvino_backend(threads, op):
    """OpenVINO reads the same ONNX model: ConvTranspose becomes its ConvolutionBackpropData (GroupConvolution-
    BackpropData with groups), Conv its Convolution (GroupConvolution)."""
    import openvino as ov
    core = ov.Core()
    detail = "openvino " + ov.__version__.split("-")[0]
    # OpenVINO reads models from files; the directory goes when the process ends.
    tmp = tempfile.TemporaryDirectory(prefix="tconv_bench_ov_")

    def prepare(c, x, w, b):
        path = os.path.join(tmp.name, c["name"] + ".onnx")
        with open(path, "wb") as f:
            f.write(onnx_model(c, w, b, op).SerializeToString())
        compiled = core.compile_model(core.read_model(path), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        req = compiled.create_infer_request()
        req.set_input_tensor(ov.Tensor(x, shared_memory=True))
        return req.infer, (lambda: req.get_output_tensor().data), detail

    return prepare


BACKENDS = {"torch": torch_backend, "onnxruntime": onnxruntime_backend, "openvino": openvino_backend}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", required=True, choices=sorted(BACKENDS))
    ap.add_argument("--suite", default=os.path.join(os.path.dirname(__file__), "../../shared/bench/suite_public.txt"))
    ap.add_argument("--op", choices=["conv_transpose", "conv"], default="conv_transpose",
                    help="the suite's transposed convolutions, or the convolutions they are the gradients of")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--max-iters", type=int, default=20)
    ap.add_argument("--min-iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verify-dir")
    ap.add_argument("--json", action="store_true", help="accepted for symmetry; output is always JSON")
    args = ap.parse_args()
    try:
        prepare = BACKENDS[args.impl](args.threads, args.op)
    except ImportError as e:
        print(json.dumps({"impl": args.impl, "available": False, "why": str(e)}))
        return 0
    results = []
    for i, c in enumerate(read_suite(args.suite)):
        r = {"name": c["name"], "seconds": -1, "iters": 0, "detail": "", "workspace_bytes": -1, "max_abs_err": -1,
             "skipped": ""}
        try:
            x, w, b = make_data(c, i, args.op)
            run, output, r["detail"] = prepare(c, x, w, b)
            r["seconds"], r["iters"] = time_best(run, args)
            ref_path = args.verify_dir and os.path.join(args.verify_dir, c["name"] + ".npz")
            if ref_path and os.path.exists(ref_path):
                ref = np.load(ref_path)["y"]
                got = np.asarray(output())
                r["max_abs_err"] = float(np.abs(got - ref).max()) if got.shape == ref.shape else 1e30
        except Exception as e:  # a peer failing on one case leaves "-" for that case
            r["skipped"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        results.append(r)
    print(json.dumps({"impl": args.impl, "op": args.op, "available": True, "cases": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
