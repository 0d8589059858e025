"""Training behaviour: determinism, files, interruption, the GIL, accuracy."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import cli

MODELS = [bp.Sequential, bp.reference.Sequential]


def digits_model(cls=bp.Sequential, seed=0, dtype="float32"):
    return cls(
        [bp.Dense(64, 32, activation="relu"), bp.Dense(32, 10, activation="softmax")],
        loss="cross_entropy",
        dtype=dtype,
        seed=seed,
    )


def weights_equal(a, b):
    return all(
        np.array_equal(wa, wb) and np.array_equal(ba, bb)
        for (wa, ba), (wb, bb) in zip(a, b)
    )


# Determinism -----------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
def test_same_seed_gives_bitwise_identical_init_and_training(cls):
    X, y = bp.datasets.load_digits()
    a, b = digits_model(cls, seed=7), digits_model(cls, seed=7)
    assert weights_equal(a.get_weights(), b.get_weights())
    for m in (a, b):
        m.fit(X, y, epochs=2, batch_size=64, optimizer=bp.SGD(0.1, momentum=0.9))
    assert weights_equal(a.get_weights(), b.get_weights())
    c = digits_model(cls, seed=8)
    assert not weights_equal(a.get_weights(), c.get_weights())


def test_core_and_reference_share_init_and_shuffles_for_a_seed():
    core, ref = digits_model(bp.Sequential, 3), digits_model(bp.reference.Sequential, 3)
    assert weights_equal(core.get_weights(), ref.get_weights())


def test_global_generators_are_neither_used_nor_disturbed():
    np.random.seed(123)  # noqa: NPY002 (the global generator is under test)
    random.seed(123)
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    X, y = bp.datasets.load_digits()
    m = digits_model(seed=None)
    m.fit(X, y, epochs=1, batch_size=64)
    after = np.random.get_state()  # noqa: NPY002
    assert all(np.array_equal(x, z) for x, z in zip(np_state, after))
    assert random.getstate() == py_state


def test_init_follows_he_and_glorot_scales():
    # He: std sqrt(2 / fan_in); Glorot: uniform with limit sqrt(6 / (in + out)).
    m = bp.Sequential(
        [bp.Dense(400, 300, activation="relu"), bp.Dense(300, 200, "tanh")],
        loss="mse",
        seed=0,
    )
    (w1, b1), (w2, b2) = m.get_weights()
    assert abs(w1.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    limit = np.sqrt(6 / 500)
    assert np.abs(w2).max() <= limit
    assert abs(w2.std() - limit / np.sqrt(3)) < 0.02 * limit
    assert not b1.any() and not b2.any()


# Files -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_keeps_weights_and_continues_identically(
    cls, dtype, tmp_path
):
    X, y = bp.datasets.load_digits()
    m = digits_model(cls, seed=5, dtype=dtype)
    m.fit(X, y, epochs=1, batch_size=64)
    path = tmp_path / "model.npz"
    m.save(path)
    loaded = bp.load(path)
    assert type(loaded) is cls
    assert loaded.dtype == m.dtype and loaded.loss == m.loss and loaded.seed == 5
    assert [d.to_dict() for d in loaded.layers] == [d.to_dict() for d in m.layers]
    assert weights_equal(loaded.get_weights(), m.get_weights())
    np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
    # The generator state is saved too, so both shuffle alike from here.
    for model in (m, loaded):
        model.fit(X, y, epochs=1, batch_size=64, optimizer=bp.SGD(0.05))
    assert weights_equal(loaded.get_weights(), m.get_weights())


def test_saved_file_holds_no_pickled_object(tmp_path):
    m = digits_model()
    m.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


# Interruption and the GIL --------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import backprop_rs as bp

    rng = np.random.default_rng(0)
    n, batch, width = 20_000, int(sys.argv[1]), int(sys.argv[2])
    X = rng.normal(size=(n, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    def model():
        hidden = [bp.Dense(64, width, "tanh")]
        hidden += [bp.Dense(width, width, "tanh") for _ in range(int(sys.argv[3]))]
        return bp.Sequential(hidden + [bp.Dense(width, 10, "softmax")],
                             loss="cross_entropy", seed=1)
    m = model()
    opt = bp.SGD(0.01, momentum=0.9)
    print("ready", flush=True)
    t0 = time.monotonic()
    try:
        m.fit(X, y, epochs=100_000, batch_size=batch, optimizer=opt, shuffle=False)
        print("finished", flush=True)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        # Replaying exactly the completed steps must give the same weights:
        # the epochs done, then the steps of the interrupted epoch.
        k, epochs = opt.steps_done, opt.epochs_done
        rest = k - epochs * (n // batch)
        twin, twin_opt = model(), bp.SGD(0.01, momentum=0.9)
        if epochs:
            twin.fit(X, y, epochs=epochs, batch_size=batch, optimizer=twin_opt,
                     shuffle=False)
        if rest:
            twin.fit(X[: batch * rest], y[: batch * rest], batch_size=batch,
                     optimizer=twin_opt, shuffle=False)
        same = all(np.array_equal(a, b) for p, q in
                   zip(m.get_weights(), twin.get_weights()) for a, b in zip(p, q))
        print(f"interrupted after {k} steps ({epochs} epochs), consistent={same}",
              flush=True)
    """
)


@pytest.mark.parametrize(
    "batch, width, deep",
    [
        pytest.param(4, 64, 0, id="on-the-calling-thread"),
        # Products split across the pool, so the epoch runs on a pool thread,
        # where Python never runs signal handlers; an epoch takes seconds, so
        # stopping only at its end would be late.
        pytest.param(128, 2048, 1, id="on-the-pool"),
    ],
)
def test_ctrl_c_stops_fit_promptly_at_a_completed_step(tmp_path, batch, width, deep):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(batch), str(width), str(deep)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stopped = proc.stdout.readline().strip()
    latency = time.monotonic() - sent
    line = proc.stdout.readline().strip()
    out, _ = proc.communicate(timeout=120)
    assert stopped == "stopped", stopped + line + out
    assert line.startswith("interrupted after"), line + out
    assert "consistent=True" in line
    assert int(line.split()[2]) > 0
    assert latency < 1.0, f"fit took {latency:.2f} s to stop after SIGINT"


def test_fit_releases_the_gil_so_other_threads_progress():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 256)).astype(np.float32)
    y = rng.integers(0, 10, size=20_000)
    m = bp.Sequential(
        [bp.Dense(256, 512, "relu"), bp.Dense(512, 10, "softmax")],
        loss="cross_entropy",
        seed=0,
    )
    # Pure-Python work rate with nothing else running, over 0.2 s.
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.2:
        n += 1
    idle_rate = n / 0.2

    done = threading.Event()

    def train():
        m.fit(X, y, epochs=6, batch_size=64)
        done.set()

    # One core thread, so that this loop has a core of its own on 2 cores.
    before = bp.get_num_threads()
    bp.set_num_threads(1)
    try:
        worker = threading.Thread(target=train)
        n, t0 = 0, time.perf_counter()
        worker.start()
        while not done.is_set():
            n += 1
        elapsed = time.perf_counter() - t0
        worker.join()
    finally:
        bp.set_num_threads(before)
    assert elapsed > 0.3, "the fit was too short to tell"
    # A fit holding the GIL would leave this loop only the moments the core
    # checks for signals (every 0.1 s), a few percent of the time.
    ratio = n / (idle_rate * elapsed)
    assert ratio > 0.2, (n, idle_rate, elapsed)


# Accuracy on real data -------------------------------------------------------------


def test_demo_reaches_095_on_the_bundled_digits(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy:")[1].split()[0])
    assert accuracy >= 0.95, out


def test_digits_split_is_fixed_1437_360():
    (X, y), (Xt, yt) = cli.digits_split()
    assert X.shape == (1437, 64) and Xt.shape == (360, 64)
    (X2, _), _ = cli.digits_split()
    np.testing.assert_array_equal(X, X2)


def test_command_line_entry_point_runs_the_demo():
    exe = os.path.join(os.path.dirname(sys.executable), "backprop-rs")
    if not os.path.exists(exe):
        pytest.skip("the backprop-rs script is not installed beside this Python")
    out = subprocess.run([exe, "demo"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.split("test accuracy:")[1].split()[0]) >= 0.95


def test_fashion_mnist_basic_recipe_reaches_087(fashion_data, tmp_path):
    path = tmp_path / "model.npz"
    args = cli._parser().parse_args(
        [
            "train",
            "--data",
            "fashion-mnist",
            "--hidden",
            "256,128",
            "--activation",
            "relu",
            "--epochs",
            "10",
            "--batch-size",
            "128",
            "--lr",
            "0.05",
            "--momentum",
            "0.9",
            "--seed",
            "0",
            "--save",
            str(path),
            "--verbose",
            "0",
        ]
    )
    accuracy = cli._train(args)
    assert accuracy >= 0.87
    # The saved model gives the same test accuracy.
    (_, _), (X_test, y_test) = fashion_data
    assert bp.load(path).evaluate(X_test, y_test)["accuracy"] == accuracy


@pytest.mark.skipif(
    os.environ.get("BACKPROP_RS_SLOW") != "1",
    reason="the default Fashion-MNIST recipe takes about a minute; "
    "set BACKPROP_RS_SLOW=1",
)
def test_fashion_mnist_default_recipe_reaches_089(fashion_data):
    args = cli._parser().parse_args(
        ["train", "--data", "fashion-mnist", "--verbose", "0"]
    )
    assert cli._train(args) >= 0.89


# Limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [100_000, 2**31])
def test_a_layer_too_large_for_memory_raises_memory_error(width):
    # 100000 x 100000 float32 is 37 GiB, more than this machine class has;
    # 2**31 x 2**31 overflows the byte count. Either must raise, not abort.
    with pytest.raises(MemoryError, match=r"cannot allocate the weights of"):
        bp.Sequential([bp.Dense(width, width)], loss="mse")


def test_predictions_too_large_for_memory_raise_memory_error():
    # 100000 x 200000 float32 outputs are 75 GiB.
    m = bp.Sequential([bp.Dense(4, 200_000)], loss="mse", seed=0)
    before = m.get_weights()
    with pytest.raises(MemoryError, match=r"cannot allocate the predictions"):
        m.predict(np.zeros((100_000, 4), np.float32))
    assert weights_equal(before, m.get_weights())


def test_a_second_thread_is_refused_while_fit_runs():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50_000, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=50_000)
    m = bp.Sequential(
        [bp.Dense(64, 64, "relu"), bp.Dense(64, 10, "softmax")],
        loss="cross_entropy",
        seed=0,
    )
    started = threading.Event()

    def train():
        started.set()
        m.fit(X, y, epochs=20, batch_size=4)

    worker = threading.Thread(target=train)
    worker.start()
    started.wait()
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match=r"another thread is using this model"):
        m.predict(X[:5])
    worker.join()
    assert np.isfinite(m.predict(X[:5])).all()


@pytest.mark.parametrize("threads", [2, 3])
def test_models_trained_at_once_on_several_threads_all_finish_alike(threads):
    # Each fit keeps the pool's other threads polling for its products; fits on
    # several Python threads at once must neither wait on each other forever
    # nor change each other's results.
    rng = np.random.default_rng(1)
    X = rng.random((1500, 300), dtype=np.float32)
    y = rng.integers(0, 10, size=1500)

    def train(out, k):
        m = bp.Sequential(
            [bp.Dense(300, 512, "relu"), bp.Dense(512, 10, "softmax")],
            loss="cross_entropy",
            seed=k % 2,
        )
        m.fit(X, y, epochs=2, batch_size=128, optimizer=bp.SGD(0.05, momentum=0.9))
        out[k] = m.get_weights()

    before = bp.get_num_threads()
    try:
        bp.set_num_threads(threads)
        alone: dict[int, object] = {}
        train(alone, 0)
        train(alone, 1)
        together: dict[int, object] = {}
        workers = [threading.Thread(target=train, args=(together, k)) for k in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        assert not any(w.is_alive() for w in workers), "concurrent fits did not finish"
    finally:
        bp.set_num_threads(before)
    for k in range(4):
        assert weights_equal(together[k], alone[k % 2])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_results_are_bitwise_the_same_on_any_thread_count(threads):
    rng = np.random.default_rng(0)
    X = rng.random((3000, 300), dtype=np.float32)
    y = rng.integers(0, 10, size=3000)

    def train():
        m = bp.Sequential(
            [
                bp.Dense(300, 512, "relu"),
                bp.Dense(512, 300, "gelu"),
                bp.Dense(300, 10, "softmax"),
            ],
            loss="cross_entropy",
            seed=0,
        )
        m.fit(X, y, epochs=2, batch_size=256, optimizer=bp.SGD(0.05, momentum=0.9))
        return m.get_weights(), m.predict(X[:500])

    before = bp.get_num_threads()
    try:
        bp.set_num_threads(1)
        one = train()
        bp.set_num_threads(threads)
        assert bp.get_num_threads() == threads
        many = train()
    finally:
        bp.set_num_threads(before)
    assert weights_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (0, ValueError, r"^threads must be at least 1; got 0$"),
        (1.5, TypeError, r"^threads must be an integer; got 1\.5$"),
        (True, TypeError, r"^threads must be an integer; got True$"),
        (1025, ValueError, r"^threads must be at most 1024; got 1025$"),
        (2**63, ValueError, f"^threads must be at most 1024; got {2**63}$"),
        (2**64, ValueError, f"^threads must be at most 1024; got {2**64}$"),
    ],
)
def test_set_num_threads_refuses_bad_counts(bad, exc, match):
    before = bp.get_num_threads()
    with pytest.raises(exc, match=match):
        bp.set_num_threads(bad)
    assert bp.get_num_threads() == before


@pytest.mark.parametrize(
    "value, warns",
    [
        ("abc", True),
        ("0", True),
        ("", True),
        ("1_000", True),  # Python's int() takes it; the core does not
        ("1025", True),
        ("1024", False),
        ("2", False),
        (" 3 ", False),
    ],
)
def test_a_bad_thread_variable_is_reported_on_import(value, warns):
    code = (
        "import warnings; warnings.simplefilter('always'); "
        "import backprop_rs as bp; print(bp.get_num_threads())"
    )
    env = {**os.environ, "BACKPROP_RS_NUM_THREADS": value}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    message = (
        f"BACKPROP_RS_NUM_THREADS is {value!r}; expected an integer from 1 to 1024"
    )
    assert (message in done.stderr) == warns, done.stderr
    # The warning points at the import, not inside the package.
    assert ("<string>:1: RuntimeWarning" in done.stderr) == warns, done.stderr
    # On a bad value the core falls back to its count of usable cores.
    assert int(done.stdout) >= 1 if warns else int(done.stdout) == int(value)


# Progress output ---------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("verbose", [0, 1, 2, False, True, np.int64(2)])
def test_verbose_prints_each_epochs_metrics_where_keras_would(cls, verbose, capsys):
    # As in Keras, False is 0 and True is 1.
    (X, y), _ = cli.digits_split()
    history = digits_model(cls).fit(
        X[:200], y[:200], epochs=2, batch_size=50, verbose=verbose
    )
    out, err = capsys.readouterr()
    lines = [
        f"Epoch {e + 1}/2 - loss: {history.history['loss'][e]:.4g} - "
        f"accuracy: {history.history['accuracy'][e]:.4g} - lr: 0.01"
        for e in range(2)
    ]
    if verbose == 0:
        assert out == "" and err == ""
    elif verbose == 1:
        # The bars and, under each, its epoch's metrics, on stderr.
        assert out == ""
        assert all(line in err for line in lines)
        assert "4/4" in err
    else:
        assert out.splitlines() == lines and err == ""
