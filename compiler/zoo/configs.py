"""Zoo model sizes per data set: the keyword arguments of ``build_model`` for each (data set, model) pair.

The lowering check (build_flows/check_lowering.py) and the design-space exploration (``compiler.dse``) train and
quantize these configurations, so both measure the same networks.
"""

MODEL_CONFIGS = {
    "digits": {"mlp": dict(in_features=64, hidden=(64, 64)), "cnn": dict(width=16, image_size=8),
               "vit": dict(image_size=8, patch_size=2, dim=32, depth=1, heads=2)},
    # Fashion-MNIST CNN: 32 channels (float on the first 2,000 test images after 8 epochs: 79.8 %; 16 channels:
    # 73.9 %, and 65.5 % after 3 epochs). A flattening head reaches 88.9 % but has no hardware mapping (the Flatten
    # between hardware nodes and the requantizer behind it stay unmapped).
    "fashion": {"mlp": dict(in_features=784, hidden=(256, 128)), "cnn": dict(width=32, image_size=28),
                "vit": dict(image_size=28, patch_size=7, dim=64, depth=2, heads=4)},
}
