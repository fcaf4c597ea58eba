"""MinifloatSoftmax_rtl: Verilog backend (custom_ops/rtl/minifloat_softmax.v: rows overlapped in three stages, a
three-slot row buffer, exp ROMs, ``thresholdUnits`` threshold multipliers, PE x K comparators); the ROMs are memory
files (etab.hex, shift.hex, nums.hex, bias.hex, codes.hex)."""

from custom_ops.codegen import codes_of, write_hex
from custom_ops.minifloat_softmax import MinifloatSoftmax
from custom_ops.rtl.stream_backend import RTLStreamBackend, verilog_path
from custom_ops.stream_codecs import CodesCodec


class MinifloatSoftmax_rtl(CodesCodec, RTLStreamBackend, MinifloatSoftmax):
    CORE = "minifloat_softmax"
    USES_MAC_LIBRARY = False

    def hdl_params(self, model, code_dir):
        hw = self.hw_params()
        etab, shift = self.rom_tables()
        nums, bias, _, _ = self.row_thresholds()
        ofmt = self.output_format()
        files = {"ETAB_FILE": ("etab.hex", etab, hw["EB"]), "SHIFT_FILE": ("shift.hex", shift, hw["HB"]),
                 "NUMS_FILE": ("nums.hex", list(nums) or [0], hw["NB"]),
                 "BIAS_FILE": ("bias.hex", list(bias) or [0], 1),
                 "CODES_FILE": ("codes.hex", [int(v) for v in codes_of(ofmt.values(), ofmt)], ofmt.bits)}
        params = {k: int(v == "true") if k == "EXACT" else v for k, v in hw.items()}
        for key, (name, words, bits) in files.items():
            write_hex(code_dir / name, words, bits)
            params[key] = verilog_path(code_dir / name)
        return params
