"""build_flows/vit_tiny.py --quick end to end on the real Fashion-MNIST test data (skips if not installed): the whole
ViT in one dataflow partition, verified, estimated for ZCU104 and U250 (the Pynq-Z2 is too small even for the quick
ViT: the flow says so, and by default builds for the next board), hardware-exact accuracy."""

import json
from pathlib import Path

import pytest

from build_flows import vit_tiny

DATA = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.mark.skipif(not DATA.is_file(), reason="apt-get install dataset-fashion-mnist")
def test_quick_flow_compiles_the_whole_vit_into_one_partition(tmp_path, capsys):
    rc = vit_tiny.main(["--quick", "--threads", "1", "--golden-images", "200", "--accuracy-images", "200",
                        "--workers", "1", "--board", "ZCU104", "--estimate-boards", "U250,Pynq-Z2",
                        "--output-dir", str(tmp_path)])
    assert rc == 0
    acc = json.loads((tmp_path / "report" / "accuracy.json").read_text())
    assert acc["float"] > 0.2 and acc["brevitas_quantized"] > 0.2  # one short epoch: well above chance (0.1)
    assert acc["qonnx_golden_argmax_agreement"] >= 0.99
    assert acc["hardware_exact_images"] == 200
    assert abs(acc["hardware_exact"] - acc["brevitas_quantized_on_those_images"]) <= 0.03
    assert acc["formats"] == {"weights": "fp:e3m2", "acts": "fp:e3m2", "first": "fp:e4m3", "last": "fp:e4m3"}
    build = tmp_path / "build"
    ver = json.loads((build / "report" / "verification.json").read_text())
    assert ver["passed"] and all(v["failed"] == 0 for v in ver["nodes"].values())
    kinds = {k.rsplit("_", 1)[0] for k in ver["nodes"]}
    assert {"MinifloatMVAU_rtl", "MinifloatSoftmax_rtl", "MinifloatLayerNorm_rtl", "MinifloatLUT_rtl",
            "MinifloatAdd_rtl", "MinifloatReorder_rtl", "MinifloatGlobalAccPool_rtl"} <= kinds
    # every node has RTL: the whole ViT partition runs as one stitched Icarus simulation, FIFOs sized by it
    assert ver["stitched_rtlsim"]["passed"] == 2 and ver["stitched_rtlsim"]["failed"] == 0
    assert json.loads((build / "report" / "fifo_sizing.json").read_text())["sized"]
    parent = (build / "intermediate_models" / "dataflow_parent.onnx")
    assert parent.is_file()
    for board in ("build", "build_U250"):
        perf = json.loads((tmp_path / board / "report" / "estimate_network_performance.json").read_text())
        assert perf["estimated_throughput_fps"] > 0
    out = capsys.readouterr().out
    assert "one dataflow partition of" in out and "U250:" in out and "ZCU104:" in out
    # requantization by conversion and binary search: the ViT fits the Pynq-Z2
    assert "Pynq-Z2:" in out and "does not fit" not in out
    # a second run reuses the checkpoint instead of training again and builds for the default board, the Pynq-Z2
    assert vit_tiny.main(["--quick", "--threads", "1", "--golden-images", "50", "--accuracy-images", "50",
                          "--workers", "1", "--estimate-boards", "U250", "--verify-images", "2",
                          "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "loaded" in out and "instead" not in out
    perf = json.loads((tmp_path / "build" / "report" / "estimate_network_performance.json").read_text())
    assert perf["estimated_throughput_fps"] > 0


@pytest.mark.slow  # every ViT node compiled with g++; the RTL partition is verified by the quick flow test
@pytest.mark.skipif(not DATA.is_file(), reason="apt-get install dataset-fashion-mnist")
def test_whole_vit_partition_in_hls_equals_python_node_by_node_on_16_images(tmp_path):
    """--impl hls: every node of the ViT partition is an HLS node; each one's g++ cppsim equals its Python model
    on 16 test images."""
    rc = vit_tiny.main(["--quick", "--threads", "1", "--impl", "hls", "--verify-images", "16", "--golden-images",
                        "50", "--accuracy-images", "50", "--workers", "1", "--board", "ZCU104",
                        "--estimate-boards", "", "--output-dir", str(tmp_path)])
    assert rc == 0
    ver = json.loads((tmp_path / "build" / "report" / "verification.json").read_text())
    assert ver["images"] == 16 and ver["passed"]
    assert all(v["mode"] == "cppsim" and v["passed"] == 16 and v["failed"] == 0 for v in ver["nodes"].values())
    assert len(ver["nodes"]) >= 20 and ver["whole_partition"]["passed"] == 16


def test_bad_board_is_a_clear_error(tmp_path, capsys):
    assert vit_tiny.main(["--quick", "--board", "NoBoard", "--output-dir", str(tmp_path)]) == 2
    assert "unknown board 'NoBoard'" in capsys.readouterr().err


def test_every_classifier_flow_runs_the_one_skeleton():
    from build_flows import classifier_flow, cnn, mlp

    assert isinstance(cnn.FLOW, classifier_flow.Flow) and isinstance(mlp.FLOW, classifier_flow.Flow)
    assert issubclass(vit_tiny.ViTFlow, classifier_flow.Flow) and issubclass(vit_tiny.DeiTFlow, classifier_flow.Flow)
    assert vit_tiny.ViTFlow.run is classifier_flow.Flow.run and vit_tiny.DeiTFlow.run is classifier_flow.Flow.run


def test_command_line_defaults():
    args = vit_tiny.parse_args([])
    assert (args.output_dir, args.weights, args.acts, args.board, args.impl) == (
        Path("out/vit_tiny"), "fp:e3m2", "fp:e3m2", "Pynq-Z2", "rtl")
    assert (args.estimate_boards, args.threads, args.golden_images, args.workers) == ("U250", 2, 2000, 2)
    assert vit_tiny.parse_args(["--deit"]).output_dir == Path("out/deit_tiny")
    from build_flows import cnn, mlp

    assert mlp.parse_args([]).output_dir == Path("out/mlp") and cnn.parse_args([]).output_dir == Path("out/cnn")
    assert cnn.parse_args([]).ptq == "calibrate,bias_correction" and not mlp.parse_args([]).bitfile


def test_first_and_last_layer_default_to_8_bit_where_the_flow_says_so():
    from build_flows.classifier_flow import quant_spec
    from build_flows.cnn import SPEC as CNN
    from build_flows.mlp import SPEC as MLP

    assert vit_tiny.VIT.eight_bit_ends and vit_tiny.DEIT.eight_bit_ends and CNN.eight_bit_ends
    assert not MLP.eight_bit_ends
    spec = quant_spec("int:4", "int:4", eight_bit_ends=True)
    assert (spec.first, spec.last) == ("int:8", "int:8")
    spec = quant_spec("fp:e2m1", "fp:e3m2", last="int:8", eight_bit_ends=True)
    assert (spec.first, spec.last) == ("fp:e4m3", "int:8")
    assert quant_spec("fp:e3m2", "fp:e3m2").first is None
