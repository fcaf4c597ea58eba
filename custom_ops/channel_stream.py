"""ChannelStreamOp: common part of minifinn's element-wise streaming ops (thresholding, tables, residual add).

Shapes: every input stream and the output are ``numInputVectors + [NumChannels]``, folded to
``numInputVectors + [NumChannels / PE, PE]``: PE channels per word, one word per cycle. Subclasses declare their own
attributes (``op_attrs``), formats and arithmetic; thresholded ops use ``thresholds`` / ``signs``.
"""

import numpy as np

from compiler.errors import UnsupportedNodeError
from compiler.qonnx_formats import format_from_datatype, qonnx_datatype
from custom_ops.capabilities import HWOpCapabilities
from custom_ops.general.common import threshold_ints
from custom_ops.threshold_cost import rows_per_lane, threshold_stage_ffs, threshold_stage_luts
from finn.custom_op.fpgadataflow.hwcustomop import HWCustomOp


class ChannelStreamOp(HWOpCapabilities, HWCustomOp):
    #: index of the threshold initializer among the node's inputs (None: the op has no thresholds)
    THRESHOLD_INPUT = None

    def op_attrs(self):
        return {}

    def get_nodeattr_types(self):
        attrs = {
            "NumChannels": ("i", True, 0),
            "PE": ("i", True, 1),
            "outputDataType": ("s", True, ""),
            "numInputVectors": ("ints", False, [1]),
            "rtlsim_dir": ("s", False, ""),
        }
        if self.THRESHOLD_INPUT is not None:
            # 1: every channel has the same threshold row (set by passes.shared_thresholds; estimates only)
            attrs["sharedThresholds"] = ("i", False, 0, {0, 1})
        attrs.update(self.op_attrs())
        attrs.update(super().get_nodeattr_types())
        return attrs

    # --- formats -------------------------------------------------------------------------------------------------
    def output_format(self):
        return format_from_datatype(self.get_nodeattr("outputDataType"), self.onnx_node.name)

    def get_output_datatype(self, ind=0):
        return qonnx_datatype(self.get_nodeattr("outputDataType"))

    def n_thresholds(self):
        return len(self.output_format().values()) - 1

    # --- shapes and streams ----------------------------------------------------------------------------------------
    def folds(self):
        c, pe = self.get_nodeattr("NumChannels"), self.get_nodeattr("PE")
        if c % pe:
            raise UnsupportedNodeError(f"{self.onnx_node.name}: PE={pe} must divide NumChannels={c}")
        return c // pe

    def get_normal_input_shape(self, ind=0):
        if ind == self.THRESHOLD_INPUT:
            return (self.get_nodeattr("NumChannels"), self.n_thresholds())
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.get_nodeattr("NumChannels")])

    def get_normal_output_shape(self, ind=0):
        return self.get_normal_input_shape(0)

    def get_folded_input_shape(self, ind=0):
        return tuple(list(self.get_nodeattr("numInputVectors")) + [self.folds(), self.get_nodeattr("PE")])

    def get_folded_output_shape(self, ind=0):
        return self.get_folded_input_shape(0)

    def get_outstream_width(self, ind=0):
        return self.get_nodeattr("PE") * self.output_format().bits

    def get_number_output_values(self):
        return int(np.prod(self.get_nodeattr("numInputVectors"))) * self.folds()

    def get_exp_cycles(self):
        return self.get_number_output_values()

    def make_shape_compatible_op(self, model):
        return super().make_const_shape_op(self.get_normal_output_shape())

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.get_output_datatype())

    # --- estimates ---------------------------------------------------------------------------------------------
    def bram_estimation(self, fpgapart=None):
        return 0

    def dsp_estimation(self, fpgapart=None):
        return 0

    def ff_estimation(self, fpgapart=None):
        return self.get_outstream_width() + 16

    def node_res_estimation(self, fpgapart):
        return {"BRAM_18K": self.bram_estimation(), "BRAM_efficiency": 1.0, "LUT": self.lut_estimation(), "URAM": 0,
                "URAM_efficiency": 1.0, "DSP": self.dsp_estimation(), "FF": self.ff_estimation()}

    # --- thresholds (ops with THRESHOLD_INPUT) ----------------------------------------------------------------
    def threshold_input(self):
        idx = self.THRESHOLD_INPUT
        return idx if idx is not None and len(self.onnx_node.input) > idx else None

    def thresholds(self, model_or_context):
        """(NumChannels, N) thresholds from the model's initializer or the execution context (int64, or Python ints
        beyond 64 bits: ``custom_ops.general.common.threshold_ints``)."""
        name = self.onnx_node.input[self.THRESHOLD_INPUT]
        t = model_or_context[name] if isinstance(model_or_context, dict) else model_or_context.get_initializer(name)
        t = threshold_ints(t)
        return np.repeat(t, self.get_nodeattr("NumChannels"), axis=0) if t.shape[0] == 1 else t

    def _threshold_rows_per_lane(self):
        return rows_per_lane(self.get_nodeattr("NumChannels"), self.get_nodeattr("PE"),
                             self.get_nodeattr("sharedThresholds"))

    def threshold_stage_luts(self, width):
        """LUTs of the PE threshold stages (``custom_ops/threshold_cost.py``) for ``width``-bit stored thresholds."""
        return threshold_stage_luts(self._threshold_rows_per_lane(), self.n_thresholds(), width,
                                    self.get_nodeattr("PE"))

    def threshold_stage_ffs(self, width):
        return threshold_stage_ffs(self._threshold_rows_per_lane(), self.n_thresholds(), width)

    def signs(self):
        signs = list(self.get_nodeattr("channel_signs"))
        return signs * self.get_nodeattr("NumChannels") if len(signs) == 1 else signs
