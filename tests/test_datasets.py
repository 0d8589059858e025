"""Tests for ``backprop_rs.datasets``: the bundled digits and the IDX reader."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from backprop_rs import datasets

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# Per-class sample counts of the 1,797-sample UCI digits set, digits 0..9.
DIGITS_CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]

# The first image of the set (a zero), as raw 0..16 counts row by row.
DIGITS_FIRST_IMAGE = [
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
]

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"


# --------------------------------------------------------------------------
# load_digits
# --------------------------------------------------------------------------


def test_all_exports():
    assert datasets.__all__ == ["load_digits", "load_fashion_mnist"]


def test_digits_shape_dtype_range():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64)
    assert X.dtype == np.float32
    assert y.shape == (1797,)
    assert y.dtype == np.int64
    assert X.min() == 0.0
    assert X.max() == 1.0
    assert set(np.unique(y).tolist()) == set(range(10))
    # Raw pixels are counts 0..16, divided by 16: exact multiples of 1/16.
    counts = X * 16
    np.testing.assert_array_equal(counts, np.round(counts))
    assert X.flags.c_contiguous and X.flags.writeable


def test_digits_label_counts():
    _, y = datasets.load_digits()
    assert np.bincount(y, minlength=10).tolist() == DIGITS_CLASS_COUNTS
    assert sum(DIGITS_CLASS_COUNTS) == 1797


def test_digits_known_values():
    X, y = datasets.load_digits()
    assert y[:20].tolist() == list(range(10)) * 2
    expected = np.array(DIGITS_FIRST_IMAGE, dtype=np.float32).reshape(64) / 16
    np.testing.assert_array_equal(X[0], expected)


def test_digits_fresh_arrays_each_call():
    X1, y1 = datasets.load_digits()
    X1[:] = -1.0
    y1[:] = -1
    X2, y2 = datasets.load_digits()
    assert not np.shares_memory(X1, X2)
    assert not np.shares_memory(y1, y2)
    assert X2.min() == 0.0 and X2.max() == 1.0
    assert np.bincount(y2, minlength=10).tolist() == DIGITS_CLASS_COUNTS


# --------------------------------------------------------------------------
# load_fashion_mnist on synthetic IDX files
# --------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file: magic, big-endian dims, payload."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_file(folder: Path, name: str, data: bytes, compress: bool) -> Path:
    path = folder / (name + ".gz" if compress else name)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def make_split(n: int, seed: int, rows: int = 28, cols: int = 28):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
    # Pin a few pixels to known values so exact results can be asserted.
    images[0, 0, 0] = 0
    images[0, 0, 1] = 255
    images[0, 0, 2] = 51  # 51 / 255 == 0.2
    labels = (np.arange(n) * 3 + seed) % 10
    return images, labels.astype(np.uint8)


def write_fashion(
    folder: Path,
    compress: bool | dict[str, bool] = False,
    n_train: int = 7,
    n_test: int = 4,
    overrides: dict[str, bytes] | None = None,
):
    """Write four synthetic Fashion-MNIST IDX files; return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    train = make_split(n_train, seed=1)
    test = make_split(n_test, seed=2)
    contents = {
        TRAIN_IMAGES: idx_bytes(train[0]),
        TRAIN_LABELS: idx_bytes(train[1]),
        TEST_IMAGES: idx_bytes(test[0]),
        TEST_LABELS: idx_bytes(test[1]),
    }
    contents.update(overrides or {})
    paths = {}
    for name, data in contents.items():
        gz = compress.get(name, False) if isinstance(compress, dict) else compress
        paths[name] = write_file(folder, name, data, gz)
    return train, test, paths


def expected_x(images: np.ndarray) -> np.ndarray:
    n = images.shape[0]
    return images.reshape(n, -1).astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_fashion_synthetic_exact_values(tmp_path, compress):
    train, test, _ = write_fashion(tmp_path, compress=compress)
    (X_train, y_train), (X_test, y_test) = datasets.load_fashion_mnist(tmp_path)

    assert X_train.shape == (7, 784) and X_test.shape == (4, 784)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.shape == (7,) and y_test.shape == (4,)
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64

    np.testing.assert_array_equal(X_train, expected_x(train[0]))
    np.testing.assert_array_equal(X_test, expected_x(test[0]))
    assert y_train.tolist() == [1, 4, 7, 0, 3, 6, 9]
    assert y_test.tolist() == [2, 5, 8, 1]
    for X in (X_train, X_test):
        assert X[0, 0] == 0.0
        assert X[0, 1] == 1.0
        assert X[0, 2] == np.float32(0.2)
        assert X.min() >= 0.0 and X.max() <= 1.0
    # Row-major flattening: pixel (r, c) of an image lands at column r*28+c.
    assert X_train[3, 5 * 28 + 17] == np.float32(train[0][3, 5, 17]) / 255


def test_fashion_mixed_plain_and_gzip_and_str_path(tmp_path):
    compress = {TRAIN_IMAGES: True, TEST_LABELS: True}
    train, test, paths = write_fashion(tmp_path, compress=compress)
    assert paths[TRAIN_IMAGES].name == TRAIN_IMAGES + ".gz"
    assert paths[TRAIN_LABELS].name == TRAIN_LABELS
    (X_train, y_train), (X_test, y_test) = datasets.load_fashion_mnist(str(tmp_path))
    np.testing.assert_array_equal(X_train, expected_x(train[0]))
    np.testing.assert_array_equal(y_train, train[1].astype(np.int64))
    np.testing.assert_array_equal(X_test, expected_x(test[0]))
    np.testing.assert_array_equal(y_test, test[1].astype(np.int64))


def test_fashion_other_image_size(tmp_path):
    images = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5) * 8
    labels = np.array([9, 0], dtype=np.uint8)
    overrides = {
        TRAIN_IMAGES: idx_bytes(images),
        TRAIN_LABELS: idx_bytes(labels),
        TEST_IMAGES: idx_bytes(images[:1]),
        TEST_LABELS: idx_bytes(labels[:1]),
    }
    write_fashion(tmp_path, overrides=overrides)
    (X_train, y_train), (X_test, y_test) = datasets.load_fashion_mnist(tmp_path)
    assert X_train.shape == (2, 15) and X_test.shape == (1, 15)
    expected = np.arange(15, 30, dtype=np.float32) * 8 / np.float32(255)
    np.testing.assert_array_equal(X_train[1], expected)
    assert y_train.tolist() == [9, 0] and y_test.tolist() == [9]


def test_fashion_default_path_is_used(tmp_path, monkeypatch):
    train, _, _ = write_fashion(tmp_path / "fm", compress=True)
    monkeypatch.setattr(datasets, "_FASHION_MNIST_DIR", tmp_path / "fm")
    (X_train, _), _ = datasets.load_fashion_mnist()
    np.testing.assert_array_equal(X_train, expected_x(train[0]))


def test_fashion_results_are_writeable_and_independent(tmp_path):
    write_fashion(tmp_path)
    (X1, y1), _ = datasets.load_fashion_mnist(tmp_path)
    assert X1.flags.writeable and y1.flags.writeable
    X1[:] = 5.0
    (X2, _), _ = datasets.load_fashion_mnist(tmp_path)
    assert X2.max() <= 1.0


# --------------------------------------------------------------------------
# Corrupt and foreign files
# --------------------------------------------------------------------------


def header_only(magic: bytes, *dims: int) -> bytes:
    return magic + struct.pack(f">{len(dims)}I", *dims)


def raises_for(folder: Path, name: str, *, match: str) -> str:
    """Assert that loading raises ValueError naming ``name`` and ``match``."""
    with pytest.raises(ValueError) as info:
        datasets.load_fashion_mnist(folder)
    message = str(info.value)
    assert name in message, message
    assert re.search(match, message), message
    return message


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_bad_magic_raises(tmp_path, compress):
    # A label file where the image file should be: magic 0x801, not 0x803.
    labels = np.zeros(7, dtype=np.uint8)
    write_fashion(
        tmp_path, compress=compress, overrides={TRAIN_IMAGES: idx_bytes(labels)}
    )
    raises_for(tmp_path, TRAIN_IMAGES, match="magic number 0x00000801")


def test_foreign_file_raises(tmp_path):
    junk = b"PK\x03\x04 this is not an IDX file at all" * 10
    write_fashion(tmp_path, overrides={TEST_LABELS: junk})
    raises_for(tmp_path, TEST_LABELS, match="not an IDX file")


def test_wrong_type_byte_raises(tmp_path):
    # Type byte 0x0B (16-bit integers) instead of 0x08 (unsigned byte).
    data = bytes([0, 0, 0x0B, 1]) + struct.pack(">I", 4) + bytes(8)
    write_fashion(tmp_path, overrides={TEST_LABELS: data})
    raises_for(tmp_path, TEST_LABELS, match="unsigned byte")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_truncated_payload_raises(tmp_path, compress):
    full = idx_bytes(make_split(7, seed=1)[0])
    write_fashion(tmp_path, compress=compress, overrides={TRAIN_IMAGES: full[:-100]})
    raises_for(tmp_path, TRAIN_IMAGES, match="truncated")


def test_trailing_bytes_raise(tmp_path):
    full = idx_bytes(make_split(4, seed=2)[1])
    write_fashion(tmp_path, overrides={TEST_LABELS: full + b"\x00"})
    raises_for(tmp_path, TEST_LABELS, match="trailing")


def test_truncated_header_raises(tmp_path):
    write_fashion(tmp_path, overrides={TEST_IMAGES: bytes([0, 0, 8, 3, 0, 0])})
    raises_for(tmp_path, TEST_IMAGES, match="truncated IDX header")


def test_empty_file_raises(tmp_path):
    write_fashion(tmp_path, overrides={TRAIN_LABELS: b""})
    raises_for(tmp_path, TRAIN_LABELS, match="too short")


def test_truncated_gzip_stream_raises(tmp_path):
    _, _, paths = write_fashion(tmp_path, compress=True)
    path = paths[TRAIN_IMAGES]
    path.write_bytes(path.read_bytes()[:-50])
    raises_for(tmp_path, TRAIN_IMAGES, match="gzip")


def test_count_mismatch_raises(tmp_path):
    labels = np.zeros(6, dtype=np.uint8)  # 7 training images, 6 labels
    write_fashion(tmp_path, overrides={TRAIN_LABELS: idx_bytes(labels)})
    message = raises_for(tmp_path, TRAIN_IMAGES, match="7 images")
    assert TRAIN_LABELS in message and "6 labels" in message


def test_label_out_of_range_raises(tmp_path):
    labels = np.array([0, 1, 10, 3], dtype=np.uint8)
    write_fashion(tmp_path, overrides={TEST_LABELS: idx_bytes(labels)})
    raises_for(tmp_path, TEST_LABELS, match="label 10")


def test_image_size_mismatch_between_splits_raises(tmp_path):
    images = np.zeros((4, 27, 28), dtype=np.uint8)
    write_fashion(tmp_path, overrides={TEST_IMAGES: idx_bytes(images)})
    raises_for(tmp_path, TEST_IMAGES, match="pixels")


def test_header_larger_than_payload_raises(tmp_path):
    # Header claims 1000 images of 28x28 but only a few bytes follow.
    data = header_only(bytes([0, 0, 8, 3]), 1000, 28, 28) + bytes(10)
    write_fashion(tmp_path, overrides={TRAIN_IMAGES: data})
    raises_for(tmp_path, TRAIN_IMAGES, match=r"1000 x 28 x 28")


# --------------------------------------------------------------------------
# Missing data
# --------------------------------------------------------------------------


def test_missing_folder_raises_file_not_found(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_fashion_mnist(missing)
    message = str(info.value)
    assert "dataset-fashion-mnist" in message
    assert "apt-get install" in message
    # The hint names the option in both interfaces.
    assert "path= in Python, --data-dir on the command line" in message
    assert str(missing) in message


def test_missing_file_is_named(tmp_path):
    _, _, paths = write_fashion(tmp_path, compress=True)
    paths[TEST_LABELS].unlink()
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_fashion_mnist(tmp_path)
    message = str(info.value)
    assert TEST_LABELS in message
    assert TRAIN_LABELS + " (" not in message  # only the missing one is listed
    assert "dataset-fashion-mnist" in message


def test_path_is_a_file_raises_file_not_found(tmp_path):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        datasets.load_fashion_mnist(not_a_folder)


# --------------------------------------------------------------------------
# The real data, from the Debian/Ubuntu package dataset-fashion-mnist
# --------------------------------------------------------------------------


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(),
    reason=(
        f"{DEBIAN_FASHION_MNIST} is absent; install the Debian/Ubuntu package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) to run it"
    ),
)
def test_real_fashion_mnist_from_debian_package():
    (X_train, y_train), (X_test, y_test) = datasets.load_fashion_mnist()
    assert X_train.shape == (60000, 784)
    assert X_test.shape == (10000, 784)
    assert y_train.shape == (60000,)
    assert y_test.shape == (10000,)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0
        assert X.max() == 1.0
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
