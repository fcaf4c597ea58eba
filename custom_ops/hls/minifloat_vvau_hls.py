"""MinifloatVVAU_hls: HLS C++ backend of MinifloatVVAU (custom_ops/hls/minifloat_vvau.hpp + the MAC library).

The weight ROM, thresholds and code table are the MVAU HLS backend's (``param_lines``, the same template
arguments with MW = K, MH = C); only the compute call differs.
"""

import numpy as np

from custom_ops.hls.minifloat_mvau_hls import MinifloatMVAU_hls
from custom_ops.minifloat_vvau import MinifloatVVAU
from custom_ops.stream_codecs import VVAUCodec


class MinifloatVVAU_hls(VVAUCodec, MinifloatMVAU_hls, MinifloatVVAU):
    HEADERS = ("mf_mac.hpp", "minifloat_vvau.hpp")

    def _template_args(self):
        """The MVAU's template arguments up to the output width: the VVAU core has the LUT datapath only (no DSP48
        packing arguments)."""
        return MinifloatMVAU_hls._template_args(self)[:15]

    def template_call(self):
        args = ", ".join(str(a) for a in self._template_args())
        reps = int(np.prod(self.get_nodeattr("numInputVectors")))
        return f"minifloat_vvau<{args}>(in0_V, out0_V, weights, thresholds, codes, {reps})"
