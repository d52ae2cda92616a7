"""Smoke test of the integrator benchmark (flows/benchmark.py) at a tiny size: the structure of the
result, that every integrator actually ran and reached LSODA's theta(T), that the reported counts
are consistent with each other and that the ratios are the ones of the reported numbers."""
from __future__ import annotations

import math

import pytest

from flows.benchmark import METHODS, MODELS, PROBLEM, run_benchmark, to_markdown


def test_benchmark_smoke():
    res = run_benchmark(alphas=[0.1], T=0.5, models=MODELS, progress=False, warmup=False)
    assert set(res) == {"config", "runs", "ratios"}
    cfg = res["config"]
    assert cfg["torch_threads"] == 1
    assert cfg["T"] == 0.5 and cfg["alphas"] == [0.1] and cfg["models"] == list(MODELS)
    assert cfg["methods"] == list(METHODS) and cfg["problem"] == PROBLEM
    runs = res["runs"]
    assert len(runs) == len(MODELS) * len(METHODS)
    assert {(r["model"], r["method"]) for r in runs} == {(m, x) for m in MODELS for x in METHODS}
    keys = {"model", "alpha", "T", "method", "status", "theta_T", "steps", "nfev", "wall_s",
            "err_vs_lsoda"}
    for r in runs:
        assert keys <= set(r), r
        assert r["status"] == "ok", r
        assert r["alpha"] == 0.1 and r["T"] == 0.5
        assert math.isfinite(r["theta_T"])
        # the flow moved away from theta0 (so agreeing with LSODA says something)
        assert abs(r["theta_T"] - PROBLEM["theta0"]) > 0.1, r
        assert r["nfev"] > 0 and isinstance(r["nfev"], int)
        assert math.isfinite(r["wall_s"]) and 0.0 < r["wall_s"] < 120.0, r
        assert math.isfinite(r["err_vs_lsoda"]) and r["err_vs_lsoda"] >= 0.0
        if r["method"] != "lsoda":
            assert isinstance(r["steps"], int) and r["steps"] > 0
            assert r["err_vs_lsoda"] < 1e-7, r          # tolerances 1e-10/1e-12: far below
    for model in MODELS:
        by = {r["method"]: r for r in runs if r["model"] == model}
        ref = by["lsoda"]
        assert ref["err_vs_lsoda"] == 0.0 and ref["steps"] is None and ref["njev"] >= 0
        for method in METHODS:
            assert by[method]["err_vs_lsoda"] == pytest.approx(
                abs(by[method]["theta_T"] - ref["theta_T"]), abs=1e-300)
        ex = by["exact"]
        assert ex["err_vs_lsoda"] < 1e-7
        assert ex["accepted"] > 0 and ex["steps"] == ex["accepted"] and ex["rejected"] >= 0
        assert ex["jacobians"] == ex["accepted"] + ex["rejected"]
        assert ex["nfev"] >= ex["accepted"]
        etd = by["etd-doubling"]
        assert etd["err_vs_lsoda"] < 1e-6
        assert etd["accepted"] > 0 and etd["steps"] == etd["accepted"] and etd["rejected"] >= 0
        dp = by["dopri5"]
        # torchdiffeq dopri5: 2 evaluations for the first step, then 6 per attempted step
        assert dp["nfev"] >= 8 and dp["steps"] == (dp["nfev"] - 2) // 6
    ratios = res["ratios"]
    assert [(q["model"], q["alpha"]) for q in ratios] == [(m, 0.1) for m in MODELS]
    for q in ratios:
        by = {r["method"]: r for r in runs if r["model"] == q["model"]}
        ex = by["exact"]
        for other in ("dopri5", "etd-doubling"):
            o = by[other]
            assert q[f"{other}/exact steps"] == pytest.approx(o["steps"] / ex["steps"], rel=1e-12)
            assert q[f"{other}/exact nfev"] == pytest.approx(o["nfev"] / ex["nfev"], rel=1e-12)
            assert q[f"{other}/exact wall"] == pytest.approx(o["wall_s"] / ex["wall_s"], rel=1e-12)
            assert q[f"{other}/exact steps"] > 0 and q[f"{other}/exact wall"] > 0
        assert q["lsoda/exact wall"] == pytest.approx(by["lsoda"]["wall_s"] / ex["wall_s"],
                                                      rel=1e-12)
    md = to_markdown(res)
    assert md.count("\n| adam-flow") == len(runs) + len(ratios)
    for r in runs:
        if r["method"] in ("exact", "etd-doubling"):
            assert f"| {r['model']} | 0.1 | {r['method']} | {r['accepted']} ({r['rejected']}) |" in md
        if r["method"] != "lsoda":
            assert f"| {r['err_vs_lsoda']:.1e} | ok |" in md
