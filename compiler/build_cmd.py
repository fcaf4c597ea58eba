"""``minifinn build MODEL.onnx --config cfg.yaml``: run the standard build steps (compiler/steps.py) on a QONNX
model. Command-line options override the config file's fields.

Everything is checked before any work (compiler/runner.py ``prepare_build``): all problems are printed together,
exit code 2, no traceback. Without sample inputs (--verify-input or --verify-random) the build stops before the
first step that needs them and says how to continue. Exit codes: 0 done, 2 a problem with the inputs or the build
(the message says what to fix), 1 an internal error (traceback in the log), 128 + signal number when interrupted
(130 Ctrl-C, 143 SIGTERM; the message gives the resume command).
"""

import argparse
import sys
import tempfile
import traceback
from pathlib import Path

from compiler import validate
from compiler.build_dir import LOG
from compiler.config import BuildConfig
from compiler.errors import ConfigError, MinifinnError
from compiler.runner import (
    DEFAULT_STEPS,
    BuildError,
    execute,
    prepare_build,
    resolve_step,
    resume_command,
    select_steps,
)
from compiler.synth_check import with_synth_check

STEP_HELP = {
    "step_lower": "QONNX -> exact integer lowered graph",
    "step_convert_to_hw": "every compute node a hardware op",
    "step_create_dataflow_partition": "one dataflow partition (FINN)",
    "step_specialize_layers": "HLS or RTL variant per node",
    "step_folding": "resource-aware folding for the board",
    "step_estimate_reports": "report/estimate_*.json, summary.md",
    "step_hw_codegen": "Verilog / HLS C++ + tcl, cppsim builds",
    "step_fifo_sizing": "FIFO depths by stitched simulation (needs sample inputs)",
    "step_verify": "verification ladder, report/verification.json (needs sample inputs)",
    "step_make_driver": "PYNQ/Alveo driver in driver/",
}


def _epilog():
    steps = "\n".join(f"  {i + 1:2d}. {name:32s}{STEP_HELP.get(name, '')}" for i, name in enumerate(DEFAULT_STEPS))
    return (f"steps (compiler.steps.DEFAULT_STEPS; resume with --start-step):\n{steps}\n"
            "  with --synth-check, step_synth_check runs after step_hw_codegen (report/synth_check.json, .md)\n\n"
            "outputs in OUTPUT_DIR: report/ (estimates, summary.md, fifo_sizing.json, verification.json), "
            "intermediate_models/ (one model per step), driver/, finn_build/ (generated code and simulations), "
            "time_per_step.json, build.log, build_manifest.json (the model, config and outputs of the build), "
            "resume_config.json (the config to resume with)\n\n"
            "exit codes: 0 done, 2 a problem to fix (the message names it), 1 internal error (traceback in "
            "build.log), 130/143 interrupted by Ctrl-C/SIGTERM (the message gives the resume command)")


def build_parser():
    p = argparse.ArgumentParser(
        prog="minifinn build", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compile a QONNX model (Brevitas export) into a minifloat dataflow accelerator: lowering, "
                    "hardware mapping, folding for the board, estimate reports, HLS/RTL code generation, FIFO sizing, "
                    "the verification ladder and the driver. Everything is checked before the build starts.",
        epilog=_epilog())
    p.add_argument("model", help="QONNX model file (compiler.export.export_qonnx_model or brevitas export_qonnx), "
                                 "batch 1, static shapes")
    p.add_argument("--config", help="build config (JSON or YAML, fields of compiler.config.BuildConfig)")
    p.add_argument("--output-dir", help="output folder (default build/minifinn); it records which model and config "
                                        "built it")
    p.add_argument("--board", help="e.g. Pynq-Z2, ZCU104, U250")
    p.add_argument("--target-fps", type=float, help="throughput target; omit for the fastest folding that fits")
    p.add_argument("--start-step", help="resume at this step (the output folder must hold the earlier steps of a "
                                        "build of the same model and config)")
    p.add_argument("--stop-step", help="end after this step")
    p.add_argument("--verify-input", help=".npy batch of model inputs, shape (N, *input shape without batch), for "
                                          "step_fifo_sizing and step_verify")
    p.add_argument("--verify-random", type=int, metavar="N",
                   help="use N random inputs (normal, seed 0; saved as OUTPUT_DIR/verify_input_random.npy) instead "
                        "of --verify-input")
    p.add_argument("--synth-check", action="store_true",
                   help="after step_hw_codegen, synthesize every node's RTL with Yosys for the board's FPGA family "
                        "and compare with the estimates (report/synth_check.json, synth_check.md)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier build of another model or config in OUTPUT_DIR (its outputs are removed; "
                        "the build starts at the first step)")
    return p


def _config(args):
    """The BuildConfig of the config file and the flags; on a config problem a ValidationError that also lists the
    model's and the output folder's problems (independent ones are reported together)."""
    overrides = {"output_dir": args.output_dir, "board": args.board, "target_fps": args.target_fps,
                 "start_step": args.start_step, "stop_step": args.stop_step, "verify_input_npy": args.verify_input}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        data = BuildConfig.read_file(args.config) if args.config else {}
        source = args.config or "command line"
        if args.config and overrides:
            source += " with the command line"
        return BuildConfig.from_dict({**data, **overrides}, source)
    except ConfigError as err:
        problems = list(getattr(err, "problems", [str(err)]))
        _, found = validate.load_model(args.model)
        problems += found
        if isinstance(args.output_dir, str) and args.output_dir.strip():
            problems += validate.output_dir_problems(args.output_dir)
        raise validate.ValidationError(problems) from None


def _stop_before_sample_steps(cfg):
    """Without sample inputs: stop before the first step that needs them (``cfg.stop_step``); returns the steps
    left out, or [] (nothing to change, or the range starts with such a step: prepare_build then says so)."""
    try:
        names = [resolve_step(s)[0] for s in (cfg.steps or DEFAULT_STEPS)]
        start, stop = select_steps(names, cfg)
    except BuildError:
        return []  # reported by prepare_build
    needing = validate.needs_sample_inputs(names[start:stop], cfg)
    if not needing or names.index(needing[0]) == start:
        return []
    first = names.index(needing[0])
    cfg.stop_step = names[first - 1]
    return names[first:stop]


def _build(args):
    if args.verify_random is not None and args.verify_random < 1:
        raise validate.ValidationError([f"--verify-random must be >= 1 (the number of random inputs), got "
                                        f"{args.verify_random}"])
    cfg = _config(args)
    if args.synth_check:
        cfg.steps = with_synth_check(cfg.steps or DEFAULT_STEPS)
    left_out = [] if (cfg.verify_input_npy or args.verify_random) else _stop_before_sample_steps(cfg)
    if left_out:
        print(f"minifinn build: no --verify-input: the build stops after {cfg.stop_step}, since {left_out[0]} needs "
              f"sample inputs (--verify-input x.npy or --verify-random N); not run: {', '.join(left_out)}")
    plan = prepare_build(args.model, cfg, force=args.force, random_inputs=args.verify_random or 0)
    execute(plan)
    report = Path(cfg.output_dir) / "report"
    if left_out:
        command = resume_command(plan, [n for n, _ in plan.resolved].index(left_out[0]))
        how = f"{command} --verify-input x.npy (or --verify-random N)" if command else \
            f"--start-step {left_out[0]} and --verify-input x.npy"
        print(f"minifinn build: done up to {cfg.stop_step} (reports in {report}); to run {', '.join(left_out)}: "
              f"{how}")
    else:
        print(f"minifinn build: done; reports in {report}")
    return 0


def _log_traceback(output_dir):
    """Append the current traceback to OUTPUT_DIR/build.log (or a temporary file); returns the file."""
    text = traceback.format_exc()
    try:
        path = Path(output_dir) / LOG
        if not path.parent.is_dir():
            raise OSError
        with open(path, "a") as f:
            f.write(text)
    except (OSError, TypeError):
        with tempfile.NamedTemporaryFile("w", prefix="minifinn_error_", suffix=".log", delete=False) as f:
            f.write(text)
            path = Path(f.name)
    return path


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return _build(args)
    except KeyboardInterrupt as err:
        print(f"minifinn build: {err or 'interrupted'}", file=sys.stderr)
        return getattr(err, "exit_code", 130)
    except MinifinnError as err:
        print(f"minifinn build: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: keep the traceback in the log, not on the terminal
        path = _log_traceback(args.output_dir or "build/minifinn")
        print(f"minifinn build: internal error ({type(err).__name__}: {err}); the traceback is in {path}; please "
              "report it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
