"""Smoke test of the integrator benchmark (flows/benchmark.py) at a tiny size."""
from __future__ import annotations

import math

from flows.benchmark import METHODS, MODELS, run_benchmark, to_markdown


def test_benchmark_smoke():
    res = run_benchmark(alphas=[0.1], T=0.5, models=MODELS, progress=False, warmup=False)
    assert set(res) == {"config", "runs", "ratios"}
    assert res["config"]["torch_threads"] == 1
    runs = res["runs"]
    assert len(runs) == len(MODELS) * len(METHODS)
    keys = {"model", "alpha", "T", "method", "status", "theta_T", "steps", "nfev", "wall_s",
            "err_vs_lsoda"}
    for r in runs:
        assert keys <= set(r), r
        assert r["status"] == "ok", r
        assert math.isfinite(r["theta_T"])
        assert r["nfev"] > 0 and r["wall_s"] >= 0.0
        if r["method"] != "lsoda":
            assert r["steps"] > 0
    for model in MODELS:
        (ex,) = [r for r in runs if r["model"] == model and r["method"] == "exact"]
        assert ex["err_vs_lsoda"] < 1e-7
        assert ex["accepted"] > 0 and ex["jacobians"] >= ex["accepted"]
        (etd,) = [r for r in runs if r["model"] == model and r["method"] == "etd-doubling"]
        assert etd["err_vs_lsoda"] < 1e-6
    assert len(res["ratios"]) == len(MODELS)
    assert all(q["dopri5/exact steps"] > 0 for q in res["ratios"])
    md = to_markdown(res)
    assert md.count("\n| adam-flow") == len(runs) + len(res["ratios"])
