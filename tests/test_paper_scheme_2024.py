"""The published IDE solver of arXiv 2411.09734 (scheme "paper2024") against the published traces.

The traces (shared/heredia_2411_v1_notebook_traces.json beside the checkout) store, for each nonlocal run, theta on
the grid t_i = 1e-12 + i alpha (x = t/alpha) and the memories m, v as [0, m(t_0), m(t_1), ...].
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

import landscapes
from core.published import heredia2411_traces_path
from flows.adam import AdamFlow1, RMSPropFlow
from flows.paper_scheme_2024 import T0, TOL, paper2024_solve, run_paper2024
from flows.simulate import output_grid, simulate
from runner import experiment

TRACES = heredia2411_traces_path() or Path("missing")
needs_traces = pytest.mark.skipif(not TRACES.exists(), reason="published traces not available")
F64 = torch.float64
#: the two published runs whose fixed point never reached the 1e-4 stopping rule
UNCONVERGED = {("Nonlocal RMSProp beta=0.0", "x2"), ("Nonlocal RMSProp beta=0.9", "x2")}


@lru_cache(maxsize=1)
def _figures():
    return json.loads(TRACES.read_text())["figures"]


def _land():
    return landscapes.parse("shifted(center=4)")


def _trace(fig, name, ax):
    for tr in _figures()[fig]["traces"]:
        if tr["name"] == name and tr["xaxis"] == ax:
            return np.array(tr["y"])
    raise KeyError((fig, name, ax))


def _runs(kind):
    """(name, xaxis, alpha, hyper, theta trace) of the published nonlocal runs of one kind."""
    fig = "adam_0" if kind == "adam" else "rmsprop_0"
    out = []
    for tr in _figures()[fig]["traces"]:
        if not tr["name"].startswith("Nonlocal"):
            continue
        nums = [float(x) for x in re.findall(r"=([\d.]+)", tr["name"])]
        hp = dict(beta1=nums[0], beta2=nums[1]) if kind == "adam" else dict(beta=nums[0])
        out.append((tr["name"], tr["xaxis"], 0.1 if tr["xaxis"] == "x" else 0.01, hp,
                    np.array(tr["y"])))
    return out


@lru_cache(maxsize=None)
def _solve(model, alpha, N, hp_items):
    return paper2024_solve(model, _land(), [1.0], alpha, N - 1, **dict(hp_items))


def test_grid_and_first_step():
    """t_0 = 1e-12; bias factors at q = t/alpha: theta_1 = 1.09514, m(t_0) = -6e-12 (Adam 0.9)."""
    s = paper2024_solve("adam-flow1", _land(), [1.0], 0.1, 3, beta1=0.9, beta2=0.99)
    assert s["t"][0] == T0 and s["t"].shape == (4,) and s["theta"].shape == (4, 1)
    assert abs(s["m"][0, 0] + 6e-12) < 1e-15
    assert s["theta"][0, 0] == 1.0


@needs_traces
def test_adam_traces_reproduced():
    res = {}
    for name, ax, alpha, hp, y in _runs("adam"):
        N = len(y)
        s = _solve("adam-flow1", alpha, N, tuple(sorted(hp.items())))
        m, v = _trace("adam_1", name, ax), _trace("adam_2", name, ax)
        d = (float(np.max(np.abs(s["theta"][:, 0] - y))),
             float(np.max(np.abs(s["m"][:N - 1, 0] - m[1:]))),
             float(np.max(np.abs(s["v"][:N - 1, 0] - v[1:]) / np.maximum(np.abs(v[1:]), 1e-3))))
        res[f"{name} alpha={alpha}"] = (s["iterations"], s["error"]) + d
        assert s["converged"] and s["error"] <= TOL
        # measured: theta <= 1.0e-7, m <= 2.0e-7, v (relative) <= 4e-6 (alpha = 0.01, beta2 = 0.99)
        assert d[0] < 1e-5 and d[1] < 1e-5 and d[2] < 1e-4, (name, ax, d)
    print("paper2024 vs published Adam (iterations, error, |dtheta|, |dm|, |dv|/v):")
    for k, r in res.items():
        print(f"  {k:45s} {r[0]:3d} {r[1]:.2e}  {r[2]:.1e} {r[3]:.1e} {r[4]:.1e}")
    assert len(res) == 8


@needs_traces
def test_rmsprop_traces_reproduced():
    res = {}
    for name, ax, alpha, hp, y in _runs("rmsprop"):
        if (name, ax) in UNCONVERGED:
            continue
        N = len(y)
        s = _solve("rmsprop-flow", alpha, N, tuple(sorted(hp.items())))
        v = _trace("rmsprop_1", name, ax)
        d = (float(np.max(np.abs(s["theta"][:, 0] - y))),
             float(np.max(np.abs(s["v"][:N - 1, 0] - v[1:]) / np.maximum(np.abs(v[1:]), 1e-3))))
        res[f"{name} alpha={alpha}"] = (s["iterations"], s["error"]) + d
        assert s["converged"]
        assert d[0] < 1e-5 and d[1] < 1e-5, (name, ax, d)         # measured <= 2e-11, 3e-13
        # v(t_0) is not ~0: the memory window [0, t + alpha] reaches the extrapolated past
        assert abs(s["v"][0, 0] - v[1]) < 1e-8
    print("paper2024 vs published RMSProp (iterations, error, |dtheta|, |dv|/v):")
    for k, r in res.items():
        print(f"  {k:45s} {r[0]:3d} {r[1]:.2e}  {r[2]:.1e} {r[3]:.1e}")
    assert len(res) == 4


@needs_traces
def test_unconverged_published_rmsprop_runs():
    """alpha = 0.01, beta 0 / 0.9: the published fixed point never met the 1e-4 rule; neither does
    ours. Run to the end (about 2500 / 1950 sweeps, ~1.5 min, not done here) the relaxation factor
    reaches its cap and the loop stops with L2 error 3.6e-2 / 3.7e-1; the trajectories then differ
    from the published ones by 2.4e-2 / 1.3e-1 in theta (the stopping point of a non-convergent
    iteration is not reproducible). Here: the first sweeps only."""
    seen = set()
    for name, ax, alpha, hp, y in _runs("rmsprop"):
        if (name, ax) not in UNCONVERGED:
            continue
        seen.add((name, ax))
        s = paper2024_solve("rmsprop-flow", _land(), [1.0], alpha, len(y) - 1, max_iterations=30,
                            **hp)
        print(f"{name} alpha={alpha}: after {s['iterations']} sweeps error {s['error']:.3e}")
        assert not s["converged"] and s["error"] > 10 * TOL
        assert np.isfinite(s["theta"]).all()
    assert seen == UNCONVERGED          # both runs were found among the published traces


def _exact_batch(flow_cls, runs):
    """Exact flows of several published runs of one alpha in one batched simulate call."""
    alpha, N = runs[0][2], len(runs[0][4])
    hp = {k: [r[3][k] for r in runs] for k in runs[0][3]}
    fl = flow_cls(_land(), alpha=[alpha] * len(runs), n_lanes=len(runs), **hp)
    t_out, _, n_out = output_grid(fl.hp.alpha, [N - 1] * len(runs))
    return simulate(fl, torch.ones(len(runs), 1, dtype=F64), t_out, n_out)


@needs_traces
def test_exact_flow_distance_from_published_traces():
    """sup |exact flow - published trace| (theta; m, v where published), sampled at t = k alpha."""
    dist = {}
    for kind, cls, vfig in (("adam", AdamFlow1, "adam_2"), ("rmsprop", RMSPropFlow, "rmsprop_1")):
        for ax in ("x", "x2"):
            runs = [r for r in _runs(kind) if r[1] == ax]
            tr = _exact_batch(cls, runs)
            for b, (name, _, alpha, hp, y) in enumerate(runs):
                v = _trace(vfig, name, ax)
                dm = float("nan")
                if kind == "adam":
                    m = _trace("adam_1", name, ax)
                    dm = float(np.max(np.abs(tr.extras["m"][b, :-1, 0].numpy() - m[1:])))
                dist[f"{name} alpha={alpha}"] = (
                    float(np.max(np.abs(tr.theta[b, :, 0].numpy() - y))), dm,
                    float(np.max(np.abs(tr.extras["v"][b, :-1, 0].numpy() - v[1:]))))
    print("sup |exact flow - published| (theta, m, v):")
    for k, d in dist.items():
        print(f"  {k:45s} {d[0]:.3e} {d[1]:.3e} {d[2]:.3e}")
    th_adam = [d[0] for k, d in dist.items() if "Adam" in k]
    th_rms = [d[0] for k, d in dist.items() if "RMSProp" in k]
    assert len(th_adam) == 8 and len(th_rms) == 6
    # measured: Adam theta 0.091..0.159 (alpha 0.1), 0.0091..0.0256 (alpha 0.01); RMSProp theta
    # 0.079..0.094 (alpha 0.1), 0.013..0.077 (alpha 0.01; two of these runs never converged in
    # the paper). The published curves carry the O(alpha) error of explicit Euler, bias factors
    # at q = t/alpha and (RMSProp) v(t_0) from the extrapolated past (23.7 vs exact 36 for beta 0)
    assert max(th_adam) < 0.2 and min(th_adam) > 5e-3
    assert max(th_rms) < 0.12 and min(th_rms) > 5e-3


def test_adagrad_runs():
    s = paper2024_solve("adagrad-flow", _land(), [1.0], 0.1, 30)
    assert s["converged"] and np.isfinite(s["theta"]).all()
    assert np.all(np.diff(s["theta"][:, 0]) > 0) and s["theta"][-1, 0] < 4.0 + 1e-6
    assert np.all(np.diff(s["v"][:, 0]) >= 0)               # accumulated squared gradients


def test_runspec_paper2024():
    spec = experiment.RunSpec(landscape="shifted(center=4)",
                              models=["adam-flow1", "rmsprop-flow", "adagrad-flow"],
                              theta0=[[1.0]], alpha=[0.1], beta=[0.9], beta1=[0.9],
                              beta2=[0.99, 0.999], steps=20, scheme="paper2024", every=5)
    res = experiment.run(spec)
    assert [tr.n_lanes for _, tr in res] == [2, 1, 1]
    for info, traj in res:
        assert traj.t.shape[1] == 5 and torch.isfinite(traj.theta).all()
        assert traj.meta["scheme"] == "paper2024" and bool(traj.stats["converged"].all())
        assert torch.allclose(traj.t[0], torch.arange(0, 21, 5, dtype=F64) * 0.1)
    # same as the direct call
    direct = run_paper2024("adam-flow1", _land(), [1.0], 0.1, 20, every=5, beta1=0.9, beta2=0.99)
    assert torch.equal(res[0][1].theta[0], direct.theta[0])
    assert "m" in res[0][1].extras and "v" in res[1][1].extras
    experiment.lane_records(res)
    with pytest.raises(Exception):
        experiment.validate(experiment.RunSpec(landscape="shifted", models=["adam-flow2"],
                                               theta0=[[1.0]], alpha=[0.1], steps=5,
                                               scheme="paper2024"))
