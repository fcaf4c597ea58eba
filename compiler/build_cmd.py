"""``minifinn build MODEL.onnx --config cfg.yaml``: run the standard build steps (compiler/steps.py) on a QONNX
model. Command-line options override the config file's fields."""

import argparse
import sys

from compiler.config import BuildConfig
from compiler.errors import MinifinnError
from compiler.runner import DEFAULT_STEPS, run_build
from compiler.synth_check import with_synth_check


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="minifinn build",
        description="Compile a QONNX model (Brevitas export) into a minifloat dataflow accelerator: lowering, "
                    "hardware mapping, folding for the board, estimate reports, HLS/RTL code generation and the "
                    "verification ladder. Outputs land in OUTPUT_DIR/report and OUTPUT_DIR/intermediate_models.",
        epilog=f"steps: {', '.join(DEFAULT_STEPS)} (resume with --start-step)")
    p.add_argument("model", help="QONNX model file (compiler.export.export_qonnx_model or brevitas export_qonnx)")
    p.add_argument("--config", help="build config (JSON or YAML, fields of compiler.config.BuildConfig)")
    p.add_argument("--output-dir")
    p.add_argument("--board", help="e.g. Pynq-Z2, ZCU104, U250")
    p.add_argument("--target-fps", type=float, help="throughput target; omit for the fastest folding that fits")
    p.add_argument("--start-step")
    p.add_argument("--stop-step")
    p.add_argument("--verify-input", help=".npy batch of model inputs for step_verify")
    p.add_argument("--synth-check", action="store_true",
                   help="after step_hw_codegen, synthesize every node's RTL with Yosys for the board's FPGA family "
                        "and compare with the estimates (report/synth_check.json, synth_check.md)")
    args = p.parse_args(argv)

    try:
        cfg = BuildConfig.load(args.config) if args.config else BuildConfig()
        overrides = {"output_dir": args.output_dir, "board": args.board, "target_fps": args.target_fps,
                     "start_step": args.start_step, "stop_step": args.stop_step,
                     "verify_input_npy": args.verify_input}
        data = cfg.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        cfg = BuildConfig.from_dict(data, "command line")
        steps = cfg.steps
        if steps is None and not cfg.verify_input_npy:
            steps = [s for s in DEFAULT_STEPS if s != "step_verify"]
            print("minifinn build: no --verify-input given, skipping step_verify")
        if args.synth_check:
            steps = with_synth_check(steps if steps is not None else DEFAULT_STEPS)
        run_build(args.model, cfg, steps=steps)
    except MinifinnError as err:
        print(f"minifinn build: {err}", file=sys.stderr)
        return 2
    print(f"minifinn build: done; reports in {cfg.output_dir}/report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
