"""Shared fixtures and markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def fashion_available() -> bool:
    return (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()


@pytest.fixture
def fashion_data():
    """Fashion-MNIST from the Debian package.

    Skipped when the package is absent, unless BACKPROP_RS_REQUIRE_DATA=1 (as
    in CI), where its absence is a failure.
    """
    if not fashion_available():
        if os.environ.get("BACKPROP_RS_REQUIRE_DATA") == "1":
            pytest.fail(f"Fashion-MNIST is required but {FASHION_DIR} is missing")
        pytest.skip("Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
    from backprop_rs import datasets

    return datasets.load_fashion_mnist()
