"""Quantize any float torch model for minifinn (``quantize_model``): the recipe of "Shedding the Bits" (per-channel
weight scales, per-tensor activation scales, every product and sum reading quantized tensors, 8-bit first and last
layer) applied by graph rewriting, so torchvision's ResNet-18, MobileNetV2 and ViT-B/32 and the zoo's float models
become Brevitas models that ``compiler.export.export_qonnx_model`` exports.

The returned model computes:

* **weights** of every ``Conv1d/2d`` and ``Linear`` (and both projections of every ``nn.MultiheadAttention``): the
  zoo's per-output-channel quantizer (``compiler.zoo.quantizers.weight_quant``: scale absmax(channel) / max);
* **biases** stay float. minifinn folds a bias into the requantizer's thresholds (or, on an unquantized output, into
  the output's affine map) exactly; Brevitas' ``Int32Bias`` would be a 32-bit integer quantizer on the accumulator,
  which minifinn refuses (it supports formats of at most 8 bits);
* **activations**: one scale per tensor (``act_quant``: the 99.999th percentile of |x| maps to the format's top),
  calibrated on ``calib`` under ``brevitas.graph.calibrate.calibration_mode``;
* every tensor read by a convolution, linear layer, matmul, add / sub of two tensors (residuals), concatenation,
  pooling (max, average, adaptive, ``mean``), ``LayerNorm``, ``GELU`` or softmax is a quantizer output: one
  quantizer per tensor, shared by all its readers, placed after the op that produced it (value-preserving ops in
  between, e.g. flatten, reshape, dropout, max pooling, are looked through). A ``ReLU`` producing such a tensor
  becomes a ``QuantReLU``; ``ReLU6`` becomes ``ReLU`` (``relu6_to_relu``, Brevitas' PTQ default: the calibrated
  scale bounds the range; minifinn can then requantize by conversion, where a clip needs threshold tables, too
  many BRAMs for MobileNetV2 in E4M3 on a U250), ``Hardtanh`` / ``clamp`` stay (minifinn folds the clip into the
  next quantizer's thresholds);
* ``nn.MultiheadAttention`` becomes Brevitas' ``QuantMultiheadAttention`` (torch's own does not export with
  ``dynamo=False``) with every internal tensor quantized in the activation format: the projection input, the scaled
  queries, transposed keys, values, the softmax input and output, the output projection's input and output;
* the first layer (the weight layers reading the model input without another weight layer in between) and the
  last (those the output is computed from likewise) get ``first`` / ``last`` for their weights and the quantizers
  feeding them; the input quantizer is ``first``. ``None`` means the paper's default, the 8-bit format of the
  weights' family: ``fp:e4m3`` (``ocp:e4m3`` for OCP formats), ``int:8`` for integers. The logits stay float.

How: Brevitas' graph quantization. The model is traced (``brevitas.fx.value_trace`` on the first calibration sample,
so shape checks in ``forward`` follow that input), standardized (``TorchFunctionalToModule``,
``DuplicateSharedStatelessModule``: a ReLU module called twice gets two quantizers, ``MeanMethodToAdaptiveAvgPool2d``),
then the input quantizer is inserted with Brevitas' ``inp_placeholder_handler``, layers are swapped with
``ModuleToModuleByInstance`` (per layer, so first/last differ from the body) and quantizers are placed with
``InsertModuleCallAfter``. Brevitas' own driver ``brevitas.graph.quantize.quantize`` (and ``brevitas_examples``'
``ptq_common.quantize_model`` built on it) is not used: its residual step (``residual_handler`` ->
``align_input_quant``) shares one scale between the operands of every add by reading the quantizer's
``int_scaling_impl``, which float quantizers lack (``AttributeError: 'FloatQuant' object has no attribute
'int_scaling_impl'``, Brevitas 0.13, an open bug). The shared scale is not needed either: minifinn adds two tensors of
different scales exactly (``ExactAdd`` aligns their integer steps), so each operand gets its own quantizer here.

A model already holding Brevitas layers with their quantizers off (the zoo built with spec ``"float"``) is first
turned into its plain torch equivalent; one with any quantizer on is refused. Layer types outside the recipe are
refused, all named at once (``QuantizeModelError``).
"""

from __future__ import annotations

import copy
import inspect
import operator
import warnings

import brevitas.nn as qnn
import torch
import torch.nn.functional as F
from brevitas import config as brevitas_config
from brevitas.fx import map_arg, value_trace
from brevitas.graph.base import InsertModuleCallAfter, ModuleToModuleByClass, ModuleToModuleByInstance
from brevitas.graph.calibrate import calibration_mode
from brevitas.graph.quantize_impl import inp_placeholder_handler
from brevitas.graph.standardize import (
    DuplicateSharedStatelessModule,
    MeanMethodToAdaptiveAvgPool2d,
    TorchFunctionalToModule,
)
from brevitas.graph.utils import set_module
from brevitas.proxy.quant_proxy import QuantProxyFromInjector
from torch import nn

from compiler.errors import MinifinnError
from compiler.numerics import MinifloatFormat
from compiler.zoo.quantizers import act_quant, format_of_quantizer, to_format, weight_quant


class QuantizeModelError(MinifinnError):
    """A model or argument ``quantize_model`` cannot handle (unsupported layers, no calibration data, ...)."""


WEIGHT_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
#: modules whose input must be a quantizer output
QUANT_INPUT_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                       nn.AdaptiveAvgPool2d, nn.LayerNorm, nn.GELU, nn.Softmax)
#: modules on the accumulator side: minifinn folds them into the next quantizer
AFFINE_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh)
#: modules whose output holds the input's values (a quantized input stays quantized)
PRESERVING_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity, nn.Flatten, nn.MaxPool1d, nn.MaxPool2d)
#: tensor functions and methods: "add" (of two tensors: quantized inputs, else an affine shift), "scale" (by a
#: constant), "clip", "quant_input", "preserving"
FUNCTION_KINDS = {
    **dict.fromkeys((operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub), "add"),
    **dict.fromkeys((operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div),
                    "scale"),
    **dict.fromkeys((torch.clamp, torch.clip), "clip"),
    **dict.fromkeys((torch.matmul, operator.matmul, torch.bmm, torch.cat, torch.concat, torch.softmax, F.softmax,
                     F.gelu, torch.mean), "quant_input"),
    **dict.fromkeys((torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.squeeze, torch.unsqueeze,
                     operator.getitem, F.pad), "preserving"),
}
METHOD_KINDS = {
    **dict.fromkeys(("add", "add_", "sub", "sub_"), "add"), **dict.fromkeys(("mul", "mul_", "div", "div_"), "scale"),
    **dict.fromkeys(("clamp", "clip", "clamp_", "clip_"), "clip"),
    **dict.fromkeys(("matmul", "softmax", "mean"), "quant_input"),
    **dict.fromkeys(("view", "reshape", "flatten", "permute", "transpose", "contiguous", "expand", "squeeze",
                     "unsqueeze", "t", "__getitem__"), "preserving"),
}


def eight_bit_default(fmt):
    """The paper's first/last-layer format for body format ``fmt``: the 8-bit member of its family (``ocp:e4m3`` for
    a minifloat with a reduced maximum, ``fp:e4m3`` for other minifloats, ``int:8`` for integers, ``float`` stays)."""
    parsed = to_format(fmt)
    if parsed is None:
        return "float"
    if isinstance(parsed, MinifloatFormat):
        return "ocp:e4m3" if parsed.max != MinifloatFormat(parsed.exponent_bits, parsed.mantissa_bits,
                                                           parsed.exponent_bias).max else "fp:e4m3"
    return "int:8"


def _formats(weights, acts, first, last):
    """{role: (weight quantizer, act quantizer)} with every format checked up front."""
    out = {}
    for role, (w, a) in {"body": (weights, acts), "first": (first, first), "last": (last, last)}.items():
        try:
            if w is None:
                w = a = eight_bit_default(weights)
            out[role] = (weight_quant(w), act_quant(a))
        except MinifinnError as exc:
            raise QuantizeModelError(f"quantize_model: {role} format: {exc}") from None
    return out


def plain_torch(model):
    """A copy of ``model`` with Brevitas layers whose quantizers are all off replaced by their torch layers
    (QuantConv/QuantLinear -> Conv/Linear with the same parameters, QuantIdentity -> Identity, QuantReLU -> ReLU)."""
    on = sorted({name.rsplit(".", 1)[0] for name, m in model.named_modules()
                 if isinstance(m, QuantProxyFromInjector) and m.is_quant_enabled})
    if on:
        raise QuantizeModelError(
            f"quantize_model takes a float model; {type(model).__name__} is already quantized at "
            f"{', '.join(on[:8])}{' ...' if len(on) > 8 else ''} (build it with spec 'float')")
    model = copy.deepcopy(model).eval()
    for name, m in list(model.named_modules()):
        if type(m) in (qnn.QuantConv1d, qnn.QuantConv2d):
            plain = (nn.Conv1d if type(m) is qnn.QuantConv1d else nn.Conv2d)(
                m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                dilation=m.dilation, groups=m.groups, bias=m.bias is not None, padding_mode=m.padding_mode)
        elif type(m) is qnn.QuantLinear:
            plain = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif isinstance(m, qnn.QuantIdentity):
            set_module(model, nn.Identity(), name)
            continue
        elif isinstance(m, qnn.QuantReLU):
            set_module(model, nn.ReLU(), name)
            continue
        else:
            continue
        plain.load_state_dict({k: v for k, v in m.state_dict().items() if k in ("weight", "bias")})
        set_module(model, plain.eval(), name)
    return model


def _trace(model, sample, relu6_to_relu):
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not params:
        raise QuantizeModelError(f"{type(model).__name__}.forward takes no tensor argument")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = value_trace(model, value_args={params[0].name: sample})
    except Exception as exc:  # torch.fx raises many types; the message says what could not be traced
        raise QuantizeModelError(
            f"quantize_model cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
            "the model's forward must be traceable (no data-dependent control flow on tensor values)") from None
    transforms = [TorchFunctionalToModule(), DuplicateSharedStatelessModule(), MeanMethodToAdaptiveAvgPool2d()]
    if relu6_to_relu:
        transforms.append(ModuleToModuleByClass(nn.ReLU6, nn.ReLU))
    for transform in transforms:
        gm = transform.apply(gm)
    return gm


def _run(gm, sample):
    """{node: output value} of one run of the traced graph on ``sample`` (to tell tensor from shape values)."""
    env, modules = {}, dict(gm.named_modules())
    for node in gm.graph.nodes:
        args = map_arg(node.args, lambda n: env[n])
        kwargs = map_arg(node.kwargs, lambda n: env[n])
        if node.op == "placeholder":
            env[node] = sample
        elif node.op == "get_attr":
            env[node] = operator.attrgetter(node.target)(gm)
        elif node.op == "call_function":
            env[node] = node.target(*args, **kwargs)
        elif node.op == "call_method":
            env[node] = getattr(args[0], node.target)(*args[1:], **kwargs)
        elif node.op == "call_module":
            env[node] = modules[node.target](*args, **kwargs)
    return env


class _Graph:
    """The traced model with its node kinds: what each tensor node does for the recipe."""

    def __init__(self, gm, sample):
        self.gm, self.modules = gm, dict(gm.named_modules())
        with torch.no_grad():
            values = _run(gm, sample)
        self.tensor = {n for n, v in values.items() if isinstance(v, torch.Tensor)}
        # nodes whose tensor inputs depend on the model input; the rest compute constants (a class token, a
        # positional embedding), quantized as a whole where they meet the data
        self.dynamic = set()
        for node in gm.graph.nodes:
            if node.op == "placeholder" or any(n in self.dynamic for n in self.tensor_inputs(node)):
                self.dynamic.add(node)

    def module(self, node):
        return self.modules[node.target] if node.op == "call_module" else None

    def tensor_inputs(self, node):
        return [n for n in node.all_input_nodes if n in self.tensor]

    def kind(self, node):
        """'weight', 'mha', 'quant_input', 'affine', 'preserving', 'output', 'source' or 'unsupported'."""
        if node.op in ("placeholder", "get_attr"):
            return "source"
        if node.op == "output":
            return "output"
        if node.op == "call_module":
            m = self.module(node)
            if isinstance(m, nn.MultiheadAttention):
                return "mha"
            for kind, classes in (("weight", WEIGHT_LAYERS), ("quant_input", QUANT_INPUT_MODULES),
                                  ("affine", AFFINE_MODULES), ("preserving", PRESERVING_MODULES)):
                if type(m) in classes:
                    return kind
            return "unsupported"
        if node not in self.tensor:
            return "shape"
        kind = (FUNCTION_KINDS if node.op == "call_function" else METHOD_KINDS).get(node.target, "unsupported")
        n_tensors = len(self.tensor_inputs(node))
        if kind == "add":
            return "quant_input" if n_tensors > 1 else "affine"
        if kind == "scale":
            return "affine" if n_tensors == 1 else "unsupported"
        if kind == "clip":
            return "affine"
        if kind == "preserving" and node.target is operator.getitem and self.kind_of_mha_output(node):
            return "mha_output"
        return kind

    def kind_of_mha_output(self, node):
        src = node.args[0]
        return isinstance(src, type(node)) and src.op == "call_module" and isinstance(
            self.module(src), (nn.MultiheadAttention, qnn.QuantMultiheadAttention))

    def unsupported(self):
        rows = []
        for node in self.gm.graph.nodes:
            if self.kind(node) != "unsupported":
                continue
            m = self.module(node)
            what = type(m).__name__ if m is not None else getattr(node.target, "__name__", str(node.target))
            rows.append(f"{node.target if m is not None else node.name} ({what})")
        return rows

    def roles(self):
        """(first, last): the weight-layer nodes reading the input / feeding the output with no weight layer between."""
        stop = ("weight", "mha")
        first, seen = set(), set()
        todo = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        while todo:
            node = todo.pop()
            for user in node.users:
                if user in seen or self.kind(user) == "shape":
                    continue
                seen.add(user)
                if self.kind(user) in stop:
                    first.add(user)
                elif self.kind(user) == "mha_output":
                    continue
                else:
                    todo.append(user)
        last, seen = set(), set()
        todo = [n for n in self.gm.graph.nodes if n.op == "output"]
        while todo:
            node = todo.pop()
            for inp in self.tensor_inputs(node):
                if inp in seen:
                    continue
                seen.add(inp)
                if self.kind(inp) in stop:
                    last.add(inp)
                elif self.kind(inp) == "mha_output":
                    last.add(inp.args[0])
                else:
                    todo.append(inp)
        return first, last

    def source(self, node):
        """The node whose values ``node`` carries, looking through value-preserving ops."""
        while self.kind(node) == "preserving" or type(self.module(node)) in PRESERVING_MODULES:
            inputs = self.tensor_inputs(node)
            if len(inputs) != 1:
                break
            node = inputs[0]
        return node

    def quantized(self, node):
        """True when ``node`` (a source) is a quantizer output: the attention's output (``QuantMultiheadAttention``
        quantizes it with ``out_proj_output_quant``) or a Brevitas activation with its quantizer on."""
        m = self.module(node)
        if isinstance(m, (qnn.QuantIdentity, qnn.QuantReLU)):
            return m.act_quant.is_quant_enabled
        return self.kind(node) == "mha_output"


def _quant_layer(module, w, a):
    """The Brevitas layer replacing ``module`` (weights ``w``, activations ``a``)."""
    if isinstance(module, nn.Conv1d):
        return qnn.QuantConv1d, dict(weight_quant=w, bias_quant=None)
    if isinstance(module, nn.Conv2d):
        return qnn.QuantConv2d, dict(weight_quant=w, bias_quant=None)
    if isinstance(module, nn.Linear):
        return qnn.QuantLinear, dict(weight_quant=w, bias_quant=None)
    return qnn.QuantMultiheadAttention, dict(
        bias=module.in_proj_bias is not None, in_proj_input_quant=a,
        in_proj_weight_quant=w, in_proj_bias_quant=None, softmax_input_quant=a, attn_output_weights_quant=a,
        q_scaled_quant=a, k_transposed_quant=a, v_quant=a, out_proj_input_quant=a, out_proj_weight_quant=w,
        out_proj_bias_quant=None, out_proj_output_quant=a, return_quant_tensor=False)


def _rewrite(gm, graph, quants, sites):
    first, last = graph.roles()

    def role_of(node):
        return "first" if node in first else "last" if node in last else "body"

    # which producers must become quantizer outputs, and in which format (a reader of the first/last layer wins)
    wanted = {}
    for node in gm.graph.nodes:
        kind = graph.kind(node)
        if kind in ("weight", "quant_input") and node in graph.dynamic:
            role = role_of(node) if kind == "weight" else "body"
            for inp in graph.tensor_inputs(node):
                src = graph.source(inp) if inp in graph.dynamic else inp
                if src.op == "placeholder" or graph.quantized(src):
                    continue
                prev = wanted.get(src, "body")
                wanted[src] = prev if prev != "body" else role
    # weight layers and attention, one rewriter per instance
    for node in list(gm.graph.nodes):
        if graph.kind(node) in ("weight", "mha"):
            role = role_of(node)
            w, a = quants[role]
            module = graph.module(node)
            cls, kwargs = _quant_layer(module, w, a)
            ModuleToModuleByInstance(module, cls, **kwargs).apply(gm)
            sites[node.target] = {"kind": "weight", "role": role, "format": _name(w)}
    # the input quantizer (Brevitas' placeholder handler), then one quantizer after every wanted producer
    gm = inp_placeholder_handler(gm, (qnn.QuantIdentity, {"act_quant": quants["first"][1]}))
    for node in gm.graph.nodes:
        if node.op == "call_module" and node.target.endswith("_quant") and node.args[0].op == "placeholder":
            sites[node.target] = {"kind": "act", "role": "first", "format": _name(quants["first"][1])}
    for src, role in wanted.items():
        a = quants[role][1]
        if a is None:
            continue
        m = graph.module(src)
        if type(m) is nn.ReLU:
            set_module(gm, qnn.QuantReLU(act_quant=a), src.target)
            sites[src.target] = {"kind": "act", "role": role, "format": _name(a)}
            continue
        name = _unique(gm, f"{src.name}_quant")
        gm.add_module(name, qnn.QuantIdentity(act_quant=a))
        gm = InsertModuleCallAfter(name, src).apply(gm)
        sites[name] = {"kind": "act", "role": role, "format": _name(a)}
    return gm


def _unique(gm, name):
    base, i = name, 1
    while hasattr(gm, name):
        name, i = f"{base}_{i}", i + 1
    return name


def _name(quant):
    fmt = format_of_quantizer(quant)
    return "float" if fmt is None else fmt.qonnx_name


@torch.no_grad()
def _calibrate(model, calib, batch_size):
    with calibration_mode(model):
        for i in range(0, len(calib), batch_size):
            model(calib[i:i + batch_size])


def quantize_model(model, weights="fp:e4m3", acts="fp:e4m3", first=None, last=None, calib=None, batch_size=16,
                   relu6_to_relu=True):
    """A Brevitas model quantizing float ``model`` with the paper's recipe (module doc); ``model`` is not changed.

    ``weights`` / ``acts``: formats of the body ("fp:e4m3", "fp:e3m2", "ocp:e4m3", "int:8" / "int8", "uint:4" for
    activations, "float": that kind stays unquantized). ``first`` / ``last``: format of the first / last layer's
    weights and input quantizers (``None``: the paper's 8-bit default, ``eight_bit_default(weights)``).
    ``calib``: calibration inputs, a tensor (N, ...) with N >= 1 (the first one also drives tracing); ``batch_size``:
    calibration batch size. ``relu6_to_relu``: ReLU6 becomes ReLU (module doc; False keeps the clip). The model
    gets ``quant_sites`` ({module name: {"kind", "role", "format"}}) like the zoo's.
    """
    quants = _formats(weights, acts, first, last)
    if calib is None:
        raise QuantizeModelError("quantize_model needs calibration inputs calib (a tensor of N >= 1 model inputs)")
    calib = torch.as_tensor(calib, dtype=torch.float32)
    if calib.ndim < 1 or len(calib) == 0:
        raise QuantizeModelError(f"quantize_model: calib must hold at least one input, got shape {tuple(calib.shape)}")
    if not isinstance(model, nn.Module):
        raise QuantizeModelError(f"quantize_model takes a torch.nn.Module, got {type(model).__name__}")
    float_model = plain_torch(model)
    gm = _trace(float_model, calib[:1], relu6_to_relu)
    graph = _Graph(gm, calib[:1])
    bad = graph.unsupported()
    if bad:
        raise QuantizeModelError(
            f"quantize_model: {type(model).__name__} has {len(bad)} layer(s) outside the recipe: {', '.join(bad)}; "
            "supported: Conv1d/2d, Linear, MultiheadAttention, BatchNorm, LayerNorm, ReLU, ReLU6, Hardtanh, GELU, "
            "softmax, max/average pooling, dropout, flatten/reshape/permute, add/sub, concat, matmul, scaling by a "
            "constant, clamp")
    sites = {}
    ignore = brevitas_config.IGNORE_MISSING_KEYS
    brevitas_config.IGNORE_MISSING_KEYS = True  # the new layers' quantizer state is not in the float state dict
    try:
        gm = _rewrite(gm, graph, quants, sites)
    finally:
        brevitas_config.IGNORE_MISSING_KEYS = ignore
    gm.eval()
    _calibrate(gm, calib, batch_size)
    gm.quant_sites = sites
    return gm.eval()
