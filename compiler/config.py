"""Build configuration: a dataclass that round-trips through JSON and YAML.

Field names follow FINN's ``DataflowBuildConfig`` where the meaning is the same (output_dir, board, fpga_part,
shell_flow_type, synth_clk_period_ns, target_fps, folding_config_file, specialize_layers_config_file, steps,
start_step, stop_step, verify_input_npy, save_intermediate_models), plus minifinn's FIFO sizing (fifo_sizing,
fifo_sizing_frames), RTL simulator (rtlsim_backend) and weights off chip (weights_off_chip). Every field is read
by a step or the runner; number formats come from the QONNX model.

Every field is checked for its type and range when a config is made or validated (``field_problems``); all problems
are reported in one ``ConfigError``. In a config file a number may also be written as a string (YAML reads ``1e6``
as a string), numeric strings are converted.
"""

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Optional

import yaml

from compiler.boards import get_board
from compiler.errors import ConfigError

SHELL_FLOWS = ("vivado_zynq", "vitis_alveo")
FIFO_SIZING = ("rtlsim", "none")
REQUANT_STYLES = ("auto", "parallel", "bsearch", "convert")
RTLSIM_BACKENDS = ("verilator", "icarus")  # custom_ops/rtl/simulators.py RTL_SIMULATORS
MAC_DSP = ("auto", "lut", "dsp")  # MinifloatMVAU mac_dsp: the folding may use DSP48 products / LUTs only / DSPs
WEIGHTS_OFF_CHIP = ("auto", "never", "always")  # passes/external_weights.py SetWeightsOffChip modes


def _number(value, integer=False):
    """``value`` as a number (bools are not numbers; numeric strings are converted), or None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
        if integer and value.is_integer():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    if integer and not isinstance(value, Integral):
        return int(value) if float(value).is_integer() else None
    return value


def _real(lo=None, optional=False, what=""):
    def check(name, value):
        if value is None and optional:
            return None, None
        number = _number(value)
        if number is None or not math.isfinite(number) or (lo is not None and number <= lo):
            return None, f"{name} must be > {lo}, a finite number{what}, got {value!r}"
        return float(number), None
    return check


def _int(lo, hi=None):
    def check(name, value):
        number = _number(value, integer=True)
        if number is None or number < lo or (hi is not None and number > hi):
            span = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
            return None, f"{name} must be an integer {span}, got {value!r}"
        return int(number), None
    return check


def _text(optional=False, choices=None):
    def check(name, value):
        if value is None and optional:
            return None, None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            return None, f"{name} must be a non-empty string, got {value!r}"
        if choices is not None and value not in choices:
            return None, f"{name} {value!r} is not one of {choices}"
        return value, None
    return check


def _flag(name, value):
    if isinstance(value, bool):
        return value, None
    return None, f"{name} must be true or false, got {value!r}"


def _steps(name, value):
    if value is None:
        return None, None
    if not isinstance(value, (list, tuple)) or not all(callable(s) or (isinstance(s, str) and s.strip())
                                                       for s in value):
        return None, f"{name} must be a list of step names (e.g. [step_lower, step_convert_to_hw]), got {value!r}"
    return list(value), None


#: field -> check(name, value) -> (normalized value, problem or None), one rule per field (tests/test_bad_inputs.py)
FIELD_RULES = {
    "output_dir": _text(),
    "board": _text(),
    "fpga_part": _text(optional=True),
    "shell_flow_type": _text(optional=True, choices=SHELL_FLOWS),
    "synth_clk_period_ns": _real(0, what=" (clock period in ns)"),
    "target_fps": _real(0, optional=True, what=" (frames per second)"),
    "folding_config_file": _text(optional=True),
    "specialize_layers_config_file": _text(optional=True),
    "steps": _steps,
    "start_step": _text(optional=True),
    "stop_step": _text(optional=True),
    "verify_input_npy": _text(optional=True),
    "save_intermediate_models": _flag,
    "fifo_sizing": _text(choices=FIFO_SIZING),
    "fifo_sizing_frames": _int(1),
    "requant_style": _text(choices=REQUANT_STYLES),
    "requant_scale_bits": _int(2, 32),
    "synth_check_strict": _flag,
    "synth_check_dsp": _flag,
    "rtlsim_backend": _text(choices=RTLSIM_BACKENDS),
    "mac_dsp": _text(choices=MAC_DSP),
    "weights_off_chip": _text(choices=WEIGHTS_OFF_CHIP),
}


@dataclass
class BuildConfig:
    output_dir: str = "build/minifinn"
    board: str = "Pynq-Z2"
    fpga_part: Optional[str] = None  # derived from board when None
    shell_flow_type: Optional[str] = None  # derived from board when None
    synth_clk_period_ns: float = 10.0
    target_fps: Optional[float] = None
    folding_config_file: Optional[str] = None
    specialize_layers_config_file: Optional[str] = None
    steps: Optional[list] = None  # None: the default step list
    start_step: Optional[str] = None
    stop_step: Optional[str] = None
    verify_input_npy: Optional[str] = None
    save_intermediate_models: bool = True
    # FIFO sizing: "rtlsim" = high-water marks of a stitched RTL simulation of the partition on
    # fifo_sizing_frames verification inputs (all nodes RTL); "none" = FINN's default depths
    fifo_sizing: str = "rtlsim"
    fifo_sizing_frames: int = 2
    # per-channel requantizers: "auto" = the folding picks each node's style by cost (parallel or binary-search
    # thresholds, or conversion by a scale mantissa of requant_scale_bits bits); a style name forces it
    requant_style: str = "auto"
    requant_scale_bits: int = 16
    # step_synth_check (optional, minifinn build --synth-check): a node Yosys fails on fails the step (strict) or is
    # only recorded; synth_check_dsp = False synthesizes with -nodsp (multipliers in LUTs, a LUT-only check)
    synth_check_strict: bool = False
    synth_check_dsp: bool = True
    # the RTL simulator of node rtlsim, the stitched simulation and FIFO sizing: "verilator" (compiled once per
    # design and cached; Icarus when verilator is not on PATH) or "icarus"
    rtlsim_backend: str = "verilator"
    # MAC significand products: "auto" = the folding picks LUTs or DSP48s per node by cost, "lut" LUTs only (the
    # paper's comparison basis), "dsp" DSP48s wherever the operands fit
    mac_dsp: str = "auto"
    # weight matrices in external memory (DDR/HBM, streamed every frame; MinifloatMVAU mem_mode "external"): "auto" =
    # only as many as needed for the rest to fit the board's block memory (largest first), "never", "always"
    weights_off_chip: str = "auto"

    def __post_init__(self):
        self.validate()

    def field_problems(self):
        """Type and range problems of every field with a rule (``FIELD_RULES``) and an unknown board, one sentence
        each; valid values are normalized in place (numeric strings to numbers, paths to strings)."""
        problems = []
        for name, rule in FIELD_RULES.items():
            value, problem = rule(name, getattr(self, name))
            if problem:
                problems.append(problem)
            else:
                setattr(self, name, value)
        if isinstance(self.board, str):
            try:
                get_board(self.board)
            except ConfigError as err:
                problems.append(str(err))
        return problems

    def validate(self):
        problems = self.field_problems()
        if problems:
            raise _config_error(problems)
        board = get_board(self.board)  # raises with the list of known boards
        self.board = board.name
        if self.fpga_part is None:
            self.fpga_part = board.part
        if self.shell_flow_type is None:
            self.shell_flow_type = board.shell_flow
        if self.shell_flow_type not in SHELL_FLOWS:
            raise ConfigError(f"shell_flow_type {self.shell_flow_type!r} is not one of {SHELL_FLOWS}")

    @property
    def clock_mhz(self):
        return 1000.0 / self.synth_clk_period_ns

    def to_dict(self):
        return dataclasses.asdict(self)

    def save(self, path):
        path = Path(path)
        text = _dump(self.to_dict(), path.suffix)
        path.write_text(text)
        return path

    @classmethod
    def from_dict(cls, data, source="config"):
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of config fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown config field(s) {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as err:
            raise _config_error([f"{source}: {p}" for p in getattr(err, "problems", [str(err)])]) from None

    @staticmethod
    def read_file(path):
        """The mapping of fields in a JSON or YAML config file (not checked yet: ``from_dict`` checks it)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist" if not path.exists() else
                              f"config file {path} is not a file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} cannot be read: {err}") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as err:  # parse errors of either format
            raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper() or 'JSON'}: {err}") from None
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping of config fields (field: value), got "
                              f"{type(data).__name__}")
        return data

    @classmethod
    def load(cls, path):
        return cls.from_dict(cls.read_file(path), source=str(path))


def _config_error(problems):
    """One ConfigError for all ``problems`` (also kept as its ``problems`` list)."""
    err = ConfigError(problems[0] if len(problems) == 1 else
                      f"{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))
    err.problems = list(problems)
    return err


def _dump(data, suffix):
    if suffix in (".yaml", ".yml"):
        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"
