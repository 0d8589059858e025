"""A smoke test of the benchmark: a reduced run on the digits."""

from __future__ import annotations

import json

from backprop_rs._bench import run


def test_quick_bench_writes_rows(tmp_path, capsys):
    path = tmp_path / "b.json"
    argv = ["--quick", "--json", str(path), "--workloads", "small"]
    assert run(argv + ["--impls", "backprop_rs,reference"]) == 0
    printed = capsys.readouterr().out
    assert "small" in printed and "targets met" in printed

    doc = json.loads(path.read_text())
    assert doc["gemm_peak_gflops"] > 0
    assert all(g["gflops"] > 0 for g in doc["gemm"])
    rows = doc["rows"]
    assert sorted(r["impl"] for r in rows) == ["backprop_rs", "reference"]
    for r in rows:
        assert r["workload"] == "small" and r["kind"] == "train"
        assert r["n_train"] == 1437 and r["n_test"] == 360
        assert len(r["times"]) == r["epochs"] * r["repeat"] == 10
        assert r["epoch_s"] > 0 and r["epoch_iqr_s"] >= 0
        assert r["infer_samples_per_s"] > 0
        assert r["flops_per_epoch"] > 0
        assert r["peak_rss_mib"] >= 0
        # The same network, data and initial weights: both learn the digits.
        assert 0.8 < r["accuracy"] <= 1.0
    bp_row = next(r for r in rows if r["impl"] == "backprop_rs")
    assert bp_row["gflops"] > 0 and bp_row["share_of_peak"] > 0
    verdicts = {t["verdict"] for t in doc["targets"]}
    assert verdicts <= {"PASS", "FAIL", "SKIP"}


def test_bad_arguments_return_2(capsys):
    assert run(["--impls", "nonsense"]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert run(["--help"]) == 0
    assert "OPENBLAS_CORETYPE" in capsys.readouterr().out
