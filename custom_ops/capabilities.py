"""What a minifinn hardware op declares about itself: its folding space, its backends and how it requantizes.

The folding pass (``passes/resource_folding.py``), the hardware-mapping and specialization steps and the reports ask
the op through these methods instead of keeping lists of op names, so a new op (or a new ``_hls`` / ``_rtl`` variant)
is folded, specialized and reported by what its class says.

* ``folding_space()``: every legal folding as a dict of attribute values (``[{"PE": 1}, {"PE": 2}, ...]``), or
  ``None`` when the op's folding is fixed. The default folds ``FOLD_ATTR`` ("PE" or "SIMD") over the divisors of
  ``fold_channels()``, FINN's rule for its PE-/SIMD-parallel ops.
* ``backends()``: the implementation styles that exist ("hls", "rtl"), read from finn-plus' registries, where the
  variants ``<Op>_hls`` / ``<Op>_rtl`` are registered (custom_ops/__init__.py).
* ``requantizer()``: how the op produces its output codes: "thresholds" (a comparison against integer thresholds in
  the accumulator domain), "bsearch" (the same thresholds searched by a pipelined binary search), "convert"
  (requantization by conversion: scale, round, encode), "table" (a 2^bits lookup), or "none" (data movement, or
  the accumulator itself);
  ``threshold_input()`` the index of its threshold initializer among the node's inputs (None: none).
* ``weight_memory_bits()``: bits of embedded weight memory (the UltraRAM rule of the folding step asks it),
  ``min_weight_blocks()`` the fewest BRAM_18K / URAM blocks they take at any legal folding;
  ``external_weights_capable()``: whether its weights can stay off chip (DDR/HBM), streamed in every frame
  (``set_external_weights(True)``, FINN's MVAU ``mem_mode = "external"``), ``external_reads_per_frame()`` how often a
  frame reads them then, and ``external_weight_bits()`` the bits it reads from external memory per frame (0: none);
  asked by ``passes/external_weights.py``.
* ``resource_breakdown()``: the node's estimate split into ``BREAKDOWN_CATEGORIES`` ("mac": the multiply-accumulate
  datapath, "requant": requantizers, "memory": weight / threshold memories and buffers, "other": everything else),
  each {LUT, DSP, BRAM_18K}; the parts add up to the node's estimates. The default puts a whole standalone
  requantizer (``REQUANTIZER`` not "none" and ``BREAKDOWN_KIND = "requant"``) under "requant" and anything else
  under ``BREAKDOWN_KIND``; ops with a MAC split themselves (custom_ops/mvau_estimates.py). Read by the format study
  (compiler/dse/cost.py).
"""

import finn.custom_op.fpgadataflow.hls as hls_registry
import finn.custom_op.fpgadataflow.rtl as rtl_registry
from compiler.errors import UnsupportedNodeError

BACKEND_REGISTRIES = (("hls", hls_registry.custom_op), ("rtl", rtl_registry.custom_op))
REQUANTIZER_STYLES = ("thresholds", "bsearch", "convert", "table", "none")
BREAKDOWN_CATEGORIES = ("mac", "requant", "memory", "other")


def divisors(n):
    """Divisors of ``n`` in increasing order (the legal PE/SIMD values of an ``n``-wide dimension)."""
    n = int(n)
    return [d for d in range(1, n + 1) if n % d == 0]


class HWOpCapabilities:
    """Mixin of every minifinn hardware op (see the module docstring)."""

    #: the folding attribute over the op's channels; None: the folding is fixed
    FOLD_ATTR = "PE"
    #: how the op produces its output codes (one of REQUANTIZER_STYLES)
    REQUANTIZER = "none"

    def fold_channels(self):
        """The dimension ``FOLD_ATTR`` must divide."""
        return int(self.get_nodeattr("NumChannels"))

    def folding_space(self):
        if self.FOLD_ATTR is None:
            return None
        return [{self.FOLD_ATTR: d} for d in divisors(self.fold_channels())]

    def threshold_input(self):
        return None

    def requantizer(self):
        return "thresholds" if self.threshold_input() is not None else self.REQUANTIZER

    #: the ``resource_breakdown`` category of the whole node (ops that split themselves override the method)
    BREAKDOWN_KIND = "other"

    def resource_breakdown(self, fpgapart=None):
        """{category: {LUT, DSP, BRAM_18K}} over ``BREAKDOWN_CATEGORIES``, adding up to ``node_res_estimation``."""
        res = self.node_res_estimation(fpgapart)
        parts = {c: {"LUT": 0, "DSP": 0, "BRAM_18K": 0} for c in BREAKDOWN_CATEGORIES}
        parts[self.BREAKDOWN_KIND] = {k: res[k] for k in ("LUT", "DSP", "BRAM_18K")}
        return parts

    def weight_memory_bits(self):
        """Bits of embedded weight memory (0: none)."""
        return 0

    def min_weight_blocks(self):
        """The fewest BRAM_18K / URAM blocks its embedded weights take at any legal folding."""
        return {"BRAM_18K": 0, "URAM": 0}

    def external_weights_capable(self):
        """Whether the op can read its weights from external memory instead of embedding them."""
        return False

    def set_external_weights(self, external):
        """Weights off chip (True) or embedded (False); only ops that are ``external_weights_capable``."""
        if external:
            raise UnsupportedNodeError(f"{self.onnx_node.name} ({self.onnx_node.op_type}) cannot read its weights "
                                       "from external memory")

    def external_weight_bits(self):
        """Bits read from external memory per frame (0: none)."""
        return 0

    def external_reads_per_frame(self):
        """How often per frame the weights are read when they are off chip (the traffic per on-chip bit saved)."""
        return 1

    @classmethod
    def base_op_type(cls):
        """The op type without its backend suffix (``MinifloatMVAU`` for ``MinifloatMVAU_rtl``)."""
        name = cls.__name__
        return name.rsplit("_", 1)[0] if name.endswith(("_hls", "_rtl")) else name

    @classmethod
    def backends(cls):
        base = cls.base_op_type()
        return tuple(style for style, registry in BACKEND_REGISTRIES if f"{base}_{style}" in registry)
