"""MinifloatMVAU: matrix-vector activation unit for minifloat and integer operands (FINN HWCustomOp).

Arithmetic contract (bit exact; the HLS and RTL backends implement exactly this):

* ``x`` (..., MW) holds values of ``inputDataType`` (FLOAT<e,m,b>, INTn or UINTn), ``W`` (MW, MH) values of
  ``weightDataType``. In the integer domain (value = int * 2^lsb_exponent of the format)
  ``acc[..., h] = sum_k x_int[..., k] * w_int[k, h]``, exactly (int64, or Python ints beyond 62 bits).
* ``noActivation = 1``: the output is ``acc`` (``accDataType``, an INTn wide enough for every input).
* ``noActivation = 0``: thresholds ``T`` (MH or 1, N) are integers in the accumulator domain, non-decreasing along N,
  and ``out[..., h] = out_values[#{i : acc[..., h] >= T[h, i]}]`` where ``out_values`` are the sorted distinct values
  of ``outputDataType`` (N = len(out_values) - 1).

Folding as FINN's MVAU: PE output channels and SIMD input elements per cycle; streams carry the formats' codes
(``compiler.numerics`` ``encode``), element 0 in the least significant bits; one output word per PE group.
``dynamic_input = 1`` takes W from a second input (activation x activation products such as Q K^T in attention):
``numInputVectors = [..., V]`` splits the input into ``G = prod(numInputVectors[:-1])`` groups of ``V`` vectors and
W holds one (MW, MH) matrix per group (shape ``numInputVectors[:-1] + [MW, MH]``; a single (MW, MH) matrix when
G = 1). In hardware the matrix arrives on stream ``in1`` once per group, before that group's vectors, in FINN's
MVAU ``mem_mode="dynamic"`` order: words of PE codes (``get_instream_width(1) = PE * weight bits``), the matrix's
MW rows in order and each row as NF words, word (k, nf) = W[k, nf*PE : (nf+1)*PE] with element 0 in the LSBs
(folded shape ``numInputVectors[:-1] + [MW, NF, PE]``, ``dynamic_matrix_words``). The backends buffer one matrix
(SIMD banks of NF*SF words, no weight ROM) and process the V vectors after it has arrived: a group takes MW*NF
cycles to load plus V*NF*SF to compute (``get_exp_cycles``).
"""

import functools
import json
import math
from pathlib import Path

import numpy as np
from qonnx.core.datatype import DataType

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype
from custom_ops.capabilities import HWOpCapabilities, divisors
from custom_ops.codegen import codes_of, pack_words
from custom_ops.general.common import batch_shape, exact_matmul, threshold_ints
from custom_ops.general.threshold import threshold_counts
from custom_ops.mac import operand_params
from custom_ops.threshold_cost import rows_per_lane, threshold_stage_ffs, threshold_stage_luts
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp

# LUT cost model: lut = sum_j coefficient_j * feature_j (features: ``MinifloatMVAU.resource_features``). The
# coefficients are fitted by build_flows/calibrate_resources.py to Yosys synth_xilinx counts of the generated RTL.
RESOURCE_MODEL_FILE = Path(__file__).resolve().parent / "resource_model.json"


@functools.lru_cache(maxsize=1)
def resource_model():
    """The fitted LUT coefficients {feature: LUTs per unit}."""
    if not RESOURCE_MODEL_FILE.is_file():
        raise UnsupportedNodeError(
            f"{RESOURCE_MODEL_FILE} is missing; run python build_flows/calibrate_resources.py to fit it"
        )
    return json.loads(RESOURCE_MODEL_FILE.read_text())["lut_coefficients"]


def to_int_domain(values, fmt):
    """Values of ``fmt`` -> exact integers (int64) in the format's integer domain."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), -fmt.lsb_exponent)
    ints = np.rint(scaled)
    if np.any(ints != scaled):
        raise UnsupportedNodeError(f"tensor holds values that are not in {fmt.name}")
    if fmt.max_int >= 2**62:
        return np.array([int(v) for v in ints.ravel()], dtype=object).reshape(ints.shape)
    return ints.astype(np.int64)


class MinifloatMVAU(HWOpCapabilities, HWCustomOp):
    """Matrix-vector activation unit with exact minifloat/integer MACs and threshold requantization."""

    # --- capabilities (custom_ops/capabilities.py) ------------------------------------------------------------
    def folding_space(self):
        """Every (PE | MH, SIMD | MW) pair: the weights are embedded, so no weight-stream width limits the SIMD; and
        while an embedded weight ROM's ``ram_style`` is "auto", both places for it, LUTs ("distributed") or block RAM
        ("block"), so the folding trades LUTs for BRAM by the estimates (a set style stays)."""
        auto = not self.get_nodeattr("dynamic_input") and self.get_nodeattr("ram_style") == "auto"
        styles = [{"ram_style": "distributed"}, {"ram_style": "block"}] if auto else [{}]
        return [{"PE": pe, "SIMD": simd, **style} for pe in divisors(self.get_nodeattr("MH"))
                for simd in divisors(self.get_nodeattr("MW")) for style in styles]

    def threshold_input(self):
        return 2 if len(self.onnx_node.input) > 2 and not self.get_nodeattr("noActivation") else None

    def weight_memory_bits(self):
        """Bits of the embedded weight ROM (0 for dynamic_input: its matrix arrives on a stream)."""
        return 0 if self.get_nodeattr("dynamic_input") else self._weight_bits_total()

    def get_nodeattr_types(self):
        attrs = {
            "MW": ("i", True, 0),
            "MH": ("i", True, 0),
            "PE": ("i", True, 1),
            "SIMD": ("i", True, 1),
            "inputDataType": ("s", True, ""),
            "weightDataType": ("s", True, ""),
            "accDataType": ("s", False, "INT32"),
            "outputDataType": ("s", True, ""),
            "noActivation": ("i", False, 0, {0, 1}),
            "dynamic_input": ("i", False, 0, {0, 1}),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed", "ultra"}),
            "numInputVectors": ("ints", False, [1]),
            # 1: every output channel has the same threshold row (passes.shared_thresholds; estimates only)
            "sharedThresholds": ("i", False, 0, {0, 1}),
            # paths of generated code / simulation artefacts
            "code_gen_dir_cppsim": ("s", False, ""),
            "executable_path": ("s", False, ""),
            "rtlsim_dir": ("s", False, ""),
        }
        attrs.update(super().get_nodeattr_types())
        return attrs

    # --- formats --------------------------------------------------------------------------------------------------
    def input_format(self):
        return format_from_datatype(self.get_nodeattr("inputDataType"))

    def weight_format(self):
        return format_from_datatype(self.get_nodeattr("weightDataType"))

    def output_format(self):
        if self.get_nodeattr("noActivation"):
            return format_from_datatype(self.get_nodeattr("accDataType"))
        return format_from_datatype(self.get_nodeattr("outputDataType"))

    def acc_bits(self):
        return self.get_accumulator_datatype().bitwidth()

    def get_accumulator_datatype(self):
        return DataType[self.get_nodeattr("accDataType")]

    def get_input_datatype(self, ind=0):
        return DataType[self.get_nodeattr("inputDataType" if ind == 0 else "weightDataType")]

    def get_weight_datatype(self):
        return DataType[self.get_nodeattr("weightDataType")]

    def get_output_datatype(self, ind=0):
        if self.get_nodeattr("noActivation"):
            return self.get_accumulator_datatype()
        return DataType[self.get_nodeattr("outputDataType")]

    def n_thresholds(self):
        return 0 if self.get_nodeattr("noActivation") else len(self.output_format().values()) - 1

    # --- shapes and streams ---------------------------------------------------------------------------------------
    def folds(self):
        mw, mh, pe, simd = (self.get_nodeattr(a) for a in ("MW", "MH", "PE", "SIMD"))
        if mw % simd or mh % pe:
            raise UnsupportedNodeError(
                f"{self.onnx_node.name}: SIMD={simd} must divide MW={mw} and PE={pe} must divide MH={mh}"
            )
        return mh // pe, mw // simd  # NF, SF

    def get_normal_input_shape(self, ind=0):
        vecs = list(self.get_nodeattr("numInputVectors"))
        if ind == 0:
            return tuple(vecs + [self.get_nodeattr("MW")])
        if ind == 1:
            groups = list(self.get_nodeattr("numInputVectors"))[:-1] if self.get_nodeattr("dynamic_input") else []
            return tuple(groups + [self.get_nodeattr("MW"), self.get_nodeattr("MH")])
        return (self.get_nodeattr("MH"), self.n_thresholds())

    def get_normal_output_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("MH")])

    def get_folded_input_shape(self, ind=0):
        nf, sf = self.folds()
        vecs = list(self.get_nodeattr("numInputVectors"))
        if ind == 0:
            return tuple(vecs + [sf, self.get_nodeattr("SIMD")])
        if ind == 1 and self.get_nodeattr("dynamic_input"):  # FINN's MVAU mem_mode "dynamic"
            return tuple(vecs[:-1] + [self.get_nodeattr("MW"), nf, self.get_nodeattr("PE")])
        if ind == 1:  # embedded weights: the ROM words (FINN's internal_decoupled weight-stream shape)
            return (1, sf * nf, self.get_nodeattr("SIMD") * self.get_nodeattr("PE"))
        raise UnsupportedNodeError(f"{self.onnx_node.name}: input {ind} (thresholds) is embedded, not streamed")

    def get_folded_output_shape(self, ind=0):
        nf, _ = self.folds()
        return tuple(list(self.get_nodeattr("numInputVectors")) + [nf, self.get_nodeattr("PE")])

    def get_instream_width(self, ind=0):
        """Bits per word of input stream ``ind``: in0 SIMD activation codes; in1 (dynamic_input) PE weight codes, as
        FINN's MVAU in mem_mode "dynamic"; embedded weights and thresholds have no stream (0, as FINN's
        internal_embedded)."""
        if ind == 0:
            return self.get_nodeattr("SIMD") * self.input_format().bits
        if ind == 1 and self.get_nodeattr("dynamic_input"):
            return self.get_nodeattr("PE") * self.weight_format().bits
        return 0

    def get_number_input_values(self, ind=0):
        """Words on input stream ``ind`` per execution (0 for inputs that are not streamed)."""
        nf, sf = self.folds()
        if ind == 0:
            return int(np.prod(self.get_nodeattr("numInputVectors"))) * sf
        if ind == 1 and self.get_nodeattr("dynamic_input"):
            return self.dynamic_groups()[0] * self.get_nodeattr("MW") * nf
        return 0

    def get_verilog_top_module_intf_names(self):
        """AXI-stream interfaces of the generated top: in0 (+ in1, the matrix stream, for dynamic_input) and out0;
        weights and thresholds are embedded, not streamed."""
        intf = super().get_verilog_top_module_intf_names()
        streams = [("in0_V", self.get_instream_width_padded(0))]
        if self.get_nodeattr("dynamic_input"):
            streams.append(("in1_V", self.get_instream_width_padded(1)))
        intf["s_axis"] = streams
        return intf

    def get_outstream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.get_output_datatype().bitwidth()

    def get_number_output_values(self):
        nf, _ = self.folds()
        return int(np.prod(self.get_nodeattr("numInputVectors"))) * nf

    def dynamic_groups(self):
        """(groups G, vectors per group V) of a dynamic_input node (see module docstring)."""
        vecs = list(self.get_nodeattr("numInputVectors"))
        return int(np.prod(vecs[:-1])) if len(vecs) > 1 else 1, int(vecs[-1])

    def get_exp_cycles(self):
        nf, sf = self.folds()
        cycles = int(np.prod(self.get_nodeattr("numInputVectors"))) * nf * sf
        if self.get_nodeattr("dynamic_input"):  # each group's matrix is loaded first: MW*NF words, one per cycle
            cycles += self.get_number_input_values(1)
        return cycles

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        node = self.onnx_node
        idt = model.get_tensor_datatype(node.input[0])
        if idt != self.get_input_datatype():
            raise UnsupportedNodeError(
                f"{node.name}: input tensor {node.input[0]} is {idt.name} but inputDataType is "
                f"{self.get_nodeattr('inputDataType')}; fix the attribute or the producer's datatype"
            )
        if self.get_nodeattr("dynamic_input"):
            wdt = model.get_tensor_datatype(node.input[1])
            if wdt != self.get_weight_datatype():
                raise UnsupportedNodeError(
                    f"{node.name}: dynamic matrix input {node.input[1]} is {wdt.name} but weightDataType is "
                    f"{self.get_nodeattr('weightDataType')}; fix the attribute or the producer's datatype"
                )
        model.set_tensor_datatype(node.output[0], self.get_output_datatype())

    def verify_node(self):
        info = []
        for attr in ("inputDataType", "weightDataType", "outputDataType"):
            try:
                format_from_datatype(self.get_nodeattr(attr))
                info.append(f"{attr} ok")
            except Exception as err:  # report, do not raise: FINN's verify_node contract
                info.append(f"{attr}: {err}")
        return info

    # --- golden model ---------------------------------------------------------------------------------------------
    def accumulate(self, x_values, w_values):
        """Exact integer-domain accumulators of x (..., MW) and W (MW, MH) (or batched W for dynamic input)."""
        xi = to_int_domain(x_values, self.input_format())
        wi = to_int_domain(w_values, self.weight_format())
        return exact_matmul(xi, wi)

    def execute_python(self, x_values, w_values, thresholds=None):
        acc = self.accumulate(x_values, w_values)
        limit = 2 ** (self.acc_bits() - 1)
        if acc.size and (max(int(acc.max()), -int(acc.min()) - 1) >= limit):
            raise UnsupportedNodeError(
                f"{self.onnx_node.name}: accumulator exceeds accDataType {self.get_nodeattr('accDataType')}; "
                "size it with compiler.numerics.accumulator_bits_from_weights"
            )
        if self.get_nodeattr("noActivation"):
            return acc
        # #{i : acc[..., h] >= T[h, i]} per channel h (last axis); T has MH rows or one shared row
        counts = threshold_counts(acc, threshold_ints(thresholds))
        return self.output_format().values()[counts]

    def execute_node(self, context, graph):
        node = self.onnx_node
        x = np.asarray(context[node.input[0]])
        shape = batch_shape(x, self.get_normal_input_shape(0))
        if shape is not None and x.shape != shape:  # a producer handing over the same stream in another shape
            x = x.reshape(shape)
        w = context[node.input[1]]
        thr = context[node.input[2]] if len(node.input) > 2 else None
        context[node.output[0]] = self.execute_python(x, w, thr)

    # --- weights/thresholds as integers --------------------------------------------------------------------------
    def weight_ints(self, model):
        return to_int_domain(model.get_initializer(self.onnx_node.input[1]), self.weight_format())

    def weight_rom_words(self, model):
        """Weight memory words of the embedded weights (``matrix_words`` of the initializer)."""
        return self.matrix_words(model.get_initializer(self.onnx_node.input[1]))

    def matrix_words(self, w_values):
        """Words of one (MW, MH) matrix: word nf*SF+sf packs W[sf*SIMD+i, nf*PE+p] codes at lane p*SIMD+i (lane 0 in
        the LSBs), the layout of the weight ROM and of the dynamic matrix stream in both backends."""
        nf, sf = self.folds()
        pe, simd = self.get_nodeattr("PE"), self.get_nodeattr("SIMD")
        fw = self.weight_format()
        w_codes = codes_of(np.asarray(w_values), fw)  # (MW, MH)
        words = []
        for n in range(nf):
            for s in range(sf):
                block = w_codes[s * simd:(s + 1) * simd, n * pe:(n + 1) * pe]  # (SIMD, PE)
                words.append(pack_words(block.T.reshape(1, -1), fw.bits)[0])
        return words

    def dynamic_matrix_words(self, w_values):
        """All in1 words of a dynamic_input node (module docstring): W (numInputVectors[:-1] + [MW, MH]) reshaped to
        the folded shape (..., MW, NF, PE), PE codes per word, element 0 in the LSBs, groups in order."""
        fw = self.weight_format()
        w = np.asarray(w_values)
        want = self.get_normal_input_shape(1)
        if int(np.prod(w.shape)) != int(np.prod(want)):
            raise UnsupportedNodeError(f"{self.onnx_node.name}: dynamic matrix input has shape {w.shape}, expected "
                                       f"{want} (numInputVectors[:-1] + [MW, MH])")
        codes = codes_of(w.reshape(want), fw).reshape(-1, self.get_nodeattr("PE"))
        return pack_words(codes, fw.bits)

    def threshold_ints(self, model):
        if self.get_nodeattr("noActivation"):
            return None
        t = threshold_ints(model.get_initializer(self.onnx_node.input[2]))
        if t.shape[0] == 1:
            t = np.repeat(t, self.get_nodeattr("MH"), axis=0)
        return t

    # --- estimates ------------------------------------------------------------------------------------------------
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
        lanes = self.get_nodeattr("PE") * self.get_nodeattr("SIMD")
        nf, sf = self.folds()
        acc = self.acc_bits()
        product_bits = swa + swb + span  # width of the shifted product
        return {
            "mult_bits": lanes * swa * swb,
            "shift_bits": lanes * product_bits * math.ceil(math.log2(span + 1)) if span else 0,
            "tree_bits": lanes * product_bits,
            "acc_bits": self.get_nodeattr("PE") * acc,
            "threshold_stage": self._threshold_stage_luts(),
            "weight_rom_bits": 0 if self._weight_storage() != "lutram" else self._weight_bits_total() / 64,
            "ibuf_bits": sf * self.get_nodeattr("SIMD") * self.input_format().bits / 32,
            "const": 1,
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

    def _weight_bits_total(self):
        """Bits of weight memory: the weight ROM, or for dynamic_input the buffer for one matrix (same size)."""
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

    def dsp_estimation(self, fpgapart=None):
        return 0  # significand multipliers are small: LUTs (the RTL marks them use_dsp = "no")

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

    def get_op_and_param_counts(self):
        fa, fw = self.input_format(), self.weight_format()
        macs = int(np.prod(self.get_nodeattr("numInputVectors"))) * self.get_nodeattr("MW") * self.get_nodeattr("MH")
        counts = {f"op_mac_{fa.name}_{fw.name}": macs}
        if not self.get_nodeattr("dynamic_input"):
            counts[f"param_weight_{fw.name}"] = self.get_nodeattr("MW") * self.get_nodeattr("MH")
        if self.n_thresholds():
            acc = self.get_nodeattr("accDataType")
            counts[f"param_threshold_{acc}"] = self.get_nodeattr("MH") * self.n_thresholds()
        return counts
