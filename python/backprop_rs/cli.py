"""The ``backprop-rs`` command: ``demo``, ``train`` and ``bench``.

``backprop-rs demo`` trains on the digits shipped with the package and prints
the test accuracy. ``backprop-rs train`` trains on the digits, on Fashion-MNIST
or on an ``.npz`` of arrays ``X`` and ``y``; options left out take the data
set's default recipe (``RECIPES``).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from . import datasets
from ._model import Dense, Sequential
from ._optim import SGD, CosineAnnealing, ExponentialDecay, StepDecay

# Each data set's default recipe, used when no training option is given at all.
# Fashion-MNIST's reaches about 0.89-0.90 test accuracy (see README).
RECIPES: dict[str, dict[str, Any]] = {
    "digits": {
        "hidden": "128",
        "activation": "relu",
        "epochs": 40,
        "batch_size": 32,
        "lr": 0.05,
        "momentum": 0.9,
        "schedule": "cosine",
        "validation_split": 0.0,
    },
    "fashion-mnist": {
        "hidden": "512,256",
        "activation": "relu",
        "epochs": 30,
        "batch_size": 128,
        "lr": 0.05,
        "momentum": 0.9,
        "schedule": "cosine",
        "validation_split": 0.0,
    },
}
# What an option left out takes when others are given: plain SGD, as Keras'
# defaults. Without a validation split the test set is reported per epoch.
PLAIN: dict[str, Any] = {
    "hidden": "128",
    "activation": "relu",
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.01,
    "momentum": 0.0,
    "schedule": "none",
    "validation_split": 0.0,
}
DIGITS_TEST_SIZE = 360


def digits_split(
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The digits split into 1437 training and 360 test samples, fixed by ``seed``."""
    X, y = datasets.load_digits()
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return (X[train], y[train]), (X[test], y[test])


def _load_npz(
    path: str, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in ("X", "y") if k not in f.files]
        if missing:
            raise SystemExit(
                f"{path} has arrays {sorted(f.files)}; expected X and y "
                "(and optionally X_test, y_test)"
            )
        X, y = f["X"], f["y"]
        if "X_test" in f.files and "y_test" in f.files:
            return (X, y), (f["X_test"], f["y_test"])
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = max(1, len(X) // 5)
    test, train = order[:n_test], order[n_test:]
    return (X[train], y[train]), (X[test], y[test])


def _schedule(name: str, epochs: int) -> Any:
    if name == "none":
        return None
    if name == "step":
        return StepDecay(max(1, epochs // 3), gamma=0.1)
    if name == "exponential":
        return ExponentialDecay(0.95)
    return CosineAnnealing(epochs)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="backprop-rs",
        description="Train multilayer perceptrons by backpropagation in Rust.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="train on the bundled digits and print the accuracy")

    t = sub.add_parser("train", help="train a network and report its test accuracy")
    t.add_argument(
        "--data",
        default="digits",
        help="digits, fashion-mnist, or a path to an .npz with X and y "
        "(and optionally X_test, y_test)",
    )
    t.add_argument(
        "--data-dir",
        default=None,
        help="folder of the Fashion-MNIST IDX files (default: the Debian package's)",
    )
    t.add_argument("--hidden", help="hidden widths, comma-separated, e.g. 256,128")
    t.add_argument("--activation", help="hidden activation (default relu)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int, dest="batch_size")
    t.add_argument("--lr", type=float)
    t.add_argument("--momentum", type=float)
    t.add_argument("--nesterov", action="store_true")
    t.add_argument("--weight-decay", type=float, default=0.0, dest="weight_decay")
    t.add_argument(
        "--schedule",
        choices=["none", "step", "exponential", "cosine"],
        help="learning-rate schedule, stepped per epoch",
    )
    t.add_argument(
        "--validation-split",
        type=float,
        dest="validation_split",
        help="fraction of the training set held out for validation",
    )
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--save", help="write the trained model to this .npz file")
    t.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=[0, 1, 2],
        help="0 silent, 1 progress bar (default), 2 one line per epoch",
    )

    b = sub.add_parser(
        "bench", help="time backprop_rs against numpy, PyTorch and scikit-learn"
    )
    b.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="arguments for benchmarks/bench.py (see --help there)",
    )
    return p


def _train(args: argparse.Namespace, out: Any = None) -> float:
    """Train as ``args`` says and return the test accuracy."""
    out = sys.stdout if out is None else out
    kind = args.data if args.data in ("digits", "fashion-mnist") else "npz"
    given = [k for k in PLAIN if getattr(args, k, None) is not None]
    defaults = RECIPES[kind] if kind in RECIPES and not given else PLAIN
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if kind == "digits":
        (X, y), (X_test, y_test) = digits_split(args.seed)
    elif kind == "fashion-mnist":
        (X, y), (X_test, y_test) = datasets.load_fashion_mnist(args.data_dir)
    else:
        (X, y), (X_test, y_test) = _load_npz(args.data, args.seed)

    classify = np.asarray(y).ndim == 1 and np.asarray(y).dtype.kind in "iub"
    if classify:
        n_out = int(max(y.max(), y_test.max())) + 1
        loss, output = "cross_entropy", "softmax"
    else:
        n_out = 1 if np.asarray(y).ndim == 1 else y.shape[1]
        loss, output = "mse", "identity"

    validation = None
    if args.validation_split and args.validation_split > 0:
        if not 0 < args.validation_split < 1:
            raise SystemExit("--validation-split must be in [0, 1)")
        order = np.random.default_rng(args.seed + 1).permutation(len(X))
        n_val = max(1, int(round(len(X) * args.validation_split)))
        val, train = order[:n_val], order[n_val:]
        validation = (X[val], y[val])
        X, y = X[train], y[train]
        print(f"validation: {n_val} samples held out of the training set", file=out)
    else:
        validation = (X_test, y_test)
        print("validation: the test set (no --validation-split given)", file=out)

    try:
        hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        raise SystemExit(
            f"--hidden is {args.hidden!r}; expected widths like 256,128"
        ) from None
    widths = [X.shape[1], *hidden]
    layers = [
        Dense(a, b, activation=args.activation) for a, b in zip(widths[:-1], widths[1:])
    ]
    layers.append(Dense(widths[-1], n_out, activation=output))
    model = Sequential(layers, loss, dtype=args.dtype, seed=args.seed)
    optimizer = SGD(
        args.lr,
        momentum=args.momentum,
        nesterov=args.nesterov,
        weight_decay=args.weight_decay,
        schedule=_schedule(args.schedule, args.epochs),
    )
    print(
        f"data: {args.data}, {len(X)} training samples, {len(X_test)} test samples",
        file=out,
    )
    print(
        f"network: {'-'.join(str(w) for w in widths + [n_out])}, "
        f"{args.activation}, {loss}; {optimizer!r}",
        file=out,
    )

    start = time.perf_counter()
    model.fit(
        X,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=optimizer,
        validation_data=validation,
        verbose=args.verbose,
    )
    elapsed = time.perf_counter() - start
    result = model.evaluate(X_test, y_test)
    metric = result.get("accuracy", result["loss"])
    name = "accuracy" if "accuracy" in result else "loss"
    print(f"test {name}: {metric:.4f} (training took {elapsed:.1f} s)", file=out)
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}", file=out)
    return float(metric)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        args = _parser().parse_args(["train", "--data", "digits", "--verbose", "2"])
        _train(args)
        return 0
    if args.command == "train":
        try:
            _train(args)
        except (ValueError, TypeError, FileNotFoundError) as e:
            print(f"backprop-rs: error: {e}", file=sys.stderr)
            return 2
        return 0
    from ._bench import run

    return run(args.args)


if __name__ == "__main__":
    sys.exit(main())
