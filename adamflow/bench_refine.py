"""The ``refine-vs-scipy`` case of :mod:`adamflow.bench`: what the refine study computes, done the
way a researcher would with scipy, and our flows on the same grids for the error comparison.

The study (preset heredia2026-refine, scheme exact): rosenbrock1d(c=1.5), theta0 = -1.5, betas
(0.99, 0.999), eps 1e-8, alpha in {5e-4, 1e-3, 5e-3, 1e-2, 5e-2} with epochs {9000, 5500, 2000, 1500,
1000} under the paper protocol (horizon 10); the discrete Adam reference per alpha, adam-flow1 and
adam-flow2 with u0 in {-1, 0, 1, 2}, every flow sampled at every k alpha (k = 0..K) and at T_used.
"""
from __future__ import annotations

import math

import numpy as np

from analysis.refine import _lane_grid, protocol_times
from flows.benchmark import numpy_rhs, numpy_y0
from runner.experiment import Numerics, run_lanes
from runner.presets import PRESETS

PRESET = "heredia2026-refine"


def refine_lanes() -> list[dict]:
    """The study's flow lanes: {model, alpha, u0, K, grid} (grid = the output times)."""
    p = PRESETS[PRESET]
    lanes = []
    for a, E in zip(p["alpha"], p["epochs"]):
        T_used, K = protocol_times(a, protocol="paper", epochs=E, horizon=p["horizon"])
        grid = _lane_grid(a, K, T_used)[0]
        lanes.append({"model": "adam-flow1", "alpha": a, "u0": 0.0, "K": K, "grid": grid})
        for u in p["u0"]:
            lanes.append({"model": "adam-flow2", "alpha": a, "u0": float(u), "K": K, "grid": grid})
    return lanes


def _problem():
    p = PRESETS[PRESET]
    return 1.5, float(p["theta0"][0][0]), float(p["beta1"][0]), float(p["beta2"][0]), float(p["eps"])


def numpy_adam(theta0: float, alpha: float, K: int, b1: float, b2: float, eps: float, c: float):
    """The discrete Adam reference, a plain Python loop (theta_k, k = 0..K)."""
    th, m, v = theta0, 0.0, 0.0
    out = [th]
    for k in range(1, K + 1):
        g = -2.0 * (1.0 - th) + 4.0 * c * th * (th * th - 1.0)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        th = th - alpha * (m / (1 - b1 ** k)) / (math.sqrt(v / (1 - b2 ** k)) + eps)
        out.append(th)
    return np.array(out)


def refine_scipy(lanes: list[dict], *, rtol: float, atol: float, discrete: bool = True) -> dict:
    """{"flows": [theta on the lane's grid]} by solve_ivp(LSODA) per lane (+ the discrete loops)."""
    from scipy.integrate import solve_ivp

    c, theta0, b1, b2, eps = _problem()
    if discrete:
        for a, K in sorted({(ln["alpha"], ln["K"]) for ln in lanes}):
            numpy_adam(theta0, a, K, b1, b2, eps, c)
    flows = []
    for ln in lanes:
        f = numpy_rhs(ln["model"], ln["alpha"], c, b1, b2, eps)
        grid = np.asarray(ln["grid"])
        r = solve_ivp(f, (0.0, float(grid[-1])), numpy_y0(ln["model"], theta0, ln["u0"]),
                      method="LSODA", rtol=rtol, atol=atol, t_eval=grid)
        flows.append(r.y[0])
    return {"flows": flows}


def refine_ours(lanes: list[dict], numerics: Numerics | None = None) -> list[np.ndarray]:
    """theta on each lane's grid from adamflow (default numerics: the compiled engine)."""
    c, theta0, b1, b2, eps = _problem()
    out: list[np.ndarray | None] = [None] * len(lanes)
    for model in ("adam-flow1", "adam-flow2"):
        idx = [i for i, ln in enumerate(lanes) if ln["model"] == model]
        spec = [{"theta0": [theta0], "alpha": lanes[i]["alpha"], "beta1": b1, "beta2": b2,
                 "eps": eps, **({"u0": lanes[i]["u0"]} if model == "adam-flow2" else {})}
                for i in idx]
        traj = run_lanes(model, f"rosenbrock1d(c={c})", spec, [0] * len(idx),
                         grids=[lanes[i]["grid"] for i in idx], numerics=numerics or Numerics())
        for j, i in enumerate(idx):
            out[i] = traj.theta[j, :len(lanes[i]["grid"]), 0].numpy()
    return out
