"""The ``backprop-rs`` command line: errors, defaults, task detection.

Every failure is one line ``backprop-rs: error: ...`` on stderr naming the
option or the array at fault, with exit code 2 and no traceback; Ctrl-C exits
with 130. Options left out take the data set's default one by one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import cli


def run(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``backprop-rs *argv``."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_fashion_folder_is_one_line_naming_the_option(tmp_path, capsys):
    missing = tmp_path / "nothere"
    argv = ["train", "--data", "fashion-mnist", "--data-dir", str(missing)]
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, out, err, rf"Fashion-MNIST folder {missing} does not")
    assert "--data-dir on the command line" in err


def test_demo_names_no_option_it_does_not_have(capsys):
    code, out, err = run(["demo"], capsys)
    assert code == 0, err
    assert "validation: the test set\n" in out
    assert "--validation-split" not in out
    code, out, err = run(["train", "--data", "digits", "--epochs", "1"], capsys)
    assert code == 0, err
    assert "validation: the test set (no --validation-split given)" in out


def assert_one_line_error(code, out, err, pattern):
    assert code == 2, (out, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("backprop-rs: error: "), err
    assert re.search(pattern, lines[0]), lines[0]


def npz(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def classification_arrays(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)), np.arange(n) % 3


FAST = ["--epochs", "1", "--hidden", "8", "--verbose", "0"]


# --version and --help ---------------------------------------------------------


def test_version_prints_the_package_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"backprop-rs {bp.__version__}"


def test_train_help_shows_each_data_sets_default(capsys):
    code, out, _ = run(["train", "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    assert "default: digits 128, fashion-mnist 512,256, npz 128" in text
    assert "default: digits 40, fashion-mnist 30, npz 10" in text
    assert "default: digits 0.05, fashion-mnist 0.05, npz 0.01" in text
    assert "--loss" in text and "one-hot or probabilities" in text


# Bad options: one line naming the option, before any data is loaded -------------


BAD_OPTIONS = [
    ("hidden-abc", ["--hidden", "abc"], r"--hidden is 'abc'; expected positive"),
    ("hidden-empty", ["--hidden", ""], r"--hidden is ''; expected positive"),
    ("hidden-gap", ["--hidden", "32,,16"], r"--hidden is '32,,16'; expected"),
    ("hidden-zero", ["--hidden", "0"], r"--hidden is '0'; expected positive"),
    ("hidden-negative", ["--hidden", "-4"], r"--hidden"),
    ("split-1", ["--validation-split", "1"], r"--validation-split must be in \[0, 1\)"),
    ("split-neg", ["--validation-split", "-0.1"], r"--validation-split must be in"),
    ("split-nan", ["--validation-split", "nan"], r"--validation-split must be finite"),
    ("seed-neg", ["--seed", "-1"], r"^backprop-rs: error: --seed must be at least 0"),
    ("epochs-0", ["--epochs", "0"], r"--epochs must be at least 1; got 0$"),
    ("batch-0", ["--batch-size", "0"], r"--batch-size must be at least 1; got 0$"),
    ("lr-neg", ["--lr", "-1"], r"--lr must be at least 0; got -1$"),
    ("lr-inf", ["--lr", "inf"], r"--lr must be finite; got inf$"),
    ("momentum-1", ["--momentum", "1"], r"--momentum must be in \[0, 1\); got 1$"),
    ("wd-neg", ["--weight-decay", "-1"], r"--weight-decay must be at least 0"),
    ("nesterov", ["--nesterov", "--momentum", "0"], r"--nesterov needs --momentum"),
    ("epochs-text", ["--epochs", "abc"], r"argument --epochs: invalid int value"),
    ("activation", ["--activation", "foo"], r"argument --activation: invalid choice"),
    ("loss", ["--loss", "foo"], r"argument --loss: invalid choice"),
    ("unknown", ["--epochz", "3"], r"unrecognized arguments"),
    (
        "data-dir-digits",
        ["--data-dir", "/tmp"],
        r"--data-dir applies to --data fashion-mnist only",
    ),
]


@pytest.mark.parametrize(
    ("argv", "pattern"), [pytest.param(a, p, id=i) for i, a, p in BAD_OPTIONS]
)
def test_bad_option_is_one_line_naming_it(capsys, monkeypatch, argv, pattern):
    def no_loading(*args, **kwargs):
        raise AssertionError("the data was loaded before the options were checked")

    monkeypatch.setattr(cli, "digits_split", no_loading)
    code, out, err = run(["train", *argv, "--verbose", "0"], capsys)
    assert_one_line_error(code, out, err, pattern)
    assert out == ""


def test_data_dir_with_an_npz_is_refused(tmp_path, capsys):
    path = npz(tmp_path, X=np.zeros((4, 2)), y=np.arange(4))
    code, out, err = run(["train", "--data", path, "--data-dir", "/tmp"], capsys)
    assert_one_line_error(
        code, out, err, r"--data-dir applies to --data fashion-mnist only"
    )


def test_validation_split_leaving_no_training_sample_is_refused(tmp_path, capsys):
    X, y = classification_arrays(5)
    path = npz(tmp_path, X=X, y=y)
    code, out, err = run(
        ["train", "--data", path, "--validation-split", "0.9", *FAST], capsys
    )
    assert_one_line_error(
        code, out, err, r"--validation-split 0\.9 holds out 4 of 4 training samples"
    )


# Bad data files ------------------------------------------------------------------


def _text_file(tmp_path):
    path = tmp_path / "data.npz"
    path.write_text("X,y\n1,2\n")
    return str(path)


def _npy_file(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.zeros((3, 2)))
    return str(path)


def _object_npz(tmp_path):
    X = np.empty((3, 2), dtype=object)
    X[...] = 1.0
    return npz(tmp_path, X=X, y=np.arange(3))


BAD_DATA = [
    ("directory", lambda tmp: ".", r"--data \. is a directory"),
    ("missing", lambda tmp: str(tmp / "nope.npz"), r"nope\.npz: no such file"),
    ("text", _text_file, r"data\.npz cannot be read as an \.npz of arrays X and y"),
    ("npy", _npy_file, r"data\.npy is a single \.npy array"),
    ("object", _object_npz, r"X is an array of Python objects; expected numbers"),
    (
        "no-y",
        lambda tmp: npz(tmp, X=np.zeros((3, 2))),
        r"has arrays \['X'\]; expected X and y",
    ),
    (
        "lengths",
        lambda tmp: npz(tmp, X=np.zeros((5, 2)), y=np.arange(4)),
        r"X has 5 samples, but y has 4$",
    ),
    (
        "X-1-D",
        lambda tmp: npz(tmp, X=np.zeros(5), y=np.arange(5)),
        r"X has shape \(5,\); expected 2-D \(samples, features\)",
    ),
    (
        "X-strings",
        lambda tmp: npz(tmp, X=np.array([["a", "b"]] * 5), y=np.arange(5)),
        r"X has dtype <U1; expected numbers",
    ),
    (
        "X-complex",
        lambda tmp: npz(tmp, X=np.zeros((5, 2), complex), y=np.arange(5)),
        r"X has dtype complex128; expected numbers",
    ),
    (
        "y-3-D",
        lambda tmp: npz(tmp, X=np.zeros((5, 2)), y=np.zeros((5, 2, 2))),
        r"y has shape \(5, 2, 2\); expected",
    ),
    (
        "one-sample",
        lambda tmp: npz(tmp, X=np.zeros((1, 2)), y=np.arange(1)),
        r"X has 1 sample; expected at least 2",
    ),
    (
        "empty",
        lambda tmp: npz(tmp, X=np.zeros((0, 2)), y=np.arange(0)),
        r"X has 0 samples",
    ),
    (
        "X_test-alone",
        lambda tmp: npz(
            tmp, X=np.zeros((5, 2)), y=np.arange(5), X_test=np.zeros((2, 2))
        ),
        r"has X_test but no y_test; give both or neither",
    ),
    (
        "y_test-alone",
        lambda tmp: npz(tmp, X=np.zeros((5, 2)), y=np.arange(5), y_test=np.arange(2)),
        r"has y_test but no X_test; give both or neither",
    ),
    (
        "test-lengths",
        lambda tmp: npz(
            tmp,
            X=np.zeros((5, 2)),
            y=np.arange(5),
            X_test=np.zeros((2, 2)),
            y_test=np.arange(3),
        ),
        r"X_test has 2 samples, but y_test has 3$",
    ),
    (
        "test-features",
        lambda tmp: npz(
            tmp,
            X=np.zeros((5, 2)),
            y=np.arange(5),
            X_test=np.zeros((2, 3)),
            y_test=np.arange(2),
        ),
        r"X_test has 3 features, but X has 2$",
    ),
    (
        "labels-negative",
        lambda tmp: npz(tmp, X=np.zeros((5, 2)), y=np.arange(5) - 1),
        r"y holds label -1",
    ),
]


@pytest.mark.parametrize(
    ("make", "pattern"), [pytest.param(m, p, id=i) for i, m, p in BAD_DATA]
)
def test_bad_data_file_is_one_line_naming_it(tmp_path, capsys, make, pattern):
    path = make(tmp_path)
    code, out, err = run(["train", "--data", path, *FAST], capsys)
    assert_one_line_error(code, out, err, pattern)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_data_file_is_one_line(tmp_path, capsys):
    X, y = classification_arrays()
    path = npz(tmp_path, X=X, y=y)
    os.chmod(path, 0)
    code, out, err = run(["train", "--data", path, *FAST], capsys)
    assert_one_line_error(code, out, err, r"cannot be read .*Permission denied")


# --save is checked before training -----------------------------------------------


def _save_cases(tmp_path):
    (tmp_path / "file").write_text("")
    return {
        "no-folder": (str(tmp_path / "nope" / "m.npz"), r"the folder .*nope does not"),
        "directory": (str(tmp_path), r"is a directory; expected a file path"),
        "parent-is-file": (str(tmp_path / "file" / "m.npz"), r"file is not a folder"),
        "empty": ("", r"is ''; expected a file path"),
    }


@pytest.mark.parametrize("case", ["no-folder", "directory", "parent-is-file", "empty"])
def test_unwritable_save_path_fails_before_training(tmp_path, capsys, case):
    path, pattern = _save_cases(tmp_path)[case]
    start = time.perf_counter()
    code, out, err = run(["train", "--save", path, "--verbose", "0"], capsys)
    assert_one_line_error(code, out, err, r"--save .*" + pattern)
    assert out == "", "training started"
    assert time.perf_counter() - start < 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_save_into_a_read_only_folder_fails_before_training(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        code, out, err = run(
            ["train", "--save", str(folder / "m.npz"), "--verbose", "0"], capsys
        )
    finally:
        folder.chmod(0o700)
    assert_one_line_error(code, out, err, r"--save .*m\.npz cannot be written")
    assert out == ""


def test_save_check_leaves_no_file_behind_and_keeps_an_existing_one(tmp_path, capsys):
    X, y = classification_arrays(5)
    data = npz(tmp_path, X=X, y=y)
    new = tmp_path / "new.npz"
    # Fails after the save check (the split needs the data), before training.
    argv = ["train", "--data", data, "--validation-split", "0.9", *FAST]
    code, _, _ = run([*argv, "--save", str(new)], capsys)
    assert code == 2 and not new.exists()
    old = tmp_path / "old.npz"
    old.write_bytes(b"keep me")
    code, _, _ = run([*argv, "--save", str(old)], capsys)
    assert code == 2 and old.read_bytes() == b"keep me"


def test_save_writes_a_loadable_model(tmp_path, capsys):
    X, y = classification_arrays()
    path = tmp_path / "m.npz"
    code, out, _ = run(
        ["train", "--data", npz(tmp_path, X=X, y=y), "--save", str(path), *FAST],
        capsys,
    )
    assert code == 0, out
    assert bp.load(path).n_outputs == 3


# Failures during training --------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_loss_is_one_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = npz(
        tmp_path, X=rng.normal(size=(64, 4)) * 100, y=rng.normal(size=(64, 2)) * 100
    )
    code, out, err = run(
        ["train", "--data", path, "--lr", "1e6", "--epochs", "50", "--verbose", "0"],
        capsys,
    )
    assert_one_line_error(code, out, err, r"the training loss became non-finite")


@pytest.mark.parametrize("epochs, words", [(2, "2 epochs"), (1, "1 epoch")])
def test_ctrl_c_in_process_reports_the_steps_and_exits_130(
    monkeypatch, capsys, epochs, words
):
    def interrupted_fit(self, *args, optimizer, **kwargs):
        optimizer.epochs_done = epochs
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.Sequential, "fit", interrupted_fit)
    code, out, err = run(["train", "--verbose", "0"], capsys)
    assert code == 130
    assert err == f"backprop-rs: interrupted after 0 steps ({words} complete)\n"


def test_ctrl_c_during_training_exits_130_without_traceback():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "backprop_rs.cli", "train", "--epochs", "100000"]
    proc = subprocess.Popen(
        [*argv, "--verbose", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for line in proc.stdout:
            if line.startswith("network:"):
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert re.fullmatch(
        r"backprop-rs: interrupted after \d+ steps \(\d+ epochs? complete\)\n", err
    ), err


# Defaults, option by option --------------------------------------------------------


def _network_line(out):
    return next(line for line in out.splitlines() if line.startswith("network:"))


def test_digits_options_left_out_take_the_digits_recipe(capsys):
    code, out, _ = run(["train", "--epochs", "1", "--verbose", "0"], capsys)
    assert code == 0
    line = _network_line(out)
    assert line.startswith("network: 64-128-10, relu, cross_entropy; ")
    assert "SGD(lr=0.05, momentum=0.9," in line
    assert "schedule=CosineAnnealing(t_max=1," in line


def test_fashion_options_left_out_take_the_fashion_recipe(monkeypatch, capsys):
    rng = np.random.default_rng(0)

    def tiny_fashion(path=None):
        assert path is None
        X = rng.uniform(size=(40, 784)).astype(np.float32)
        return (X[:30], np.arange(30) % 10), (X[30:], np.arange(10))

    monkeypatch.setattr(cli.datasets, "load_fashion_mnist", tiny_fashion)
    code, out, _ = run(
        ["train", "--data", "fashion-mnist", "--lr", "0.01", *FAST[:2]], capsys
    )
    assert code == 0
    line = _network_line(out)
    assert line.startswith("network: 784-512-256-10, relu, cross_entropy; ")
    assert "SGD(lr=0.01, momentum=0.9," in line
    assert "schedule=CosineAnnealing(t_max=1," in line


def test_npz_options_left_out_take_the_plain_defaults(tmp_path, capsys):
    X, y = classification_arrays()
    path = npz(tmp_path, X=X, y=y)
    argv = ["train", "--data", path, "--momentum", "0.5", "--verbose", "2"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    line = _network_line(out)
    assert line.startswith("network: 4-128-3, relu, cross_entropy; ")
    assert "SGD(lr=0.01, momentum=0.5," in line and "schedule=None" in line
    assert "Epoch 10/10 - " in out and "Epoch 11/" not in out


# Task detection for an .npz --------------------------------------------------------


def _y_cases():
    rng = np.random.default_rng(3)
    labels = np.arange(30) % 3
    probs = rng.dirichlet(np.ones(3), size=30)
    return {
        "int-labels": (labels, None, "4-8-3, relu, cross_entropy", "accuracy"),
        "uint8-labels": (labels.astype(np.uint8), None, "4-8-3, relu, cross", "acc"),
        "bool-labels": (labels == 1, None, "4-8-2, relu, cross_entropy", "accuracy"),
        "one-hot": (np.eye(3)[labels], None, "4-8-3, relu, cross_entropy", "acc"),
        "one-hot-int": (np.eye(3, dtype=int)[labels], None, "4-8-3, relu, cross", "a"),
        "probabilities": (probs, None, "4-8-3, relu, cross_entropy", "accuracy"),
        "float-1-D": (rng.normal(size=30), None, "4-8-1, relu, mse", "loss"),
        "float-2-D": (rng.normal(size=(30, 2)), None, "4-8-2, relu, mse", "loss"),
        "0-1-not-rows": (
            (rng.uniform(size=(30, 2)) > 0.5).astype(float),
            None,
            "4-8-2, relu, mse",
            "loss",
        ),
        "bce-override": (
            (rng.uniform(size=(30, 2)) > 0.5).astype(float),
            "binary_cross_entropy",
            "4-8-2, relu, binary_cross_entropy",
            "accuracy",
        ),
        "mse-override": (labels, "mse", "4-8-1, relu, mse", "loss"),
        "ce-override-float-labels": (
            labels.astype(float),
            "cross_entropy",
            "4-8-3, relu, cross_entropy",
            "accuracy",
        ),
    }


@pytest.mark.parametrize("case", list(_y_cases()))
def test_npz_task_follows_y(tmp_path, capsys, case):
    y, loss, network, metric = _y_cases()[case]
    X, _ = classification_arrays()
    argv = ["train", "--data", npz(tmp_path, X=X, y=y), *FAST]
    if loss is not None:
        argv += ["--loss", loss]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert _network_line(out).startswith(f"network: {network}")
    assert f"test {metric}" in out
    # A short run is timed in milliseconds rather than as "0.0 s".
    assert re.search(r"\(training took (\d+ ms|\d+\.\d s)\)$", out, re.M), out


def test_npz_with_its_own_test_set_uses_it(tmp_path, capsys):
    X, y = classification_arrays()
    path = npz(tmp_path, X=X, y=y, X_test=X[:7], y_test=y[:7])
    code, out, _ = run(["train", "--data", path, *FAST], capsys)
    assert code == 0
    assert "30 training samples, 7 test samples" in out
