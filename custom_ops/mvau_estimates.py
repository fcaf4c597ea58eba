"""Resource estimates of MinifloatMVAU (mixin ``MVAUEstimates``): LUT model, FF, BRAM/URAM, and the DSP48 datapath.

LUT cost model: ``lut = sum_j coefficient_j * feature_j`` (features: ``resource_features``), the coefficients fitted by
build_flows/calibrate_resources.py to Yosys synth_xilinx counts of the generated RTL (``resource_model.json``).
The LUT datapath (``use_dsp = 0``) has the features ``mult_bits`` ... ``const``; the DSP48 datapath (``use_dsp = 1``)
moves the DSP-mapped products out of ``mult_bits`` into the ``dsp_*`` features (what stays in LUTs around a DSP48:
building the packed operand, reading the fields back, the exponent shifts, the adder tree). The ``dsp_*``
coefficients are fitted on DSP runs with the LUT datapath's coefficients fixed, so ``use_dsp = 0`` estimates do not
depend on them. ``dsp_estimation`` counts the DSP48s of the packing plan (custom_ops/mac/packing.py).

The mixin reads the op's attributes and shape methods (``folds``, ``input_format``, ``acc_bits``, ...).
"""

import functools
import json
import math
from pathlib import Path

from compiler.errors import UnsupportedNodeError
from custom_ops.mac import operand_params
from custom_ops.mac.packing import dsp_packing, significand_width
from custom_ops.threshold_cost import rows_per_lane, threshold_stage_ffs, threshold_stage_luts

RESOURCE_MODEL_FILE = Path(__file__).resolve().parent / "resource_model.json"


@functools.lru_cache(maxsize=1)
def resource_model():
    """The fitted LUT coefficients {feature: LUTs per unit}."""
    if not RESOURCE_MODEL_FILE.is_file():
        raise UnsupportedNodeError(
            f"{RESOURCE_MODEL_FILE} is missing; run python build_flows/calibrate_resources.py to fit it"
        )
    return json.loads(RESOURCE_MODEL_FILE.read_text())["lut_coefficients"]


class MVAUEstimates:
    """LUT/FF/BRAM/URAM/DSP estimates of a MinifloatMVAU (module docstring)."""

    # --- the DSP48 datapath ---------------------------------------------------------------------------------------
    def dsp_plan(self, pe=None):
        """The packing plan (``custom_ops.mac.packing.DSPPacking``) of the DSP48 datapath at ``pe`` (default: the
        node's PE), at most ``dsp_pack`` products per DSP48 when that is > 0."""
        pe = self.get_nodeattr("PE") if pe is None else pe
        return dsp_packing(operand_params(self.input_format()), operand_params(self.weight_format()), pe,
                           self.get_nodeattr("dsp_pack"))

    def mac_plan_params(self):
        """GROUPS, FIELD, PACK_BITS of the backends' ``mf_dotp_pe``: the plan with use_dsp = 1; with use_dsp = 0 (where
        the backends do not read them) the LUT datapath's shape, one full-width product per multiplier."""
        if self.get_nodeattr("use_dsp"):
            params = self.dsp_plan().hdl_params()
            return {k: params[k] for k in ("GROUPS", "FIELD", "PACK_BITS")}
        swa = significand_width(*operand_params(self.input_format()))
        swb = significand_width(*operand_params(self.weight_format()))
        return {"GROUPS": self.get_nodeattr("PE"), "FIELD": swa + swb, "PACK_BITS": swb}

    def dsp_capable(self):
        """Whether the operands fit the DSP48E1 multiplier at all (significands <= 18 x 25 bits)."""
        swa = significand_width(*operand_params(self.input_format()))
        swb = significand_width(*operand_params(self.weight_format()))
        return swa <= 18 and swb <= 25

    def dsp_estimation(self, fpgapart=None):
        """DSP48s of the packing plan: per SIMD lane one per group of PE channels whose multiplier is DSP-sized."""
        if not self.get_nodeattr("use_dsp"):
            return 0
        return self.get_nodeattr("SIMD") * self.dsp_plan().dsps_per_lane

    # --- LUTs -------------------------------------------------------------------------------------------------------
    def resource_features(self):
        """Size features of the datapath the LUT model is linear in (counts of bits, per unit of LUT cost)."""
        def sig_width(fmt):
            bits, e, signed = operand_params(fmt)
            if e == 0:
                return bits if signed else bits + 1, 0
            return bits - e + 1, 2**e - 2

        swa, sha = sig_width(self.input_format())
        swb, shb = sig_width(self.weight_format())
        span = sha + shb
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        nf, sf = self.folds()
        acc = self.acc_bits()
        product_bits = swa + swb + span  # width of the shifted product
        shift_levels = math.ceil(math.log2(span + 1)) if span else 0
        lut_lanes, dsp = pe * simd, {"dsp_lane_bits": 0, "dsp_shift_bits": 0, "dsp_pack_bits": 0}
        if self.get_nodeattr("use_dsp"):
            plan = self.dsp_plan()
            lut_lanes = simd * plan.lut_products_per_lane
            dsp_lanes = pe * simd - lut_lanes
            packed = sum(size - 1 for size, mapped in zip(plan.groups, plan.mapped) if mapped and size > 1)
            dsp = {"dsp_lane_bits": dsp_lanes * product_bits, "dsp_shift_bits": dsp_lanes * product_bits * shift_levels,
                   "dsp_pack_bits": simd * packed * plan.packed_bits}
        return {
            "mult_bits": lut_lanes * swa * swb,
            "shift_bits": lut_lanes * product_bits * shift_levels,
            "tree_bits": lut_lanes * product_bits,
            "acc_bits": pe * acc,
            "threshold_stage": self._threshold_stage_luts(),
            "weight_rom_bits": 0 if self._weight_storage() != "lutram" else self._weight_bits_total() / 64,
            "ibuf_bits": sf * simd * self.input_format().bits / 32,
            "const": 1,
            **dsp,
        }

    def _threshold_rows_per_lane(self):
        """Each lane reads MH / PE rows of thresholds, or one constant row when ``sharedThresholds``."""
        return rows_per_lane(self.get_nodeattr("MH"), self.get_nodeattr("PE"), self.get_nodeattr("sharedThresholds"))

    def _threshold_stage_luts(self):
        """Yosys-fitted LUTs of the PE threshold stages of ACC_BITS-bit thresholds (``threshold_cost``)."""
        return threshold_stage_luts(self._threshold_rows_per_lane(), self.n_thresholds(), self.acc_bits(),
                                    self.get_nodeattr("PE"))

    def lut_estimation(self, fpgapart=None):
        """LUTs from the fitted linear model (``resource_model``; its threshold stage is ``threshold_cost``'s own
        Yosys fit). dynamic_input uses the same model: its matrix buffer (LUTRAM, ~1 LUT per 42 bits in Yosys)
        replaces the ROM, which the fit prices at 0 LUT/bit. Checked against Yosys synth_xilinx of the ViT's nodes
        (Yosys / model LUTs): the dynamic Q.K^T MVAU (shared thresholds) 1,785 / 1,641, a static 64x64 MVAU with
        per-channel thresholds at SIMD 32 11,078 / 7,726; calibration and held-out errors in resource_model.json."""
        coeffs = resource_model()
        return int(round(sum(coeffs.get(k, 0.0) * v for k, v in self.resource_features().items())))

    def resource_breakdown(self, fpgapart=None):
        """``capabilities.resource_breakdown`` of the MVAU from its LUT model's terms: "requant" the fused threshold
        stages (``threshold_stage``), "memory" the weight ROM in LUTs and the input buffer (``weight_rom_bits``,
        ``ibuf_bits``) plus every BRAM, "mac" the rest (multipliers, shifts, adder tree, accumulators, the DSP
        datapath's LUTs and all DSPs). The LUT parts add up to ``lut_estimation``."""
        coeffs, feats = resource_model(), self.resource_features()
        requant = round(coeffs.get("threshold_stage", 0.0) * feats["threshold_stage"])
        memory = round(sum(coeffs.get(k, 0.0) * feats[k] for k in ("weight_rom_bits", "ibuf_bits")))
        mac = self.lut_estimation() - requant - memory
        zero = {"LUT": 0, "DSP": 0, "BRAM_18K": 0}
        return {"mac": {"LUT": mac, "DSP": self.dsp_estimation(fpgapart), "BRAM_18K": 0},
                "requant": dict(zero, LUT=requant),
                "memory": {"LUT": memory, "DSP": 0, "BRAM_18K": self.bram_estimation()}, "other": dict(zero)}

    # --- memories -----------------------------------------------------------------------------------------------------
    def _weight_bits_total(self):
        """Bits of one weight matrix: the weight ROM, or for dynamic_input the buffer for one matrix (same size);
        external weights keep none on chip (``_weight_storage``)."""
        return self.get_nodeattr("MW") * self.get_nodeattr("MH") * self.weight_format().bits

    def _weight_memories(self):
        """(count, depth, width) of the weight memories: one ROM of NF*SF words of PE*SIMD codes, or for
        dynamic_input SIMD banks of NF*SF words of PE codes (each written by one in1 word)."""
        nf, sf = self.folds()
        pe, simd, bits = self.get_nodeattr("PE"), self.get_nodeattr("SIMD"), self.weight_format().bits
        if self.get_nodeattr("dynamic_input"):
            return simd, nf * sf, pe * bits
        return 1, nf * sf, pe * simd * bits

    def _weight_storage(self):
        """Where the weight memory lives: "lutram", "bram", "uram", or "none" (mem_mode "external": no weight memory
        on chip, the words arrive on in1)."""
        if self.weight_source() == "external":
            return "none"
        style = self.get_nodeattr("ram_style")
        if style == "distributed" or (style == "auto" and self._weight_bits_total() <= 32 * 1024):
            return "lutram"
        return "uram" if style == "ultra" else "bram"

    def bram_estimation(self, fpgapart=None):
        """BRAM_18K blocks for the weight memories (``_weight_memories``: the ROM, or the SIMD banks of the dynamic
        matrix buffer), each with the 18Kb block's aspect ratios (16K x 1, 8K x 2, 4K x 4, 2K x 9, 1K x 18,
        512 x 36), FINN's MVAU rule."""
        if self._weight_storage() != "bram" or self._weight_bits_total() == 0:
            return 0
        count, depth, width = self._weight_memories()
        for max_width, max_depth in ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024)):
            if width <= max_width:
                return count * int(math.ceil(depth / max_depth))
        if depth > 512:
            return count * int(math.ceil(depth / 1024) * math.ceil(width / 18))
        return count * int(math.ceil(depth / 512) * math.ceil(width / 36))

    def uram_estimation(self, fpgapart=None):
        if self._weight_storage() != "uram":
            return 0
        count, depth, width = self._weight_memories()
        return count * int(math.ceil(width / 72) * math.ceil(depth / 4096))

    # --- FFs and the summary ----------------------------------------------------------------------------------------
    def ff_estimation(self, fpgapart=None):
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        _, sf = self.folds()
        ibuf = sf * simd * self.input_format().bits
        ff = pe * self.acc_bits() + pe * self.get_output_datatype().bitwidth() + ibuf + 32
        if self.n_thresholds():
            ff += threshold_stage_ffs(self._threshold_rows_per_lane(), self.n_thresholds(), self.acc_bits())
        if self.get_nodeattr("dynamic_input"):  # load counters (nf, simd lane, sf), vector counter, loading flag
            nf, _ = self.folds()
            ff += sum(max(1, math.ceil(math.log2(n))) for n in (nf, simd, sf, self.dynamic_groups()[1])) + 1
        return int(ff)

    def node_res_estimation(self, fpgapart):
        return {
            "BRAM_18K": self.bram_estimation(),
            "BRAM_efficiency": 1.0,
            "LUT": self.lut_estimation(),
            "URAM": self.uram_estimation(),
            "URAM_efficiency": 1.0,
            "DSP": self.dsp_estimation(fpgapart),
            "FF": self.ff_estimation(),
        }
