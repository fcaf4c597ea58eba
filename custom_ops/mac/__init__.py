"""The minifinn MAC library: Verilog modules (``mf_mac.v``) and HLS C++ templates (``mf_mac.hpp``).

Both implement one contract, for minifloats and integers alike: decode a code to its signed integer-domain
significand, multiply exactly, accumulate exactly in an accumulator sized by ``compiler.numerics``; optional
threshold comparison of the accumulator (requantization). See the headers of the two files.
"""

import importlib.util
from pathlib import Path

from compiler.errors import MinifinnError

HERE = Path(__file__).resolve().parent


def verilog_sources():
    """Paths of the Verilog files of the library."""
    return [HERE / "mf_mac.v"]


def hls_include_dir():
    """Directory holding ``mf_mac.hpp``."""
    return HERE


def ap_types_include_dir():
    """The Vivado ``ap_types`` headers shipped inside the installed hls4ml wheel (used for C++ simulation)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise MinifinnError("the ap_types headers come from the hls4ml package: pip install hls4ml==1.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (path / "ap_int.h").is_file():
        raise MinifinnError(f"hls4ml is installed but {path}/ap_int.h is missing; reinstall hls4ml==1.3.0")
    return path


def decoded_width(bits, e, signed=True):
    """Width of the signed decoded value (mf_decode's DW)."""
    if e == 0:
        return bits if signed else bits + 1
    return 2**e + bits - 1 - e


def operand_params(fmt):
    """(BITS, E, SIGNED) template/module parameters of a compiler.numerics format."""
    if fmt.is_minifloat:
        if fmt.mantissa_bits < 1:
            raise MinifinnError(f"{fmt.name}: the MAC library needs at least one mantissa bit (ExMy with M >= 1)")
        return fmt.bits, fmt.exponent_bits, 1
    return fmt.bits, 0, int(fmt.signed)
