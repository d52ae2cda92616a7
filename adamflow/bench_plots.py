"""The three figures of ``adamflow bench --plot DIR`` (data measured when they are drawn):

* ``work_precision.png``: max |theta(T) - LSODA(rtol 1e-13)| against wall time over rtol
  1e-6..1e-12, adamflow (compiled engine) and the peers (diffrax with the explicit Tsit5: its stiff
  Kvaerno5 takes ~20 s a point here, see the batch cases), adam-flow2 on the bench grid (256 lanes;
  quick 64), scipy timed on a subset and scaled;
* ``cost_vs_lanes.png``: wall time against the number of lanes (1 to 1e6; quick 1e5), T = 0.1,
  adamflow compiled and torch engines, torchdiffeq dopri5, and the scipy loop (measured up to 100
  lanes, drawn dashed where extrapolated linearly);
* ``cost_vs_alpha.png``: wall time of one lane (theta0 = -1.5, T = 1) against alpha (1e-4..1e-1),
  adamflow compiled and torch engines, scipy LSODA, torchdiffeq dopri5, all at rtol 1e-10.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from adamflow import bench_peers as peers
from core.output import save_figure
from flows.solve import solve


def _problem(alpha, theta0, T):
    return {"alpha": np.asarray(alpha, dtype=float), "theta0": np.asarray(theta0, dtype=float),
            "c": 4.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "T": float(T),
            "accurate": np.abs(np.asarray(theta0, dtype=float) - 1.0) >= 0.05}


def _time(fn):
    fn()                                             # warm-up (compilation, caches)
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _torch_engine(prob, rtol, atol):
    flow, y0 = peers.make_flow(prob)
    t = torch.tensor([0.0, prob["T"]], dtype=torch.float64)
    return lambda: solve(flow, y0, t, rtol=rtol, atol=atol)


def work_precision(quick: bool) -> dict:
    side = 8 if quick else 16
    prob = peers.grid(side, side)
    B = prob["alpha"].size
    sub = np.unique(np.linspace(0, B - 1, min(B, 32)).round().astype(int))
    mask = prob["accurate"]
    ref_all = peers.scipy_loop(prob, None, rtol=1e-13, atol=1e-15)["theta_T"]
    rtols = [1e-6, 1e-8, 1e-10, 1e-12] if not quick else [1e-6, 1e-9, 1e-12]
    series: dict[str, list] = {}

    def add(name, t, theta, idx=None):
        r = ref_all if idx is None else ref_all[idx]
        m = mask if idx is None else mask[idx]
        series.setdefault(name, []).append((t, peers.max_error(theta, r, m)))

    for rtol in rtols:
        atol = rtol * 1e-2
        t, sol = _time(peers.adamflow_run(prob, rtol, atol))
        add("adamflow (compiled, auto)", t, sol.ys[:, -1, 0, 0].numpy())
        r = peers.scipy_loop(prob, sub, rtol=rtol, atol=atol)
        add("scipy LSODA loop (x B/subset)", r["seconds"] * B / len(sub), r["theta_T"], sub)
        for name, fn in [("torchdiffeq dopri5", peers.torchdiffeq_run),
                         ("torchode dopri5", peers.torchode_run),
                         ("diffrax Tsit5 (vmap)", lambda p, **kw: peers.diffrax_run(
                             p, solver="Tsit5", **kw))]:
            if rtol < 1e-10 and name.startswith(("torchdiffeq", "torchode")) and quick:
                continue
            try:
                out = fn(prob, rtol=rtol, atol=atol)
            except peers.PeerUnavailable:
                continue
            add(name, out["seconds"], out["theta_T"])
    return {"lanes": B, "rtols": rtols, "series": series}


def cost_vs_lanes(quick: bool) -> dict:
    sizes = [1, 10, 100, 1000, 10_000, 100_000] + ([] if quick else [1_000_000])
    gen = np.random.default_rng(2)
    series: dict[str, list] = {}
    scipy_per_lane = None
    for B in sizes:
        prob = _problem(np.exp(gen.uniform(np.log(1e-3), np.log(5e-2), B)),
                        gen.uniform(-1.8, 1.8, B), 0.1)
        t, _ = _time(peers.adamflow_run(prob, 1e-10, 1e-12))
        series.setdefault("adamflow compiled", []).append((B, t))
        if B <= 1000:
            t, _ = _time(_torch_engine(prob, 1e-10, 1e-12))
            series.setdefault("adamflow torch engine", []).append((B, t))
        if B <= 10_000:
            r = peers.torchdiffeq_run(prob, rtol=1e-8, atol=1e-10)
            series.setdefault("torchdiffeq dopri5", []).append((B, r["seconds"]))
        if B <= 100:
            r = peers.scipy_loop(prob, None, rtol=1e-10, atol=1e-12)
            series.setdefault("scipy LSODA loop", []).append((B, r["seconds"]))
            scipy_per_lane = r["seconds"] / B
        else:
            series.setdefault("scipy LSODA loop (extrapolated)", []).append((B, scipy_per_lane * B))
    return {"series": series}


def cost_vs_alpha(quick: bool) -> dict:
    alphas = np.logspace(-4, -1, 4 if quick else 7)
    series: dict[str, list] = {}
    for a in alphas:
        prob = _problem([a], [-1.5], 1.0)
        t, _ = _time(peers.adamflow_run(prob, 1e-10, 1e-12))
        series.setdefault("adamflow compiled", []).append((a, t))
        r = peers.scipy_loop(prob, None, rtol=1e-10, atol=1e-12)
        series.setdefault("scipy LSODA", []).append((a, r["seconds"]))
        if a >= 1e-3 or not quick:
            t0 = time.perf_counter()
            _torch_engine(prob, 1e-10, 1e-12)()
            series.setdefault("adamflow torch engine", []).append((a, time.perf_counter() - t0))
            r = peers.torchdiffeq_run(prob, rtol=1e-10, atol=1e-12)
            series.setdefault("torchdiffeq dopri5", []).append((a, r["seconds"]))
    return {"series": series}


def _draw(series, path, xlabel, ylabel, title, xs_first=True):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    for name, pts in series.items():
        pts = sorted(pts)
        x = [p[0] for p in pts]
        y = [p[1] for p in pts]
        style = "--" if "extrapolated" in name else "-"
        ax.loglog(x, y, style, marker="o", ms=4, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def make_all(out_dir: str, *, quick: bool = False) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    wp = work_precision(quick)
    series = {k: [(t, e) for t, e in v] for k, v in wp["series"].items()}
    p = os.path.join(out_dir, "work_precision.png")
    _draw(series, p, "wall time (s)", "max |theta(T) - theta_LSODA(T)| (theta units)",
          f"work-precision: adam-flow2, {wp['lanes']} lanes, rtol 1e-6..1e-12 (atol = rtol/100)")
    paths.append(p)
    p = os.path.join(out_dir, "cost_vs_lanes.png")
    _draw(cost_vs_lanes(quick)["series"], p, "lanes", "wall time (s)",
          "cost vs lanes: adam-flow2, T = 0.1, alpha in [1e-3, 5e-2], rtol 1e-10")
    paths.append(p)
    p = os.path.join(out_dir, "cost_vs_alpha.png")
    _draw(cost_vs_alpha(quick)["series"], p, "alpha (step size)", "wall time of one lane (s)",
          "cost vs alpha: adam-flow2, theta0 = -1.5, T = 1, rtol 1e-10")
    paths.append(p)
    return paths
