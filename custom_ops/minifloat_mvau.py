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

``mem_mode`` (FINN's MVAU attribute; W an initializer): "internal_embedded" keeps W in an on-chip ROM
(``ram_style``); "external" keeps it off chip (DDR/HBM): W arrives on stream ``in1`` in FINN's external weight
stream order, one word per (nf, sf) step, the step's PE*SIMD codes (``get_instream_width(1) = PE * SIMD * weight
bits``, word nf*SF + sf packs W[sf*SIMD+i, nf*PE+p] at lane p*SIMD+i, lane 0 in the LSBs, the ROM word layout,
``matrix_words``), the whole matrix again for every input vector (folded shape ``(numInputVectors product, NF*SF,
PE*SIMD)``, as FINN's ``mem_mode="external"``). No weight memory on chip; the cycles are the embedded ones, each
step waiting for its weight word; ``external_weight_bits()`` is the memory traffic per frame. The Python model
reads W from the initializer either way.

``use_dsp`` chooses the significand multipliers, the bits unchanged: 0 LUTs (the comparison basis), 1 DSP48E1s, the
PE channels of one SIMD lane (which share the activation) packed several to a DSP48 where the widths allow
(``dsp_pack`` caps it; plan and field arithmetic in custom_ops/mac/packing.py). The folding chooses use_dsp next
to PE and SIMD among the values ``mac_dsp`` allows. Estimates: custom_ops/mvau_estimates.py.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.capabilities import HWOpCapabilities, divisors
from custom_ops.codegen import codes_of, pack_words
from custom_ops.general.common import batch_shape, exact_matmul, threshold_ints
from custom_ops.general.threshold import threshold_counts
from custom_ops.mvau_estimates import MVAUEstimates
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp

#: ``mac_dsp`` -> the ``use_dsp`` values the folding may choose
MAC_DSP_CHOICES = {"auto": (0, 1), "lut": (0,), "dsp": (1,)}


def to_int_domain(values, fmt):
    """Values of ``fmt`` -> exact integers (int64) in the format's integer domain."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), -fmt.lsb_exponent)
    ints = np.rint(scaled)
    if np.any(ints != scaled):
        raise UnsupportedNodeError(f"tensor holds values that are not in {fmt.name}")
    if fmt.max_int >= 2**62:
        return np.array([int(v) for v in ints.ravel()], dtype=object).reshape(ints.shape)
    return ints.astype(np.int64)


class MinifloatMVAU(HWOpCapabilities, MVAUEstimates, HWCustomOp):
    """Matrix-vector activation unit with exact minifloat/integer MACs and threshold requantization."""

    resource_breakdown = MVAUEstimates.resource_breakdown  # the MAC / requant / memory split, not the mixin's default

    # --- capabilities (custom_ops/capabilities.py) ------------------------------------------------------------
    def folding_space(self):
        """Every (PE | MH, SIMD | MW) pair (the weights are embedded, so no weight-stream width limits the SIMD),
        each with the ``use_dsp`` values ``mac_dsp`` allows (under "auto" use_dsp=1 only where the DSP48 datapath
        maps a product at that PE: ``dsp_plan``; otherwise it is the LUT datapath again), and while an embedded
        weight ROM's ``ram_style`` is "auto", both places for it, LUTs ("distributed") or block RAM ("block"), so the
        folding trades LUTs for DSPs and BRAM by the estimates (a set style stays; external weights have no ROM)."""
        choices = MAC_DSP_CHOICES[self.get_nodeattr("mac_dsp")]
        if not self.dsp_capable():
            choices = (0,)
        auto = self.weight_source() == "embedded" and self.get_nodeattr("ram_style") == "auto"
        styles = [{"ram_style": "distributed"}, {"ram_style": "block"}] if auto else [{}]
        space = []
        for pe in divisors(self.get_nodeattr("MH")):
            dsp = [d for d in choices if not d or len(choices) == 1 or self.dsp_plan(pe).dsps_per_lane]
            space += [{"PE": pe, "SIMD": simd, "use_dsp": d, **style} for simd in divisors(self.get_nodeattr("MW"))
                      for d in dsp for style in styles]
        return space

    def threshold_input(self):
        return 2 if len(self.onnx_node.input) > 2 and not self.get_nodeattr("noActivation") else None

    def weight_memory_bits(self):
        """Bits of the embedded weight ROM (0 for dynamic_input and external weights: they arrive on a stream)."""
        return self._weight_bits_total() if self.weight_source() == "embedded" else 0

    def min_weight_blocks(self):
        """The fewest BRAM_18K / URAM blocks the embedded weights take over the folding space, where ``ram_style``
        puts them ("ultra": UltraRAM, otherwise block RAM; the op's own ``bram_estimation`` / ``uram_estimation``):
        {"BRAM_18K": n, "URAM": m}, zeros when nothing is embedded."""
        blocks = {"BRAM_18K": 0, "URAM": 0}
        if not self.weight_memory_bits():
            return blocks
        kind, style = ("URAM", "ultra") if self.get_nodeattr("ram_style") == "ultra" else ("BRAM_18K", "block")
        saved = {k: self.get_nodeattr(k) for k in ("PE", "SIMD", "ram_style")}
        counts = []
        try:
            for pe, simd in sorted({(f["PE"], f.get("SIMD", saved["SIMD"])) for f in self.folding_space()}):
                self.set_nodeattr("PE", pe)
                self.set_nodeattr("SIMD", simd)
                self.set_nodeattr("ram_style", style)
                counts.append(self.uram_estimation() if kind == "URAM" else self.bram_estimation())
        finally:
            for k, v in saved.items():
                self.set_nodeattr(k, v)
        blocks[kind] = min(counts)
        return blocks

    def external_weights_capable(self):
        """Static weights (an initializer) can stay off chip (``mem_mode = "external"``); a dynamic matrix cannot."""
        return not self.get_nodeattr("dynamic_input")

    def set_external_weights(self, external):
        if external and not self.external_weights_capable():
            self._refuse_external()
        self.set_nodeattr("mem_mode", "external" if external else "internal_embedded")

    def _refuse_external(self):
        raise UnsupportedNodeError(
            f"{self.onnx_node.name} ({self.onnx_node.op_type}): mem_mode 'external' needs static weights on a "
            "MinifloatMVAU (not dynamic_input, not a MinifloatVVAU); use mem_mode 'internal_embedded'")

    def external_reads_per_frame(self):
        """External weights are read once per input vector."""
        return int(np.prod(self.get_nodeattr("numInputVectors")))

    def external_weight_bits(self):
        """Bits streamed from external memory per frame: the matrix once per input vector (``mem_mode``)."""
        if self.weight_source() != "external":
            return 0
        return self.external_reads_per_frame() * self._weight_bits_total()

    def weight_source(self):
        """Where W comes from: "embedded" (on-chip ROM), "external" (in1, mem_mode "external") or "dynamic" (in1, a
        matrix per group, dynamic_input)."""
        external = self.get_nodeattr("mem_mode") == "external"
        if external and not self.external_weights_capable():
            self._refuse_external()
        if self.get_nodeattr("dynamic_input"):
            return "dynamic"
        return "external" if external else "embedded"

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
            # where a static W lives: on-chip ROM, or off chip streamed on in1 (module docstring; FINN's names)
            "mem_mode": ("s", False, "internal_embedded", {"internal_embedded", "external"}),
            "ram_style": ("s", False, "auto", {"auto", "block", "distributed", "ultra"}),
            "numInputVectors": ("ints", False, [1]),
            # 1: every output channel has the same threshold row (passes.shared_thresholds; estimates only)
            "sharedThresholds": ("i", False, 0, {0, 1}),
            # significand products: 0 LUTs (mf_mul), 1 DSP48E1s, several PE channels per DSP48 (mf_dotp_pe,
            # custom_ops/mac/packing.py); the bits are the same
            "use_dsp": ("i", False, 0, {0, 1}),
            # at most this many products per DSP48 (0: as many as fit)
            "dsp_pack": ("i", False, 0),
            # the use_dsp values the folding may choose: "auto" both, "lut" 0 only, "dsp" 1 only (config mac_dsp)
            "mac_dsp": ("s", False, "auto", set(MAC_DSP_CHOICES)),
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
        return qonnx_datatype(self.get_nodeattr("accDataType"))

    def get_input_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("inputDataType" if ind == 0 else "weightDataType"))

    def get_weight_datatype(self):
        return qonnx_datatype(self.get_nodeattr("weightDataType"))

    def get_output_datatype(self, ind=0):
        if self.get_nodeattr("noActivation"):
            return self.get_accumulator_datatype()
        return qonnx_datatype(self.get_nodeattr("outputDataType"))

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
        source = self.weight_source()
        if ind == 1 and source == "dynamic":  # FINN's MVAU mem_mode "dynamic"
            return tuple(vecs[:-1] + [self.get_nodeattr("MW"), nf, self.get_nodeattr("PE")])
        if ind == 1 and source == "external":  # FINN's MVAU mem_mode "external": the matrix per input vector
            return (int(np.prod(vecs)), sf * nf, self.get_nodeattr("SIMD") * self.get_nodeattr("PE"))
        if ind == 1:  # embedded weights: the ROM words (FINN's internal_decoupled weight-stream shape)
            return (1, sf * nf, self.get_nodeattr("SIMD") * self.get_nodeattr("PE"))
        raise UnsupportedNodeError(f"{self.onnx_node.name}: input {ind} (thresholds) is embedded, not streamed")

    def get_folded_output_shape(self, ind=0):
        nf, _ = self.folds()
        return tuple(list(self.get_nodeattr("numInputVectors")) + [nf, self.get_nodeattr("PE")])

    def get_instream_width(self, ind=0):
        """Bits per word of input stream ``ind``: in0 SIMD activation codes; in1 PE weight codes (dynamic_input, as
        FINN's MVAU in mem_mode "dynamic") or PE*SIMD weight codes (mem_mode "external", as FINN's); embedded weights
        and thresholds have no stream (0, as FINN's internal_embedded)."""
        if ind == 0:
            return self.get_nodeattr("SIMD") * self.input_format().bits
        source = self.weight_source()
        if ind == 1 and source == "dynamic":
            return self.get_nodeattr("PE") * self.weight_format().bits
        if ind == 1 and source == "external":
            return self.get_nodeattr("PE") * self.get_nodeattr("SIMD") * self.weight_format().bits
        return 0

    def get_number_input_values(self, ind=0):
        """Words on input stream ``ind`` per execution (0 for inputs that are not streamed)."""
        nf, sf = self.folds()
        if ind == 0:
            return int(np.prod(self.get_nodeattr("numInputVectors"))) * sf
        source = self.weight_source()
        if ind == 1 and source == "dynamic":
            return self.dynamic_groups()[0] * self.get_nodeattr("MW") * nf
        if ind == 1 and source == "external":
            return int(np.prod(self.get_nodeattr("numInputVectors"))) * nf * sf
        return 0

    def get_verilog_top_module_intf_names(self):
        """AXI-stream interfaces of the generated top: in0 (+ in1, the matrix stream of dynamic_input or the weight
        stream of mem_mode "external") and out0; embedded weights and thresholds are not streamed."""
        intf = super().get_verilog_top_module_intf_names()
        streams = [("in0_V", self.get_instream_width_padded(0))]
        if self.weight_source() != "embedded":
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

    def external_weight_words(self, w_values, vectors):
        """The in1 words of mem_mode "external" for ``vectors`` input vectors: the matrix words once per vector."""
        return list(self.matrix_words(w_values)) * int(vectors)

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
