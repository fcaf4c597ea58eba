import gzip
import struct

import numpy as np
import pytest
import torch

from compiler import data
from compiler.data import DataFormatError, load_digits, load_fashion_mnist, make_loader, read_idx
from compiler.errors import DataMissingError


def _write_idx(path, arr, gz=True, magic=None):
    arr = np.asarray(arr, dtype=np.uint8)
    head = magic if magic is not None else struct.pack(">HBB", 0, 8, arr.ndim)
    raw = head + b"".join(struct.pack(">I", s) for s in arr.shape) + arr.tobytes()
    if gz:
        raw = gzip.compress(raw)
    path.write_bytes(raw)


def _fake_fmnist(d, n=5, split="train"):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    _write_idx(d / f"{prefix}-images-idx3-ubyte.gz", imgs)
    _write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return imgs, labels


def test_idx_roundtrip_and_normalization(tmp_path):
    imgs, labels = _fake_fmnist(tmp_path, n=7, split="test")
    x, y = load_fashion_mnist("test", data_dir=tmp_path)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32
    assert y.dtype == np.int64 and np.array_equal(y, labels)
    expect = (imgs.astype(np.float32) / 255 - data.FASHION_MNIST_MEAN) / data.FASHION_MNIST_STD
    np.testing.assert_allclose(x[:, 0], expect, rtol=1e-6)


def test_idx_uncompressed(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.idx", arr, gz=False)
    assert np.array_equal(read_idx(tmp_path / "a.idx", expected_ndim=3), arr)


def test_corrupt_magic_names_file(tmp_path):
    _fake_fmnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    _write_idx(bad, np.zeros((2, 28, 28)), magic=b"\x12\x34\x08\x03")
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte\.gz.*magic"):
        load_fashion_mnist("train", data_dir=tmp_path)


def test_truncated_payload_and_count_mismatch(tmp_path):
    p = tmp_path / "x.gz"
    raw = struct.pack(">HBBIII", 0, 8, 3, 2, 28, 28) + bytes(100)
    p.write_bytes(gzip.compress(raw))
    with pytest.raises(DataFormatError, match=r"x\.gz.*payload has 100 bytes"):
        read_idx(p)
    imgs, _ = _fake_fmnist(tmp_path, n=4)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3))
    with pytest.raises(DataFormatError, match="4 images but .* 3 labels"):
        load_fashion_mnist("train", data_dir=tmp_path)


def test_missing_data_names_package(tmp_path):
    with pytest.raises(DataMissingError, match="apt-get install dataset-fashion-mnist.*data_dir"):
        load_fashion_mnist("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        load_fashion_mnist("val", data_dir=tmp_path)


@pytest.mark.skipif(not data.FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split():
    x, y = load_fashion_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)
    assert np.bincount(y).tolist() == [1000] * 10
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05


def test_digits_shapes_and_determinism():
    xtr, ytr = load_digits("train")
    xte, yte = load_digits("test")
    assert xtr.shape == (1438, 1, 8, 8) and xte.shape == (359, 1, 8, 8)
    assert xtr.dtype == np.float32 and ytr.dtype == np.int64
    assert set(np.unique(yte)) == set(range(10))
    x2, y2 = load_digits("test")
    assert np.array_equal(x2, xte) and np.array_equal(y2, yte)
    assert len(xtr) + len(xte) == 1797
    assert abs(float(np.concatenate([xtr, xte]).mean())) < 0.01  # documented normalization


def test_make_loader_seeded_shuffle():
    x, y = load_digits("test")
    order = lambda seed: torch.cat([yb for _, yb in make_loader(x, y, 32, shuffle=True, seed=seed)])
    a, b, c = order(3), order(3), order(4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == sorted(y.tolist())
    unshuffled = torch.cat([yb for _, yb in make_loader(x, y, 32)])
    assert torch.equal(unshuffled, torch.as_tensor(y))
