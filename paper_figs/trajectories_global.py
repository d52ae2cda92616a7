"""Trajectories to the global minimum (arXiv 2602.09101, preset `heredia2026-trajectories-global`).

rosenbrock1d(c=4), theta0 = 2.0, alpha = 1e-3, (b1, b2) = (0.99, 0.999), 4000 epochs (3999 updates):
discrete Adam beside the exact first-order flow and the second-order model with u0 in {-1, 0, 1};
theta, f, m, v against the iteration index and the distance of each flow from the iterates.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.output import save_figure, write_csv  # noqa: E402
from paper_figs import _common  # noqa: E402
from runner import experiment, presets  # noqa: E402

NAME = "trajectories-global"
PRESET = "heredia2026-trajectories-global"
TITLE = "discrete Adam vs exact nonlocal flows, c = 4, theta0 = 2 (global basin), alpha = 1e-3"
QUICK_STEPS = 200


def records(steps: int | None = None, scheme: str = "exact", preset: str = PRESET) -> list[dict]:
    d = presets.command_defaults(preset, "run")
    spec = experiment.RunSpec(
        landscape=d["landscape"], models=d["models"], theta0=d["theta0"], alpha=d["alpha"],
        beta1=d["beta1"], beta2=d["beta2"], eps=d["eps"], u0=d["u0"],
        steps=steps if steps is not None else d["steps"], scheme=scheme)
    return experiment.lane_records(experiment.run(spec))


def _label(rec: dict) -> str:
    if rec["model"] == "adam":
        return "discrete Adam"
    if rec["model"] == "adam-flow1":
        return "first-order flow"
    return f"second-order flow, u0={rec['u0']:g}"


def _y(row):
    return row[0] if isinstance(row, list) else row


def plot(recs: list[dict], alpha: float, title: str, png: str) -> None:
    fig, axes = plt.subplots(3, 2, figsize=(11, 10.5))
    panels = (("theta", r"$\theta$"), ("f", r"$f(\theta)$"), ("m", "m"), ("v", "v"))
    for ax, (key, ylabel) in zip(axes.flat[:4], panels):
        for rec in recs:
            style = dict(lw=2.2, color="k") if rec["model"] == "adam" else dict(lw=1.2)
            if rec["model"] == "adam-flow1":
                style["ls"] = "--"
            ax.plot([t / alpha for t in rec["t"]], [_y(r) for r in rec[key]], label=_label(rec),
                    **style)
        ax.set_xlabel("iteration k = t / alpha")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ref = next(r for r in recs if r["model"] == "adam")
    for ax, key in ((axes[2, 0], "theta"), (axes[2, 1], "f")):
        for rec in recs:
            if rec["model"] == "adam":
                continue
            k = [t / alpha for t in rec["t"]]
            err = [abs(_y(a) - _y(b)) for a, b in zip(rec[key], ref[key])]
            ax.semilogy(k[1:], [max(e, 1e-300) for e in err[1:]], lw=1.2,
                        ls="--" if rec["model"] == "adam-flow1" else "-", label=_label(rec))
        ax.set_xlabel("iteration k = t / alpha")
        ax.set_ylabel(f"|{key}(flow at k alpha) - {key}(discrete k)|")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)


def write_data(recs: list[dict], alpha: float, path: str) -> None:
    header = ["model", "u0", "k", "t", "theta", "f", "m", "v"]
    rows = [[rec["model"], rec["u0"], round(t / alpha), t, _y(rec["theta"][j]), rec["f"][j],
             _y(rec["m"][j]), _y(rec["v"][j])]
            for rec in recs for j, t in enumerate(rec["t"])]
    write_csv(header, rows, path)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:
    files = []
    alpha = presets.get(PRESET)["alpha"][0]
    for s in _common.schemes(scheme, name=NAME):
        progress(f"running lanes ({s})")
        recs = records(QUICK_STEPS if quick else None, scheme=s)
        progress("plotting")
        png, csv = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "csv")
        plot(recs, alpha, f"{TITLE} ({s} scheme)", png)
        write_data(recs, alpha, csv)
        files += [png, csv]
    return files
