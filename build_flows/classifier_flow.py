"""The skeleton of the classifier flows (mlp.py, cnn.py, vit_tiny.py): train the float model on Fashion-MNIST or
reuse its checkpoint, post-training quantization with Brevitas, QONNX export, the minifinn build with the runner,
accuracy of the float, Brevitas and hardware-exact models on the test set, reports and a printed summary.

``Flow.run`` runs the stages in that order. A flow describes its model with a ``FlowSpec`` (zoo model name, sizes,
epochs, PTQ techniques, 8-bit first/last layer) and changes a stage by overriding its method: ``ClassifierFlow``
(mlp.py, cnn.py) builds into the output directory and measures the lowered graph's accuracy; vit_tiny.py adds a
golden check of the export, estimates for further boards and the DeiT-sized variant. All flows share the flags
--quick, --weights, --acts, --first, --last, --board, --target-fps, --impl, --epochs, --verify-images,
--synth-check and --output-dir; ``Flow.add_arguments`` adds a flow's own.

The flags are checked before anything runs (``Flow.check_args``: counts >= 1, formats, target, output folder); a bad
flag ends the flow with argparse's usage message and exit code 2. A flow owns its output folder: its build replaces
an earlier build there (``run_build(..., force=True)``).

Exit codes: 0 done, 2 a minifinn error (message on stderr), 3 a vendor tool is missing (the message says how to
continue where it is installed), 130 / 143 interrupted by Ctrl-C / SIGTERM (child processes are stopped).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp

import compiler.steps  # noqa: F401  (registers the build steps)
from compiler.boards import get_board
from compiler.config import BuildConfig
from compiler.data import load_fashion_mnist
from compiler.errors import MinifinnError
from compiler.export import export_qonnx_model
from compiler.finn_env import ensure_finn_offline
from compiler.interrupts import children_stop_on_signals
from compiler.numerics import parse_format
from compiler.ptq import TECHNIQUES, quantize_ptq
from compiler.runner import DEFAULT_STEPS, run_build
from compiler.synth_check import with_synth_check
from compiler.training import evaluate, load_checkpoint, save_checkpoint, train
from compiler.validate import output_dir_problems
from compiler.vendor import VendorToolMissing
from compiler.zoo import QuantSpec, build_model, eight_bit_format, load_float_state_dict
from passes.compare import compare_lowered


@dataclass
class FlowSpec:
    """What a flow chooses: zoo model name, its build arguments (full and --quick), training and PTQ defaults."""

    model: str
    model_cfg: dict
    quick_model_cfg: dict
    epochs: int
    quick_epochs: int = 1
    default_output_dir: str = "out/flow"
    train_kwargs: dict = field(default_factory=dict)
    ptq: tuple = ("calibrate",)
    eight_bit_ends: bool = False  # first and last layer 8-bit (fp:e4m3 / int:8) unless --first/--last say otherwise
    verify_images: int = 4  # test images of the verification ladder (without --verify-images)
    quick_verify_images: int = 4  # the same with --quick
    qonnx_name: str = None  # file name of the QONNX export in the output directory (default "<model>.qonnx.onnx")
    seed: int = 0  # torch seed before any model is built; None: torch's default generator


def quant_spec(weights, acts, first=None, last=None, eight_bit_ends=False):
    """The flows' QuantSpec: W/A formats; first and last layer as given, else (``eight_bit_ends``) the 8-bit format
    of the weights' family (``compiler.zoo.eight_bit_format``), else as the body."""
    eight = eight_bit_format(weights) if eight_bit_ends else None
    return QuantSpec(weights=weights, acts=acts, first=first or eight, last=last or eight)


def board_numbers(report):
    """Throughput, latency and resource totals of a build's estimate reports (``report`` directory)."""
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    res = json.loads((report / "estimate_layer_resources.json").read_text())["total"]
    return {"fps": perf["estimated_throughput_fps"], "latency_ns": perf["estimated_latency_ns"],
            "max_cycles": perf["max_cycles"], "LUT": res["LUT"], "BRAM_18K": res["BRAM_18K"], "DSP": res["DSP"],
            "URAM": res.get("URAM", 0), "FF": res["FF"]}


def prefer_hls(model, cfg):
    """Ask SpecializeLayers for the HLS variant of every hardware node (cppsim with g++ in verification)."""
    for node in model.graph.node:
        if node.domain == "finn.custom_op.fpgadataflow":
            getCustomOp(node).set_nodeattr("preferred_impl_style", "hls")
    return model


prefer_hls.step_name = "step_prefer_hls"


class Flow(ABC):
    """The stages of a classifier flow; ``run`` calls them in order, subclasses override single stages.

    Stage methods read and set attributes of the run (``self.args``, ``self.out``, the data, the models, the QONNX
    model); ``messages`` maps a stage event to the line printed for it (``str.format`` with the event's facts), an
    event without a message is silent.
    """

    messages = {}

    def __init__(self, spec, prog, doc):
        self.spec, self.prog, self.doc = spec, prog, doc

    # --- command line -------------------------------------------------------------------------------------------
    def parse_args(self, argv=None):
        spec = self.spec
        p = argparse.ArgumentParser(prog=self.prog, description=self.doc.split("\n\n")[0],
                                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=self.doc)
        epochs = f"{spec.quick_epochs} epoch{'s' if spec.quick_epochs > 1 else ''}"
        p.add_argument("--quick", action="store_true",
                       help=f"smoke run: small model, 2,000 training images, {epochs}, 500 test images")
        p.add_argument("--weights", default="fp:e3m2", help="weight format (fp:eXmY, int:N), e.g. fp:e3m2, int:4")
        p.add_argument("--acts", default="fp:e3m2", help="activation format (fp:eXmY, int:N, uint:N)")
        ends = "8-bit: fp:e4m3 or int:8" if spec.eight_bit_ends else "as --weights/--acts"
        p.add_argument("--first", default=None, help=f"first-layer format (default {ends})")
        p.add_argument("--last", default=None, help=f"last-layer format (default {ends})")
        p.add_argument("--board", default="Pynq-Z2", help="board of the build (folding, reports, verification)")
        p.add_argument("--target-fps", type=float, default=None,
                       help="throughput target (default: the fastest folding that fits)")
        p.add_argument("--impl", choices=["rtl", "hls"], default="rtl",
                       help="node implementation where both exist (rtl: Verilator rtlsim + stitched simulation; hls: "
                            "g++ cppsim node by node)")
        p.add_argument("--epochs", type=int, default=None,
                       help=f"float training epochs (default {spec.epochs}, --quick {spec.quick_epochs})")
        verify = (f"{spec.verify_images}" if spec.verify_images == spec.quick_verify_images
                  else f"{spec.verify_images}, --quick {spec.quick_verify_images}")
        p.add_argument("--verify-images", type=int, default=None,
                       help=f"test images for the verification ladder (default {verify})")
        p.add_argument("--synth-check", action="store_true",
                       help="synthesize every node's RTL with Yosys after code generation and compare with the "
                            "estimates (report/synth_check.json, synth_check.md of the build)")
        self.add_arguments(p)
        p.add_argument("--output-dir", type=Path, default=None, help=self.output_dir_help())
        args = p.parse_args(argv)
        if args.output_dir is None:
            args.output_dir = Path(self.default_output_dir(args))
        problems = self.check_args(args)
        if problems:
            p.error("; ".join(problems))
        return args

    #: count flags (of this flow or a subclass) that must be >= 1 when given: 0 would silently mean "the default"
    COUNT_FLAGS = ("verify_images", "epochs", "threads", "golden_images", "accuracy_images", "workers")

    def check_args(self, args):
        """Problems of the parsed flags, one sentence each, found before anything runs."""
        problems = []
        for name in self.COUNT_FLAGS:
            value = getattr(args, name, None)
            if value is not None and value < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if args.target_fps is not None and not (math.isfinite(args.target_fps) and args.target_fps > 0):
            problems.append(f"--target-fps must be a finite number > 0 (frames per second), got {args.target_fps}")
        for name in ("weights", "acts", "first", "last"):
            value = getattr(args, name, None)
            if value is not None:
                try:
                    parse_format(value)
                except MinifinnError as err:
                    problems.append(f"--{name} {value!r}: {err}")
        return problems + output_dir_problems(args.output_dir)

    def add_arguments(self, parser):
        """The flow's own flags."""

    def default_output_dir(self, args):
        return self.spec.default_output_dir

    def output_dir_help(self):
        return f"default {self.spec.default_output_dir}"

    # --- the skeleton -------------------------------------------------------------------------------------------
    def run(self, args):
        """Run every stage; returns the exit code. Ctrl-C and SIGTERM stop the child processes and end the flow
        with 128 + the signal number."""
        try:
            with children_stop_on_signals():
                return self._run(args)
        except KeyboardInterrupt as err:
            print(f"{self.prog}: {err or 'interrupted'}", file=sys.stderr)
            return getattr(err, "exit_code", 130)

    def _run(self, args):
        self.args, self.out = args, args.output_dir
        self.threads = getattr(args, "threads", 1)
        self.setup()
        (self.out / "report").mkdir(parents=True, exist_ok=True)
        self.t_start = time.time()
        self.marks = {}  # stage -> time.time() at its end
        self.times = {}  # the flow's own stage timings for its report
        try:
            self.check_board()
            self.qspec = quant_spec(args.weights, args.acts, args.first, args.last, self.spec.eight_bit_ends)
            self.x_train, self.y_train, self.x_test, self.y_test = self.load_data()
            self.model_cfg = self.model_config()
            t0 = time.time()
            self.float_model, self.train_seconds = self.train_or_load()
            self.train_wall_seconds = time.time() - t0
            self.float_acc = self.accuracy_of(self.float_model)
            if self.float_acc is not None:
                self.say("float_accuracy", pct=100 * self.float_acc)
            self.say("ptq", qspec=self.qspec)
            self.quant_model = build_model(self.spec.model, self.qspec, **self.model_cfg)
            quantize_ptq(self.float_model, self.quant_model, self.calibration_data(), techniques=self.techniques())
            self.marks["ptq"] = time.time()
            self.quant_acc = self.accuracy_of(self.quant_model)
            if self.quant_acc is not None:
                self.say("quantized_accuracy", pct=100 * self.quant_acc)
            self.say("export", qspec=self.qspec)
            self.qonnx = export_qonnx_model(self.quant_model, self.example_input(),
                                            self.out / (self.spec.qonnx_name or f"{self.spec.model}.qonnx.onnx"))
            self.marks["export"] = time.time()
            self.check_export()
            self.build()
            self.hardware_accuracy()
        except VendorToolMissing as err:
            print(f"{self.prog}: {err}", file=sys.stderr)
            return 3
        except MinifinnError as err:
            print(f"{self.prog}: {err}", file=sys.stderr)
            return 2
        return self.report()

    def say(self, event, **facts):
        text = self.messages.get(event)
        if text is not None:
            print(text.format(**facts))

    # --- stages (defaults) --------------------------------------------------------------------------------------
    def setup(self):
        """Torch threads, the torch seed ``FlowSpec.seed`` (model initialization draws from it), FINN without
        vendor tools."""
        torch.set_num_threads(self.threads)
        if self.spec.seed is not None:
            torch.manual_seed(self.spec.seed)
        ensure_finn_offline()

    def check_board(self):
        """Fail on an unknown --board before anything is trained."""
        get_board(self.args.board)

    def load_data(self):
        """Fashion-MNIST train and test images (--quick: 2,000 and 500)."""
        data_dir = getattr(self.args, "data_dir", None)
        x_tr, y_tr = load_fashion_mnist("train", data_dir)
        x_te, y_te = load_fashion_mnist("test", data_dir)
        if self.args.quick:
            x_tr, y_tr, x_te, y_te = x_tr[:2000], y_tr[:2000], x_te[:500], y_te[:500]
        return x_tr, y_tr, x_te, y_te

    def model_config(self):
        return self.spec.quick_model_cfg if self.args.quick else self.spec.model_cfg

    def train_or_load(self):
        """The float model: loaded from the checkpoint when ``reusable`` says it was trained the same way, else
        trained on the training images and saved there. Returns (model, training seconds)."""
        args, spec = self.args, self.spec
        model = build_model(spec.model, "float", **self.model_cfg)
        epochs = args.epochs or (spec.quick_epochs if args.quick else spec.epochs)
        recipe = self.recipe(epochs)
        ckpt = self.checkpoint_path()
        facts = dict(model=spec.model, cfg=self.model_cfg, ckpt=ckpt, epochs=epochs, images=len(self.x_train),
                     params=sum(p.numel() for p in model.parameters()), threads=self.threads)
        if ckpt.is_file():
            state, saved, metrics = load_checkpoint(ckpt)
            if self.reusable(saved, recipe):
                load_float_state_dict(model, state)
                self.say("reuse", trained=metrics.get("train_seconds", "?"), **facts)
                return model, metrics.get("train_seconds")
            self.say("retrain", **facts)
        self.say("train", **facts)
        hist = train(model, self.x_train, self.y_train, epochs=epochs, threads=self.threads, **self.train_kwargs())
        seconds = round(hist["seconds"], 1)
        save_checkpoint(ckpt, model, recipe, {"train_seconds": seconds})
        return model, seconds

    def checkpoint_path(self):
        return self.out / "float.pt"

    def recipe(self, epochs):
        """What the checkpoint records about how it was trained."""
        return {"model": self.spec.model, "cfg": self.model_cfg, "epochs": epochs, "images": len(self.x_train),
                "train": self.spec.train_kwargs}

    def reusable(self, saved, recipe):
        """A checkpoint is reused when it was trained with the same model, data and recipe."""
        return saved == json.loads(json.dumps(recipe))

    def train_kwargs(self):
        return dict(progress=not self.args.quick, **self.spec.train_kwargs)

    def accuracy_of(self, model):
        """Top-1 accuracy on the test images (``None`` for a flow without data)."""
        return None if self.x_test is None else evaluate(model, self.x_test, self.y_test)

    def calibration_data(self):
        return self.x_train[:2000]

    def techniques(self):
        return tuple(self.spec.ptq)

    def example_input(self):
        return torch.from_numpy(self.x_test[:1])

    def check_export(self):
        """A check of the export before the build (none by default: ``ClassifierFlow`` checks the lowered graph
        against the export after the build)."""

    @abstractmethod
    def build(self):
        """The minifinn build of ``self.qonnx``."""

    @abstractmethod
    def hardware_accuracy(self):
        """Accuracy of the built hardware's exact arithmetic."""

    @abstractmethod
    def report(self):
        """Write the reports, print the summary; returns the exit code."""

    # --- shared by the build stages -----------------------------------------------------------------------------
    def verify_count(self):
        args = self.args
        n = args.verify_images or (self.spec.quick_verify_images if args.quick else self.spec.verify_images)
        return min(n, len(self.x_test))

    def run_steps(self, cfg, n_verify):
        """The runner's default steps on the QONNX model (--impl hls: HLS variants; --bitfile: on to the bitfile),
        verified on the first ``n_verify`` test images. The build replaces an earlier one in its folder, and the
        flow's accuracy report of an earlier run goes (the flow writes it anew after the build)."""
        (self.out / "report" / "accuracy.json").unlink(missing_ok=True)
        np.save(self.out / "verify_input.npy", self.x_test[:n_verify])
        steps = list(DEFAULT_STEPS)
        if self.args.impl == "hls":
            steps.insert(steps.index("step_specialize_layers"), prefer_hls)
        if getattr(self.args, "bitfile", False):
            steps.append("step_synthesize_bitfile")
        if getattr(self.args, "synth_check", False):
            steps = with_synth_check(steps)
        run_build(self.qonnx, cfg, steps=steps, force=True)

    def build_config(self, output_dir, board):
        return BuildConfig(output_dir=str(output_dir), board=board, target_fps=self.args.target_fps,
                           verify_input_npy=str(self.out / "verify_input.npy"))

    def formats(self):
        return {"weights": self.args.weights, "acts": self.args.acts, "first": self.qspec.first,
                "last": self.qspec.last}


class ClassifierFlow(Flow):
    """mlp.py / cnn.py: the build in the output directory, accuracy of the lowered graph (the hardware's exact
    arithmetic) next to the QONNX golden model, ``report/accuracy.json`` and a short summary."""

    messages = {
        "reuse": "[train] float {model}: reusing {ckpt} (same model, data and recipe)",
        "train": "[train] float {model} {cfg}, {epochs} epoch(s) on {images} images",
        "build": "[build] {qspec} on {board}",
    }

    def add_arguments(self, p):
        ptq = ",".join(self.spec.ptq)
        p.add_argument("--ptq", default=ptq,
                       help="Brevitas PTQ techniques, comma-separated (act_equalization, calibrate, gptq, "
                            f"bias_correction; default {ptq})")
        p.add_argument("--bitfile", action="store_true",
                       help="continue to the bitfile (needs Vivado/Vitis HLS; without them the build stops with the "
                            "command to continue on a machine that has them)")

    def check_board(self):
        self.cfg = self.build_config(self.out, self.args.board)  # also checks --target-fps

    def check_args(self, args):
        problems = super().check_args(args)
        unknown = [t.strip() for t in args.ptq.split(",") if t.strip() and t.strip() not in TECHNIQUES]
        if unknown:
            problems.append(f"--ptq: unknown technique(s) {', '.join(unknown)}; known: {', '.join(TECHNIQUES)}")
        return problems

    def techniques(self):
        return tuple(t.strip() for t in self.args.ptq.split(",") if t.strip())

    def build(self):
        n_verify = self.verify_count()
        self.say("build", qspec=self.qspec, board=self.args.board)
        t0 = time.time()
        self.run_steps(self.cfg, n_verify)
        self.build_seconds = time.time() - t0

    def hardware_accuracy(self):
        lowered = ModelWrapper(str(self.out / "intermediate_models" / "step_lower.onnx"))
        self.cmp = compare_lowered(self.qonnx, lowered, self.x_test, batch_size=250, labels=self.y_test)

    def report(self):
        acc = {"float": self.float_acc, "brevitas_quantized": self.quant_acc,
               "hardware_exact": self.cmp["accuracy_lowered"], "qonnx_golden": self.cmp["accuracy_qonnx"],
               "test_images": int(len(self.x_test)), "formats": self.formats(), "ptq": list(self.techniques()),
               "train_seconds": round(self.train_wall_seconds, 1), "build_seconds": round(self.build_seconds, 1)}
        (self.out / "report" / "accuracy.json").write_text(json.dumps(acc, indent=2) + "\n")
        print_summary(self.out, acc, self.args.board, time.time() - self.t_start)
        return 0


def print_summary(out, acc, board, total_seconds):
    nums = board_numbers(out / "report")
    ver = json.loads((out / "report" / "verification.json").read_text())
    print(f"\naccuracy: float {100 * acc['float']:.2f} %, Brevitas {100 * acc['brevitas_quantized']:.2f} %, "
          f"hardware-exact {100 * acc['hardware_exact']:.2f} % ({acc['test_images']} test images)")
    print(f"estimates: {nums['fps']:.0f} FPS, latency {nums['latency_ns']:.0f} ns, "
          f"LUT {nums['LUT']:.0f}, BRAM_18K {nums['BRAM_18K']:.0f}, DSP {nums['DSP']:.0f} on {board}")
    stitched = ver.get("stitched_rtlsim", {})
    rung = (f"stitched rtlsim {stitched['passed']}/{stitched['passed'] + stitched['failed']}" if "passed" in stitched
            else f"stitched rtlsim skipped ({stitched.get('skipped', 'n/a')})")
    print(f"verification on {ver['images']} images: {'passed' if ver['passed'] else 'FAILED'} ({rung}); build "
          f"{acc['build_seconds']:.1f} s, total {total_seconds:.0f} s; reports in {out / 'report'}")


def run_flow(args, spec, prog, doc=""):
    """Run the classifier flow of ``spec`` on parsed ``args`` (``parse_args``); returns the exit code."""
    return ClassifierFlow(spec, prog, doc).run(args)


def parse_args(prog, doc, spec, argv=None):
    """The classifier flows' command line (``Flow.parse_args``)."""
    return ClassifierFlow(spec, prog, doc).parse_args(argv)
