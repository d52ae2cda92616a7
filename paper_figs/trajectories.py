"""Trajectories on the bistable Rosenbrock-type landscape (arXiv 2602.09101, preset `trajectories`).

rosenbrock1d(c=4), theta0 = -1.5, alpha = 1e-3, (b1, b2) = (0.99, 0.999), 3000 iterations:
discrete Adam beside the exact first-order flow and the exact second-order model with
u0 in {-1, 0, 1}; theta, f, m and v against the iteration index k = t/alpha.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from adamflow import experiment  # noqa: E402
from adamflow.output import save_figure, write_csv  # noqa: E402

NAME = "trajectories"
TITLE = "discrete Adam vs exact nonlocal flows, c = 4, theta0 = -1.5, alpha = 1e-3"

LANDSCAPE = "rosenbrock1d(c=4)"
THETA0 = -1.5
ALPHA = 1e-3
STEPS = 3000
BETAS = (0.99, 0.999)
U0S = (-1.0, 0.0, 1.0)


def records(steps: int = STEPS, every: int = 1) -> list[dict]:
    spec = experiment.RunSpec(
        landscape=LANDSCAPE, models=["adam", "adam-flow1", "adam-flow2"], theta0=[[THETA0]],
        alpha=[ALPHA], beta1=[BETAS[0]], beta2=[BETAS[1]], u0=list(U0S), steps=steps,
        every=every)
    return experiment.lane_records(experiment.run(spec))


def label(rec: dict) -> str:
    if rec["model"] == "adam":
        return "discrete Adam"
    if rec["model"] == "adam-flow1":
        return "first-order flow"
    return f"second-order flow, u0={rec['u0']:g}"


def make(out_dir: str, progress=lambda msg: None, steps: int = STEPS) -> list[str]:
    progress("running lanes")
    recs = records(steps)
    progress("plotting")
    fig, axes = plt.subplots(3, 2, figsize=(11, 10.5))
    panels = (("theta", r"$\theta$"), ("f", r"$f(\theta)$"), ("m", "m"), ("v", "v"))
    for ax, (key, ylabel) in zip(axes.flat[:4], panels):
        for rec in recs:
            k = [t / ALPHA for t in rec["t"]]
            y = [row[0] if isinstance(row, list) else row for row in rec[key]]
            style = dict(lw=2.2, color="k") if rec["model"] == "adam" else dict(lw=1.2)
            if rec["model"] == "adam-flow1":
                style["ls"] = "--"
            ax.plot(k, y, label=label(rec), **style)
        ax.set_xlabel("iteration k = t / alpha")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    # distance of each flow from the discrete iterates, sampled at t = k alpha
    ref = next(r for r in recs if r["model"] == "adam")
    for ax, key, ylabel in ((axes[2, 0], "theta", r"$|\theta(k\alpha) - \theta_k|$"),
                            (axes[2, 1], "f", r"$|f(\theta(k\alpha)) - f(\theta_k)|$")):
        for rec in recs:
            if rec["model"] == "adam":
                continue
            k = [t / ALPHA for t in rec["t"]]
            y = [abs((a[0] if isinstance(a, list) else a) - (b[0] if isinstance(b, list) else b))
                 for a, b in zip(rec[key], ref[key])]
            ax.semilogy(k[1:], y[1:], lw=1.2, ls="--" if rec["model"] == "adam-flow1" else "-",
                        label=label(rec))
        ax.set_xlabel("iteration k = t / alpha")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(TITLE, fontsize=10)
    fig.tight_layout()
    png = os.path.join(out_dir, f"{NAME}.png")
    save_figure(fig, png)
    header = ["model", "u0", "k", "t", "theta", "f", "m", "v"]
    rows = []
    for rec in recs:
        for j, t in enumerate(rec["t"]):
            rows.append([rec["model"], rec["u0"], round(t / ALPHA), t, rec["theta"][j][0],
                         rec["f"][j], rec["m"][j][0], rec["v"][j][0]])
    csv_path = os.path.join(out_dir, f"{NAME}.csv")
    write_csv(header, rows, csv_path)
    return [png, csv_path]
