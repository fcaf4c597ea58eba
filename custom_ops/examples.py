"""Small example graphs of minifinn hardware ops, for tests, calibration and benchmarks."""

import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.general import GiveUniqueNodeNames
from qonnx.util.basic import qonnx_make_model

from compiler.numerics import accumulator_bits_from_weights


def _thresholds(acc_sample, n, rng):
    """n non-decreasing integer thresholds spread over the observed accumulator range (some repeated)."""
    lo, hi = int(acc_sample.min()) - 2, int(acc_sample.max()) + 2
    if max(abs(lo), abs(hi)) < 2**62:
        return np.sort(rng.integers(lo, hi + 1, size=n))
    # accumulators beyond int64 (e.g. E6M1 operands): integers held exactly in float64 (few significant bits)
    return np.sort(np.rint(lo + (hi - lo) * rng.random(n)))


def weighted_node_model(op_type, inputs, inits, fa, fw, x_shape, y_shape, domain_suffix="", **attrs):
    """One hardware node ``op_type`` (domain finn.custom_op.fpgadataflow + ``domain_suffix``) from input "x" (values
    of ``fa``, shape ``x_shape``) and the initializers ``inits`` (weight "W" of ``fw``, thresholds "T") to output "y"
    (``y_shape``), with the operand datatypes as attributes and in the tensor annotations; unique node names."""
    node = helper.make_node(op_type, inputs, ["y"], domain="finn.custom_op.fpgadataflow" + domain_suffix,
                            backend="fpgadataflow", inputDataType=fa.qonnx_name, weightDataType=fw.qonnx_name, **attrs)
    graph = helper.make_graph([node], op_type, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)])
    model = ModelWrapper(qonnx_make_model(graph))
    for name, value in inits.items():
        model.set_initializer(name, value)
    model.set_tensor_datatype("x", fa.datatype)
    model.set_tensor_datatype("W", fw.datatype)
    return model.transform(GiveUniqueNodeNames())


def random_mvau_model(fa, fw, fo, mw, mh, pe, simd, no_act, n_vec=3, seed=0, domain_suffix=""):
    """One-node graph; returns (model, x). Weights random codes of fw; thresholds from a sample of accumulators."""
    rng = np.random.default_rng(seed)
    w = fw.values()[rng.integers(0, len(fw.values()), size=(mw, mh))]
    x = fa.values()[rng.integers(0, len(fa.values()), size=(n_vec, mw))].astype(np.float32)
    w_int = w.astype(np.float64) * 2.0 ** -fw.lsb_exponent
    acc_bits = accumulator_bits_from_weights(np.rint(w_int).astype(np.int64), fa)
    inputs = ["x", "W"]
    inits = {"W": w.astype(np.float32)}
    odt = f"INT{acc_bits}" if no_act else fo.qonnx_name
    if not no_act:
        a_sample = np.rint(x.astype(np.float64) * 2.0 ** -fa.lsb_exponent) @ w_int
        n = len(fo.values()) - 1
        inits["T"] = np.stack([_thresholds(a_sample[:, h], n, rng) for h in range(mh)]).astype(np.float32)
        inputs.append("T")
    model = weighted_node_model("MinifloatMVAU", inputs, inits, fa, fw, [n_vec, mw], [n_vec, mh], domain_suffix,
                                MW=mw, MH=mh, PE=pe, SIMD=simd, accDataType=f"INT{acc_bits}", outputDataType=odt,
                                noActivation=int(no_act), numInputVectors=[n_vec])
    return model, x


def random_dynamic_mvau_model(fa, fw, fo, groups, vecs, mw, mh, pe, simd, no_act, seed=0):
    """One-node dynamic_input graph (activation x activation): x (*groups, vecs, MW), W (*groups, MW, MH) both graph
    inputs; returns (model, x, W). Thresholds from a sample of accumulators."""
    rng = np.random.default_rng(seed)
    groups = list(groups)
    x = fa.values()[rng.integers(0, len(fa.values()), size=(*groups, vecs, mw))].astype(np.float32)
    w = fw.values()[rng.integers(0, len(fw.values()), size=(*groups, mw, mh))].astype(np.float32)
    bound = mw * fa.max_int * fw.max_int
    acc_bits = int(bound).bit_length() + 1
    inputs, inits = ["x", "W"], {}
    if not no_act:
        xi = np.rint(x.astype(np.float64) * 2.0 ** -fa.lsb_exponent)
        wi = np.rint(w.astype(np.float64) * 2.0 ** -fw.lsb_exponent)
        sample = np.matmul(xi, wi).reshape(-1, mh)
        n = len(fo.values()) - 1
        t = np.stack([_thresholds(sample[:, h], n, rng) for h in range(mh)])
        inits["T"] = t.astype(np.int64) if np.abs(t).max() < 2**62 else t.astype(np.float64)
        inputs.append("T")
    node = helper.make_node(
        "MinifloatMVAU", inputs, ["y"], domain="finn.custom_op.fpgadataflow", backend="fpgadataflow",
        MW=mw, MH=mh, PE=pe, SIMD=simd, inputDataType=fa.qonnx_name, weightDataType=fw.qonnx_name,
        accDataType=f"INT{acc_bits}", outputDataType=f"INT{acc_bits}" if no_act else fo.qonnx_name,
        noActivation=int(no_act), dynamic_input=1, numInputVectors=[*groups, vecs],
    )
    graph = helper.make_graph(
        [node], "mvau_dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [*groups, vecs, mw]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [*groups, mw, mh])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [*groups, vecs, mh])])
    model = ModelWrapper(qonnx_make_model(graph))
    for name, value in inits.items():
        model.set_initializer(name, value)
    model.set_tensor_datatype("x", fa.datatype)
    model.set_tensor_datatype("W", fw.datatype)
    return model.transform(GiveUniqueNodeNames()), x, w
