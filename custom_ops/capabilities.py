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
* ``weight_memory_bits()``: bits of embedded weight memory (the UltraRAM rule of the folding step asks it).
"""

import finn.custom_op.fpgadataflow.hls as hls_registry
import finn.custom_op.fpgadataflow.rtl as rtl_registry

BACKEND_REGISTRIES = (("hls", hls_registry.custom_op), ("rtl", rtl_registry.custom_op))
REQUANTIZER_STYLES = ("thresholds", "bsearch", "convert", "table", "none")


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

    def weight_memory_bits(self):
        """Bits of embedded weight memory (0: none)."""
        return 0

    @classmethod
    def base_op_type(cls):
        """The op type without its backend suffix (``MinifloatMVAU`` for ``MinifloatMVAU_rtl``)."""
        name = cls.__name__
        return name.rsplit("_", 1)[0] if name.endswith(("_hls", "_rtl")) else name

    @classmethod
    def backends(cls):
        base = cls.base_op_type()
        return tuple(style for style, registry in BACKEND_REGISTRIES if f"{base}_{style}" in registry)
