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
bit-exact Python models on the test set, batched (compiler/batched_exec.py). The summary lists float / Brevitas /
hardware-exact accuracy, FPS, latency and LUT/BRAM/DSP against each board. Vendor steps (bitstream) need Vivado:
see README.

Outputs in --output-dir: ``vit_float.pt``, ``vit_tiny.qonnx.onnx``, ``report/accuracy.json``,
``report/summary.md``, ``build/`` (the build's report/, intermediate_models/, driver/), ``build_<board>/report/``.
With --deit: ``deit_tiny.qonnx.onnx``, ``report/estimates.json``, ``build/report/``, ``build_<board>/report/``.

The stages are those of ``build_flows/classifier_flow.py``'s ``Flow``; ``ViTFlow`` adds the golden check, the
board fallback, the estimates for further boards and the hardware-exact accuracy on the test set, ``DeiTFlow``
replaces training and data by given or random weights and random calibration images and builds to estimates only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # allow `python build_flows/vit_tiny.py` without installation
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402

from build_flows.classifier_flow import Flow, FlowSpec, board_numbers  # noqa: E402
from compiler.batched_exec import DEFAULT_BATCH_SIZE  # noqa: E402
from compiler.boards import get_board  # noqa: E402
from compiler.config import BuildConfig  # noqa: E402
from compiler.export import compare_with_brevitas  # noqa: E402
from compiler.hw_accuracy import built_hardware_graph, hardware_exact_accuracy  # noqa: E402
from compiler.qonnx_formats import recorded_formats  # noqa: E402
from compiler.runner import run_build  # noqa: E402
from compiler.steps import step_estimate_reports, step_folding  # noqa: E402
from compiler.training import evaluate  # noqa: E402
from compiler.zoo import build_model, load_timm_vit_state_dict  # noqa: E402
from passes.resource_folding import FoldingBudgetError  # noqa: E402

VIT = FlowSpec(
    model="vit",
    model_cfg=dict(image_size=28, in_channels=1, patch_size=7, dim=64, depth=4, heads=4, mlp_ratio=2, num_classes=10,
                   pooling="gap"),
    quick_model_cfg=dict(image_size=28, in_channels=1, patch_size=7, dim=32, depth=1, heads=2, mlp_ratio=2,
                         num_classes=10, pooling="gap"),
    epochs=8, quick_epochs=1, default_output_dir="out/vit_tiny",
    train_kwargs=dict(lr=3e-3, batch_size=128, weight_decay=0.05, label_smoothing=0.1),
    eight_bit_ends=True, verify_images=16, quick_verify_images=2, qonnx_name="vit_tiny.qonnx.onnx",
    seed=None,  # torch's per-process random seed: a fresh float model differs run to run; its checkpoint is reused
)
DEIT_CFG = dict(image_size=224, in_channels=3, patch_size=16, dim=192, depth=12, heads=3, mlp_ratio=4, num_classes=1000,
                pooling="cls")
DEIT = FlowSpec(model="vit", model_cfg=DEIT_CFG, quick_model_cfg=DEIT_CFG, epochs=0, quick_epochs=0,
                default_output_dir="out/deit_tiny", eight_bit_ends=True, qonnx_name="deit_tiny.qonnx.onnx", seed=0)


class ViTFlow(Flow):
    """The flagship: the classifier skeleton with the QONNX golden check, a build that falls back to the next
    --estimate-boards board when the design does not fit --board, estimates for the other boards, and the
    hardware graph's bit-exact accuracy; ``report/accuracy.json`` and ``report/summary.md``."""

    messages = {
        "reuse": "[1/7] float model: loaded {ckpt} (trained {trained} s)",
        "retrain": "[1/7] {ckpt} has another configuration; training anew",
        "train": "[1/7] training the float ViT ({params} parameters, {epochs} epochs, {threads} threads)",
        "float_accuracy": "      float test accuracy {pct:.2f} %",
        "ptq": "[2/7] PTQ to {qspec}",
        "quantized_accuracy": "      Brevitas-quantized test accuracy {pct:.2f} %",
        "export": "[3/7] QONNX export",
    }

    def add_arguments(self, p):
        p.add_argument("--deit", action="store_true",
                       help="DeiT-tiny-sized model (224x224x3, patch 16, dim 192, depth 12, heads 3, class token): "
                            "random weights (or --state-dict), estimates for --estimate-boards only")
        p.add_argument("--state-dict", type=Path, default=None,
                       help="with --deit: a timm/torchvision-style DeiT/ViT state dict (.pt/.pth) to load")
        p.add_argument("--estimate-boards", default="U250",
                       help="comma-separated boards that get estimate reports too (empty: none)")
        p.add_argument("--threads", type=int, default=2, help="torch threads (the machine has 2 cores)")
        p.add_argument("--golden-images", type=int, default=2000,
                       help="test images for QONNX golden vs Brevitas (default 2000)")
        p.add_argument("--accuracy-images", type=int, default=None,
                       help="test images for the hardware-exact accuracy (default: the whole test set)")
        p.add_argument("--workers", type=int, default=2, help="processes for the hardware-exact accuracy")
        p.add_argument("--accuracy-batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                       help=f"images per batched run of the hardware graph (default {DEFAULT_BATCH_SIZE}; memory)")
        p.add_argument("--checkpoint", type=Path, default=None, help="float checkpoint to use instead of training")
        p.add_argument("--data-dir", type=Path, default=None, help="directory with the Fashion-MNIST IDX files")

    def default_output_dir(self, args):
        return DEIT.default_output_dir if args.deit else self.spec.default_output_dir

    def output_dir_help(self):
        return f"default {self.spec.default_output_dir} ({DEIT.default_output_dir} with --deit)"

    # --- float model: ``vit_float.pt`` (or --checkpoint) records the model configuration ------------------------
    def checkpoint_path(self):
        return self.args.checkpoint or self.out / "vit_float.pt"

    def recipe(self, epochs):
        return {"model": self.model_cfg}

    def reusable(self, saved, recipe):
        return self.args.checkpoint is not None or saved.get("model") == recipe["model"]

    def train_kwargs(self):
        return dict(self.spec.train_kwargs)

    def calibration_data(self):
        rng = np.random.default_rng(0)
        return self.x_train[rng.choice(len(self.x_train), size=min(2000, len(self.x_train)), replace=False)]

    # --- stage 4: golden execution of the export vs Brevitas ----------------------------------------------------
    def check_export(self):
        self.recorded = recorded_formats(self.qonnx)
        self.n_float_quant = sum(1 for n in self.qonnx.graph.node if n.op_type == "FloatQuant")
        self.n_golden = min(self.args.golden_images or len(self.x_test), len(self.x_test))
        print(f"[4/7] golden execution (qonnx execute_onnx) on {self.n_golden} test images vs Brevitas")
        self.golden = compare_with_brevitas(self.quant_model, self.qonnx, self.x_test[:self.n_golden], batch_size=250)

    # --- stages 5 and 6: the build (or the next board's when --board is too small), estimates for the others ----
    def build(self):
        args = self.args
        board = get_board(args.board)
        n_verify = self.verify_count()
        print(f"[5/7] minifinn build for {board.name}: one dataflow partition, estimates, HDL, FIFO sizing, "
              f"verification on {n_verify} test images")
        t0 = time.time()
        self.no_fit = None
        try:
            self.bdir = self.build_for(board.name, n_verify)
            self.boards = {board.name: board_numbers(self.bdir / "report")}
        except FoldingBudgetError as err:
            # the design does not fit --board even fully folded: say by how much, and build for the next board
            others = [b.strip() for b in args.estimate_boards.split(",") if b.strip()]
            if not others:
                raise
            self.no_fit = f"{board.name}: does not fit: {str(err).split(': ', 1)[-1]}"
            print(f"      {self.no_fit}\n      building for {others[0]} instead")
            self.bdir = self.build_for(others[0], n_verify)
            self.boards = {get_board(others[0]).name: board_numbers(self.bdir / "report")}
            args.estimate_boards = ",".join(others[1:])
        self.times["build_s"] = round(time.time() - t0, 1)
        print(f"[6/7] estimates for {args.estimate_boards or 'no other board'}")
        self.boards.update(estimate_for_boards(args, self.bdir, self.out))

    def build_for(self, board, n_verify):
        """The minifinn build for ``board`` in ``OUTPUT_DIR/build``; returns that directory."""
        bdir = self.out / "build"
        self.run_steps(self.build_config(bdir, board), n_verify)
        return bdir

    # --- stage 7: the hardware graph's bit-exact models on the test set -----------------------------------------
    def hardware_accuracy(self):
        args, x_test, y_test = self.args, self.x_test, self.y_test
        self.n_acc = min(args.accuracy_images or len(x_test), len(x_test))
        print(f"[7/7] hardware-exact accuracy: the hardware graph's bit-exact models on {self.n_acc} test images")
        t0 = time.time()
        self.hw_acc, _ = hardware_exact_accuracy(built_hardware_graph(self.bdir),
                                                 x_test[:self.n_acc], y_test[:self.n_acc],
                                                 batch_size=args.accuracy_batch_size, workers=args.workers,
                                                 progress=not args.quick)
        self.times["hardware_exact_s"] = round(time.time() - t0, 1)
        self.brevitas_same = evaluate(self.quant_model, x_test[:self.n_acc], y_test[:self.n_acc])

    def report(self):
        args, out, bdir, spec = self.args, self.out, self.bdir, self.qspec
        ver = json.loads((bdir / "report" / "verification.json").read_text())
        sdp_ops = sorted({n.op_type for n in _dataflow_nodes(bdir)})
        accuracy = {
            "float": self.float_acc,
            "brevitas_quantized": self.quant_acc,
            "hardware_exact": self.hw_acc,
            "hardware_exact_images": int(self.n_acc),
            "brevitas_quantized_on_those_images": self.brevitas_same,
            "test_images": int(len(self.x_test)),
            "qonnx_golden_argmax_agreement": self.golden["argmax_agreement"],
            "qonnx_golden_max_abs_logit_diff": self.golden["max_abs_diff"],
            "golden_images": int(self.n_golden),
            "formats": self.formats(),
            "train_seconds": self.train_seconds,
            "boards": self.boards,
            "does_not_fit": self.no_fit,
        }
        (out / "report" / "accuracy.json").write_text(json.dumps(accuracy, indent=2) + "\n")
        stitched = ver.get("stitched_rtlsim", {})
        rung = (f"stitched rtlsim {stitched['passed']}/{stitched['passed'] + stitched['failed']} images"
                if "passed" in stitched else f"stitched rtlsim skipped ({stitched.get('skipped')})")
        node_modes = sorted({v["mode"] for v in ver["nodes"].values()})
        summary = [
            "# ViT-tiny (Fashion-MNIST) — minifinn run summary",
            "",
            f"- model: {json.dumps(self.model_cfg)}",
            f"- formats: W {args.weights}, A {args.acts}, first {spec.first}, last {spec.last}; "
            f"{self.n_float_quant} FloatQuant nodes in the QONNX export ({len(self.recorded)} quantizers recorded)",
            f"- accuracy on {self.n_acc} test images: float {100 * self.float_acc:.2f} %, Brevitas-quantized "
            f"{100 * self.brevitas_same:.2f} %, hardware-exact {100 * self.hw_acc:.2f} % "
            f"(Brevitas on all {len(self.x_test)}: {100 * self.quant_acc:.2f} %)",
            f"- QONNX golden vs Brevitas on {self.n_golden} images: argmax agreement "
            f"{100 * self.golden['argmax_agreement']:.2f} %",
            f"- one dataflow partition of {len(list(_dataflow_nodes(bdir)))} hardware nodes ({', '.join(sdp_ops)})",
            f"- verification on {ver['images']} images: {'passed' if ver['passed'] else 'FAILED'}; every node "
            f"({'/'.join(node_modes)}) == Python bit for bit; {rung}",
            *([f"- {self.no_fit}"] if self.no_fit else []),
            *[f"- {board_line(k, v)}" for k, v in self.boards.items()],
            f"- times: train {self.train_seconds} s, build {self.times['build_s']} s, hardware-exact accuracy "
            f"{self.times['hardware_exact_s']} s, total {time.time() - self.t_start:.0f} s",
        ]
        (out / "report" / "summary.md").write_text("\n".join(summary) + "\n")
        print("\n".join(["", *summary[2:]]))
        print(f"\nOutputs in {out}/ (report/, build/report/, build/intermediate_models/, build/driver/)")
        return 0


class DeiTFlow(ViTFlow):
    """--deit: a DeiT-tiny-sized ViT compiled to estimates. No data and no training: the weights are random or
    --state-dict's, calibration and export use random images, the build stops after the estimate reports of the
    first --estimate-boards board (the others get estimates from its hardware graph); ``report/estimates.json``."""

    messages = {
        "state_dict": "[1/4] DeiT-tiny-sized ViT: weights from {path}",
        "random": "[1/4] DeiT-tiny-sized ViT: random weights (no --state-dict)",
        "export": "[2/4] PTQ (calibration on 8 random images) to {qspec}; QONNX export",
    }

    def check_board(self):
        """--board plays no part: the build is for the --estimate-boards."""

    def load_data(self):
        return None, None, None, None

    def train_or_load(self):
        model = build_model(self.spec.model, "float", **self.model_cfg)
        if self.args.state_dict is not None:
            load_timm_vit_state_dict(model, torch.load(self.args.state_dict, map_location="cpu"))
            self.say("state_dict", path=self.args.state_dict)
        else:
            self.say("random")
        return model, None

    def calibration_data(self):
        return torch.randn(8, 3, 224, 224)

    def example_input(self):
        return torch.randn(1, 3, 224, 224)

    def check_export(self):
        """No test images to compare on."""

    def build(self):
        args, out = self.args, self.out
        boards = [b.strip() for b in args.estimate_boards.split(",") if b.strip()] or ["U250"]
        print(f"[3/4] build to estimates for {boards[0]}")
        t1 = time.time()
        bcfg = BuildConfig(output_dir=str(out / "build"), board=boards[0], target_fps=args.target_fps,
                           stop_step="step_estimate_reports")
        run_build(self.qonnx, bcfg, force=True)  # the flow's folder: replace an earlier build
        self.times["build_to_estimates_s"] = round(time.time() - t1, 1)
        self.boards = {bcfg.board: board_numbers(out / "build" / "report")}
        if len(boards) > 1:
            print(f"[4/4] estimates for {', '.join(boards[1:])}")
            args.estimate_boards = ",".join(boards[1:])
            self.boards.update(estimate_for_boards(args, out / "build", out))

    def hardware_accuracy(self):
        """Estimates only."""

    def report(self):
        ptq_s = round(self.marks["ptq"] - self.t_start, 1)
        times = {"ptq_s": ptq_s, "export_s": round(self.marks["export"] - self.t_start - ptq_s, 1),
                 **self.times, "total_s": round(time.time() - self.t_start, 1)}
        (self.out / "report" / "estimates.json").write_text(
            json.dumps({"model": self.model_cfg, "boards": self.boards, "times": times}, indent=2) + "\n")
        print("\n".join(["", "DeiT-tiny-sized ViT, estimates:", *[board_line(k, v) for k, v in self.boards.items()],
                         f"times: {times}"]))
        return 0


def estimate_for_boards(args, bdir, out):
    """Stage 6: folding + estimate reports of the specialized hardware graph for every --estimate-boards board
    (a board the design does not fit gets the reason instead of numbers)."""
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


def board_line(name, nums):
    if "does_not_fit" in nums:
        return f"{name}: does not fit: {nums['does_not_fit']}"
    b = get_board(name).resources
    share = ", ".join(f"{k} {nums[k]:,.0f} ({100 * nums[k] / b[k]:.1f} %)" for k in ("LUT", "BRAM_18K", "DSP")
                      if b.get(k))
    return (f"{name}: {nums['fps']:,.0f} FPS at 100 MHz ({nums['max_cycles']:,} cycles per frame), "
            f"latency {nums['latency_ns'] / 1000:.1f} us, {share}")


def _dataflow_nodes(bdir):
    return ModelWrapper(str(bdir / "intermediate_models" / "step_specialize_layers.onnx")).graph.node


def parse_args(argv=None):
    return ViTFlow(VIT, "vit_tiny.py", __doc__).parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    flow = DeiTFlow(DEIT, "vit_tiny.py", __doc__) if args.deit else ViTFlow(VIT, "vit_tiny.py", __doc__)
    return flow.run(args)


if __name__ == "__main__":
    sys.exit(main())
