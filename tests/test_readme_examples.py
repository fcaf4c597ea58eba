"""The README's runnable examples run as written: a user copying them gets a model that builds."""

import re
import runpy
from pathlib import Path

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper

from compiler.build_cmd import main as build_main

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example(name):
    """The python block that follows the README's ``<!-- example: name ... -->`` marker."""
    text = README.read_text()
    match = re.search(r"<!-- example: " + re.escape(name) + r"\b.*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has no example {name!r}"
    return match.group(1)


def test_stock_quantizer_example_exports_and_builds(tmp_path, monkeypatch):
    script = tmp_path / "example.py"
    script.write_text(readme_example("stock-quantizers"))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    model = ModelWrapper(str(tmp_path / "my_model.qonnx.onnx"))
    floats = [n for n in model.graph.node if n.op_type == "FloatQuant"]
    assert len(floats) >= 3  # the stock quantizers exported as minifloat quantizers
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    assert build_main(["my_model.qonnx.onnx", "--board", "Pynq-Z2", "--output-dir", str(out),
                       "--verify-input", "x.npy"]) == 0
    assert (out / "report" / "verification.json").is_file()


def test_quantize_model_example_exports_a_torchvision_network(tmp_path, monkeypatch):
    script = tmp_path / "example.py"
    script.write_text(readme_example("quantize-model"))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    model = ModelWrapper(str(tmp_path / "resnet18.qonnx.onnx"))
    types = [n.op_type for n in model.graph.node]
    assert types.count("Conv") == 20 and types.count("Add") == 8
    # 21 weights; input, 17 ReLUs, 8 residual branches, 3 downsampled shortcuts, the head's input
    assert types.count("FloatQuant") == 21 + 1 + 17 + 8 + 3 + 1
