"""Data sets for trying out and benchmarking backprop_rs.

Two loaders are provided, both returning NumPy arrays ready to feed to a
network: features as ``float32`` scaled to ``[0, 1]``, one row per sample,
and integer class labels as ``int64``.

:func:`load_digits`
    The 1,797 8x8 handwritten digits of the UCI "Optical Recognition of
    Handwritten Digits" data set (the set scikit-learn calls ``load_digits``).
    The data ship inside this package, so no download and no scikit-learn
    are needed. See ``DIGITS_LICENSE.txt`` beside this module for the
    licence (CC BY 4.0) and attribution.

:func:`load_fashion_mnist`
    Zalando's Fashion-MNIST (60,000 training and 10,000 test images of
    28x28 pixels, 10 classes), read from the four IDX files in a folder. By
    default the folder installed by the Debian/Ubuntu package
    ``dataset-fashion-mnist`` is used.

Examples
--------
>>> from backprop_rs import datasets
>>> X, y = datasets.load_digits()
>>> X.shape, y.shape
((1797, 64), (1797,))
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_fashion_mnist"]

_DIGITS_RESOURCE = "_digits.npz"

#: Folder where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs
#: the Fashion-MNIST IDX files.
_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

_FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_FASHION_MNIST_CLASSES = 10

# An IDX magic number is two zero bytes, a type byte and a dimension count.
_IDX_UBYTE = 0x08
_IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

_GZIP_MAGIC = b"\x1f\x8b"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load the 1,797 8x8 handwritten digits shipped with backprop_rs.

    These are the samples of the test portion of the UCI "Optical
    Recognition of Handwritten Digits" data set (Alpaydin & Kaynak, 1998),
    the same data scikit-learn returns from ``sklearn.datasets.load_digits``.
    Each image is 8x8 blocks whose values count the ink pixels (0 to 16) in a
    4x4 cell of a 32x32 bitmap; the counts are divided by 16 here.

    The data are licensed CC BY 4.0; see ``DIGITS_LICENSE.txt`` in this
    package for the attribution.

    Returns
    -------
    X : numpy.ndarray of float32, shape (1797, 64)
        One image per row, the 8x8 pixels read row by row, scaled to
        ``[0, 1]`` (raw counts divided by 16, so the values are exact).
    y : numpy.ndarray of int64, shape (1797,)
        The digit shown in each image, 0 to 9.

    Raises
    ------
    FileNotFoundError
        If the data file is missing from the installed package.

    Notes
    -----
    Every call reads the packaged file again and returns new arrays, so a
    caller may modify the results freely.

    Examples
    --------
    >>> from backprop_rs.datasets import load_digits
    >>> X, y = load_digits()
    >>> X.shape, X.dtype, y.shape, y.dtype
    ((1797, 64), dtype('float32'), (1797,), dtype('int64'))
    >>> float(X.min()), float(X.max())
    (0.0, 1.0)
    >>> int(y[0]), int(y[1])
    (0, 1)
    """
    resource = resources.files(__name__).joinpath(_DIGITS_RESOURCE)
    raw = resource.read_bytes()
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        pixels = archive["data"]
        target = archive["target"]
    X = pixels.astype(np.float32)
    X /= np.float32(16.0)
    y = target.astype(np.int64)
    return X, y


def load_fashion_mnist(
    path: str | os.PathLike[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST from its four IDX files.

    The folder must hold ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each either plain or gzip-compressed (the
    compressed form is recognised by its content, and is usually named with
    a ``.gz`` suffix). When both forms are present the plain file is read.

    Parameters
    ----------
    path : str or os.PathLike, optional
        Folder holding the four IDX files. By default the folder installed
        by the Debian/Ubuntu package ``dataset-fashion-mnist``,
        ``/usr/share/datasets/fashion-mnist``, is used.

    Returns
    -------
    (X_train, y_train) : tuple of numpy.ndarray
        ``X_train`` is float32 of shape (60000, 784): one image per row, the
        28x28 pixels read row by row and divided by 255 into ``[0, 1]``.
        ``y_train`` is int64 of shape (60000,), the classes 0 to 9.
    (X_test, y_test) : tuple of numpy.ndarray
        The same for the 10,000 test images: shapes (10000, 784) and
        (10000,).

    Raises
    ------
    FileNotFoundError
        If the folder or any of the four files is missing. The message names
        the missing files and says how to obtain the data.
    ValueError
        If a file is not a valid unsigned-byte IDX file of the expected kind
        (wrong magic number, type byte or number of dimensions), is a corrupt
        gzip stream, holds more or fewer bytes than its header declares, has
        a label outside 0 to 9, or if the image and label counts of a split
        (or the image sizes of the two splits) disagree. The message names
        the file and what was wrong.

    Notes
    -----
    The shapes above are those of the real data set; the loader itself
    reads whatever sample counts and image size the IDX headers declare, as
    long as the two splits agree on the image size. Parsing uses
    :func:`numpy.frombuffer`, so loading is bound by gzip decompression.

    Examples
    --------
    With the Debian/Ubuntu package installed
    (``apt-get install dataset-fashion-mnist``):

    >>> from backprop_rs.datasets import load_fashion_mnist
    >>> train, test = load_fashion_mnist()  # doctest: +SKIP
    >>> X_train, y_train = train  # doctest: +SKIP
    >>> X_train.shape, X_train.dtype, y_train.shape  # doctest: +SKIP
    ((60000, 784), dtype('float32'), (60000,))
    >>> test[0].shape  # doctest: +SKIP
    (10000, 784)

    From any folder holding the four files:

    >>> load_fashion_mnist("~/data/fashion-mnist")  # doctest: +SKIP
    """
    folder = _FASHION_MNIST_DIR if path is None else Path(path).expanduser()
    files = _find_fashion_mnist_files(folder)
    train_images, test_images, train_labels, test_labels = (
        files["train-images-idx3-ubyte"],
        files["t10k-images-idx3-ubyte"],
        files["train-labels-idx1-ubyte"],
        files["t10k-labels-idx1-ubyte"],
    )

    X_train = _read_idx_images(train_images)
    y_train = _read_idx_labels(train_labels)
    _check_counts(train_images, X_train, train_labels, y_train)

    X_test = _read_idx_images(test_images)
    y_test = _read_idx_labels(test_labels)
    _check_counts(test_images, X_test, test_labels, y_test)

    if X_train.shape[1] != X_test.shape[1]:
        raise ValueError(
            f"{test_images}: images have {X_test.shape[1]} pixels but the "
            f"training images in {train_images} have {X_train.shape[1]}"
        )
    return (X_train, y_train), (X_test, y_test)


def _find_fashion_mnist_files(folder: Path) -> dict[str, Path]:
    """Locate the four IDX files in ``folder``, plain or ``.gz``."""
    hint = (
        "To get Fashion-MNIST, install the Debian/Ubuntu package with "
        "`apt-get install dataset-fashion-mnist` (it puts the files in "
        f"{_FASHION_MNIST_DIR}), or give the folder that holds the four IDX "
        "files " + ", ".join(_FASHION_MNIST_FILES) + " (each plain or .gz): "
        "path= in Python, --data-dir on the command line."
    )
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"Fashion-MNIST folder {folder} {what}. {hint}")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name in _FASHION_MNIST_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(f"{name} (or {name}.gz)")
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST file(s) missing from {folder}: "
            + ", ".join(missing)
            + f". {hint}"
        )
    return found


def _read_idx_bytes(path: Path) -> bytes:
    """Read an IDX file, decompressing it if it is a gzip stream."""
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return raw


def _parse_idx(path: Path, magic: int, kind: str) -> tuple[np.ndarray, tuple]:
    """Parse an unsigned-byte IDX file and return its flat payload and dims."""
    raw = _read_idx_bytes(path)
    if len(raw) < 4:
        raise ValueError(
            f"{path}: too short to be an IDX file ({len(raw)} bytes, the "
            "magic number alone needs 4)"
        )
    found = int.from_bytes(raw[:4], "big")
    if raw[:2] != b"\x00\x00":
        raise ValueError(
            f"{path}: not an IDX file (magic number 0x{found:08x}, expected "
            f"0x{magic:08x} for {kind})"
        )
    if raw[2] != _IDX_UBYTE:
        raise ValueError(
            f"{path}: IDX type byte is 0x{raw[2]:02x}, expected 0x08 "
            f"(unsigned byte); magic number 0x{found:08x}, expected "
            f"0x{magic:08x} for {kind}"
        )
    ndim = magic & 0xFF
    if raw[3] != ndim:
        raise ValueError(
            f"{path}: IDX header declares {raw[3]} dimension(s) (magic number "
            f"0x{found:08x}), expected {ndim} (0x{magic:08x}) for {kind}"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header ({len(raw)} bytes, the header of "
            f"{kind} needs {header_len})"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = 1
    for d in dims:
        expected *= d
    payload = len(raw) - header_len
    if payload != expected:
        shape = " x ".join(str(d) for d in dims)
        problem = "truncated" if payload < expected else "trailing bytes"
        raise ValueError(
            f"{path}: payload is {payload} bytes but the IDX header declares "
            f"{shape} = {expected} bytes ({problem})"
        )
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
    return data, dims


def _read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX image file as float32 rows scaled to ``[0, 1]``."""
    data, (count, rows, cols) = _parse_idx(path, _IDX_IMAGES_MAGIC, "images")
    images = data.reshape(count, rows * cols).astype(np.float32)
    images /= np.float32(255.0)
    return images


def _read_idx_labels(path: Path) -> np.ndarray:
    """Read an IDX label file as int64 classes, checking they are 0 to 9."""
    data, _ = _parse_idx(path, _IDX_LABELS_MAGIC, "labels")
    if data.size and int(data.max()) >= _FASHION_MNIST_CLASSES:
        raise ValueError(
            f"{path}: label {int(data.max())} is out of range, Fashion-MNIST "
            f"labels are 0 to {_FASHION_MNIST_CLASSES - 1}"
        )
    return data.astype(np.int64)


def _check_counts(
    images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray
) -> None:
    """Check that an image file and its label file hold as many samples."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} "
            f"holds {labels.shape[0]} labels; the counts must agree"
        )
