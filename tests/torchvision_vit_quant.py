"""A torchvision ``VisionTransformer`` quantized with Brevitas and the zoo's quantizers, in the layout minifinn maps:
what ``compiler.ptq.quantize_model`` must produce for it (tests/test_torchvision_vit.py).

* ``conv_proj``: ``QuantConv2d`` with an input quantizer (``first``), per-channel weights;
* ``nn.MultiheadAttention``: ``QuantMultiheadAttention`` with ``in_proj_input_quant``, ``q_scaled_quant``,
  ``k_transposed_quant``, ``v_quant``, ``softmax_input_quant`` (Brevitas' default leaves it ``None``: then the
  softmax reads an accumulator and no ``MinifloatSoftmax`` maps), ``attn_output_weights_quant``,
  ``out_proj_input_quant`` and ``out_proj_output_quant`` (the residual add's operand) set, per-channel weights, no
  bias quantizers (``Int32Bias`` is refused; float biases fold into the thresholds exactly);
* the MLP: both linears with input and output quantizers (the first one's output is the GELU's input: an
  elementwise table needs quantized values on both sides; the second one's is the residual add's operand);
* every add quantized on both operands and on its sum (the sum feeds the next LayerNorm and the next residual):
  the class token + positional embedding add quantizes the tokens (after the class token is prepended), the
  positional embedding through a quantizer of its own (a constant operand) and the sum; in the blocks the operands
  are already quantized (the block input, the branch outputs above), so only the sums get quantizers;
* the head: ``QuantLinear`` with an input quantizer (``last``), after the final LayerNorm and the class token's
  read-out.

The forward methods are torchvision's with the quantizers inserted: each torchvision module keeps its submodules and
gets the quantizers as new submodules, its ``forward`` replaced on the instance.
"""

import math
import types

import brevitas.nn as qnn
import torch
from brevitas.graph.calibrate import calibration_mode
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from compiler.zoo.quantizers import act_quant, weight_quant


def _act(fmt):
    return qnn.QuantIdentity(act_quant=act_quant(fmt))


def _linear(lin, acts, weights, output=False):
    q = qnn.QuantLinear(lin.in_features, lin.out_features, bias=lin.bias is not None, input_quant=act_quant(acts),
                        weight_quant=weight_quant(weights), output_quant=act_quant(acts) if output else None)
    q.load_state_dict(lin.state_dict(), strict=False)
    return q


def _mha(mha, acts, weights):
    a, w = act_quant(acts), weight_quant(weights)
    q = qnn.QuantMultiheadAttention(
        mha.embed_dim, mha.num_heads, bias=mha.in_proj_bias is not None, batch_first=mha.batch_first,
        in_proj_input_quant=a, in_proj_weight_quant=w, in_proj_bias_quant=None, softmax_input_quant=a,
        attn_output_weights_quant=a, q_scaled_quant=a, k_transposed_quant=a, v_quant=a, out_proj_input_quant=a,
        out_proj_weight_quant=w, out_proj_bias_quant=None, out_proj_output_quant=a)
    q.load_state_dict(mha.state_dict(), strict=False)
    return q


def _block_forward(self, input):
    x = self.ln_1(input)
    x, _ = self.self_attention(x, x, x, need_weights=False)
    x = self.add1_quant(self.dropout(x) + input)
    y = self.mlp(self.ln_2(x))
    return self.add2_quant(x + y)


def _mlp_forward(self, x):
    return self.fc2(self.gelu(self.fc1(x)))


def _encoder_forward(self, input):
    x = self.add_quant(self.tokens_quant(input) + self.pos_quant(self.pos_embedding))
    return self.ln(self.layers(self.dropout(x)))


def quantize_torchvision_vit(model, acts="fp:e4m3", weights="fp:e4m3", first=None, last=None):
    """Quantize a torchvision ``VisionTransformer`` in place (module docstring); returns it."""
    first, last = first or acts, last or acts
    model.conv_proj = _conv(model.conv_proj, first, weights)
    enc = model.encoder
    enc.tokens_quant, enc.pos_quant, enc.add_quant = _act(acts), _act(acts), _act(acts)
    enc.forward = types.MethodType(_encoder_forward, enc)
    for block in enc.layers:
        block.self_attention = _mha(block.self_attention, acts, weights)
        block.add1_quant, block.add2_quant = _act(acts), _act(acts)
        block.forward = types.MethodType(_block_forward, block)
        mlp = block.mlp  # torchvision.ops.MLP: Linear, GELU, Dropout, Linear, Dropout
        mlp.fc1, mlp.gelu = _linear(mlp[0], acts, weights, output=True), mlp[1]
        mlp.fc2 = _linear(mlp[3], acts, weights, output=True)
        mlp.forward = types.MethodType(_mlp_forward, mlp)
    model.heads.head = _linear(model.heads.head, last, weights)
    return model


def _conv(conv, acts, weights):
    q = qnn.QuantConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                        bias=conv.bias is not None, input_quant=act_quant(acts), weight_quant=weight_quant(weights))
    q.load_state_dict(conv.state_dict(), strict=False)
    return q


def reduced_vit(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10,
                seed=0):
    """A small torchvision ViT with random weights (class token and biases nonzero, so every path is exercised)."""
    torch.manual_seed(seed)
    model = VisionTransformer(image_size=image_size, patch_size=patch_size, num_layers=num_layers,
                              num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim, num_classes=num_classes)
    with torch.no_grad():
        model.class_token.normal_(std=0.5)
        for m in model.modules():
            if isinstance(m, nn.MultiheadAttention):
                m.in_proj_bias.normal_(std=0.1)
                m.out_proj.bias.normal_(std=0.1)
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(std=0.1)
        model.heads.head.weight.normal_(std=1 / math.sqrt(hidden_dim))
    return model.eval()


def calibrated(model, x):
    """Calibrate the activation scales on ``x`` (Brevitas calibration mode); eval mode."""
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        model(x)
    return model.eval()
