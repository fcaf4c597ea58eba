"""Zoo: quantizer factory, QuantSpec, model builders, float -> quantized state-dict loading (PTQ)."""

import numpy as np
import pytest
import torch
from brevitas.graph.calibrate import calibration_mode
from brevitas.nn import QuantLinear

from compiler.errors import ConfigError, FormatError, MinifinnError
from compiler.numerics import IntFormat, MinifloatFormat, parse_format
from compiler.zoo import (
    QuantSpec,
    QuantSpecError,
    UnknownModelError,
    act_quant,
    build_model,
    eight_bit_format,
    format_of_quantizer,
    load_float_state_dict,
    model_names,
    weight_quant,
)

TINY = {
    "mlp": dict(in_features=64, hidden=(32, 32)),
    "cnn": dict(width=8, image_size=8),
    "vit": dict(image_size=8, patch_size=2, dim=16, depth=1, heads=2),
}
SPECS = [
    "fp:e4m3",
    "fp:e3m2",
    "fp:e2m1",
    "int:8",
    "int:4",
    "w=fp:e2m1,a=fp:e3m2",
    "w=fp:e2m1,a=fp:e3m2,first=fp:e4m3,last=fp:e4m3",
    "w=int:4,a=int:4,first=int:8,last=int:8",
    "float",
]
# quantizer sites of the tiny configs: (weight sites, activation sites)
SITE_COUNTS = {"mlp": (3, 3), "cnn": (4, 6), "vit": (8, 20)}


def _digits(n=64):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:n] / 16.0, dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(d.target[:n])


def _on_grid(values, grid):
    """True when every value is a grid value up to the float32 error of value / scale."""
    values = np.asarray(values, dtype=np.float64).ravel()
    grid = np.asarray(grid, dtype=np.float64)
    nearest = grid[np.abs(values[:, None] - grid[None, :]).argmin(axis=1)]
    return bool(np.all(np.abs(values - nearest) <= 1e-5 * np.maximum(1.0, np.abs(nearest))))


def _calibrate(model, x):
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        model(x)
    return model


# --- quantizers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt", ["fp:e4m3", "fp:e3m2", "fp:e2m3", "fp:e2m1", "fp:e5m2", "fp:e1m2", "e3m2b4", "int:8", "int:4", "int:3"]
)
def test_weight_quant_per_channel_on_grid(fmt):
    torch.manual_seed(0)
    layer = QuantLinear(12, 6, bias=False, weight_quant=weight_quant(fmt))
    with torch.no_grad():
        layer.weight.mul_(torch.linspace(0.1, 3.0, 6)[:, None])  # very different channel ranges
    qw = layer.quant_weight()
    scale = qw.scale.detach()
    assert scale.shape == (6, 1), "one scale per output channel"
    ints = (qw.value / scale).detach().numpy()
    expected = parse_format(fmt)
    if isinstance(expected, IntFormat):
        expected = IntFormat(expected.bits, signed=True, narrow=True)  # weights are always narrow
    grid = expected.values()
    assert _on_grid(ints, grid), f"{fmt}: weights off the format grid"
    # absmax of each channel maps onto the format's largest value
    np.testing.assert_allclose(np.abs(ints).max(axis=1), expected.max, rtol=1e-6)
    assert format_of_quantizer(layer.weight_quant.quant_injector) == expected


@pytest.mark.parametrize("fmt", ["fp:e4m3", "fp:e3m2", "fp:e2m1", "int:8", "int:4", "uint:4"])
def test_act_quant_per_tensor_calibrated(fmt):
    from brevitas.nn import QuantIdentity

    torch.manual_seed(1)
    quant = QuantIdentity(act_quant=act_quant(fmt), return_quant_tensor=True)
    x = torch.randn(256, 8) * 3.0
    _calibrate(quant, x)
    out = quant(x)
    assert out.scale.numel() == 1, "activations have one per-tensor scale"
    fmt_obj = parse_format(fmt)
    grid = fmt_obj.values()
    ints = (out.value / out.scale).detach().numpy()
    assert _on_grid(ints, grid)
    # calibrated: the 99.999th percentile of |x| (~ max |x| for 2048 samples) maps to the format's top: fmt.max for
    # minifloats, Brevitas' integer threshold 2^(bits-1) for signed and 2^bits - 1 for unsigned integers
    top = np.abs(x.numpy()).max() / float(out.scale)
    if isinstance(fmt_obj, IntFormat):
        target = 2 ** (fmt_obj.bits - 1) if fmt_obj.signed else 2**fmt_obj.bits - 1
    else:
        target = fmt_obj.max
    assert 0.97 * target <= top <= 1.03 * target
    assert format_of_quantizer(quant.act_quant.quant_injector) == fmt_obj


def test_quantizers_for_float_and_bad_formats():
    assert weight_quant("float") is None and act_quant("float") is None
    with pytest.raises(FormatError, match="no mantissa bit"):
        weight_quant("fp:e3m0")
    with pytest.raises(FormatError, match="unsigned"):
        weight_quant("uint:4")
    with pytest.raises(FormatError, match="at most 8 bits"):
        act_quant("fp:e5m3")
    with pytest.raises(FormatError, match="unknown number format 'fp4'.*accepted"):
        act_quant("fp4")


# --- QuantSpec ---------------------------------------------------------------------------------------------------


def test_quantspec_parse_forms():
    s = QuantSpec.parse("fp:e3m2")
    assert (s.weights, s.acts, s.first, s.last, s.overrides) == ("fp:e3m2", "fp:e3m2", None, None, {})
    s = QuantSpec.parse("w=fp:e2m1; a=fp:e3m2, first=int:8,last=int:8, blocks.*.attn.attn_quant=int:8,fc1=float")
    assert (s.weights, s.acts, s.first, s.last) == ("fp:e2m1", "fp:e3m2", "int:8", "int:8")
    assert s.overrides == {"blocks.*.attn.attn_quant": "int:8", "fc1": "float"}
    assert QuantSpec.parse("a=int:4").weights == "int:4"  # one side given: used for both
    assert QuantSpec.parse(str(s)) == s  # str() round-trips
    assert QuantSpec.coerce(s.to_dict()) == s
    assert QuantSpec.parse("float").is_float and not s.is_float


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty quantization spec"),
        ("w=fp:e3m2,w=int:4", "given twice"),
        ("w=fp:e3m2,first", "bad item 'first'"),
        ("first=int:8", "sets neither weights"),
        ("w=fp:e9m2", "QuantSpec.weights"),
        ("w=fp:e3m2,a=int:4,last=uint:8", "unsigned"),
        ("w=fp:e3m2,fc1=fp:bogus", r"overrides\['fc1'\]"),
    ],
)
def test_quantspec_errors_are_clear(text, match):
    with pytest.raises(QuantSpecError, match=match):
        QuantSpec.parse(text)


def test_quantspec_coerce_errors():
    with pytest.raises(QuantSpecError, match="unknown QuantSpec field"):
        QuantSpec.coerce({"weights": "fp:e3m2", "activations": "fp:e3m2"})
    with pytest.raises(QuantSpecError, match="got int"):
        QuantSpec.coerce(4)
    assert issubclass(QuantSpecError, MinifinnError)


def test_unmatched_override_lists_sites():
    with pytest.raises(QuantSpecError, match=r"\['fc9'\] match no quantizer of QuantMLP.*input_quant, fc1, act1"):
        build_model("mlp", QuantSpec("fp:e3m2", "fp:e3m2", overrides={"fc9": "int:4"}))


def test_first_last_overrides_resolution():
    spec = QuantSpec(weights="fp:e2m1", acts="fp:e3m2", first="int:8", last="fp:e4m3",
                     overrides={"blocks.*.attn.*_quant": "int:8", "blocks.0.attn.v_quant": "fp:e2m3",
                                "blocks.0.mlp.fc1": "float"})
    model = build_model("vit", spec, **TINY["vit"])
    sites = model.quant_sites
    assert sites["input_quant"]["format"] == "INT8" and sites["patch_embed"]["name"] == "int8n"
    assert sites["head"]["format"] == sites["head_quant"]["format"] == "FLOAT<4,3,7>"
    assert sites["blocks.0.attn.q"]["format"] == "FLOAT<2,1,1>"  # body weight
    assert sites["tokens_quant"]["format"] == "FLOAT<3,2,3>"  # body activation
    assert sites["blocks.0.attn.scores_quant"]["format"] == "INT8"  # pattern
    assert sites["blocks.0.attn.v_quant"]["format"] == "FLOAT<2,3,1>"  # exact name beats pattern
    assert sites["blocks.0.mlp.fc1"]["format"] == "float"
    # the modules really carry those quantizers
    assert not model.blocks[0].mlp.fc1.weight_quant.is_quant_enabled
    assert format_of_quantizer(model.blocks[0].attn.v_quant.act_quant.quant_injector) == MinifloatFormat(2, 3)
    assert format_of_quantizer(model.patch_embed.weight_quant.quant_injector) == IntFormat(8, narrow=True)


# --- models ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("name", ["mlp", "cnn", "vit"])
def test_models_build_and_run(name, spec):
    torch.manual_seed(0)
    model = build_model(name, spec, **TINY[name])
    x, _ = _digits(16)
    _calibrate(model, x)
    y = model(x)
    assert y.shape == (16, 10) and torch.isfinite(y).all()
    n_w, n_a = SITE_COUNTS[name]
    kinds = [s["kind"] for s in model.quant_sites.values()]
    assert kinds.count("weight") == n_w and kinds.count("act") == n_a
    enabled = [m for m in model.modules() if getattr(m, "is_quant_enabled", False)]
    expected = 0 if spec == "float" else n_w + n_a
    assert len(enabled) == expected, "every site (and only the sites) quantizes"


def test_vit_every_matmul_and_add_operand_is_quantized():
    """Trace the ViT block: each MatMul/Linear input and each Add operand is produced by a quantizer."""
    model = build_model("vit", "fp:e3m2", **TINY["vit"])
    attn, mlp, block = model.blocks[0].attn, model.blocks[0].mlp, model.blocks[0]
    names = set(model.quant_sites)
    for sub in ("in_quant", "q_quant", "k_quant", "v_quant", "scores_quant", "attn_quant", "ctx_quant", "proj_quant"):
        assert f"blocks.0.attn.{sub}" in names
    for sub in ("in_quant", "fc1_quant", "gelu_quant", "fc2_quant"):
        assert f"blocks.0.mlp.{sub}" in names
    assert {"blocks.0.resid1_quant", "blocks.0.resid2_quant", "pos_quant", "tokens_quant", "embed_quant"} <= names
    # and they are live: perturbing the input of a quantized operand is snapped to that quantizer's grid
    _calibrate(model, _digits(8)[0])
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: seen.__setitem__(n, out))
             for n, m in model.named_modules() if n in ("blocks.0.attn.scores_quant", "blocks.0.attn.attn_quant")]
    model(_digits(8)[0])
    for h in hooks:
        h.remove()
    for n, out in seen.items():
        scale = dict(model.named_modules())[n].act_quant.scale()
        assert _on_grid((out / scale).detach().numpy(), MinifloatFormat(3, 2).values()), n
    assert attn.heads == 2 and mlp.fc1.out_features == 32 and block.norm1.normalized_shape == (16,)


@pytest.mark.parametrize("pooling", ["gap", "cls"])
def test_vit_pooling_and_shapes(pooling):
    model = build_model("vit", "fp:e3m2", image_size=12, patch_size=4, dim=8, depth=2, heads=4, pooling=pooling,
                        in_channels=3, num_classes=5)
    assert model.num_tokens == 9 + (pooling == "cls")
    assert ("pool_quant" in model.quant_sites) == (pooling == "gap")
    x = torch.randn(3, 3, 12, 12)
    _calibrate(model, x)
    assert model(x).shape == (3, 5)


def test_cnn_variants():
    for pool, global_pool in (("max", "gap"), ("avg", "flatten")):
        model = build_model("cnn", "int:4", width=4, image_size=6, pool=pool, global_pool=global_pool, in_channels=2)
        x = torch.randn(2, 2, 6, 6)
        _calibrate(model, x)
        assert model(x).shape == (2, 10)
    assert build_model("cnn", "int:4", width=4, image_size=6, global_pool="flatten").head.in_features == 4 * 9


def test_build_model_names_and_config_errors():
    assert type(build_model("ViT-Tiny", "float", **TINY["vit"])).__name__ == "QuantViT"
    assert type(build_model("resnet", "float", **TINY["cnn"])).__name__ == "QuantCNN"
    assert {"mlp", "cnn", "vit"} <= set(model_names())
    with pytest.raises(UnknownModelError, match="unknown model 'lenet'; valid names: .*cnn.*mlp.*vit"):
        build_model("lenet", "float")
    with pytest.raises(ConfigError, match="accepted options: .*patch_size"):
        build_model("vit", "float", patch=2)
    with pytest.raises(ConfigError, match="not a multiple of patch_size"):
        build_model("vit", "float", image_size=10, patch_size=4)
    with pytest.raises(ConfigError, match="not divisible by heads"):
        build_model("vit", "float", dim=10, heads=4)
    with pytest.raises(ConfigError, match="pooling must be"):
        build_model("vit", "float", pooling="max")
    with pytest.raises(ConfigError, match="hidden must be a non-empty"):
        build_model("mlp", "float", hidden=())
    with pytest.raises(ConfigError, match="pool must be"):
        build_model("cnn", "float", pool="min")


# --- PTQ: float state dict -> quantized model ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit"])
def test_float_state_dict_loads_into_quant_model(name):
    torch.manual_seed(0)
    float_model = build_model(name, "float", **TINY[name])
    _calibrate(float_model, _digits(16)[0])
    for p in float_model.parameters():  # make every parameter distinctive
        p.data.uniform_(-1, 1)
    sd = float_model.state_dict()
    torch.manual_seed(1)
    quant = build_model(name, "w=fp:e2m1,a=fp:e3m2,first=int:8,last=int:8", **TINY[name])
    missing = load_float_state_dict(quant, sd)
    assert all("_quant." in k for k in missing)
    qsd = quant.state_dict()
    for k, v in sd.items():
        assert torch.equal(qsd[k], v), k
    # identical parameter names apart from the quantizers' state
    assert set(sd) == {k for k in quant.state_dict() if "_quant." not in k}


def test_load_float_state_dict_rejects_other_models():
    quant = build_model("mlp", "fp:e3m2", **TINY["mlp"])
    with pytest.raises(ConfigError, match="does not have"):
        load_float_state_dict(quant, build_model("cnn", "float", **TINY["cnn"]).state_dict())
    with pytest.raises(ConfigError, match="shapes differ"):
        load_float_state_dict(quant, build_model("mlp", "float", in_features=64, hidden=(16, 32)).state_dict())


def test_ptq_mlp_on_digits_keeps_accuracy():
    """Train the float MLP briefly, load it into 8-bit and 4-bit minifloat models, calibrate: accuracy holds."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).reshape(-1, 64)
    y = torch.tensor(d.target)
    x_tr, y_tr, x_te, y_te = x[:1400], y[:1400], x[1400:], y[1400:]
    model = build_model("mlp", "float", **TINY["mlp"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(15):
        for i in range(0, len(x_tr), 100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_tr[i:i + 100]), y_tr[i:i + 100]).backward()
            opt.step()
    model.eval()
    acc_float = (model(x_te).argmax(1) == y_te).float().mean().item()
    assert acc_float > 0.9
    for spec, tolerance in (("fp:e4m3", 0.02), ("w=fp:e2m1,a=fp:e3m2,first=fp:e4m3,last=fp:e4m3", 0.08)):
        quant = build_model("mlp", spec, **TINY["mlp"])
        load_float_state_dict(quant, model.state_dict())
        _calibrate(quant, x_tr[:200])
        with torch.no_grad():
            acc_q = (quant(x_te).argmax(1) == y_te).float().mean().item()
        assert acc_q >= acc_float - tolerance, (spec, acc_float, acc_q)


@pytest.mark.parametrize("layout", ["timm", "torchvision"])
def test_timm_and_torchvision_vit_state_dicts_load(layout):
    """load_timm_vit_state_dict: a timm (fused qkv) or torchvision (in_proj, encoder_layer_i) state dict of the same
    ViT gives the same function."""
    import torch

    from compiler.zoo import load_timm_vit_state_dict

    cfg = dict(image_size=32, in_channels=3, patch_size=16, dim=24, depth=2, heads=3, mlp_ratio=4, num_classes=7,
               pooling="cls")
    src = build_model("vit", "float", **cfg)
    sd = {k: v for k, v in src.state_dict().items() if "_quant" not in k}
    out = {}
    for k, v in sd.items():
        if ".attn.k." in k or ".attn.v." in k:
            continue
        if ".attn.q." in k:
            p, kind = k.split(".attn.q.")
            fused = torch.cat([sd[f"{p}.attn.{n}.{kind}"] for n in "qkv"])
            out[f"{p}.attn.qkv.{kind}" if layout == "timm" else f"{p}.self_attention.in_proj_{kind}"] = fused
            continue
        out[k] = v
    if layout == "timm":
        out = {("patch_embed.proj." + k.split(".")[-1] if k.startswith("patch_embed.") else k): v
               for k, v in out.items()}
    else:
        top = {"patch_embed.": "conv_proj.", "cls_token": "class_token", "pos_embed": "encoder.pos_embedding",
               "norm.": "encoder.ln.", "head.": "heads.head."}
        inner = {".norm1.": ".ln_1.", ".norm2.": ".ln_2.", ".mlp.fc1.": ".mlp.0.", ".mlp.fc2.": ".mlp.3.",
                 ".attn.proj.": ".self_attention.out_proj."}
        tv = {}
        for k, v in out.items():
            if k.startswith("blocks."):
                for a, b in inner.items():
                    k = k.replace(a, b)
                k = k.replace("blocks.", "encoder.layers.encoder_layer_")
            else:
                k = next((b + k[len(a):] for a, b in top.items() if k.startswith(a)), k)
            tv[k] = v
        out = tv
    dst = build_model("vit", "float", **cfg)
    load_timm_vit_state_dict(dst, out)
    x = torch.randn(2, 3, 32, 32)
    src.eval(), dst.eval()
    assert torch.allclose(src(x), dst(x))


def test_distilled_deit_is_refused():
    from compiler.zoo import load_timm_vit_state_dict

    model = build_model("vit", "float", image_size=32, in_channels=3, patch_size=16, dim=24, depth=1, heads=3,
                        pooling="cls")
    with pytest.raises(ConfigError, match="distilled DeiT"):
        load_timm_vit_state_dict(model, {"dist_token": None})


def test_eight_bit_format_is_the_8_bit_format_of_the_same_family():
    assert [eight_bit_format(f) for f in ("fp:e2m1", "fp:e3m2", "fp:e4m3")] == ["fp:e4m3"] * 3
    assert [eight_bit_format(f) for f in ("int:4", "int:8", "uint:4")] == ["int:8"] * 3


def test_each_architecture_lives_in_its_own_module_and_the_package_names_stay():
    import compiler.zoo as zoo
    from compiler.zoo import checkpoints, cnn, mlp, registry, spec, vit

    assert (zoo.QuantMLP, zoo.QuantCNN, zoo.QuantViT) == (mlp.QuantMLP, cnn.QuantCNN, vit.QuantViT)
    assert zoo.QuantSpec is spec.QuantSpec and zoo.build_model is registry.build_model
    assert zoo.load_float_state_dict is checkpoints.load_float_state_dict
    assert all(hasattr(zoo, name) for name in zoo.__all__)
    assert set(registry.BUILDERS.values()) == {mlp.build_mlp, cnn.build_cnn, vit.build_vit}
