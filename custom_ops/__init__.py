"""minifinn hardware ops, registered into finn-plus' registries on import.

``MinifloatMVAU``, ``MinifloatThresholding``, ``MinifloatLUT`` and ``MinifloatAdd`` join ``finn.custom_op.fpgadataflow``, their ``_hls`` / ``_rtl``
variants the ``.hls`` / ``.rtl`` registries, so FINN's own passes (SpecializeLayers, SetFolding, res_estimation,
CreateDataflowPartition, PrepareIP, ...) resolve them like FINN's ops. Import ``custom_ops`` before loading a model
that contains them (``compiler`` flows do).
"""


def register_ops():
    import finn.custom_op.fpgadataflow as fpgadataflow
    import finn.custom_op.fpgadataflow.hls as hls
    import finn.custom_op.fpgadataflow.rtl as rtl

    from custom_ops.hls.minifloat_mvau_hls import MinifloatMVAU_hls
    from custom_ops.minifloat_mvau import MinifloatMVAU
    from custom_ops.minifloat_add import MinifloatAdd
    from custom_ops.minifloat_lut import MinifloatLUT
    from custom_ops.minifloat_thresholding import MinifloatThresholding
    from custom_ops.rtl.minifloat_add_rtl import MinifloatAdd_rtl
    from custom_ops.rtl.minifloat_lut_rtl import MinifloatLUT_rtl
    from custom_ops.rtl.minifloat_mvau_rtl import MinifloatMVAU_rtl
    from custom_ops.rtl.minifloat_thresholding_rtl import MinifloatThresholding_rtl

    fpgadataflow.custom_op["MinifloatMVAU"] = MinifloatMVAU
    hls.custom_op["MinifloatMVAU_hls"] = MinifloatMVAU_hls
    rtl.custom_op["MinifloatMVAU_rtl"] = MinifloatMVAU_rtl
    fpgadataflow.custom_op["MinifloatThresholding"] = MinifloatThresholding
    fpgadataflow.custom_op["MinifloatLUT"] = MinifloatLUT
    rtl.custom_op["MinifloatLUT_rtl"] = MinifloatLUT_rtl
    fpgadataflow.custom_op["MinifloatAdd"] = MinifloatAdd
    rtl.custom_op["MinifloatAdd_rtl"] = MinifloatAdd_rtl
    rtl.custom_op["MinifloatThresholding_rtl"] = MinifloatThresholding_rtl

    from custom_ops.minifloat_conv_inp_gen import MinifloatConvInpGen
    from custom_ops.minifloat_global_acc_pool import MinifloatGlobalAccPool
    from custom_ops.minifloat_maxpool import MinifloatMaxPool
    from custom_ops.minifloat_layernorm import MinifloatLayerNorm
    from custom_ops.minifloat_reorder import MinifloatReorder
    from custom_ops.rtl.minifloat_conv_inp_gen_rtl import MinifloatConvInpGen_rtl
    from custom_ops.rtl.minifloat_global_acc_pool_rtl import MinifloatGlobalAccPool_rtl
    from custom_ops.rtl.minifloat_maxpool_rtl import MinifloatMaxPool_rtl
    from custom_ops.rtl.minifloat_layernorm_rtl import MinifloatLayerNorm_rtl
    from custom_ops.rtl.minifloat_reorder_rtl import MinifloatReorder_rtl

    for op in (MinifloatConvInpGen, MinifloatMaxPool, MinifloatGlobalAccPool, MinifloatReorder, MinifloatLayerNorm):
        fpgadataflow.custom_op[op.__name__] = op
    from custom_ops.hls.channel_stream_hls import MinifloatAdd_hls, MinifloatLUT_hls, MinifloatThresholding_hls
    from custom_ops.hls.minifloat_conv_inp_gen_hls import MinifloatConvInpGen_hls
    from custom_ops.hls.minifloat_global_acc_pool_hls import MinifloatGlobalAccPool_hls
    from custom_ops.hls.minifloat_layernorm_hls import MinifloatLayerNorm_hls
    from custom_ops.hls.minifloat_maxpool_hls import MinifloatMaxPool_hls
    from custom_ops.hls.minifloat_reorder_hls import MinifloatReorder_hls

    for op in (MinifloatConvInpGen_hls, MinifloatMaxPool_hls, MinifloatGlobalAccPool_hls, MinifloatReorder_hls,
               MinifloatLayerNorm_hls, MinifloatThresholding_hls, MinifloatLUT_hls, MinifloatAdd_hls):
        hls.custom_op[op.__name__] = op
    for op in (MinifloatConvInpGen_rtl, MinifloatMaxPool_rtl, MinifloatGlobalAccPool_rtl, MinifloatReorder_rtl,
               MinifloatLayerNorm_rtl):
        rtl.custom_op[op.__name__] = op

    from custom_ops.hls.minifloat_softmax_hls import MinifloatSoftmax_hls
    from custom_ops.minifloat_softmax import MinifloatSoftmax
    from custom_ops.rtl.minifloat_softmax_rtl import MinifloatSoftmax_rtl

    fpgadataflow.custom_op["MinifloatSoftmax"] = MinifloatSoftmax
    hls.custom_op["MinifloatSoftmax_hls"] = MinifloatSoftmax_hls
    rtl.custom_op["MinifloatSoftmax_rtl"] = MinifloatSoftmax_rtl


register_ops()
