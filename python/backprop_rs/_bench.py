"""The benchmark behind ``backprop-rs bench`` and ``benchmarks/bench.py``.

Methodology
-----------
Every implementation trains the same network on the same data from the same
initial weights, with the same learning rate (0.05), momentum (0.9, plain,
not Nesterov, no weight decay), batch size and number of epochs, one after
the other in the same run:

- ``backprop_rs`` (float32) and ``backprop_rs64`` (float64): the Rust core;
- ``reference``: ``backprop_rs.reference``, the same model in numpy;
- ``torch`` (when installed): a plain PyTorch CPU loop (``randperm`` from a
  seeded generator, ``zero_grad``/``backward``/``step``, ``torch.optim.SGD``)
  with ``torch.set_num_threads(os.cpu_count())``;
- ``sklearn`` (when installed): ``MLPClassifier`` with ``solver="sgd"``,
  momentum 0.9, ``nesterovs_momentum=False``, ``alpha=0``, constant learning
  rate, no early stopping, trained by one ``partial_fit`` (one shuffled pass)
  per epoch.

The initial weights come from ``backprop_rs.Sequential(..., seed=0)``'s
``get_weights()``; they are set into the reference (``set_weights``), into
PyTorch (``Linear.weight = W.T``) and into scikit-learn (one ``partial_fit``
on a single batch to build the estimator, then ``coefs_`` and ``intercepts_``
are overwritten and the optimizer's ``velocities`` reset to zeros, so the
first timed epoch starts from the shared initialisation). The shuffles differ
between libraries (each uses its own generator); ``backprop_rs`` and the
reference share theirs.

Each implementation runs in its own subprocess (``python -m
backprop_rs._bench --worker SPEC``, which prints one JSON object), so peak
memory, thread pools and imported libraries do not leak between them. Within
a worker the data are loaded (and converted to the implementation's dtype)
first; then, for each repetition, a fresh model and optimizer are built from
the shared initial weights, the kernel's peak-RSS mark is reset (``5`` written
to ``/proc/self/clear_refs``), the resident set size is read from
``/proc/self/statm``, and the epochs are timed one by one: ``fit(...,
epochs=1, optimizer=opt)`` with the same optimizer object every time (its
state carries over, so the calls add up to one multi-epoch ``fit``; each call
includes ``fit``'s argument checks), ``verbose=0``, no validation data. The
peak RSS increase during fit is the peak RSS after the epochs (``VmHWM``, the
counter ``getrusage``'s ``ru_maxrss`` reports, read from ``/proc`` so that
the pre-``exec`` value is left out; ``ru_maxrss`` when the mark cannot be
reset) minus the RSS before them, in MiB, the largest over repetitions.

The epoch time reported is the median over all timed epochs of all
repetitions; the spread is the interquartile range (75th minus 25th
percentile) of the same epochs (min and max are in the JSON rows). Test
accuracy is measured after the last epoch of the last repetition. Inference
is ``predict`` (softmax probabilities) on the whole test set: one warm-up
call, then the median of several timed calls, as samples per second.

The machine's matrix-multiply throughput is measured with numpy float32
``matmul`` (best of several rounds) at 2048x2048x2048 and at each layer's
forward shape (batch x fan_in x fan_out). One training epoch costs
``n_train * (6 * sum(fan_in * fan_out) - 2 * fan_in_0 * fan_out_0)`` FLOPs
(forward ``2 * in * out`` per layer, backward ``4 * in * out`` except that
the first layer needs no input delta); the share of peak is that count over
``backprop_rs``'s median epoch seconds times the 2048^3 GFLOP/s.

The thread check trains ``wide`` with ``backprop_rs`` on 1 and on 2 threads,
each in its own worker started with ``BACKPROP_RS_NUM_THREADS`` (and
``MATMUL_NUM_THREADS``, the matrix-multiply crate's own variable) set, and
``backprop_rs.set_num_threads(n)`` called when the package has it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

SEED = 0
LR = 0.05
MOMENTUM = 0.9
N_CLASSES = 10
IMPLS = ("backprop_rs", "backprop_rs64", "reference", "torch", "sklearn")
OPTIONAL = {"torch": "torch", "sklearn": "sklearn"}
MIB = 1024.0 * 1024.0
GEMM_PEAK_SHAPE = (2048, 2048, 2048)
THREAD_VARS = ("BACKPROP_RS_NUM_THREADS", "MATMUL_NUM_THREADS")
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: data, network, batch size and epochs."""

    name: str
    data: str
    widths: tuple[int, ...]
    batch: int
    epochs: int
    quick_epochs: int
    quick_train: int | None

    def layers(self) -> list[tuple[int, int]]:
        """``(fan_in, fan_out)`` of every layer."""
        return list(zip(self.widths[:-1], self.widths[1:]))

    def flops_per_sample(self) -> int:
        """Training FLOPs per sample and epoch (forward plus backward)."""
        pairs = self.layers()
        total = 6 * sum(i * o for i, o in pairs)
        return total - 2 * pairs[0][0] * pairs[0][1]


WORKLOADS: dict[str, Workload] = {
    "fashion": Workload("fashion", "fashion", (784, 256, 128, 10), 128, 10, 1, 10000),
    "small": Workload("small", "digits", (64, 32, 10), 16, 100, 10, None),
    "wide": Workload("wide", "fashion", (784, 1024, 1024, 10), 256, 2, 1, 5000),
}

# (workload, label, kind, threshold); kinds are explained in _targets.
TARGETS: list[tuple[str, str, str, float]] = [
    ("fashion", "epoch time vs reference", "time:reference", 0.70),
    ("fashion", "epoch time vs torch", "time:torch", 0.55),
    ("fashion", "test accuracy vs reference", "acc:reference", 0.01),
    ("small", "epoch time vs reference", "time:reference", 0.05),
    ("small", "epoch time vs torch", "time:torch", 0.01),
    ("wide", "epoch time vs reference", "time:reference", 0.86),
    ("fashion", "inference samples/s vs reference", "infer:reference", 1.5),
    ("*", "peak RSS during fit vs reference", "rss:reference", 1.0),
    ("*", "float64 epoch time vs float32", "time64", 2.2),
    ("wide", "speed-up, 2 threads vs 1", "threads", 1.7),
]


# ---------------------------------------------------------------------------
# Worker side: runs in a subprocess and prints one JSON object.
# ---------------------------------------------------------------------------


def _rss_bytes() -> int:
    """The current resident set size, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    """Reset this process's peak-RSS mark; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _peak_bytes(reset: bool) -> int:
    """The peak RSS since the last reset (``VmHWM``), else ``ru_maxrss``."""
    if reset:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _load(
    wl: Workload, n_train: int | None, data_dir: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The workload's float32 features and int64 labels, train and test."""
    from . import datasets
    from .cli import digits_split

    if wl.data == "digits":
        (X, y), (Xt, yt) = digits_split(SEED)
    else:
        (X, y), (Xt, yt) = datasets.load_fashion_mnist(data_dir)
    if n_train is not None:
        X, y = X[:n_train], y[:n_train]
    return (
        np.ascontiguousarray(X, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.int64),
        np.ascontiguousarray(Xt, dtype=np.float32),
        np.ascontiguousarray(yt, dtype=np.int64),
    )


def _initial_weights(wl: Workload) -> list[tuple[np.ndarray, np.ndarray]]:
    """The shared initial weights: ``backprop_rs.Sequential(seed=0)``'s."""
    return _bp_model(wl, "float32", engine="core").get_weights()


def _bp_model(wl: Workload, dtype: str, engine: str) -> Any:
    import backprop_rs as bp

    mod = bp if engine == "core" else bp.reference
    pairs = wl.layers()
    layers = [
        mod.Dense(i, o, activation="softmax" if k == len(pairs) - 1 else "relu")
        for k, (i, o) in enumerate(pairs)
    ]
    return mod.Sequential(layers, loss="cross_entropy", dtype=dtype, seed=SEED)


class _BackpropImpl:
    """``backprop_rs.Sequential`` (engine ``core``) or the numpy reference."""

    def __init__(self, wl, data, init, dtype: str, engine: str) -> None:
        X, y, Xt, yt = data
        self.wl, self.dtype, self.engine = wl, dtype, engine
        self.X = np.ascontiguousarray(X, dtype=dtype)
        self.Xt = np.ascontiguousarray(Xt, dtype=dtype)
        self.y, self.yt = y, yt
        self.init = [(w.astype(dtype), b.astype(dtype)) for w, b in init]
        self.model: Any = None
        self.opt: Any = None

    def build(self) -> None:
        import backprop_rs as bp

        self.model = None
        self.model = _bp_model(self.wl, self.dtype, self.engine)
        self.model.set_weights(self.init)
        self.opt = bp.SGD(LR, momentum=MOMENTUM)

    def epoch(self) -> None:
        self.model.fit(
            self.X,
            self.y,
            epochs=1,
            batch_size=self.wl.batch,
            optimizer=self.opt,
            verbose=0,
        )

    def predict(self) -> np.ndarray:
        return self.model.predict(self.Xt)

    def accuracy(self) -> float:
        return float(self.model.evaluate(self.Xt, self.yt)["accuracy"])


class _TorchImpl:
    """A plain PyTorch CPU training loop."""

    def __init__(self, wl, data, init, threads: int | None) -> None:
        import torch

        torch.set_num_threads(threads or os.cpu_count() or 1)
        self.torch = torch
        X, y, Xt, yt = data
        self.wl = wl
        self.X, self.y = torch.from_numpy(X), torch.from_numpy(y)
        self.Xt, self.yt = torch.from_numpy(Xt), yt
        self.init = init
        self.model: Any = None

    def build(self) -> None:
        torch = self.torch
        mods: list[Any] = []
        for k, (w, b) in enumerate(self.init):
            lin = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                lin.bias.copy_(torch.from_numpy(b))
            mods.append(lin)
            if k < len(self.init) - 1:
                mods.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*mods)
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=LR,
            momentum=MOMENTUM,
            dampening=0.0,
            nesterov=False,
            weight_decay=0.0,
        )
        self.gen = torch.Generator().manual_seed(SEED)

    def epoch(self) -> None:
        torch = self.torch
        model, opt, X, y, bs = self.model, self.opt, self.X, self.y, self.wl.batch
        loss_fn = torch.nn.functional.cross_entropy
        model.train()
        perm = torch.randperm(X.shape[0], generator=self.gen)
        for s in range(0, X.shape[0], bs):
            idx = perm[s : s + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()

    def predict(self) -> np.ndarray:
        with self.torch.inference_mode():
            return self.torch.softmax(self.model(self.Xt), dim=1).numpy()

    def accuracy(self) -> float:
        return float((self.predict().argmax(axis=1) == self.yt).mean())


class _SklearnImpl:
    """scikit-learn's ``MLPClassifier``, one ``partial_fit`` per epoch."""

    def __init__(self, wl, data, init) -> None:
        self.wl = wl
        self.X, self.y, self.Xt, self.yt = data
        self.init = init
        self.clf: Any = None

    def build(self) -> None:
        from sklearn.neural_network import MLPClassifier

        clf = MLPClassifier(
            hidden_layer_sizes=self.wl.widths[1:-1],
            activation="relu",
            solver="sgd",
            alpha=0.0,
            batch_size=self.wl.batch,
            learning_rate="constant",
            learning_rate_init=LR,
            momentum=MOMENTUM,
            nesterovs_momentum=False,
            early_stopping=False,
            shuffle=True,
            random_state=SEED,
            tol=0.0,
            n_iter_no_change=10**9,
            max_iter=1,
        )
        bs = self.wl.batch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(self.X[:bs], self.y[:bs], classes=np.arange(N_CLASSES))
        optimizer = getattr(clf, "_optimizer", None)
        if optimizer is None or not hasattr(optimizer, "velocities"):
            raise RuntimeError(
                "scikit-learn's MLPClassifier has no _optimizer.velocities; its "
                "internals changed and the shared initialisation cannot be set"
            )
        dtype = clf.coefs_[0].dtype
        clf.coefs_ = [np.array(w, dtype=dtype) for w, _ in self.init]
        clf.intercepts_ = [np.array(b, dtype=dtype) for _, b in self.init]
        optimizer.velocities = [np.zeros_like(p) for p in clf.coefs_ + clf.intercepts_]
        self.clf = clf

    def epoch(self) -> None:
        self.clf.partial_fit(self.X, self.y)

    def predict(self) -> np.ndarray:
        return self.clf.predict_proba(self.Xt)

    def accuracy(self) -> float:
        return float((self.predict().argmax(axis=1) == self.yt).mean())


def _make_impl(name: str, wl: Workload, data, init, threads: int | None) -> Any:
    if name == "backprop_rs":
        return _BackpropImpl(wl, data, init, "float32", "core")
    if name == "backprop_rs64":
        return _BackpropImpl(wl, data, init, "float64", "core")
    if name == "reference":
        return _BackpropImpl(wl, data, init, "float32", "reference")
    if name == "torch":
        return _TorchImpl(wl, data, init, threads)
    if name == "sklearn":
        return _SklearnImpl(wl, data, init)
    raise ValueError(f"unknown implementation {name!r}")


def _worker_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one implementation on one workload; the measurements as a dict."""
    import backprop_rs as bp

    threads = spec.get("threads")
    if threads is not None and hasattr(bp, "set_num_threads"):
        bp.set_num_threads(int(threads))
    wl = WORKLOADS[spec["workload"]]
    try:
        data = _load(wl, spec.get("n_train"), spec.get("data_dir"))
    except FileNotFoundError as e:
        return {"missing_data": str(e)}
    init = _initial_weights(wl)
    impl = _make_impl(spec["impl"], wl, data, init, threads)
    times: list[float] = []
    peaks: list[float] = []
    rss_before = 0.0
    reset = False
    for _ in range(spec["repeat"]):
        impl.build()
        gc.collect()
        reset = _reset_peak()
        before = _rss_bytes()
        rss_before = before / MIB
        for _ in range(spec["epochs"]):
            start = time.perf_counter()
            impl.epoch()
            times.append(time.perf_counter() - start)
        peaks.append((_peak_bytes(reset) - before) / MIB)
    accuracy = impl.accuracy()
    impl.predict()
    infer: list[float] = []
    for _ in range(spec["infer_repeat"]):
        start = time.perf_counter()
        impl.predict()
        infer.append(time.perf_counter() - start)
    return {
        "times": times,
        "load_average": os.getloadavg()[0],
        "accuracy": accuracy,
        "peak_rss_mib": max(peaks),
        "rss_before_mib": rss_before,
        "peak_mark_reset": reset,
        "infer_times": infer,
        "n_train": int(data[0].shape[0]),
        "n_test": int(data[2].shape[0]),
        "set_num_threads": hasattr(bp, "set_num_threads"),
    }


def _blas_info() -> dict[str, Any]:
    """numpy's BLAS library, kernel (architecture) and thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _blas_info_ctypes()
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return {
                "library": info.get("internal_api"),
                "version": info.get("version"),
                "kernel": info.get("architecture"),
                "threads": info.get("num_threads"),
                "source": "threadpoolctl",
            }
    return {"library": None, "source": "threadpoolctl"}


def _blas_info_ctypes() -> dict[str, Any]:
    """The same as ``_blas_info`` without threadpoolctl: ask OpenBLAS itself."""
    try:
        with open("/proc/self/maps") as f:
            paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower()}
    except OSError:
        paths = set()
    for path in sorted(p for p in paths if ".so" in p):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        out: dict[str, Any] = {"library": "openblas", "source": "ctypes"}
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                fn = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                if fn is None:
                    continue
                fn.restype = ctypes.c_char_p
                out["kernel"] = fn().decode()
                cfg = getattr(lib, f"{prefix}_get_config{suffix}")
                cfg.restype = ctypes.c_char_p
                config = cfg().decode().split()
                out["version"] = config[1] if len(config) > 1 else None
                out["threads"] = getattr(lib, f"{prefix}_get_num_threads{suffix}")()
                return out
    return {"library": "unknown (no threadpoolctl, no OpenBLAS found)"}


def _worker_gemm(spec: dict[str, Any]) -> dict[str, Any]:
    """numpy float32 matmul GFLOP/s at each shape (best of several rounds)."""
    rng = np.random.default_rng(SEED)
    target, rounds = (0.05, 3) if spec.get("quick") else (0.2, 5)
    results = []
    for m, k, n in spec["shapes"]:
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        once = max(time.perf_counter() - start, 1e-9)
        iters = max(1, int(target / once))
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(iters):
                np.matmul(a, b, out=c)
            best = min(best, (time.perf_counter() - start) / iters)
        results.append({"m": m, "k": k, "n": n, "gflops": 2.0 * m * k * n / best / 1e9})
    return {"gemm": results, "blas": _blas_info(), "numpy": np.__version__}


def _worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    if spec["mode"] == "gemm":
        out = _worker_gemm(spec)
    else:
        out = _worker_train(spec)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------
# Driver side: options, workers, tables, targets.
# ---------------------------------------------------------------------------

_HELP_EPILOG = """\
Implementations: backprop_rs (float32), backprop_rs64 (float64), reference
(numpy), torch and sklearn (each only when installed). Workloads (all SGD,
lr 0.05, momentum 0.9, float32 data in [0, 1]):
  fashion  Fashion-MNIST 60000/10000, 784-256-128-10, batch 128, 10 epochs
  small    digits 1437/360, 64-32-10, batch 16, 100 epochs
  wide     Fashion-MNIST 60000/10000, 784-1024-1024-10, batch 256, 2 epochs
--quick: 1 repetition; fashion 1 epoch on 10000 training samples, wide 1 epoch
on 5000, small 10 epochs.

The epoch time is the median over all timed epochs of all repetitions, the
spread their interquartile range. Fashion-MNIST comes from the Debian package
dataset-fashion-mnist (or --data-dir); without it those workloads are skipped.

OpenBLAS reads OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE when numpy loads; if
they are set in your shell, run the benchmark with both unset so that numpy
uses the kernel it detects, in that command only:
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py
The header prints the kernel numpy uses (via threadpoolctl when installed).
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="backprop-rs bench",
        description="Time backprop_rs against its numpy reference, PyTorch and "
        "scikit-learn on the same networks, data and initial weights.",
        epilog=_HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="comma-separated among " + ", ".join(WORKLOADS) + " (default: all)",
    )
    p.add_argument(
        "--impls",
        default=",".join(IMPLS),
        help="comma-separated among "
        + ", ".join(IMPLS)
        + " (default: all that are installed)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="repetitions of each training run (default 3; 1 with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="a reduced run for CI")
    p.add_argument("--json", metavar="PATH", help="write all rows to this file")
    p.add_argument(
        "--threads-check",
        dest="threads_check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time wide with backprop_rs on 1 and 2 threads (default: on)",
    )
    p.add_argument(
        "--require-data",
        action="store_true",
        help="fail instead of skipping when Fashion-MNIST is missing",
    )
    p.add_argument(
        "--data-dir", default=None, help="folder of the Fashion-MNIST IDX files"
    )
    return p


def _split(value: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in allowed]
    if bad or not names:
        raise ValueError(
            f"--{what} has {', '.join(bad) or 'nothing'}; expected a comma "
            f"list among {', '.join(allowed)}"
        )
    return names


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _run_worker(
    spec: dict[str, Any], env_extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a worker subprocess; its JSON answer, or ``{"error": ...}``."""
    env = dict(os.environ)
    if env_extra:
        env.update(env_extra)
    cmd = [sys.executable, "-m", "backprop_rs._bench", "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"error": f"worker exited with {proc.returncode}: {tail}"}
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"error": f"worker printed no JSON: {lines[-1][:200]}"}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _machine(blas: dict[str, Any], numpy_version: str) -> dict[str, Any]:
    import backprop_rs as bp

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "python": platform.python_version(),
        "numpy": numpy_version,
        "blas": blas,
        "backprop_rs": bp.__version__,
        "torch": _version("torch"),
        "scikit-learn": _version("scikit-learn"),
        "load_average": list(os.getloadavg()),
        "openblas_env": {k: os.environ[k] for k in OPENBLAS_VARS if k in os.environ},
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
    }


def _summary(row: dict[str, Any]) -> None:
    """Add the medians, spreads and rates to a worker's answer, in place."""
    t = np.asarray(row["times"])
    q25, q75 = np.percentile(t, [25, 75])
    row["epoch_s"] = float(np.median(t))
    row["epoch_iqr_s"] = float(q75 - q25)
    row["epoch_min_s"] = float(t.min())
    row["epoch_max_s"] = float(t.max())
    row["infer_s"] = float(np.median(row["infer_times"]))
    row["infer_samples_per_s"] = row["n_test"] / row["infer_s"]


def _fmt(value: float | None, spec: str, width: int) -> str:
    if value is None:
        return "-".rjust(width)
    return format(value, spec).rjust(width)


def _print_table(rows: list[dict[str, Any]], out: Any) -> None:
    base = next((r for r in rows if r["impl"] == "backprop_rs"), None)
    head = (
        f"{'impl':<14}{'s/epoch':>10}{'IQR':>9}{'x bp':>7}{'test acc':>10}"
        f"{'infer/s':>11}{'x bp':>7}{'RSS MiB':>9}{'x bp':>7}"
    )
    print(head, file=out)
    print("-" * len(head), file=out)
    for r in rows:
        t_ratio = i_ratio = m_ratio = None
        if base is not None:
            t_ratio = r["epoch_s"] / base["epoch_s"]
            i_ratio = r["infer_samples_per_s"] / base["infer_samples_per_s"]
            if base["peak_rss_mib"] > 0:
                m_ratio = r["peak_rss_mib"] / base["peak_rss_mib"]
        print(
            f"{r['impl']:<14}"
            + _fmt(r["epoch_s"], ".4f", 10)
            + _fmt(r["epoch_iqr_s"], ".4f", 9)
            + _fmt(t_ratio, ".2f", 7)
            + _fmt(r["accuracy"], ".4f", 10)
            + _fmt(r["infer_samples_per_s"], ".0f", 11)
            + _fmt(i_ratio, ".2f", 7)
            + _fmt(r["peak_rss_mib"], ".1f", 9)
            + _fmt(m_ratio, ".2f", 7),
            file=out,
        )


def _gemm_lookup(gemm: list[dict[str, Any]], shape: tuple[int, int, int]) -> float:
    for g in gemm:
        if (g["m"], g["k"], g["n"]) == tuple(shape):
            return float(g["gflops"])
    return float("nan")


def _targets(rows: list[dict[str, Any]], workloads: list[str]) -> list[dict[str, Any]]:
    """Each target's measured value and verdict (PASS, FAIL or SKIP)."""

    def find(wl: str, impl: str, kind: str = "train") -> dict[str, Any] | None:
        for r in rows:
            if r["workload"] == wl and r["impl"] == impl and r["kind"] == kind:
                return r
        return None

    results = []
    for wl_pat, label, kind, limit in TARGETS:
        for wl in workloads if wl_pat == "*" else [wl_pat]:
            if wl not in workloads:
                continue
            bp_row = find(wl, "backprop_rs")
            value: float | None = None
            verdict, note = "SKIP", ""
            other = kind.split(":", 1)[1] if ":" in kind else None
            if kind == "threads":
                one, two = (
                    find(wl, "backprop_rs", "threads1"),
                    find(wl, "backprop_rs", "threads2"),
                )
                if one and two:
                    value = one["epoch_s"] / two["epoch_s"]
                    verdict = "PASS" if value >= limit else "FAIL"
                    note = f">= {limit}x"
            elif kind == "time64":
                r64 = find(wl, "backprop_rs64")
                if bp_row and r64:
                    value = r64["epoch_s"] / bp_row["epoch_s"]
                    verdict = "PASS" if value <= limit else "FAIL"
                    note = f"<= {limit}x"
            else:
                ref = find(wl, other) if other else None
                if bp_row and ref:
                    if kind.startswith("time:"):
                        value = bp_row["epoch_s"] / ref["epoch_s"]
                        verdict = "PASS" if value <= limit else "FAIL"
                        note = f"<= {limit}x"
                    elif kind.startswith("acc:"):
                        value = abs(bp_row["accuracy"] - ref["accuracy"])
                        verdict = "PASS" if value <= limit else "FAIL"
                        note = f"|diff| <= {limit}"
                    elif kind.startswith("infer:"):
                        value = (
                            bp_row["infer_samples_per_s"] / ref["infer_samples_per_s"]
                        )
                        verdict = "PASS" if value >= limit else "FAIL"
                        note = f">= {limit}x"
                    elif kind.startswith("rss:"):
                        value = bp_row["peak_rss_mib"] - ref["peak_rss_mib"]
                        verdict = "PASS" if value <= 0.0 else "FAIL"
                        note = (
                            f"{bp_row['peak_rss_mib']:.1f} vs "
                            f"{ref['peak_rss_mib']:.1f} MiB"
                        )
            if verdict == "SKIP":
                note = "not measured in this run"
            results.append(
                {
                    "workload": wl,
                    "target": label,
                    "limit": limit,
                    "value": value,
                    "verdict": verdict,
                    "note": note,
                }
            )
    return results


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(argv: list[str]) -> int:
    """Run the benchmark with command-line arguments ``argv``.

    Parameters
    ----------
    argv : list of str
        The arguments after ``bench`` (see ``--help``).

    Returns
    -------
    int
        0 on success, 1 when a required data set is missing or a worker
        failed, 2 for bad arguments.
    """
    argv = list(argv)
    if argv[:1] == ["--worker"]:
        return _worker_main(argv[1])
    if argv[:1] == ["--"]:
        # ``backprop-rs bench -- --quick ...`` passes the separator along.
        argv = argv[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    try:
        workloads = _split(args.workloads, list(WORKLOADS), "workloads")
        impls = _split(args.impls, IMPLS, "impls")
    except ValueError as e:
        print(f"backprop-rs bench: error: {e}", file=sys.stderr)
        return 2
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        print("backprop-rs bench: error: --repeat must be >= 1", file=sys.stderr)
        return 2
    infer_repeat = 2 if args.quick else 5
    out = sys.stdout
    status = 0

    missing = [i for i in impls if i in OPTIONAL and not _installed(OPTIONAL[i])]
    impls = [i for i in impls if i not in missing]

    shapes = [GEMM_PEAK_SHAPE]
    for name in workloads:
        wl = WORKLOADS[name]
        for i, o in wl.layers():
            if (wl.batch, i, o) not in shapes:
                shapes.append((wl.batch, i, o))
    _progress("measuring numpy float32 matmul throughput ...")
    gemm_ans = _run_worker({"mode": "gemm", "shapes": shapes, "quick": args.quick})
    if "error" in gemm_ans:
        print(f"GEMM measurement failed: {gemm_ans['error']}", file=out)
        gemm: list[dict[str, Any]] = []
        machine = _machine({}, np.__version__)
        status = 1
    else:
        gemm = gemm_ans["gemm"]
        machine = _machine(gemm_ans["blas"], gemm_ans["numpy"])
    peak = _gemm_lookup(gemm, GEMM_PEAK_SHAPE)

    blas = machine["blas"]
    print("backprop_rs benchmark" + (" (--quick)" if args.quick else ""), file=out)
    print(
        f"machine: {machine['cpu']}, {machine['cpu_count']} logical CPUs "
        f"({machine['usable_cpus']} usable); Python {machine['python']}, "
        f"numpy {machine['numpy']} with {blas.get('library')} "
        f"{blas.get('version') or ''} kernel {blas.get('kernel')} "
        f"on {blas.get('threads')} threads ({blas.get('source', '?')}); "
        f"backprop_rs {machine['backprop_rs']}, torch {machine['torch']}, "
        f"scikit-learn {machine['scikit-learn']}",
        file=out,
    )
    load = machine["load_average"][0]
    print(f"load average (1 min) at start: {load:.2f}", file=out)
    if load > (machine["usable_cpus"] or 1) * 0.5:
        print(
            "warning: the machine is busy; multi-threaded code (OpenBLAS, "
            "PyTorch's OpenMP) suffers most from the competition",
            file=out,
        )
    if machine["openblas_env"]:
        print(
            f"warning: {machine['openblas_env']} is set; numpy timings use it "
            "(see --help to run with both unset)",
            file=out,
        )
    if machine["thread_env"]:
        print(
            f"thread settings from the environment: {machine['thread_env']}", file=out
        )
    print(
        f"method: SGD lr {LR}, momentum {MOMENTUM}, same initial weights "
        f"(seed {SEED}); {repeat} repetition(s); s/epoch = median over all "
        "timed epochs, IQR = 75th - 25th percentile; RSS = peak RSS increase "
        "during fit; x bp = ratio to backprop_rs (float32)",
        file=out,
    )
    print(f"GEMM peak (numpy float32, 2048^3): {peak:.1f} GFLOP/s", file=out)
    for name in missing:
        print(f"{name}: not installed, skipped", file=out)

    rows: list[dict[str, Any]] = []
    for name in workloads:
        wl = WORKLOADS[name]
        epochs = wl.quick_epochs if args.quick else wl.epochs
        n_train = wl.quick_train if args.quick else None
        base_spec = {
            "mode": "train",
            "workload": name,
            "epochs": epochs,
            "repeat": repeat,
            "n_train": n_train,
            "infer_repeat": infer_repeat,
            "data_dir": args.data_dir,
        }
        runs: list[tuple[str, str, dict[str, str] | None, int | None]] = [
            (impl, "train", None, None) for impl in impls
        ]
        if name == "wide" and args.threads_check and "backprop_rs" in impls:
            for n in (1, 2):
                runs.append(
                    (
                        "backprop_rs",
                        f"threads{n}",
                        dict.fromkeys(THREAD_VARS, str(n)),
                        n,
                    )
                )
        wl_rows: list[dict[str, Any]] = []
        skipped = False
        for impl, kind, env_extra, threads in runs:
            _progress(f"{name}: {impl} {kind} ...")
            spec = dict(base_spec, impl=impl, threads=threads)
            ans = _run_worker(spec, env_extra)
            if "missing_data" in ans:
                print(
                    f"\n{name}: skipped, data missing: {ans['missing_data']}", file=out
                )
                if args.require_data:
                    status = 1
                skipped = True
                break
            if "error" in ans:
                print(f"{name}: {impl} ({kind}) failed: {ans['error']}", file=out)
                status = 1
                continue
            _summary(ans)
            row = {
                "workload": name,
                "impl": impl,
                "kind": kind,
                "threads": threads,
                "epochs": epochs,
                "repeat": repeat,
                "batch": wl.batch,
                "network": "-".join(map(str, wl.widths)),
                "flops_per_epoch": ans["n_train"] * wl.flops_per_sample(),
                **ans,
            }
            wl_rows.append(row)
        if skipped:
            continue
        rows.extend(wl_rows)
        train_rows = [r for r in wl_rows if r["kind"] == "train"]
        n_train_used = train_rows[0]["n_train"] if train_rows else n_train
        n_test = train_rows[0]["n_test"] if train_rows else None
        print(
            f"\n== {name}: {wl.data}, {n_train_used} train / {n_test} test, "
            f"{'-'.join(map(str, wl.widths))} ReLU + softmax CE, batch {wl.batch}, "
            f"{epochs} epoch(s) x {repeat} rep(s)",
            file=out,
        )
        _print_table(train_rows, out)
        fwd = ", ".join(
            f"{wl.batch}x{i}x{o} {_gemm_lookup(gemm, (wl.batch, i, o)):.1f}"
            for i, o in wl.layers()
        )
        print(f"GEMM at the forward shapes (GFLOP/s): {fwd}", file=out)
        bp_row = next((r for r in train_rows if r["impl"] == "backprop_rs"), None)
        if n_train_used is not None:
            flops = int(n_train_used) * wl.flops_per_sample()
            line = f"FLOPs per training epoch: {flops:.3e}"
            if bp_row is not None:
                rate = flops / bp_row["epoch_s"]
                share = rate / (peak * 1e9) if peak == peak else float("nan")
                bp_row["gflops"] = rate / 1e9
                bp_row["share_of_peak"] = share
                line += (
                    f"; backprop_rs {rate / 1e9:.1f} GFLOP/s = {share:.0%} of the "
                    "2048^3 peak"
                )
            print(line, file=out)
        th = {r["kind"]: r for r in wl_rows if r["kind"].startswith("threads")}
        if "threads1" in th and "threads2" in th:
            t1, t2 = th["threads1"]["epoch_s"], th["threads2"]["epoch_s"]
            via = "set_num_threads" if th["threads1"]["set_num_threads"] else "env"
            print(
                f"threads ({via}; {', '.join(THREAD_VARS)}): 1 thread "
                f"{t1:.4f} s/epoch, 2 threads {t2:.4f} s/epoch, "
                f"speed-up {t1 / t2:.2f}x",
                file=out,
            )

    targets = _targets(
        rows, [w for w in workloads if any(r["workload"] == w for r in rows)]
    )
    print("\n== targets (backprop_rs float32 against the others)", file=out)
    for t in targets:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        print(
            f"{t['verdict']:<5} {t['workload']:<8} {t['target']:<34} "
            f"{value:>8}  ({t['note']})",
            file=out,
        )
    counts = {v: sum(t["verdict"] == v for t in targets) for v in ("PASS", "FAIL")}
    print(
        f"targets met: {counts['PASS']} of {len(targets)} "
        f"({counts['FAIL']} missed, "
        f"{len(targets) - counts['PASS'] - counts['FAIL']} not measured)",
        file=out,
    )

    if args.json:
        doc = {
            "machine": machine,
            "config": {
                "quick": args.quick,
                "repeat": repeat,
                "workloads": workloads,
                "impls": impls,
                "lr": LR,
                "momentum": MOMENTUM,
                "seed": SEED,
                "spread": "IQR (75th - 25th percentile) of the epoch times",
            },
            "gemm": gemm,
            "gemm_peak_gflops": peak,
            "rows": rows,
            "targets": targets,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}", file=out)
    return status


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
