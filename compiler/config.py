"""Build configuration: a dataclass that round-trips through JSON and YAML.

Field names follow FINN's ``DataflowBuildConfig`` where the meaning is the same (output_dir, board, fpga_part,
shell_flow_type, synth_clk_period_ns, target_fps, folding_config_file, specialize_layers_config_file, steps,
start_step, stop_step, verify_input_npy, save_intermediate_models), plus minifinn's FIFO sizing (fifo_sizing,
fifo_sizing_frames). Every field is read by a step or the runner; number formats come from the QONNX model.
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from compiler.boards import get_board
from compiler.errors import ConfigError

SHELL_FLOWS = ("vivado_zynq", "vitis_alveo")
FIFO_SIZING = ("rtlsim", "none")
REQUANT_STYLES = ("auto", "parallel", "bsearch", "convert")
MAC_DSP = ("auto", "lut", "dsp")  # MinifloatMVAU mac_dsp: the folding may use DSP48 products / LUTs only / DSPs




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
    # FIFO sizing: "rtlsim" = high-water marks of a stitched Icarus simulation of the partition on
    # fifo_sizing_frames verification inputs (all nodes RTL); "none" = FINN's default depths
    fifo_sizing: str = "rtlsim"
    fifo_sizing_frames: int = 2
    # per-channel requantizers: "auto" = the folding picks each node's style by cost (parallel or binary-search
    # thresholds, or conversion by a scale mantissa of requant_scale_bits bits); a style name forces it
    requant_style: str = "auto"
    requant_scale_bits: int = 16
    # MAC significand products: "auto" = the folding picks LUTs or DSP48s per node by cost, "lut" LUTs only (the
    # paper's comparison basis), "dsp" DSP48s wherever the operands fit
    mac_dsp: str = "auto"

    def __post_init__(self):
        self.validate()

    def validate(self):
        board = get_board(self.board)  # raises with the list of known boards
        self.board = board.name
        if self.fpga_part is None:
            self.fpga_part = board.part
        if self.shell_flow_type is None:
            self.shell_flow_type = board.shell_flow
        if self.shell_flow_type not in SHELL_FLOWS:
            raise ConfigError(f"shell_flow_type {self.shell_flow_type!r} is not one of {SHELL_FLOWS}")
        if not self.synth_clk_period_ns or self.synth_clk_period_ns <= 0:
            raise ConfigError(f"synth_clk_period_ns must be > 0, got {self.synth_clk_period_ns}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ConfigError(f"target_fps must be > 0 (frames per second), got {self.target_fps}")
        if self.fifo_sizing not in FIFO_SIZING:
            raise ConfigError(f"fifo_sizing {self.fifo_sizing!r} is not one of {FIFO_SIZING}")
        if self.requant_style not in REQUANT_STYLES:
            raise ConfigError(f"requant_style {self.requant_style!r} is not one of {REQUANT_STYLES}")
        if self.mac_dsp not in MAC_DSP:
            raise ConfigError(f"mac_dsp {self.mac_dsp!r} is not one of {MAC_DSP}")
        if not 2 <= self.requant_scale_bits <= 32:
            raise ConfigError(f"requant_scale_bits must be in 2..32, got {self.requant_scale_bits}")
        if self.fifo_sizing_frames < 1:
            raise ConfigError(f"fifo_sizing_frames must be >= 1, got {self.fifo_sizing_frames}")

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
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    @classmethod
    def load(cls, path):
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as err:  # parse errors of either format
            raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper() or 'JSON'}: {err}") from None
        return cls.from_dict(data, source=str(path))


def _dump(data, suffix):
    if suffix in (".yaml", ".yml"):
        return yaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"
