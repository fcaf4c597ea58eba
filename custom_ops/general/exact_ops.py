"""Exact integer arithmetic on decoded codes: the only compute the lowered graph has between two quantizers.

Every input holds unscaled values of a format (``FLOAT<e,m,b>`` / ``INTn`` / ``UINTn``); in the integer domain
``x_int = x / 2**lsb_exponent(format)``. Outputs are exact integers (int64, or Python ints in object arrays when a
bound reaches 2**62), annotated ``INTn`` with ``n`` from the value ranges (``acc_range``).

* ``ExactMatMul(x, W) -> acc``: ``acc = x_int @ W_int`` (numpy matmul semantics; ``W`` an initializer or, for
  activation x activation products, a second dynamic input).
* ``ExactAdd(x_0, ..., x_n) -> acc``: ``acc = sum_j coeffs[j] * x_j_int`` (broadcasting), integer coefficients.
  Aligns differently scaled streams exactly (residual adds, positional embedding).
* ``ExactSumPool(x[, axes]) -> acc``: sums of ``x_int`` over ``axes`` (keepdims) when ``kernel`` is empty, else over
  non-overlapping ``kernel`` windows of the spatial axes of an NCHW tensor (average pooling without padding).
  The division of an average is a scale, folded into the next thresholds.
"""

import numpy as np
import onnx.helper as helper
from qonnx.core.datatype import DataType
from qonnx.custom_op.base import CustomOp

from compiler.qonnx_formats import format_from_datatype
from custom_ops.general.common import bits_for_range, exact_ints, exact_matmul, widen


def _int_range(fmt):
    ints = fmt.int_values()
    return int(ints[0]), int(ints[-1])


def _prod_range(lo1, hi1, lo2, hi2):
    corners = [lo1 * lo2, lo1 * hi2, hi1 * lo2, hi1 * hi2]
    return min(corners), max(corners)


class _ExactOp(CustomOp):
    """Common parts: the output datatype from the subclass' ``acc_range(model) -> (lo, hi)``."""

    def acc_datatype(self, model):
        """INTn holding [lo - 1, hi + 1]: the accumulator and every clipped threshold (lo .. hi + 1, and for
        negated channels -hi .. -lo + 1) fit the same width."""
        lo, hi = self.acc_range(model)
        return DataType[f"INT{bits_for_range(min(lo, -hi) - 1, max(hi, -lo) + 1)}"]

    def infer_node_datatype(self, model):
        model.set_tensor_datatype(self.onnx_node.output[0], self.acc_datatype(model))

    def where(self):
        return f"{self.onnx_node.op_type} {self.onnx_node.name}"


class ExactMatMul(_ExactOp):
    def get_nodeattr_types(self):
        return {"input_format": ("s", True, ""), "weight_format": ("s", True, "")}

    def formats(self):
        return (format_from_datatype(self.get_nodeattr("input_format"), self.where()),
                format_from_datatype(self.get_nodeattr("weight_format"), self.where()))

    def make_shape_compatible_op(self, model):
        return helper.make_node("MatMul", list(self.onnx_node.input[:2]), [self.onnx_node.output[0]])

    def acc_range(self, model):
        """Range of the accumulator: from the actual weights when W is constant (per output column), else from
        the formats and the dot-product length."""
        fx, fw = self.formats()
        xlo, xhi = _int_range(fx)
        w = model.get_initializer(self.onnx_node.input[1])
        if w is not None:
            w_int = exact_ints(w, fw, self.where()).astype(object)
            pos = np.where(w_int > 0, w_int, 0).sum(axis=-2)
            neg = np.where(w_int < 0, w_int, 0).sum(axis=-2)
            # x_int in [xlo, xhi]: max of x*w per term is w*xhi for w>0 and w*xlo for w<0 (xlo<=0<=xhi)
            hi = max(int(p) * xhi + int(n) * xlo for p, n in zip(pos.ravel(), neg.ravel()))
            lo = min(int(p) * xlo + int(n) * xhi for p, n in zip(pos.ravel(), neg.ravel()))
            return lo, hi
        k = model.get_tensor_shape(self.onnx_node.input[0])[-1]
        plo, phi = _prod_range(xlo, xhi, *_int_range(fw))
        return k * plo, k * phi

    def execute_node(self, context, graph):
        node = self.onnx_node
        fx, fw = self.formats()
        x = exact_ints(context[node.input[0]], fx, self.where())
        w = exact_ints(context[node.input[1]], fw, self.where())
        context[node.output[0]] = exact_matmul(x, w)

    def verify_node(self):
        return [f"{self.where()}: formats {self.get_nodeattr('input_format')} x {self.get_nodeattr('weight_format')}"]


class ExactAdd(_ExactOp):
    def get_nodeattr_types(self):
        return {"formats": ("strings", True, []), "coeffs": ("ints", True, [])}

    def check(self):
        fmts, coeffs = self.get_nodeattr("formats"), self.get_nodeattr("coeffs")
        n = len(self.onnx_node.input)
        if len(fmts) != n or len(coeffs) != n:
            raise ValueError(f"{self.where()}: {n} inputs need {n} formats and coeffs, got {len(fmts)}, "
                             f"{len(coeffs)}")
        return [format_from_datatype(f, self.where()) for f in fmts], [int(c) for c in coeffs]

    def make_shape_compatible_op(self, model):
        return helper.make_node("Sum", list(self.onnx_node.input), [self.onnx_node.output[0]])

    def acc_range(self, model):
        fmts, coeffs = self.check()
        lo = hi = 0
        for fmt, c in zip(fmts, coeffs):
            a, b = _prod_range(*_int_range(fmt), c, c)
            lo, hi = lo + a, hi + b
        return lo, hi

    def execute_node(self, context, graph):
        fmts, coeffs = self.check()
        bound = sum(abs(c) * f.max_int for f, c in zip(fmts, coeffs))
        acc = 0
        for name, fmt, c in zip(self.onnx_node.input, fmts, coeffs):
            acc = acc + widen(exact_ints(context[name], fmt, self.where()), bound) * (c if bound >= 2**62 else
                                                                                      np.int64(c))
        context[self.onnx_node.output[0]] = np.asarray(acc)

    def verify_node(self):
        return [f"{self.where()}: coeffs {list(self.get_nodeattr('coeffs'))}"]


class ExactSumPool(_ExactOp):
    """Sum pooling; inputs ``x`` and (without ``kernel``) ``axes``, an int64 initializer as for ONNX ReduceSum."""

    def get_nodeattr_types(self):
        return {"format": ("s", True, ""), "kernel": ("ints", False, [])}

    def fmt(self):
        return format_from_datatype(self.get_nodeattr("format"), self.where())

    def axes(self, model_or_context, rank):
        name = self.onnx_node.input[1] if len(self.onnx_node.input) > 1 else ""
        if isinstance(model_or_context, dict):
            value = model_or_context.get(name) if name else None
        else:
            value = model_or_context.get_initializer(name) if name else None
        if value is None:
            raise ValueError(f"{self.where()}: needs a constant axes input (or the kernel attribute)")
        return sorted(int(a) % rank for a in np.asarray(value).ravel())

    def window(self, model):
        kernel = list(self.get_nodeattr("kernel"))
        if kernel:
            return kernel[0] * kernel[1]
        shape = model.get_tensor_shape(self.onnx_node.input[0])
        return int(np.prod([shape[a] for a in self.axes(model, len(shape))]))

    def make_shape_compatible_op(self, model):
        node = self.onnx_node
        kernel = list(self.get_nodeattr("kernel"))
        if kernel:
            return helper.make_node("AveragePool", [node.input[0]], [node.output[0]], kernel_shape=kernel,
                                    strides=kernel)
        return helper.make_node("ReduceSum", [node.input[0], node.input[1]], [node.output[0]], keepdims=1)

    def acc_range(self, model):
        n = self.window(model)
        lo, hi = _int_range(self.fmt())
        return n * lo, n * hi

    def execute_node(self, context, graph):
        fmt = self.fmt()
        x = exact_ints(context[self.onnx_node.input[0]], fmt, self.where())
        kernel = list(self.get_nodeattr("kernel"))
        if kernel:
            n, c, h, w = x.shape
            kh, kw = kernel
            if h % kh or w % kw:
                raise ValueError(f"{self.where()}: {h}x{w} is not a multiple of the {kh}x{kw} pooling window")
            out = x.reshape(n, c, h // kh, kh, w // kw, kw).sum(axis=(3, 5))
        else:
            out = x.sum(axis=tuple(self.axes(context, x.ndim)), keepdims=True)
        context[self.onnx_node.output[0]] = out

    def verify_node(self):
        return [f"{self.where()}: format {self.get_nodeattr('format')}"]
