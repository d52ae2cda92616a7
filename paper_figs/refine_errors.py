"""Final-time errors side by side (arXiv 2602.09101, Figure 3): E_T(alpha) = |theta_K - theta(T)|
(left) and E_f(alpha) = |f(theta_K) - f(theta(T))| (right) between discrete Adam and the
continuous models, betas .99/.999, preset ``heredia2026-refine`` (c = 1.5, theta0 = -1.5, the
table's epochs, T = 10, paper error protocol), exact flows; the legend of each panel gives the
fitted log-log slope p of E ~ C alpha^p (with its 95% interval for E_T).

Files: ``refine-errors.png``; ``refine-errors.json`` (the refinement result).
Library: :func:`analysis.refine.refine`.
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.refine import refine  # noqa: E402
from core.output import save_figure, write_json  # noqa: E402
from paper_figs import _common  # noqa: E402
from runner import presets  # noqa: E402

NAME = "refine-errors"
SCHEMES = ("exact",)
PRESET = "heredia2026-refine"
TITLE = ("final-time errors vs alpha: E_T (left), E_f (right); c = 1.5, theta0 = -1.5, "
         "betas .99/.999, T = 10, exact flows")


def _label(model, u0):
    return model if u0 is None else f"{model} u0={u0:g}"


def plot(res: dict, png: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    slopes = {(s["model"], s["u0"]): s for s in res["slopes"]}
    keys = list(slopes)
    for ax, metric, pkey in ((axes[0], "E_T", "p_T"), (axes[1], "E_f", "p_f")):
        for i, key in enumerate(keys):
            pts = sorted((r["alpha"], r[metric]) for r in res["rows"]
                         if (r["model"], r["u0"]) == key and r[metric])
            if not pts:
                continue
            s = slopes[key]
            p = "-" if s[pkey] is None else f"{s[pkey]:.2f}"
            ci = s.get("ci_T") if metric == "E_T" else s.get("ci_f")
            ci = "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
            ls = "-" if key[0] == "adam-flow1" else "--"
            ax.plot(*zip(*pts), ls, marker="o", ms=4, lw=1.2, color=f"C{i}",
                    label=f"{_label(*key)}: p = {p}{ci}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step size alpha")
        ax.set_ylabel(f"{metric} ({'|theta|' if metric == 'E_T' else '|f|'} units)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right", framealpha=0.9)
    fig.suptitle(TITLE, fontsize=10)
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    d = presets.command_defaults(PRESET, "refine")
    alpha, epochs = d["alpha"], d["epochs"]
    if quick:
        alpha, epochs = [1e-2, 5e-2], [101, 41]
    problem = _common.problem(PRESET, "refine", "exact", alpha=alpha)
    progress("errors vs alpha")
    res = refine(problem, protocol="paper", epochs=epochs, horizon=d["horizon"])
    res["preset"] = PRESET
    progress("plotting")
    png, js = (os.path.join(out_dir, f"{NAME}.{e}") for e in ("png", "json"))
    plot(res, png)
    write_json(_common.reproducible(res), js)
    return [png, js]
