"""The shared body of the classifier flows (mlp.py, cnn.py): train on Fashion-MNIST, PTQ, export, build with the
runner, measure float / Brevitas / hardware-exact accuracy on the test set, print a summary.

A flow script only names its model and sizes (``FlowSpec``); the command line (``--quick``, ``--weights``,
``--acts``, ``--board``, ``--target-fps``, ``--impl``, ``--bitfile``, ``--output-dir``, ...) is the same for all.
Exit codes: 0 done, 2 a minifinn error (message on stderr), 3 a vendor tool is missing (the message says how to
continue where it is installed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass
class FlowSpec:
    """What a flow script chooses: zoo model name, its build arguments (full and --quick), default epochs."""

    model: str
    model_cfg: dict
    quick_model_cfg: dict
    epochs: int
    quick_epochs: int = 1
    default_output_dir: str = "out/flow"
    train_kwargs: dict = field(default_factory=dict)
    ptq: tuple = ("calibrate",)
    eight_bit_ends: bool = False  # first and last layer 8-bit (fp:e4m3 / int:8) unless --first/--last say otherwise


def parse_args(prog, doc, spec, argv=None):
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    p.add_argument("--quick", action="store_true", help="small model, 2,000 training images, 1 epoch, 500 test images")
    p.add_argument("--weights", default="fp:e3m2", help="weight format (fp:eXmY, int:N)")
    p.add_argument("--acts", default="fp:e3m2", help="activation format (fp:eXmY, int:N, uint:N)")
    ends = "8-bit (fp:e4m3 or int:8)" if spec.eight_bit_ends else "as --weights/--acts"
    p.add_argument("--first", default=None, help=f"first-layer format (default {ends})")
    p.add_argument("--last", default=None, help=f"last-layer format (default {ends})")
    p.add_argument("--board", default="Pynq-Z2")
    p.add_argument("--target-fps", type=float, default=None, help="omit for the fastest folding that fits")
    p.add_argument("--impl", choices=["rtl", "hls"], default="rtl",
                   help="matrix-vector implementation (rtl: Icarus rtlsim + stitched simulation; hls: g++ cppsim)")
    p.add_argument("--epochs", type=int, default=None, help=f"float training epochs (default {spec.epochs})")
    p.add_argument("--ptq", default=",".join(spec.ptq),
                   help="Brevitas PTQ techniques, comma-separated (act_equalization, calibrate, gptq, "
                        f"bias_correction; default {','.join(spec.ptq)})")
    p.add_argument("--verify-images", type=int, default=4)
    p.add_argument("--bitfile", action="store_true",
                   help="continue to the bitfile (needs Vivado/Vitis HLS; without them the build stops with the "
                        "command to continue on a machine that has them)")
    p.add_argument("--output-dir", type=Path, default=Path(spec.default_output_dir))
    return p.parse_args(argv)


def run_flow(args, spec, prog):
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
    from compiler.training import evaluate, load_checkpoint, save_checkpoint, train
    from compiler.vendor import VendorToolMissing
    from compiler.zoo import QuantSpec, build_model, load_float_state_dict
    from passes.compare import compare_lowered

    torch.set_num_threads(1)
    torch.manual_seed(0)
    ensure_finn_offline()
    out = args.output_dir
    (out / "report").mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    try:
        eight = "fp:e4m3" if args.weights.startswith("fp:") else "int:8"
        first = args.first or (eight if spec.eight_bit_ends else None)
        last = args.last or (eight if spec.eight_bit_ends else None)
        qspec = QuantSpec(weights=args.weights, acts=args.acts, first=first, last=last)
        cfg = BuildConfig(output_dir=str(out), board=args.board, target_fps=args.target_fps,
                          verify_input_npy=str(out / "verify_input.npy"))
        x_tr, y_tr = load_fashion_mnist("train")
        x_te, y_te = load_fashion_mnist("test")
        if args.quick:
            x_tr, y_tr, x_te, y_te = x_tr[:2000], y_tr[:2000], x_te[:500], y_te[:500]
        model_cfg = spec.quick_model_cfg if args.quick else spec.model_cfg
        float_model = build_model(spec.model, "float", **model_cfg)
        epochs = args.epochs or (spec.quick_epochs if args.quick else spec.epochs)
        recipe = {"model": spec.model, "cfg": model_cfg, "epochs": epochs, "images": len(x_tr),
                  "train": spec.train_kwargs}
        ckpt = out / "float.pt"
        t0 = time.time()
        if ckpt.is_file() and load_checkpoint(ckpt)[1] == json.loads(json.dumps(recipe)):
            load_float_state_dict(float_model, load_checkpoint(ckpt)[0])
            print(f"[train] float {spec.model}: reusing {ckpt} (same model, data and recipe)")
        else:
            print(f"[train] float {spec.model} {model_cfg}, {epochs} epoch(s) on {len(x_tr)} images")
            train(float_model, x_tr, y_tr, epochs=epochs, progress=not args.quick, **spec.train_kwargs)
            save_checkpoint(ckpt, float_model, recipe, {"train_seconds": round(time.time() - t0, 1)})
        train_seconds = time.time() - t0
        quant = build_model(spec.model, qspec, **model_cfg)
        techniques = tuple(t.strip() for t in args.ptq.split(",") if t.strip())
        quantize_ptq(float_model, quant, x_tr[:2000], techniques=techniques)
        qonnx = export_qonnx_model(quant, torch.from_numpy(x_te[:1]), out / f"{spec.model}.qonnx.onnx")
        np.save(out / "verify_input.npy", x_te[:args.verify_images])
        print(f"[build] {qspec} on {args.board}")
        t0 = time.time()
        steps = list(DEFAULT_STEPS)
        if args.impl == "hls":
            steps.insert(steps.index("step_specialize_layers"), prefer_hls)
        if args.bitfile:
            steps.append("step_synthesize_bitfile")
        run_build(qonnx, cfg, steps=steps)
        build_seconds = time.time() - t0
        from qonnx.core.modelwrapper import ModelWrapper

        lowered = ModelWrapper(str(out / "intermediate_models" / "step_lower.onnx"))
        cmp = compare_lowered(qonnx, lowered, x_te, batch_size=250, labels=y_te)
    except VendorToolMissing as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 3
    except MinifinnError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    acc = {"float": evaluate(float_model, x_te, y_te), "brevitas_quantized": evaluate(quant, x_te, y_te),
           "hardware_exact": cmp["accuracy_lowered"], "qonnx_golden": cmp["accuracy_qonnx"],
           "test_images": int(len(x_te)),
           "formats": {"weights": args.weights, "acts": args.acts, "first": qspec.first, "last": qspec.last},
           "ptq": list(techniques),
           "train_seconds": round(train_seconds, 1), "build_seconds": round(build_seconds, 1)}
    (out / "report" / "accuracy.json").write_text(json.dumps(acc, indent=2) + "\n")
    print_summary(out, acc, args.board, time.time() - t_start)
    return 0


def print_summary(out, acc, board, total_seconds):
    perf = json.loads((out / "report" / "estimate_network_performance.json").read_text())
    res = json.loads((out / "report" / "estimate_layer_resources.json").read_text())["total"]
    ver = json.loads((out / "report" / "verification.json").read_text())
    print(f"\naccuracy: float {100 * acc['float']:.2f} %, Brevitas {100 * acc['brevitas_quantized']:.2f} %, "
          f"hardware-exact {100 * acc['hardware_exact']:.2f} % ({acc['test_images']} test images)")
    print(f"estimates: {perf['estimated_throughput_fps']:.0f} FPS, latency {perf['estimated_latency_ns']:.0f} ns, "
          f"LUT {res['LUT']:.0f}, BRAM_18K {res['BRAM_18K']:.0f}, DSP {res['DSP']:.0f} on {board}")
    stitched = ver.get("stitched_rtlsim", {})
    rung = (f"stitched rtlsim {stitched['passed']}/{stitched['passed'] + stitched['failed']}" if "passed" in stitched
            else f"stitched rtlsim skipped ({stitched.get('skipped', 'n/a')})")
    print(f"verification on {ver['images']} images: {'passed' if ver['passed'] else 'FAILED'} ({rung}); build "
          f"{acc['build_seconds']:.1f} s, total {total_seconds:.0f} s; reports in {out / 'report'}")


def prefer_hls(model, cfg):
    """Ask SpecializeLayers for the HLS variant of every hardware node (cppsim with g++ in verification)."""
    from qonnx.custom_op.registry import getCustomOp

    for node in model.graph.node:
        if node.domain == "finn.custom_op.fpgadataflow":
            getCustomOp(node).set_nodeattr("preferred_impl_style", "hls")
    return model


prefer_hls.step_name = "step_prefer_hls"
