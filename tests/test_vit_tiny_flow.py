"""build_flows/vit_tiny.py --quick end to end on the real Fashion-MNIST test data (skips if not installed)."""

import json
from pathlib import Path

import pytest

from build_flows import vit_tiny

DATA = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


@pytest.mark.skipif(not DATA.is_file(), reason="apt-get install dataset-fashion-mnist")
def test_quick_flow_trains_quantizes_exports_and_runs_golden(tmp_path, capsys):
    rc = vit_tiny.main(["--quick", "--threads", "1", "--golden-images", "200", "--lowered-images", "200",
                        "--output-dir", str(tmp_path)])
    assert rc == 0
    acc = json.loads((tmp_path / "report" / "accuracy.json").read_text())
    assert acc["float"] > 0.2 and acc["brevitas_quantized"] > 0.2  # one short epoch: well above chance (0.1)
    assert acc["qonnx_golden_argmax_agreement"] >= 0.99
    assert acc["hardware_exact"] is None and "not built" in acc["hardware_exact_note"]
    # the lowered exact graph: within tie noise of the QONNX golden
    assert acc["lowered_images"] == 200 and acc["lowered_argmax_agreement"] >= 0.99
    assert abs(acc["lowered_exact"] - acc["qonnx_on_lowered_images"]) <= 0.01
    assert acc["lowered_differing_codes"] <= 1e-3 * acc["lowered_codes"]
    assert (tmp_path / "vit_tiny.lowered.onnx").is_file()
    assert acc["formats"] == {"weights": "fp:e3m2", "acts": "fp:e3m2", "first": "fp:e4m3", "last": "fp:e4m3"}
    assert (tmp_path / "vit_tiny.qonnx.onnx").is_file() and (tmp_path / "vit_float.pt").is_file()
    out = capsys.readouterr().out
    assert "Not built yet in this flow" in out and "FloatQuant nodes" in out
    # a second run reuses the checkpoint instead of training again
    assert vit_tiny.main(["--quick", "--threads", "1", "--golden-images", "50", "--lowered-images", "50",
                          "--output-dir", str(tmp_path)]) == 0
    assert "loaded" in capsys.readouterr().out


def test_bad_board_is_a_clear_error(tmp_path, capsys):
    assert vit_tiny.main(["--quick", "--board", "NoBoard", "--output-dir", str(tmp_path)]) == 2
    assert "unknown board 'NoBoard'" in capsys.readouterr().err
