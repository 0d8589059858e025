"""Saving and loading models.

The file is an uncompressed ``.npz`` (a zip of ``.npy`` arrays) holding:

- ``model.json``: a 1-D ``uint8`` array, the UTF-8 bytes of a JSON object
  ``{"format": "backprop_rs", "version": 1, "engine": "core" | "reference",
  "loss": ..., "dtype": ..., "seed": ..., "layers": [{"in_features",
  "out_features", "activation", "init"}, ...], "rng_state": {...}}``, where
  ``rng_state`` is the model generator's PCG64 state, so that a loaded model
  shuffles as the saved one would have;
- ``W0``, ``b0``, ``W1``, ``b1``, ...: each layer's weights ``(fan_in,
  fan_out)`` and biases ``(fan_out,)``.

Nothing in it is executable: ``load`` reads it with ``allow_pickle=False``.
The optimizer's state is not saved (as with Keras' ``save_weights``).
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

FORMAT = "backprop_rs"
VERSION = 1
# The first bytes of a zip archive (an .npz) and of a single .npy array.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def check_path(path: Any) -> str:
    """``path`` as a ``str``, or ``TypeError`` naming it."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {path!r}")
    return os.fsdecode(os.fspath(path))


def save(model: Any, path: Any) -> None:
    from .reference import Sequential as ReferenceSequential

    path = check_path(path)

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "engine": "reference" if isinstance(model, ReferenceSequential) else "core",
        "loss": model.loss,
        "dtype": model.dtype.name,
        "seed": model.seed,
        "layers": [d.to_dict() for d in model.layers],
        "rng_state": model._rng.bit_generator.state,
    }
    arrays: dict[str, np.ndarray] = {
        "model.json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    }
    for i, (w, b) in enumerate(model.get_weights()):
        arrays[f"W{i}"] = w
        arrays[f"b{i}"] = b
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path: Any) -> Any:
    """Read a model written by ``Sequential.save``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Sequential
        A ``backprop_rs.Sequential`` (or ``backprop_rs.reference.Sequential``
        when that one was saved) with the saved architecture, dtype, seed,
        generator state and weights.

    Raises
    ------
    TypeError
        If ``path`` is not a ``str`` or ``os.PathLike``.
    FileNotFoundError, PermissionError
        If there is no file at ``path`` or it cannot be read.
    ValueError
        If the file is not a model written by ``save`` or is damaged.
    """
    from . import reference
    from ._model import Dense, Sequential

    path = check_path(path)
    if os.path.isdir(path):
        raise ValueError(f"{path} is not a backprop_rs model file (it is a directory)")
    # Looking at the first bytes first keeps numpy's advice about allow_pickle,
    # which is wrong here, out of the message for a file of another kind.
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic.startswith(_NPY_MAGIC):
        raise ValueError(f"{path} is a single .npy array, not a backprop_rs model file")
    if not magic.startswith(_ZIP_MAGIC):
        raise ValueError(
            f"{path} is not a backprop_rs model file (not an .npz archive)"
        )
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(
            f"{path} is not a backprop_rs model file (a damaged .npz archive: {e})"
        ) from None
    with npz:
        try:
            if "model.json" not in npz.files:
                raise ValueError("it holds no model.json entry")
            raw = npz["model.json"]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise ValueError(
                    f"model.json is a {raw.dtype} array of shape {raw.shape}; "
                    "expected 1-D uint8 (UTF-8 text)"
                )
            meta = json.loads(raw.tobytes().decode())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError("model.json does not describe a backprop_rs model")
            if meta.get("version") != VERSION:
                raise ValueError(
                    f"format version {meta.get('version')!r}; this release reads "
                    f"version {VERSION}"
                )
            specs = meta["layers"]
            if not isinstance(specs, list):
                raise ValueError("model.json's layers is not a list")
            layers = [Dense(**spec) for spec in specs]
            weights = []
            # The stored arrays must match the declared widths before anything
            # of that size is built.
            for i, d in enumerate(layers):
                w, b = npz[f"W{i}"], npz[f"b{i}"]
                if w.shape != (d.in_features, d.out_features) or b.shape != (
                    d.out_features,
                ):
                    raise ValueError(
                        f"W{i} and b{i} have shapes {w.shape} and {b.shape}; the "
                        f"architecture declares ({d.in_features}, "
                        f"{d.out_features}) and ({d.out_features},)"
                    )
                weights.append((w, b))
            engine = meta.get("engine")
            cls = reference.Sequential if engine == "reference" else Sequential
            model = cls(layers, meta["loss"], dtype=meta["dtype"], seed=meta["seed"])
            model.set_weights(weights)
            if "rng_state" in meta:
                model._rng.bit_generator.state = meta["rng_state"]
        except (
            KeyError,
            TypeError,
            ValueError,
            json.JSONDecodeError,
            UnicodeDecodeError,
            zipfile.BadZipFile,
            OSError,
            EOFError,
        ) as e:
            raise ValueError(
                f"{path} is not a valid backprop_rs model file: {e}"
            ) from None
    return model
