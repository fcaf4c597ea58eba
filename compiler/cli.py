"""The ``minifinn`` command line.

Sub-commands are registered in ``COMMANDS`` as (module, help) pairs; each module provides
``add_arguments(parser)`` and ``run(args) -> int``, or a ``main(argv) -> int`` that takes over argument parsing.
Modules are imported only when their command runs, so ``minifinn --help`` is instant.

A sub-command reports the problems it expects itself (exit code 2); ``main`` catches what is left, so no traceback
reaches the terminal: Ctrl-C ends with exit code 130, an internal error with 1 and its traceback in a log file
(set ``MINIFINN_TRACEBACK=1`` to see it on the terminal instead).
"""

import argparse
import importlib
import os
import sys
import tempfile
import traceback

DESCRIPTION = """\
minifinn compiles Brevitas-quantized networks with minifloat (sign + ExMy, 3-8 bits) or integer
weights and activations into FINN-style streaming dataflow accelerators, with bit-exact Python,
C++ (HLS) and Verilog (RTL) models of every layer.

Typical use:
  minifinn build model.onnx --board Pynq-Z2 --output-dir out/mlp   compile a QONNX model
  minifinn formats e3m2 int4          show what a number format can represent
  minifinn mac-sweep --quick          synthesize minifloat vs integer MACs with Yosys
Full flows live in build_flows/ (e.g. python build_flows/vit_tiny.py --help).
"""

# name -> (module, one-line help). Entries whose module is missing are reported, not hidden.
COMMANDS = {
    "build": ("compiler.build_cmd", "compile a QONNX model: lower, map to hardware, fold, estimate, codegen, verify"),
    "dse": ("build_flows.dse", "design-space exploration: accuracy vs hardware cost over number formats"),
    "formats": ("compiler.formats_cmd", "describe number formats (range, values, accumulator widths)"),
    "mac-sweep": ("build_flows.mac_sweep", "synthesize MACs / dot products for all formats with Yosys"),
}


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minifinn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}")
    if os.environ.get("MINIFINN_TRACEBACK"):
        return _run(name, rest)
    try:
        return _run(name, rest)
    except KeyboardInterrupt:
        print(f"minifinn {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: the traceback goes to a log file
        with tempfile.NamedTemporaryFile("w", prefix="minifinn_error_", suffix=".log", delete=False) as f:
            f.write(traceback.format_exc())
        print(f"minifinn {name}: internal error ({type(err).__name__}: {err}); the traceback is in {f.name}; "
              "please report it", file=sys.stderr)
        return 1


def _run(name, rest):
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):
            print(f"minifinn {name}: not available in this installation ({module_name} is missing)", file=sys.stderr)
            return 2
        raise
    if hasattr(module, "main"):
        return int(module.main(rest) or 0)
    sub_parser = argparse.ArgumentParser(prog=f"minifinn {name}", description=help_text)
    module.add_arguments(sub_parser)
    return int(module.run(sub_parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
