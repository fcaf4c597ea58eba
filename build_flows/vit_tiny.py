"""ViT-tiny on Fashion-MNIST, end to end: train, PTQ, export, compile into one dataflow accelerator, verify.

    python build_flows/vit_tiny.py                 # the flagship: W/A E3M2, first/last E4M3, Pynq-Z2 (+ U250 estimates)
    python build_flows/vit_tiny.py --quick         # smoke run: small model, few images, one short epoch
    python build_flows/vit_tiny.py --weights int:4 --acts int:4 --output-dir out/vit_int4
    python build_flows/vit_tiny.py --deit          # DeiT-tiny-sized model (224x224, dim 192, depth 12): U250 estimates

Stages: (1) train the float ViT (patch 7, dim 64, depth 4, heads 4, global average pooling) or reuse
``OUTPUT_DIR/vit_float.pt`` when it was trained with the same configuration; (2) post-training quantization with
Brevitas to W/A = --weights/--acts (default fp:e3m2) with first/last layer at --first/--last (default fp:e4m3);
(3) QONNX export (``export_qonnx(..., dynamo=False)``); (4) golden execution of the QONNX model vs Brevitas;
(5) the minifinn build for --board (compiler/steps.py): lowering to exact integer arithmetic, every layer a
hardware op (MinifloatMVAU incl. attention's dynamic products, MinifloatSoftmax, MinifloatLayerNorm, GELU tables,
residual and positional-embedding adds, token pooling, layout reorders) in ONE dataflow partition (only input
quantization and output dequantization stay on the host), resource-aware folding, estimate reports, HDL
generation, FIFO sizing by stitched simulation, the verification ladder on --verify-images test images (every node
in rtlsim/cppsim and the stitched partition vs the Python model, bit for bit), the driver; (6) estimates for the
--estimate-boards (default U250) from the same hardware graph; (7) hardware-exact accuracy: the hardware graph's
bit-exact Python models on the test set. The summary lists float / Brevitas / hardware-exact accuracy, FPS,
latency and LUT/BRAM/DSP against each board. Vendor steps (bitstream) need Vivado: see README.

Outputs in --output-dir: ``vit_float.pt``, ``vit_tiny.qonnx.onnx``, ``report/accuracy.json``,
``report/summary.md``, ``build/`` (the build's report/, intermediate_models/, driver/), ``build_<board>/report/``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # allow `python build_flows/vit_tiny.py` without installation
    sys.path.insert(0, str(REPO))



def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="vit_tiny.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run: small model, 2,000 training images, 1 epoch")
    p.add_argument("--deit", action="store_true",
                   help="DeiT-tiny-sized model (224x224x3, patch 16, dim 192, depth 12, heads 3, class token): "
                        "random weights (or --state-dict), estimates for --estimate-boards only")
    p.add_argument("--state-dict", type=Path, default=None,
                   help="with --deit: a timm/torchvision-style DeiT/ViT state dict (.pt/.pth) to load")
    p.add_argument("--weights", default="fp:e3m2", help="weight format, e.g. fp:e3m2, fp:e4m3, int:4")
    p.add_argument("--acts", default="fp:e3m2", help="activation format, e.g. fp:e3m2, int:8")
    p.add_argument("--first", default=None, help="first-layer format (default: 8-bit: fp:e4m3 or int:8)")
    p.add_argument("--last", default=None, help="last-layer format (default: 8-bit: fp:e4m3 or int:8)")
    p.add_argument("--board", default="Pynq-Z2", help="board of the build (folding, reports, verification)")
    p.add_argument("--estimate-boards", default="U250",
                   help="comma-separated boards that get estimate reports too (empty: none)")
    p.add_argument("--target-fps", type=float, default=None, help="throughput target (default: fastest that fits)")
    p.add_argument("--impl", choices=["rtl", "hls"], default="rtl",
                   help="node implementation where both exist (rtl: Icarus rtlsim + stitched simulation; hls: g++ "
                        "cppsim node by node)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 8, --quick 1)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
    p.add_argument("--golden-images", type=int, default=2000,
                   help="test images for QONNX golden vs Brevitas (default 2000)")
    p.add_argument("--verify-images", type=int, default=None,
                   help="test images for the verification ladder (default 16, --quick 2)")
    p.add_argument("--accuracy-images", type=int, default=None,
                   help="test images for the hardware-exact accuracy (default: the whole test set)")
    p.add_argument("--workers", type=int, default=2, help="processes for the hardware-exact accuracy")
    p.add_argument("--checkpoint", type=Path, default=None, help="float checkpoint to use instead of training")
    p.add_argument("--data-dir", type=Path, default=None, help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--output-dir", type=Path, default=None, help="default out/vit_tiny (out/deit_tiny with --deit)")
    args = p.parse_args(argv)
    if args.output_dir is None:
        args.output_dir = Path("out/deit_tiny" if args.deit else "out/vit_tiny")
    return args


def model_config(quick, deit=False):
    if deit:
        return dict(image_size=224, in_channels=3, patch_size=16, dim=192, depth=12, heads=3, mlp_ratio=4,
                    num_classes=1000, pooling="cls")
    if quick:
        return dict(image_size=28, in_channels=1, patch_size=7, dim=32, depth=1, heads=2, mlp_ratio=2,
                    num_classes=10, pooling="gap")
    return dict(image_size=28, in_channels=1, patch_size=7, dim=64, depth=4, heads=4, mlp_ratio=2, num_classes=10,
                pooling="gap")


def eight_bit(fmt):
    return "fp:e4m3" if str(fmt).startswith("fp:") else "int:8"


def train_or_load(args, cfg, x_train, y_train):
    import torch

    from compiler.training import load_checkpoint, save_checkpoint, train
    from compiler.zoo import QuantSpec, build_vit, load_float_state_dict

    model = build_vit(QuantSpec.coerce("float"), **cfg)
    ckpt = args.checkpoint or args.output_dir / "vit_float.pt"
    if ckpt.is_file():
        state, saved_cfg, metrics = load_checkpoint(ckpt)
        if args.checkpoint is not None or saved_cfg.get("model") == cfg:
            load_float_state_dict(model, state)
            print(f"[1/7] float model: loaded {ckpt} (trained {metrics.get('train_seconds', '?')} s)")
            return model, metrics.get("train_seconds")
        print(f"[1/7] {ckpt} has another configuration; training anew")
    epochs = args.epochs or (1 if args.quick else 8)
    print(f"[1/7] training the float ViT ({sum(p.numel() for p in model.parameters())} parameters, "
          f"{epochs} epochs, {args.threads} threads)")
    hist = train(model, x_train, y_train, epochs=epochs, lr=3e-3, batch_size=128, weight_decay=0.05,
                 label_smoothing=0.1, threads=args.threads)
    save_checkpoint(ckpt, model, {"model": cfg}, {"train_seconds": round(hist["seconds"], 1)})
    torch.set_num_threads(args.threads)
    return model, round(hist["seconds"], 1)


def build(args, qmodel, out, x_verify, board):
    """Stage 5: the minifinn build for ``board``; returns the build directory."""
    import numpy as np

    import compiler.steps  # noqa: F401  (registers the steps)
    from build_flows.classifier_flow import prefer_hls
    from compiler.config import BuildConfig
    from compiler.runner import DEFAULT_STEPS, run_build

    bdir = out / "build"
    np.save(out / "verify_input.npy", x_verify)
    cfg = BuildConfig(output_dir=str(bdir), board=board, target_fps=args.target_fps,
                      verify_input_npy=str(out / "verify_input.npy"))
    steps = list(DEFAULT_STEPS)
    if args.impl == "hls":
        steps.insert(steps.index("step_specialize_layers"), prefer_hls)
    run_build(qmodel, cfg, steps=steps)
    return bdir


def estimate_for_boards(args, bdir, out):
    """Stage 6: folding + estimate reports of the specialized hardware graph for every --estimate-boards board
    (a board the design does not fit gets the reason instead of numbers)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from compiler.config import BuildConfig
    from compiler.steps import step_estimate_reports, step_folding
    from passes.resource_folding import FoldingBudgetError

    results = {}
    for name in [b.strip() for b in args.estimate_boards.split(",") if b.strip()]:
        cfg = BuildConfig(output_dir=str(out / f"build_{name}"), board=name, target_fps=args.target_fps)
        if cfg.board == args.board and not args.deit:
            continue
        model = ModelWrapper(str(bdir / "intermediate_models" / "step_specialize_layers.onnx"))
        try:
            model = step_estimate_reports(step_folding(model, cfg), cfg)
        except FoldingBudgetError as err:
            results[cfg.board] = {"does_not_fit": str(err)}
            continue
        results[cfg.board] = board_numbers(out / f"build_{name}" / "report")
    return results


def board_numbers(report):
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    res = json.loads((report / "estimate_layer_resources.json").read_text())["total"]
    return {"fps": perf["estimated_throughput_fps"], "latency_ns": perf["estimated_latency_ns"],
            "max_cycles": perf["max_cycles"], "LUT": res["LUT"], "BRAM_18K": res["BRAM_18K"], "DSP": res["DSP"],
            "URAM": res.get("URAM", 0), "FF": res["FF"]}


def board_line(name, nums):
    from compiler.boards import get_board

    if "does_not_fit" in nums:
        return f"{name}: does not fit: {nums['does_not_fit']}"
    b = get_board(name).resources
    share = ", ".join(f"{k} {nums[k]:,.0f} ({100 * nums[k] / b[k]:.1f} %)" for k in ("LUT", "BRAM_18K", "DSP")
                      if b.get(k))
    return (f"{name}: {nums['fps']:,.0f} FPS at 100 MHz ({nums['max_cycles']:,} cycles per frame), "
            f"latency {nums['latency_ns'] / 1000:.1f} us, {share}")


def deit_main(args):
    """--deit: a DeiT-tiny-sized ViT compiled to estimates (no training; random weights or --state-dict)."""
    import torch

    import compiler.steps  # noqa: F401
    from compiler.config import BuildConfig
    from compiler.errors import MinifinnError
    from compiler.export import export_qonnx_model
    from compiler.ptq import quantize_ptq
    from compiler.runner import run_build
    from compiler.zoo import QuantSpec, build_vit, load_timm_vit_state_dict

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = args.output_dir
    (out / "report").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    times = {}
    try:
        cfg = model_config(False, deit=True)
        float_model = build_vit(QuantSpec.coerce("float"), **cfg)
        if args.state_dict is not None:
            load_timm_vit_state_dict(float_model, torch.load(args.state_dict, map_location="cpu"))
            print(f"[1/4] DeiT-tiny-sized ViT: weights from {args.state_dict}")
        else:
            print("[1/4] DeiT-tiny-sized ViT: random weights (no --state-dict)")
        spec = QuantSpec(weights=args.weights, acts=args.acts, first=args.first or eight_bit(args.weights),
                         last=args.last or eight_bit(args.weights))
        quant_model = build_vit(spec, **cfg)
        quantize_ptq(float_model, quant_model, torch.randn(8, 3, 224, 224), techniques=("calibrate",))
        times["ptq_s"] = round(time.time() - t0, 1)
        print(f"[2/4] PTQ (calibration on 8 random images) to {spec}; QONNX export")
        qmodel = export_qonnx_model(quant_model, torch.randn(1, 3, 224, 224), out / "deit_tiny.qonnx.onnx")
        times["export_s"] = round(time.time() - t0 - times["ptq_s"], 1)
        boards = [b.strip() for b in args.estimate_boards.split(",") if b.strip()] or ["U250"]
        print(f"[3/4] build to estimates for {boards[0]}")
        t1 = time.time()
        bcfg = BuildConfig(output_dir=str(out / "build"), board=boards[0], target_fps=args.target_fps,
                           stop_step="step_estimate_reports")
        run_build(qmodel, bcfg)
        times["build_to_estimates_s"] = round(time.time() - t1, 1)
        results = {bcfg.board: board_numbers(out / "build" / "report")}
        if len(boards) > 1:
            print(f"[4/4] estimates for {', '.join(boards[1:])}")
            args.estimate_boards = ",".join(boards[1:])
            results.update(estimate_for_boards(args, out / "build", out))
    except MinifinnError as err:
        print(f"vit_tiny.py: {err}", file=sys.stderr)
        return 2
    times["total_s"] = round(time.time() - t0, 1)
    (out / "report" / "estimates.json").write_text(json.dumps({"model": cfg, "boards": results, "times": times},
                                                              indent=2) + "\n")
    print("\n".join(["", "DeiT-tiny-sized ViT, estimates:", *[board_line(k, v) for k, v in results.items()],
                      f"times: {times}"]))
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.deit:
        return deit_main(args)
    import numpy as np
    import torch

    from compiler.boards import get_board
    from compiler.data import load_fashion_mnist
    from compiler.errors import MinifinnError
    from compiler.export import compare_with_brevitas, export_qonnx_model
    from compiler.hw_accuracy import hardware_exact_accuracy
    from compiler.ptq import quantize_ptq
    from compiler.qonnx_formats import recorded_formats
    from compiler.training import evaluate
    from compiler.zoo import QuantSpec, build_vit
    from passes.resource_folding import FoldingBudgetError

    torch.set_num_threads(args.threads)
    t_start = time.time()
    out = args.output_dir
    (out / "report").mkdir(parents=True, exist_ok=True)
    times = {}
    try:
        board = get_board(args.board)
        x_train, y_train = load_fashion_mnist("train", args.data_dir)
        x_test, y_test = load_fashion_mnist("test", args.data_dir)
        if args.quick:
            x_train, y_train, x_test, y_test = x_train[:2000], y_train[:2000], x_test[:500], y_test[:500]
        cfg = model_config(args.quick)
        float_model, train_seconds = train_or_load(args, cfg, x_train, y_train)
        float_acc = evaluate(float_model, x_test, y_test)
        print(f"      float test accuracy {100 * float_acc:.2f} %")

        spec = QuantSpec(weights=args.weights, acts=args.acts, first=args.first or eight_bit(args.weights),
                         last=args.last or eight_bit(args.weights))
        print(f"[2/7] PTQ to {spec}")
        quant_model = build_vit(spec, **cfg)
        rng = np.random.default_rng(0)
        calib = x_train[rng.choice(len(x_train), size=min(2000, len(x_train)), replace=False)]
        quantize_ptq(float_model, quant_model, calib, techniques=("calibrate",))
        quant_acc = evaluate(quant_model, x_test, y_test)
        print(f"      Brevitas-quantized test accuracy {100 * quant_acc:.2f} %")

        print("[3/7] QONNX export")
        qonnx_path = out / "vit_tiny.qonnx.onnx"
        qmodel = export_qonnx_model(quant_model, torch.from_numpy(x_test[:1]), qonnx_path)
        formats = recorded_formats(qmodel)
        n_float_quant = sum(1 for n in qmodel.graph.node if n.op_type == "FloatQuant")

        n_golden = min(args.golden_images or len(x_test), len(x_test))
        print(f"[4/7] golden execution (qonnx execute_onnx) on {n_golden} test images vs Brevitas")
        cmp = compare_with_brevitas(quant_model, qmodel, x_test[:n_golden], batch_size=250)

        n_verify = min(args.verify_images or (2 if args.quick else 16), len(x_test))
        print(f"[5/7] minifinn build for {board.name}: one dataflow partition, estimates, HDL, FIFO sizing, "
              f"verification on {n_verify} test images")
        t0 = time.time()
        no_fit = None
        try:
            bdir = build(args, qmodel, out, x_test[:n_verify], board.name)
            boards = {board.name: board_numbers(bdir / "report")}
        except FoldingBudgetError as err:
            # the design does not fit --board even fully folded: say by how much, and build for the next board
            others = [b.strip() for b in args.estimate_boards.split(",") if b.strip()]
            if not others:
                raise
            no_fit = f"{board.name}: does not fit: {str(err).split(': ', 1)[-1]}"
            print(f"      {no_fit}\n      building for {others[0]} instead")
            bdir = build(args, qmodel, out, x_test[:n_verify], others[0])
            boards = {get_board(others[0]).name: board_numbers(bdir / "report")}
            args.estimate_boards = ",".join(others[1:])
        times["build_s"] = round(time.time() - t0, 1)
        print(f"[6/7] estimates for {args.estimate_boards or 'no other board'}")
        boards.update(estimate_for_boards(args, bdir, out))

        n_acc = min(args.accuracy_images or len(x_test), len(x_test))
        print(f"[7/7] hardware-exact accuracy: the hardware graph's bit-exact models on {n_acc} test images")
        t0 = time.time()
        hw_acc, _ = hardware_exact_accuracy(bdir / "intermediate_models" / "step_convert_to_hw.onnx",
                                            x_test[:n_acc], y_test[:n_acc], workers=args.workers,
                                            progress=not args.quick)
        times["hardware_exact_s"] = round(time.time() - t0, 1)
        brevitas_same = evaluate(quant_model, x_test[:n_acc], y_test[:n_acc])
    except MinifinnError as err:
        print(f"vit_tiny.py: {err}", file=sys.stderr)
        return 2

    ver = json.loads((bdir / "report" / "verification.json").read_text())
    sdp_ops = sorted({n.op_type for n in _dataflow_nodes(bdir)})
    accuracy = {
        "float": float_acc,
        "brevitas_quantized": quant_acc,
        "hardware_exact": hw_acc,
        "hardware_exact_images": int(n_acc),
        "brevitas_quantized_on_those_images": brevitas_same,
        "test_images": int(len(x_test)),
        "qonnx_golden_argmax_agreement": cmp["argmax_agreement"],
        "qonnx_golden_max_abs_logit_diff": cmp["max_abs_diff"],
        "golden_images": int(n_golden),
        "formats": {"weights": args.weights, "acts": args.acts, "first": spec.first, "last": spec.last},
        "train_seconds": train_seconds,
        "boards": boards,
        "does_not_fit": no_fit,
    }
    (out / "report" / "accuracy.json").write_text(json.dumps(accuracy, indent=2) + "\n")
    stitched = ver.get("stitched_rtlsim", {})
    rung = (f"stitched rtlsim {stitched['passed']}/{stitched['passed'] + stitched['failed']} images"
            if "passed" in stitched else f"stitched rtlsim skipped ({stitched.get('skipped')})")
    node_modes = sorted({v["mode"] for v in ver["nodes"].values()})
    summary = [
        "# ViT-tiny (Fashion-MNIST) — minifinn run summary",
        "",
        f"- model: {json.dumps(cfg)}",
        f"- formats: W {args.weights}, A {args.acts}, first {spec.first}, last {spec.last}; "
        f"{n_float_quant} FloatQuant nodes in the QONNX export ({len(formats)} quantizers recorded)",
        f"- accuracy on {n_acc} test images: float {100 * float_acc:.2f} %, Brevitas-quantized "
        f"{100 * brevitas_same:.2f} %, hardware-exact {100 * hw_acc:.2f} % "
        f"(Brevitas on all {len(x_test)}: {100 * quant_acc:.2f} %)",
        f"- QONNX golden vs Brevitas on {n_golden} images: argmax agreement {100 * cmp['argmax_agreement']:.2f} %",
        f"- one dataflow partition of {len(list(_dataflow_nodes(bdir)))} hardware nodes ({', '.join(sdp_ops)})",
        f"- verification on {ver['images']} images: {'passed' if ver['passed'] else 'FAILED'}; every node "
        f"({'/'.join(node_modes)}) == Python bit for bit; {rung}",
        *([f"- {no_fit}"] if no_fit else []),
        *[f"- {board_line(k, v)}" for k, v in boards.items()],
        f"- times: train {train_seconds} s, build {times['build_s']} s, hardware-exact accuracy "
        f"{times['hardware_exact_s']} s, total {time.time() - t_start:.0f} s",
    ]
    (out / "report" / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(["", *summary[2:]]))
    print(f"\nOutputs in {out}/ (report/, build/report/, build/intermediate_models/, build/driver/)")
    return 0


def _dataflow_nodes(bdir):
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(str(bdir / "intermediate_models" / "step_specialize_layers.onnx")).graph.node


if __name__ == "__main__":
    sys.exit(main())
