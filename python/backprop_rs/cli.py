"""The ``backprop-rs`` command: ``demo``, ``train`` and ``bench``.

``backprop-rs demo`` trains on the digits shipped with the package and prints
the test accuracy. ``backprop-rs train`` trains on the digits, on Fashion-MNIST
or on an ``.npz`` of arrays ``X`` and ``y``; each option left out takes the data
set's default (``RECIPES`` for the two named data sets, ``PLAIN`` for an
``.npz``), option by option.

Every failure is one line ``backprop-rs: error: ...`` on stderr and exit code
2; Ctrl-C during training reports the steps done and exits with 130.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any, NoReturn

import numpy as np

from . import datasets
from ._model import Dense, NonFiniteLossError, Sequential
from ._optim import SGD, CosineAnnealing, ExponentialDecay, StepDecay
from ._validation import ACTIVATIONS, CLASSIFICATION_LOSSES, LOSSES, ROW_SUM_TOLERANCE

PROG = "backprop-rs"
EXIT_ERROR = 2
# What a shell reports for a process ended by SIGINT.
EXIT_INTERRUPTED = 130

# Each named data set's recipe: an option left out takes its value from here.
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
# The defaults for an .npz of unknown data: plain SGD, as Keras' defaults.
# Without a validation split the test set is reported per epoch.
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
NAMED_DATA = ("digits", "fashion-mnist")


class CommandLineError(ValueError):
    """A bad option or input file; its message names the option."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, with how far training got."""

    def __init__(self, steps: int, epochs: int) -> None:
        super().__init__(steps, epochs)
        self.steps = steps
        self.epochs = epochs


def digits_split(
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The digits split into 1437 training and 360 test samples, fixed by ``seed``."""
    X, y = datasets.load_digits()
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return (X[train], y[train]), (X[test], y[test])


# Options ---------------------------------------------------------------------


def _defaults_help(key: str) -> str:
    """``'default: digits 128, fashion-mnist 512,256, npz 128'`` for ``key``."""
    parts = [f"{name} {recipe[key]}" for name, recipe in RECIPES.items()]
    return "default: " + ", ".join(parts + [f"npz {PLAIN[key]}"])


def _hidden_widths(text: str) -> list[int]:
    """``'256,128'`` as ``[256, 128]``; ``CommandLineError`` naming --hidden."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdecimal() and int(p) >= 1 for p in parts):
        raise CommandLineError(
            f"--hidden is {text!r}; expected positive widths separated by commas, "
            "e.g. 256,128"
        )
    return [int(p) for p in parts]


def _check_int_option(value: int, option: str, minimum: int) -> None:
    if value < minimum:
        raise CommandLineError(f"{option} must be at least {minimum}; got {value}")


def _check_real_option(
    value: float, option: str, low: float, high: float | None = None
) -> None:
    """``value`` finite and in ``[low, high)`` (no upper bound without ``high``)."""
    if not math.isfinite(value):
        raise CommandLineError(f"{option} must be finite; got {value}")
    if value < low or (high is not None and value >= high):
        expected = f"at least {low:g}" if high is None else f"in [{low:g}, {high:g})"
        raise CommandLineError(f"{option} must be {expected}; got {value:g}")


def _check_options(args: argparse.Namespace) -> list[int]:
    """Check the options that need no data; return the hidden widths."""
    kind = args.data if args.data in NAMED_DATA else "npz"
    if args.data_dir is not None and kind != "fashion-mnist":
        raise CommandLineError(
            f"--data-dir applies to --data fashion-mnist only; got --data {args.data}"
        )
    if args.activation not in ACTIVATIONS:
        raise CommandLineError(
            f"--activation is {args.activation!r}; expected one of "
            f"{', '.join(ACTIVATIONS)}"
        )
    hidden = _hidden_widths(args.hidden)
    _check_int_option(args.epochs, "--epochs", 1)
    _check_int_option(args.batch_size, "--batch-size", 1)
    _check_int_option(args.seed, "--seed", 0)
    _check_real_option(args.lr, "--lr", 0.0)
    _check_real_option(args.momentum, "--momentum", 0.0, 1.0)
    _check_real_option(args.weight_decay, "--weight-decay", 0.0)
    _check_real_option(args.validation_split, "--validation-split", 0.0, 1.0)
    if args.nesterov and args.momentum == 0.0:
        raise CommandLineError("--nesterov needs --momentum above 0; got 0")
    if args.save is not None:
        _check_save_path(args.save)
    return hidden


def _check_save_path(path: str) -> None:
    """Fail now, not after training, if ``path`` cannot be written."""
    if not path:
        raise CommandLineError("--save is ''; expected a file path")
    if os.path.isdir(path):
        raise CommandLineError(f"--save {path} is a directory; expected a file path")
    folder = os.path.dirname(path) or "."
    if not os.path.exists(folder):
        raise CommandLineError(f"--save {path}: the folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise CommandLineError(f"--save {path}: {folder} is not a folder")
    existed = os.path.lexists(path)
    try:
        # Append mode leaves an existing file as it is.
        with open(path, "ab"):
            pass
    except OSError as e:
        raise CommandLineError(
            f"--save {path} cannot be written ({e.strerror or e})"
        ) from None
    if not existed:
        os.remove(path)


# Data ------------------------------------------------------------------------

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _load_npz(path: str, seed: int) -> Split:
    """``(X, y), (X_test, y_test)`` from the file; the test set is a fifth of
    the samples, drawn with ``seed``, when the file holds no ``X_test``."""
    where = f"--data {path}"
    if os.path.isdir(path):
        raise CommandLineError(
            f"{where} is a directory; expected digits, fashion-mnist or an .npz file"
        )
    if not os.path.exists(path):
        raise CommandLineError(
            f"{where}: no such file; expected digits, fashion-mnist or an .npz file"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CommandLineError(
                f"{where} is a single .npy array; expected an .npz of arrays X "
                "and y (np.savez(path, X=X, y=y))"
            )
        with loaded as f:
            names = set(f.files)
            missing = [k for k in ("X", "y") if k not in names]
            if missing:
                raise CommandLineError(
                    f"{where} has arrays {sorted(names)}; expected X and y (and "
                    "optionally X_test and y_test)"
                )
            if ("X_test" in names) != ("y_test" in names):
                given, absent = "X_test", "y_test"
                if "y_test" in names:
                    given, absent = absent, given
                raise CommandLineError(
                    f"{where} has {given} but no {absent}; give both or neither"
                )
            keys = ["X", "y"] + (["X_test", "y_test"] if "X_test" in names else [])
            arrays = {k: _read_array(f, k, where) for k in keys}
    except CommandLineError:
        raise
    except (OSError, ValueError, EOFError, KeyError) as e:
        reason = getattr(e, "strerror", None) or e
        raise CommandLineError(
            f"{where} cannot be read as an .npz of arrays X and y ({reason})"
        ) from None

    X, y = arrays["X"], arrays["y"]
    _check_pair(X, y, "X", "y", where)
    if "X_test" in arrays:
        X_test, y_test = arrays["X_test"], arrays["y_test"]
        _check_pair(X_test, y_test, "X_test", "y_test", where)
        if X_test.shape[1] != X.shape[1]:
            raise CommandLineError(
                f"{where}: X_test has {X_test.shape[1]} features, but X has "
                f"{X.shape[1]}"
            )
        return (X, y), (X_test, y_test)
    if len(X) < 2:
        raise CommandLineError(
            f"{where}: X has {len(X)} sample; expected at least 2 (a fifth, at "
            "least one, is held out for testing) or arrays X_test and y_test"
        )
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = max(1, len(X) // 5)
    test, train = order[:n_test], order[n_test:]
    return (X[train], y[train]), (X[test], y[test])


def _read_array(f: Any, key: str, where: str) -> np.ndarray:
    try:
        a = f[key]
    except ValueError:
        # numpy refuses object arrays without allow_pickle; say what they are.
        raise CommandLineError(
            f"{where}: {key} is an array of Python objects; expected numbers"
        ) from None
    if a.dtype.kind not in "biuf":
        raise CommandLineError(
            f"{where}: {key} has dtype {a.dtype}; expected numbers (float, "
            "integer or bool)"
        )
    return a


def _check_pair(X: np.ndarray, y: np.ndarray, xn: str, yn: str, where: str) -> None:
    if X.ndim != 2:
        raise CommandLineError(
            f"{where}: {xn} has shape {X.shape}; expected 2-D (samples, features)"
        )
    if y.ndim not in (1, 2):
        raise CommandLineError(
            f"{where}: {yn} has shape {y.shape}; expected (samples,) or "
            "(samples, outputs)"
        )
    if len(X) != len(y):
        raise CommandLineError(
            f"{where}: {xn} has {len(X)} samples, but {yn} has {len(y)}"
        )
    if len(X) == 0:
        raise CommandLineError(f"{where}: {xn} has 0 samples")


def _is_distribution(y: np.ndarray) -> bool:
    """Rows of ``y`` all in [0, 1] and summing to 1: one-hot or probabilities."""
    if y.ndim != 2 or y.size == 0 or not np.isfinite(y).all():
        return False
    sums = y.sum(axis=1, dtype=np.float64)
    in_range = bool(y.min() >= 0 and y.max() <= 1)
    return in_range and bool(np.all(np.abs(sums - 1.0) <= ROW_SUM_TOLERANCE))


def _task(loss: str | None, y: np.ndarray, y_test: np.ndarray) -> tuple[str, str, int]:
    """``(loss, output activation, output width)`` for targets ``y``.

    Integer or bool labels of shape (n,) mean classification; so do rows that
    are one-hot or probabilities. Anything else is regression.
    """
    labels = y.ndim == 1 and y.dtype.kind in "iub"
    if loss is None:
        if labels or _is_distribution(y):
            loss = "cross_entropy"
        else:
            loss = "mse"
    output = CLASSIFICATION_LOSSES.get(loss, "identity")
    if y.ndim == 2:
        return loss, output, y.shape[1]
    if loss == "cross_entropy":
        # Labels that check_targets refuses (negative, fractional) still give a
        # width here, so that the refusal names the bad label.
        high = max(y.max(), y_test.max())
        return loss, output, max(int(high), 0) + 1
    return loss, output, 1


# Parser ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with every error on one line, ``backprop-rs: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{PROG}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(
        prog=PROG,
        description="Train multilayer perceptrons by backpropagation in Rust.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="train on the bundled digits and print the accuracy")

    t = sub.add_parser(
        "train",
        help="train a network and report its test accuracy",
        description="Train a network and report its test accuracy. Each option "
        "left out takes the data set's default, shown in its help.",
        epilog="An .npz holds X (samples, features) and y, and optionally X_test "
        "and y_test (both or neither; without them a fifth of X is held out for "
        "testing). The task follows from y: integer or bool labels of shape "
        "(samples,) mean classification (cross_entropy, softmax output); so do "
        "rows of y that are one-hot or probabilities (in [0, 1], summing to 1); "
        "anything else is regression (mse, identity output). --loss overrides "
        "this.",
    )
    t.set_defaults(demo=False)
    t.add_argument(
        "--data",
        default="digits",
        help="digits, fashion-mnist, or a path to an .npz with X and y "
        "(and optionally X_test, y_test); default: digits",
    )
    t.add_argument(
        "--data-dir",
        default=None,
        help="folder of the Fashion-MNIST IDX files, for --data fashion-mnist "
        "only (default: the Debian package's)",
    )
    t.add_argument(
        "--hidden",
        help="hidden widths, comma-separated, e.g. 256,128; "
        + _defaults_help("hidden"),
    )
    t.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        metavar="NAME",
        help=f"hidden activation, one of {', '.join(ACTIVATIONS)}; "
        + _defaults_help("activation"),
    )
    t.add_argument(
        "--loss",
        choices=LOSSES,
        metavar="NAME",
        help=f"one of {', '.join(LOSSES)}; the output activation follows "
        "(softmax for cross_entropy, sigmoid for binary_cross_entropy, identity "
        "otherwise); default: from y, see below",
    )
    t.add_argument("--epochs", type=int, help=_defaults_help("epochs"))
    t.add_argument(
        "--batch-size", type=int, dest="batch_size", help=_defaults_help("batch_size")
    )
    t.add_argument("--lr", type=float, help="learning rate; " + _defaults_help("lr"))
    t.add_argument(
        "--momentum", type=float, help="in [0, 1); " + _defaults_help("momentum")
    )
    t.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    t.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        dest="weight_decay",
        help="L2 penalty on every parameter; default: 0",
    )
    t.add_argument(
        "--schedule",
        choices=["none", "step", "exponential", "cosine"],
        help="learning-rate schedule, stepped per epoch; " + _defaults_help("schedule"),
    )
    t.add_argument(
        "--validation-split",
        type=float,
        dest="validation_split",
        help="fraction of the training set held out for validation, in [0, 1); "
        "with 0 the test set is reported per epoch; "
        + _defaults_help("validation_split"),
    )
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the weights, the shuffles and the splits; default: 0",
    )
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


# Training --------------------------------------------------------------------


def _schedule(name: str, epochs: int) -> Any:
    if name == "none":
        return None
    if name == "step":
        return StepDecay(max(1, epochs // 3), gamma=0.1)
    if name == "exponential":
        return ExponentialDecay(0.95)
    return CosineAnnealing(epochs)


def _train(args: argparse.Namespace, out: Any = None) -> float:
    """Train as ``args`` says and return the test accuracy (or loss).

    Raises
    ------
    CommandLineError
        For a bad option or data file, before any training.
    Interrupted
        On Ctrl-C during training (a ``KeyboardInterrupt``).
    """
    out = sys.stdout if out is None else out
    kind = args.data if args.data in NAMED_DATA else "npz"
    defaults = RECIPES.get(kind, PLAIN)
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    hidden = _check_options(args)

    if kind == "digits":
        (X, y), (X_test, y_test) = digits_split(args.seed)
    elif kind == "fashion-mnist":
        (X, y), (X_test, y_test) = datasets.load_fashion_mnist(args.data_dir)
    else:
        (X, y), (X_test, y_test) = _load_npz(args.data, args.seed)
    loss, output, n_out = _task(getattr(args, "loss", None), y, y_test)

    if args.validation_split > 0:
        n_val = max(1, int(round(len(X) * args.validation_split)))
        if n_val >= len(X):
            raise CommandLineError(
                f"--validation-split {args.validation_split:g} holds out {n_val} of "
                f"{len(X)} training samples, leaving none to train on"
            )
        order = np.random.default_rng(args.seed + 1).permutation(len(X))
        val, train = order[:n_val], order[n_val:]
        validation = (X[val], y[val])
        X, y = X[train], y[train]
        print(f"validation: {n_val} samples held out of the training set", file=out)
    else:
        validation = (X_test, y_test)
        why = "" if args.demo else " (no --validation-split given)"
        print(f"validation: the test set{why}", file=out)

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
    try:
        model.fit(
            X,
            y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=optimizer,
            validation_data=validation,
            verbose=args.verbose,
        )
    except KeyboardInterrupt:
        raise Interrupted(optimizer.steps_done, optimizer.epochs_done) from None
    elapsed = time.perf_counter() - start
    result = model.evaluate(X_test, y_test)
    metric = result.get("accuracy", result["loss"])
    name = "accuracy" if "accuracy" in result else "loss"
    took = f"{elapsed * 1000:.0f} ms" if elapsed < 1 else f"{elapsed:.1f} s"
    print(f"test {name}: {metric:.4f} (training took {took})", file=out)
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}", file=out)
    return float(metric)


def _fail(message: str) -> int:
    # One line: a message spanning lines would read as several errors.
    line = " ".join(str(message).split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return EXIT_ERROR


def _run(args: argparse.Namespace) -> int:
    try:
        _train(args)
    except Interrupted as e:
        print(
            f"{PROG}: interrupted after {e.steps} steps ({e.epochs} "
            f"epoch{'' if e.epochs == 1 else 's'} complete)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before training started", file=sys.stderr)
        return EXIT_INTERRUPTED
    except NonFiniteLossError as e:
        return _fail(str(e))
    except OSError as e:
        reason = e.strerror or str(e)
        return _fail(f"{e.filename}: {reason}" if e.filename else reason)
    except (ValueError, TypeError, ArithmeticError, MemoryError) as e:
        return _fail(str(e) or type(e).__name__)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # The benchmark parses its own options, including ones argparse would
        # take for this parser's.
        from ._bench import run

        try:
            return run(argv[1:])
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo = parser.parse_args(["train", "--data", "digits", "--verbose", "2"])
        demo.demo = True
        return _run(demo)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
