"""MLP on Fashion-MNIST through the whole minifinn build: train, PTQ, export, build, verify.

    python build_flows/mlp.py                          # W/A E3M2, Pynq-Z2, fastest folding that fits
    python build_flows/mlp.py --quick                  # smoke run in well under a minute
    python build_flows/mlp.py --weights int:4 --acts int:4 --target-fps 100000 --output-dir out/mlp_int4

Every layer is a ``MinifloatMVAU`` in one dataflow partition (only input quantization and output dequantization
stay on the host), so the accuracy of the lowered graph is the accuracy of the hardware: the verification ladder
checks that the RTL (Icarus) or HLS (g++ cppsim) simulation of every layer and of the whole partition equals it bit
for bit on --verify-images test images. Outputs: ``OUTPUT_DIR/report/`` (FINN-style estimate JSONs, summary.md,
verification.json, accuracy.json), ``OUTPUT_DIR/driver/`` (PYNQ/Alveo driver) and
``OUTPUT_DIR/intermediate_models/``. ``--bitfile`` continues with FINN's ZynqBuild where Vivado is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="mlp.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small MLP, 2,000 training images, 1 epoch")
    p.add_argument("--weights", default="fp:e3m2", help="weight format (fp:eXmY, int:N)")
    p.add_argument("--acts", default="fp:e3m2", help="activation format (fp:eXmY, int:N, uint:N)")
    p.add_argument("--board", default="Pynq-Z2")
    p.add_argument("--target-fps", type=float, default=None, help="omit for the fastest folding that fits")
    p.add_argument("--impl", choices=["rtl", "hls"], default="rtl", help="layer implementation (rtlsim or cppsim)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--verify-images", type=int, default=4)
    p.add_argument("--bitfile", action="store_true",
                   help="continue to the bitfile (needs Vivado/Vitis HLS; without them the build stops with the "
                        "command to continue on a machine that has them)")
    p.add_argument("--output-dir", type=Path, default=Path("out/mlp"))
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch

    import compiler.steps  # noqa: F401
    from compiler.config import BuildConfig
    from compiler.data import load_fashion_mnist
    from compiler.errors import MinifinnError
    from compiler.export import export_qonnx_model
    from compiler.finn_env import ensure_finn_offline
    from compiler.ptq import quantize_ptq
    from compiler.runner import DEFAULT_STEPS, run_build
    from compiler.training import evaluate, train
    from compiler.vendor import VendorToolMissing
    from compiler.zoo import QuantSpec, build_model
    from passes.compare import compare_lowered

    torch.set_num_threads(1)
    ensure_finn_offline()
    out = args.output_dir
    (out / "report").mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    try:
        spec = QuantSpec(weights=args.weights, acts=args.acts)
        cfg = BuildConfig(output_dir=str(out), board=args.board, target_fps=args.target_fps,
                          verify_input_npy=str(out / "verify_input.npy"))
        x_tr, y_tr = load_fashion_mnist("train")
        x_te, y_te = load_fashion_mnist("test")
        hidden = (64, 32) if args.quick else (256, 128)
        if args.quick:
            x_tr, y_tr, x_te, y_te = x_tr[:2000], y_tr[:2000], x_te[:500], y_te[:500]
        model_cfg = dict(in_features=784, hidden=hidden)
        float_model = build_model("mlp", "float", **model_cfg)
        epochs = args.epochs or (1 if args.quick else 5)
        print(f"[train] float MLP {hidden}, {epochs} epoch(s)")
        train(float_model, x_tr, y_tr, epochs=epochs, progress=not args.quick)
        quant = build_model("mlp", spec, **model_cfg)
        quantize_ptq(float_model, quant, x_tr[:2000], techniques=("calibrate",))
        qonnx_path = out / "mlp.qonnx.onnx"
        qonnx = export_qonnx_model(quant, torch.from_numpy(x_te[:1]), qonnx_path)
        np.save(out / "verify_input.npy", x_te[:args.verify_images])
        print(f"[build] {spec} on {args.board}")
        t0 = time.time()
        steps = list(DEFAULT_STEPS)
        if args.impl == "hls":
            steps.insert(steps.index("step_specialize_layers"), _prefer_hls)
        if args.bitfile:
            steps.append("step_synthesize_bitfile")
        run_build(qonnx, cfg, steps=steps)
        build_seconds = time.time() - t0
        from qonnx.core.modelwrapper import ModelWrapper

        lowered = ModelWrapper(str(out / "intermediate_models" / "step_lower.onnx"))
        cmp = compare_lowered(qonnx, lowered, x_te, batch_size=250, labels=y_te)
    except VendorToolMissing as err:
        print(f"mlp.py: {err}", file=sys.stderr)
        return 3
    except MinifinnError as err:
        print(f"mlp.py: {err}", file=sys.stderr)
        return 2
    acc = {"float": evaluate(float_model, x_te, y_te), "brevitas_quantized": evaluate(quant, x_te, y_te),
           "hardware_exact": cmp["accuracy_lowered"], "qonnx_golden": cmp["accuracy_qonnx"],
           "test_images": int(len(x_te)), "formats": {"weights": args.weights, "acts": args.acts}}
    (out / "report" / "accuracy.json").write_text(json.dumps(acc, indent=2) + "\n")
    perf = json.loads((out / "report" / "estimate_network_performance.json").read_text())
    res = json.loads((out / "report" / "estimate_layer_resources.json").read_text())["total"]
    ver = json.loads((out / "report" / "verification.json").read_text())
    print(f"\naccuracy: float {100 * acc['float']:.2f} %, Brevitas {100 * acc['brevitas_quantized']:.2f} %, "
          f"hardware-exact {100 * acc['hardware_exact']:.2f} % ({acc['test_images']} test images)")
    print(f"estimates: {perf['estimated_throughput_fps']:.0f} FPS, latency {perf['estimated_latency_ns']:.0f} ns, "
          f"LUT {res['LUT']:.0f}, BRAM_18K {res['BRAM_18K']:.0f}, DSP {res['DSP']:.0f} on {args.board}")
    print(f"verification on {ver['images']} images: {'passed' if ver['passed'] else 'FAILED'}; build "
          f"{build_seconds:.1f} s, total {time.time() - t_start:.0f} s; reports in {out / 'report'}")
    return 0


def _prefer_hls(model, cfg):
    """Ask SpecializeLayers for the HLS variant of every MinifloatMVAU (cppsim with g++ in verification)."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if node.op_type == "MinifloatMVAU":
            getCustomOp(node).set_nodeattr("preferred_impl_style", "hls")
    return model


_prefer_hls.step_name = "step_prefer_hls"

if __name__ == "__main__":
    sys.exit(main())
