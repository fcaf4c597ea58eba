"""LUT model calibration: the fit recovers known coefficients; the committed model meets its error targets and
predicts a fresh Yosys run of the generated RTL."""

import json
import shutil

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from build_flows import calibrate_resources as cal
from compiler.finn_env import ensure_finn_offline
from compiler.synth import synthesize
from custom_ops.mvau_estimates import RESOURCE_MODEL_FILE
from finn.transformation.fpgadataflow.prepare_ip import PrepareIP


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 100, size=(40, 3))
    truth = np.array([2.0, 0.5, 7.0])
    y = X @ truth
    coeffs = cal.fit_linear_model(X, y, ["a", "b", "c"])
    assert np.allclose([coeffs[k] for k in "abc"], truth, rtol=1e-6)
    assert cal.median_abs_pct_error(X @ truth, y) == 0.0
    with pytest.raises(Exception, match="need at least as many samples"):
        cal.fit_linear_model(X[:2], y[:2], ["a", "b", "c"])


def test_committed_model_meets_targets():
    model = json.loads(RESOURCE_MODEL_FILE.read_text())
    assert model["median_abs_pct_error_calibration"] <= 15.0
    assert model["median_abs_pct_error_held_out"] <= 25.0
    assert all(v >= 0 for v in model["lut_coefficients"].values())


# a fresh Yosys run of the MVAU; the threshold and requantizer models are checked against Yosys in the default suite
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (apt-get install yosys)")
def test_model_predicts_a_fresh_synthesis(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIFINN_SYNTH_CACHE", str(tmp_path))
    features, lut, _ = cal.measure(("int4", "int4", "int4", 32, 16, 2, 4, 0))
    coeffs = json.loads(RESOURCE_MODEL_FILE.read_text())["lut_coefficients"]
    predicted = sum(coeffs[k] * v for k, v in features.items())
    assert abs(predicted - lut) / lut < 0.35


def test_committed_dsp_terms_meet_targets():
    """The DSP48 datapath's LUT terms (build_flows/measure_dsp_mac.py) are fitted and within the error target."""
    model = json.loads(RESOURCE_MODEL_FILE.read_text())
    assert model["median_abs_pct_error_dsp_datapath"] <= 20.0
    assert any(v > 0 for k, v in model["lut_coefficients"].items() if k.startswith("dsp_"))


def test_refit_keeps_the_dsp_terms(tmp_path):
    """Refitting the LUT datapath (calibrate_resources.py) keeps the dsp_* coefficients it does not measure."""
    model_file = tmp_path / "resource_model.json"
    shutil.copy(RESOURCE_MODEL_FILE, model_file)
    csv = RESOURCE_MODEL_FILE.parent.parent / "docs" / "results" / "calibration" / "calibration.csv"
    assert cal.main(["--refit-from", str(csv), "--model-file", str(model_file), "--output-dir", str(tmp_path)]) == 0
    old, new = (json.loads(f.read_text()) for f in (RESOURCE_MODEL_FILE, model_file))
    dsp = {k: v for k, v in old["lut_coefficients"].items() if k.startswith("dsp_")}
    assert dsp and all(new["lut_coefficients"][k] == v for k, v in dsp.items())
    assert new["median_abs_pct_error_dsp_datapath"] == old["median_abs_pct_error_dsp_datapath"]


@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed (apt-get install yosys)")
def test_block_ram_weights_synthesize_to_block_ram(tmp_path, monkeypatch):
    """ram_style "block": Yosys maps the weight ROM of a fully folded MVAU (2K words) to the block RAM the estimate
    counts, and its LUTs are the datapath the model prices."""
    monkeypatch.setenv("MINIFINN_SYNTH_CACHE", str(tmp_path))
    ensure_finn_offline()
    model = cal._random_mvau(("e3m2", "e3m2", "e3m2", 64, 32, 1, 1, 1, "block"))
    model = model.transform(PrepareIP("xc7z020clg400-1", 10.0))
    inst = getCustomOp(model.graph.node[0])
    res = synthesize(inst.get_rtl_file_list(abspath=True), top=inst.get_verilog_top_module_name())
    assert 2 * res.bram36 == inst.bram_estimation() == 1
    assert abs(inst.lut_estimation() - res.lut_total) <= 0.35 * res.lut_total, (inst.lut_estimation(), res.lut_total)
