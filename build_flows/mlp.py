"""MLP on Fashion-MNIST through the whole minifinn build: train, PTQ, export, build, verify.

    python build_flows/mlp.py                          # W/A E3M2, Pynq-Z2, fastest folding that fits
    python build_flows/mlp.py --quick                  # smoke run in well under a minute
    python build_flows/mlp.py --weights int:4 --acts int:4 --target-fps 100000 --output-dir out/mlp_int4

Every layer is a ``MinifloatMVAU`` in one dataflow partition (only input quantization and output dequantization
stay on the host), so the accuracy of the lowered graph is the accuracy of the hardware: the verification ladder
checks that the RTL (Verilator) or HLS (g++ cppsim) simulation of every layer, of the chained partition and of the
stitched partition equals it bit for bit on --verify-images test images. Outputs: ``OUTPUT_DIR/report/``
(FINN-style estimate JSONs, summary.md, fifo_sizing.json, verification.json, accuracy.json), ``OUTPUT_DIR/driver/``
(PYNQ/Alveo driver) and ``OUTPUT_DIR/intermediate_models/``. ``--bitfile`` continues with FINN's ZynqBuild where
Vivado is installed.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build_flows.classifier_flow import ClassifierFlow, FlowSpec  # noqa: E402

SPEC = FlowSpec(model="mlp", model_cfg=dict(in_features=784, hidden=(256, 128)),
                quick_model_cfg=dict(in_features=784, hidden=(64, 32)), epochs=5, default_output_dir="out/mlp")

FLOW = ClassifierFlow(SPEC, "mlp.py", __doc__)


def parse_args(argv=None):
    return FLOW.parse_args(argv)


def main(argv=None):
    return FLOW.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
