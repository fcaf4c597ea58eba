"""minifinn hardware ops, registered into finn-plus' registries on import.

Every op joins ``finn.custom_op.fpgadataflow``, its ``_hls`` / ``_rtl`` variants the ``.hls`` / ``.rtl`` registries
(by the FINN backend base class they derive from), so FINN's own passes (SpecializeLayers, res_estimation,
CreateDataflowPartition, PrepareIP, ...) resolve them like FINN's ops, and each op can tell which backends it has
(``custom_ops.capabilities``). Import ``custom_ops`` before loading a model that contains them.
"""

import finn.custom_op.fpgadataflow as fpgadataflow_registry
import finn.custom_op.fpgadataflow.hls as hls_registry
import finn.custom_op.fpgadataflow.rtl as rtl_registry
from custom_ops.hls.channel_stream_hls import MinifloatAdd_hls, MinifloatLUT_hls
from custom_ops.hls.minifloat_conv_inp_gen_hls import MinifloatConvInpGen_hls
from custom_ops.hls.minifloat_global_acc_pool_hls import MinifloatGlobalAccPool_hls
from custom_ops.hls.minifloat_layernorm_hls import MinifloatLayerNorm_hls
from custom_ops.hls.minifloat_maxpool_hls import MinifloatMaxPool_hls
from custom_ops.hls.minifloat_mvau_hls import MinifloatMVAU_hls
from custom_ops.hls.minifloat_reorder_hls import MinifloatReorder_hls
from custom_ops.hls.minifloat_softmax_hls import MinifloatSoftmax_hls
from custom_ops.hls.minifloat_thresholding_hls import MinifloatThresholding_hls
from custom_ops.hls.minifloat_vvau_hls import MinifloatVVAU_hls
from custom_ops.minifloat_add import MinifloatAdd
from custom_ops.minifloat_conv_inp_gen import MinifloatConvInpGen
from custom_ops.minifloat_global_acc_pool import MinifloatGlobalAccPool
from custom_ops.minifloat_layernorm import MinifloatLayerNorm
from custom_ops.minifloat_lut import MinifloatLUT
from custom_ops.minifloat_maxpool import MinifloatMaxPool
from custom_ops.minifloat_mvau import MinifloatMVAU
from custom_ops.minifloat_reorder import MinifloatReorder
from custom_ops.minifloat_softmax import MinifloatSoftmax
from custom_ops.minifloat_thresholding import MinifloatThresholding
from custom_ops.minifloat_vvau import MinifloatVVAU
from custom_ops.rtl.minifloat_add_rtl import MinifloatAdd_rtl
from custom_ops.rtl.minifloat_conv_inp_gen_rtl import MinifloatConvInpGen_rtl
from custom_ops.rtl.minifloat_global_acc_pool_rtl import MinifloatGlobalAccPool_rtl
from custom_ops.rtl.minifloat_layernorm_rtl import MinifloatLayerNorm_rtl
from custom_ops.rtl.minifloat_lut_rtl import MinifloatLUT_rtl
from custom_ops.rtl.minifloat_maxpool_rtl import MinifloatMaxPool_rtl
from custom_ops.rtl.minifloat_mvau_rtl import MinifloatMVAU_rtl
from custom_ops.rtl.minifloat_reorder_rtl import MinifloatReorder_rtl
from custom_ops.rtl.minifloat_softmax_rtl import MinifloatSoftmax_rtl
from custom_ops.rtl.minifloat_thresholding_rtl import MinifloatThresholding_rtl
from custom_ops.rtl.minifloat_vvau_rtl import MinifloatVVAU_rtl
from finn.custom_op.fpgadataflow.hlsbackend import HLSBackend
from finn.custom_op.fpgadataflow.rtlbackend import RTLBackend

#: every minifinn hardware op class: the ops and their backend variants
HW_OPS = (
    MinifloatAdd, MinifloatAdd_hls, MinifloatAdd_rtl,
    MinifloatConvInpGen, MinifloatConvInpGen_hls, MinifloatConvInpGen_rtl,
    MinifloatGlobalAccPool, MinifloatGlobalAccPool_hls, MinifloatGlobalAccPool_rtl,
    MinifloatLayerNorm, MinifloatLayerNorm_hls, MinifloatLayerNorm_rtl,
    MinifloatLUT, MinifloatLUT_hls, MinifloatLUT_rtl,
    MinifloatMaxPool, MinifloatMaxPool_hls, MinifloatMaxPool_rtl,
    MinifloatMVAU, MinifloatMVAU_hls, MinifloatMVAU_rtl,
    MinifloatReorder, MinifloatReorder_hls, MinifloatReorder_rtl,
    MinifloatSoftmax, MinifloatSoftmax_hls, MinifloatSoftmax_rtl,
    MinifloatThresholding, MinifloatThresholding_hls, MinifloatThresholding_rtl,
    MinifloatVVAU, MinifloatVVAU_hls, MinifloatVVAU_rtl,
)


def register_ops(ops=HW_OPS):
    """Put every op class into the finn-plus registry its FINN base class belongs to (idempotent)."""
    for op in ops:
        if issubclass(op, HLSBackend):
            hls_registry.custom_op[op.__name__] = op
        elif issubclass(op, RTLBackend):
            rtl_registry.custom_op[op.__name__] = op
        else:
            fpgadataflow_registry.custom_op[op.__name__] = op


register_ops()
