"""Data sets for training and calibration: Fashion-MNIST (IDX files) and scikit-learn's 8x8 digits.

Normalization (fixed constants, so that checkpoints, PTQ calibration and hardware golden vectors agree):

* Fashion-MNIST: ``x = (pixel / 255 - 0.2860) / 0.3530`` (mean / std of the 60,000 training images).
* digits: ``x = (pixel / 16 - 0.3053) / 0.3760`` (scikit-learn pixels are 0..16; mean / std of all 1,797 images).

Both return ``(x, y)`` as numpy arrays: ``x`` float32 of shape N x 1 x H x W, ``y`` int64 labels 0..9.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits as _sk_load_digits
from torch.utils.data import DataLoader, TensorDataset

from compiler.errors import DataMissingError, MinifinnError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530
DIGITS_MEAN = 0.3053
DIGITS_STD = 0.3760
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0

_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DataFormatError(MinifinnError):
    """A data file whose contents are not what its format promises (corrupt or wrong file)."""


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise MinifinnError(f"unknown split {split!r}; supported: 'train', 'test'")


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed, detected by content) of unsigned bytes.

    Checks the magic number (0x0000 08 nd), the dimension count and that the payload size matches the header.
    Raises :class:`DataFormatError` naming the file otherwise.
    """
    path = Path(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataFormatError(f"{path}: corrupt gzip stream ({e}); re-install or re-download the file") from e
    if len(raw) < 4:
        raise DataFormatError(f"{path}: {len(raw)} bytes, too short for an IDX header (4-byte magic)")
    zero, dtype_code, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08:
        raise DataFormatError(
            f"{path}: bad IDX magic 0x{raw[:4].hex()}; expected 0x000008NN (unsigned-byte IDX with NN dimensions)"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise DataFormatError(f"{path}: IDX file has {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header} for {ndim} dims)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    n = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != n:
        raise DataFormatError(
            f"{path}: IDX header declares shape {shape} ({n} bytes) but the payload has {len(raw) - header} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(split: str = "train", data_dir: str | os.PathLike | None = None):
    """Fashion-MNIST ``split`` ("train": 60,000 images, "test": 10,000) as (x float32 Nx1x28x28, y int64).

    Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` from ``data_dir`` or, by default, from Debian's
    ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist).
    """
    _check_split(split)
    d = Path(data_dir) if data_dir is not None else FASHION_MNIST_DIR
    paths = []
    for name in _FMNIST_FILES[split]:
        candidates = [d / name, d / name[: -len(".gz")]]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataMissingError(
                f"Fashion-MNIST {split} file {name} not found in {d}: apt-get install dataset-fashion-mnist, "
                f"or pass data_dir=DIR containing {', '.join(_FMNIST_FILES[split])} (gzipped or not)"
            )
        paths.append(found)
    images = read_idx(paths[0], expected_ndim=3)
    labels = read_idx(paths[1], expected_ndim=1)
    if images.shape[1:] != (28, 28):
        raise DataFormatError(f"{paths[0]}: images are {images.shape[1:]}, expected 28x28")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"{paths[0]} has {images.shape[0]} images but {paths[1]} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise DataFormatError(f"{paths[1]}: label {int(labels.max())} out of range 0..9")
    x = (images.astype(np.float32) / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    return x[:, None, :, :].astype(np.float32), labels.astype(np.int64)


def load_digits(split: str = "train"):
    """scikit-learn's 1,797 8x8 digits as (x float32 Nx1x8x8, y int64) with a fixed stratified 80/20 split.

    The split is deterministic (seed ``DIGITS_SPLIT_SEED``): "train" has 1,438 images, "test" 359.
    """
    _check_split(split)
    bunch = _sk_load_digits()
    x_all = bunch.images.astype(np.float32)
    y_all = bunch.target.astype(np.int64)
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y_all == c)
        n_test = int(round(len(idx) * DIGITS_TEST_FRACTION))
        test_idx.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test_idx))
    mask = np.zeros(len(y_all), dtype=bool)
    mask[test_idx] = True
    sel = mask if split == "test" else ~mask
    x = (x_all[sel] / 16.0 - DIGITS_MEAN) / DIGITS_STD
    return x[:, None, :, :].astype(np.float32), y_all[sel]


def load_data(name: str, train_images: int | None = 10000):
    """(x_train, y_train, x_test, y_test) of a data set by name: "digits" (1,438 / 359 images) or "fashion"
    (Fashion-MNIST: the first ``train_images`` training images, by default 10,000, which keeps the lowering check's
    float training short, ``None`` all 60,000 as the design-space exploration's recipes use; all 10,000 test
    images)."""
    if name == "digits":
        (xtr, ytr), (xte, yte) = load_digits("train"), load_digits("test")
        return xtr, ytr, xte, yte
    (xtr, ytr), (xte, yte) = load_fashion_mnist("train"), load_fashion_mnist("test")
    return xtr[:train_images], ytr[:train_images], xte, yte


def make_loader(x, y, batch_size: int = 128, shuffle: bool = False, seed: int = 0):
    """A torch DataLoader over (x, y) numpy arrays or tensors; shuffling is reproducible from ``seed``."""
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    if len(xt) != len(yt):
        raise MinifinnError(f"make_loader: x has {len(xt)} samples but y has {len(yt)}")
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(xt, yt), batch_size=batch_size, shuffle=shuffle, generator=gen)
