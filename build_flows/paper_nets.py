"""The paper's networks: torchvision's ResNet-18, MobileNetV2 and ViT-B/32 quantized with ``quantize_model`` and
compiled to resource and throughput estimates.

    python build_flows/paper_nets.py --arch resnet18                        # W/A E4M3, 224x224, U250
    python build_flows/paper_nets.py --arch mobilenet_v2 --weights fp:e3m2 --acts fp:e3m2
    python build_flows/paper_nets.py --arch resnet18 --state-dict resnet18.pth --calib-data fashion-mnist

Stages: (1) the torchvision network (random weights from a fixed seed, or --state-dict); (2) ``compiler.ptq.
quantize_model`` with the paper's recipe (per-channel weights, per-tensor activations, every product, add and pool
reading quantized tensors, first and last layer 8-bit unless --first/--last), calibrated on --calib-images inputs
(random normal, or Fashion-MNIST resized to --input-size and repeated to 3 channels); (3) QONNX export; (4) the
runner's standard steps up to ``step_estimate_reports`` for --board (lowering, hardware conversion, one dataflow
partition, resource-aware folding: the fastest folding that fits, estimates). No RTL simulation: at 224x224 the
point is whether and how the network maps. A compiler error (an unmappable node, a design that does not fit the
board even fully folded) is printed as the compiler words it, exit code 2.

Outputs in --output-dir (default out/paper_nets/<arch>_<weights>_<acts>): ``<arch>.qonnx.onnx``, ``build/`` (the
build's report/ with estimate_*.json, intermediate_models/, build.log) and ``report/summary.json``; the last line
printed is the summary (LUT, BRAM, URAM, DSP, FPS, bottleneck, wall time).

``torchvision_network(arch, reduced=True)`` gives the small variants the default test suite builds and verifies bit
for bit (tests/test_paper_nets.py): torchvision's own classes and module structure, narrow and for 32x32 inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # allow `python build_flows/paper_nets.py` without installation
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torchvision.models.mobilenetv2 import MobileNetV2  # noqa: E402
from torchvision.models.resnet import BasicBlock, ResNet  # noqa: E402

import compiler.steps  # noqa: E402,F401  (registers the build steps)
from build_flows.classifier_flow import board_numbers  # noqa: E402
from compiler.boards import get_board  # noqa: E402
from compiler.config import BuildConfig  # noqa: E402
from compiler.data import load_fashion_mnist  # noqa: E402
from compiler.errors import MinifinnError  # noqa: E402
from compiler.export import export_qonnx_model  # noqa: E402
from compiler.finn_env import ensure_finn_offline  # noqa: E402
from compiler.interrupts import children_stop_on_signals  # noqa: E402
from compiler.numerics import parse_format  # noqa: E402
from compiler.ptq import quantize_model  # noqa: E402
from compiler.runner import run_build  # noqa: E402
from compiler.validate import output_dir_problems  # noqa: E402

ARCHS = ("resnet18", "mobilenet_v2", "vit_b_32")
SEED = 0


class NarrowResNet(ResNet):
    """torchvision's ResNet with the stem and the four stages ``width``, 2, 4, 8 x ``width`` channels wide (ResNet-18:
    64) and ``layers`` BasicBlocks per stage: the same module names and forward, built by torchvision's
    ``_make_layer``."""

    def __init__(self, width=8, layers=(1, 1, 1, 1), num_classes=10):
        super().__init__(BasicBlock, list(layers), num_classes=num_classes)
        self.inplanes = width
        self.conv1 = torch.nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = self._norm_layer(width)
        for i in range(4):
            setattr(self, f"layer{i + 1}", self._make_layer(BasicBlock, width * 2**i, layers[i], stride=1 if i == 0
                                                            else 2))
        self.fc = torch.nn.Linear(width * 8, num_classes)
        for m in self.modules():  # torchvision's initialization, for the replaced layers too
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def torchvision_network(arch, image_size=224, num_classes=1000, reduced=False):
    """The float torchvision network ``arch`` (random weights from the current torch seed), in eval mode.

    ``reduced``: ResNet-18 -> ``NarrowResNet`` (width 4, one block per stage); MobileNetV2 -> width 0.25, channels
    rounded to 4, two inverted-residual stages (the second with its residual block); ViT-B/32 -> 1 layer, 2 heads,
    width 32, MLP 64. Every reduced network keeps its kind of layers: the overlapping stem max pool, residual adds,
    downsampling convolutions, depthwise convolutions, attention.
    """
    if arch not in ARCHS:
        raise MinifinnError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "resnet18":
        model = NarrowResNet(width=4, num_classes=num_classes) if reduced else \
            torchvision.models.resnet18(num_classes=num_classes)
    elif arch == "mobilenet_v2":
        model = MobileNetV2(num_classes=num_classes, width_mult=0.25, round_nearest=4,
                            inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2]]) if reduced else \
            torchvision.models.mobilenet_v2(num_classes=num_classes)
    elif reduced:
        model = torchvision.models.VisionTransformer(image_size=image_size, patch_size=image_size // 4, num_layers=1,
                                                     num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=num_classes)
    else:
        model = torchvision.models.vit_b_32(image_size=image_size, num_classes=num_classes)
    return model.eval()


def calibration_inputs(kind, n, size, data_dir=None):
    """``n`` calibration images (n, 3, size, size): standard normal (``random``), or Fashion-MNIST training images
    resized to ``size`` (bilinear), repeated to 3 channels and standardized (``fashion-mnist``)."""
    if kind == "random":
        return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(SEED + 1))
    x, _ = load_fashion_mnist("train", data_dir)
    x = F.interpolate(torch.from_numpy(x[:n]), size=(size, size), mode="bilinear", align_corners=False)
    return ((x - x.mean()) / x.std()).repeat(1, 3, 1, 1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="paper_nets.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--arch", choices=ARCHS, default="resnet18", help="torchvision network (default resnet18)")
    p.add_argument("--weights", default="fp:e4m3", help="weight format (default fp:e4m3; fp:e3m2, ocp:e4m3, int:8...)")
    p.add_argument("--acts", default="fp:e4m3", help="activation format (default fp:e4m3)")
    p.add_argument("--first", default=None, help="first-layer format (default: 8-bit of the weights' family)")
    p.add_argument("--last", default=None, help="last-layer format (default: 8-bit of the weights' family)")
    p.add_argument("--board", default="U250", help="board of the estimates (default U250)")
    p.add_argument("--input-size", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--state-dict", type=Path, default=None,
                   help="torchvision state dict (.pth) to load; default: random weights (torch seed 0)")
    p.add_argument("--calib-data", choices=("random", "fashion-mnist"), default="random",
                   help="calibration inputs (default random normal images)")
    p.add_argument("--calib-images", type=int, default=8, help="calibration images (default 8)")
    p.add_argument("--data-dir", type=Path, default=None, help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--target-fps", type=float, default=None, help="throughput target (default: fastest that fits)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="default out/paper_nets/<arch>_<weights>_<acts>")
    args = p.parse_args(argv)
    problems = []
    for name in ("weights", "acts", "first", "last"):
        value = getattr(args, name)
        if value is not None:
            try:
                parse_format(value)
            except MinifinnError as err:
                problems.append(f"--{name} {value!r}: {err}")
    for name in ("input_size", "num_classes", "calib_images", "threads"):
        if getattr(args, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1")
    if args.output_dir is None:
        tag = "_".join(s.replace(":", "") for s in (args.arch, args.weights, args.acts))
        args.output_dir = Path("out/paper_nets") / tag
    problems += output_dir_problems(args.output_dir)
    if problems:
        p.error("; ".join(problems))
    return args


def summary_line(arch, nums, bottleneck, wall_s):
    return (f"{arch}: LUT {nums['LUT']:,.0f}, BRAM_18K {nums['BRAM_18K']:,.0f}, URAM {nums['URAM']:,.0f}, "
            f"DSP {nums['DSP']:,.0f}, {nums['fps']:,.1f} FPS, bottleneck {bottleneck}, {wall_s:.0f} s")


def run(args):
    """The stages of the module doc; returns the summary dict (raises ``MinifinnError`` from the compiler)."""
    t0 = time.time()
    out = args.output_dir
    (out / "report").mkdir(parents=True, exist_ok=True)
    board = get_board(args.board)
    torch.manual_seed(SEED)
    model = torchvision_network(args.arch, args.input_size, args.num_classes)
    if args.state_dict is not None:
        try:
            model.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
        except (RuntimeError, OSError) as err:
            raise MinifinnError(f"--state-dict {args.state_dict}: {err}") from None
    weights = "random (seed 0)" if args.state_dict is None else str(args.state_dict)
    print(f"[1/4] {args.arch} {args.input_size}x{args.input_size}, {args.num_classes} classes, weights {weights}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")
    calib = calibration_inputs(args.calib_data, args.calib_images, args.input_size, args.data_dir)
    print(f"[2/4] quantize_model W {args.weights} A {args.acts} (first/last {args.first or '8-bit'}/"
          f"{args.last or '8-bit'}), calibration on {len(calib)} {args.calib_data} images")
    qmodel = quantize_model(model, args.weights, args.acts, args.first, args.last, calib=calib)
    times = {"quantize_s": round(time.time() - t0, 1)}
    print("[3/4] QONNX export")
    qonnx = export_qonnx_model(qmodel, calib[:1], out / f"{args.arch}.qonnx.onnx")
    times["export_s"] = round(time.time() - t0 - times["quantize_s"], 1)
    print(f"[4/4] minifinn build to estimates for {board.name}")
    t1 = time.time()
    cfg = BuildConfig(output_dir=str(out / "build"), board=board.name, target_fps=args.target_fps,
                      stop_step="step_estimate_reports")
    run_build(qonnx, cfg, force=True)  # the flow's folder: replace an earlier build
    times["build_s"] = round(time.time() - t1, 1)
    times["total_s"] = round(time.time() - t0, 1)
    report = out / "build" / "report"
    nums = board_numbers(report)
    perf = json.loads((report / "estimate_network_performance.json").read_text())
    summary = {"arch": args.arch, "input_size": args.input_size, "weights": args.weights, "acts": args.acts,
               "first": args.first, "last": args.last, "board": board.name, "estimates": nums,
               "bottleneck": perf["max_cycles_node_name"], "quant_sites": len(qmodel.quant_sites), "times": times}
    (out / "report" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(summary_line(args.arch, nums, summary["bottleneck"], times["total_s"]))
    return summary


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    ensure_finn_offline()
    try:
        with children_stop_on_signals():
            run(args)
    except KeyboardInterrupt as err:
        print(f"paper_nets.py: {err or 'interrupted'}", file=sys.stderr)
        return getattr(err, "exit_code", 130)
    except MinifinnError as err:
        print(f"paper_nets.py: {args.arch}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
