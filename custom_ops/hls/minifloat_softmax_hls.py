"""MinifloatSoftmax_hls: HLS C++ backend of MinifloatSoftmax (custom_ops/hls/minifloat_softmax.hpp), through
HLSStreamBackend: the exp and shift ROMs, the row threshold numerators and the output code table are constants.
The rows are not overlapped (``frame_cycles``)."""

import numpy as np

from custom_ops.codegen import codes_of, const_array
from custom_ops.hls.stream_backend import HLSStreamBackend
from custom_ops.minifloat_softmax import MinifloatSoftmax
from custom_ops.softmax_schedule import threshold_cycles
from custom_ops.stream_codecs import CodesCodec


class MinifloatSoftmax_hls(CodesCodec, HLSStreamBackend, MinifloatSoftmax):
    HEADERS = ("minifloat_softmax.hpp",)

    def frame_cycles(self, folds, units):
        """Per row, one after the other: the passes over the row (read, the sum unless merged into the read, the
        output) and ceil(K / KU) threshold cycles."""
        k = len(self.row_thresholds()[0])
        return self.rows() * ((self.passes() + 1) * int(folds) + (threshold_cycles(k, units) if k else 0))

    def max_units(self, folds):
        """Every multiplier up to one per threshold shortens the (serial) threshold loop."""
        return max(1, len(self.row_thresholds()[0]))

    def extra_pragmas(self):
        return ["#pragma HLS BIND_STORAGE variable=etab type=rom_1p impl=lutram",
                "#pragma HLS BIND_STORAGE variable=shift type=rom_1p impl=lutram"]

    def template_call(self):
        args = ", ".join(str(a) for a in self.hw_params().values())
        return f"minifloat_softmax<{args}>(in0_V, out0_V, etab, shift, nums, bias, codes, {self.rows()})"

    def param_lines(self, model):
        etab, shift = self.rom_tables()
        nums, bias, _, _ = self.row_thresholds()
        ofmt = self.output_format()
        return [const_array("ap_uint", self.e_bits(), "etab", etab),
                const_array("ap_uint", self.shift_bits(), "shift", shift),
                const_array("ap_uint", self.num_bits(), "nums", nums),
                const_array("ap_uint", 1, "bias", bias),
                const_array("ap_uint", ofmt.bits, "codes", [int(c) for c in codes_of(ofmt.values(), ofmt)])]

    def get_ap_int_max_w(self):
        return max(1024, int(np.ceil(2 * self.cmp_bits() / 1024)) * 1024)
