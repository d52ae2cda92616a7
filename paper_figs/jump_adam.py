"""The Jump Adam seed experiments (``adamflow figs --only jump``; studies in
:mod:`analysis.jump_study`).

Files:

* ``jump-phases.png`` / ``.json`` / ``.csv``: Adam and Jump Adam (same lr 1e-2, trust 10) on
  rosenbrock1d(c=4) from -1.5 and from 0.5, classic 2-D Rosenbrock from (-1.2, 1) and a 1-16-1
  tanh network: f - f* (loss for the network) per step, and Jump Adam's open fraction and mean
  effective multiplier, with the phases read from the data shaded (chaos grey, warp orange);
* ``jump-conditioning.png`` / ``.json`` / ``.csv``: steps to |g| < 1e-8 of GD, Adam, Jump Adam and
  Aitken GD on quadratics of condition number 1..1e4, separable and rotated, and on the sextic;
* ``jump-gate-map.png`` / ``.json``: log2(Adam steps / Jump Adam steps) and the open fraction over
  a grid of starting points of the coupled quadratic and of the separable one with its spectrum.
"""
from __future__ import annotations

import math
import os

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis import jump_study  # noqa: E402
from core.output import save_figure, write_csv, write_json  # noqa: E402

NAME = "jump"
SCHEMES = ("exact",)
TITLE = "Jump Adam seed experiments: phases, steps to tolerance vs conditioning, gate map"

JUMP = {"trust_coefficient": 10.0}
#: the phase problems: (label, landscape, theta0, f*)
PHASE_PROBLEMS = (
    ("rosenbrock1d(c=4), theta0 = -1.5", "rosenbrock1d(c=4)", [-1.5], 0.0),
    ("rosenbrock1d(c=4), theta0 = 0.5", "rosenbrock1d(c=4)", [0.5], 0.0),
    ("Rosenbrock 2-D, theta0 = (-1.2, 1)", "rosenbrock", [-1.2, 1.0], 0.0),
)
METHODS = ("gd", "aitkengd", "adam", "jumpadam")
LABELS = {"gd": "GD", "aitkengd": "Aitken GD", "adam": "Adam", "jumpadam": "Jump Adam"}
PHASE_COLORS = {"chaos": "0.85", "warp": "#fdd0a2", "converged": "#c7e9c0"}
GAP_FLOOR = 1e-16


def _shade(ax, spans) -> None:
    for sp in spans:
        c = PHASE_COLORS.get(sp["phase"])
        if c is not None:
            ax.axvspan(sp["start"], max(sp["end"] - 1, sp["start"] + 0.5), color=c, lw=0, zorder=0)


def _phases_figure(results: list[dict], png: str) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(len(results), 3, figsize=(14, 3.0 * len(results) + 0.5),
                             squeeze=False, layout="constrained")
    for row, res in zip(axes, results):
        ja = res["jumpadam"]
        for ax in row:
            _shade(ax, ja["spans"])
        for model, style in (("adam", dict(color="C0")), ("jumpadam", dict(color="C3"))):
            gap = [max(x, GAP_FLOOR) if x == x else math.nan for x in res[model]["gap"]]
            row[0].semilogy(res[model]["k"], gap, label=LABELS[model], lw=1.2, **style)
        row[0].set_ylabel("f - f* (floor 1e-16)" if "mlp" not in res["landscape"] else "loss (MSE)")
        row[0].set_title(res["label"], fontsize=10)
        row[1].plot(ja["k"], ja["gate"], color="C3", lw=0.8)
        row[1].set_ylim(-0.05, 1.05)
        row[1].set_ylabel("open-gate fraction")
        row[2].plot(ja["k"], ja["multiplier"], color="C3", lw=0.8)
        row[2].set_yscale("log")
        row[2].set_ylabel("mean |step| / |Adam step|")
        for ax in row:
            ax.set_xlabel("step k")
    # one legend for the figure: the two optimizers of the first column and the phase shading
    handles = [Line2D([], [], color="C0", lw=1.2), Line2D([], [], color="C3", lw=1.2)]
    labels = [LABELS["adam"], LABELS["jumpadam"]]
    for phase, c in PHASE_COLORS.items():
        handles.append(Patch(color=c, lw=0))
        labels.append(f"{phase} phase (Jump Adam)")
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=9)
    fig.suptitle("Jump Adam phases (shaded from its data, 50-step window: grey chaos = gate closed, "
                 "orange warp = multiplier > 2, green converged = |g| < 1e-8)", fontsize=11)
    save_figure(fig, png)
    plt.close(fig)


def _conditioning_figure(res: dict, png: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    K = res["K"]
    for ax, kind in zip(axes, ("separable", "rotated")):
        rows = [r for r in res["rows"] if r["problem"] == f"quadratic {kind}"]
        conds = [r["cond"] for r in rows]
        for i, m in enumerate(METHODS):
            ys = [r[m] if r[m] is not None else math.nan for r in rows]
            ax.loglog(conds, ys, "o-", color=f"C{i}", label=LABELS[m])
            miss = [c for c, r in zip(conds, rows) if r[m] is None]
            if miss:
                ax.plot(miss, [K * 1.4] * len(miss), "v", color=f"C{i}", ms=7)
        ax.axhline(K, color="0.5", ls=":", lw=1)
        ax.set_title(f"quadratic, {kind} (n = {res['n']}); triangles: not within {K} steps",
                     fontsize=10)
        ax.set_xlabel("condition number of A")
    axes[0].set_ylabel(f"steps to |g| < {res['tol']:g}")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def _gate_map_figure(res: dict, png: str) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5))
    ax_ = res["axis"]
    ext = (ax_[0], ax_[-1], ax_[0], ax_[-1])
    for col, key in enumerate(("coupled", "separable")):
        r = res[key]
        vals = np.asarray(r["log2_speedup"], dtype=float)
        lim = max(1.0, float(np.nanmax(np.abs(vals[np.isfinite(vals)]), initial=0.0)))
        im = axes[0, col].imshow(vals, origin="lower", extent=ext,
                                 cmap="RdBu", vmin=-lim, vmax=lim)
        fig.colorbar(im, ax=axes[0, col], label="log2(Adam steps / Jump Adam steps)")
        im = axes[1, col].imshow(np.asarray(r["open_fraction"]), origin="lower", extent=ext,
                                 cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[1, col], label="open-gate fraction over the run")
        A = r["A"]
        title = (f"coupled A = [[1, {res['coupling']}], [{res['coupling']}, 1]]" if key == "coupled"
                 else f"separable A = diag({A[0][0]:.2g}, {A[1][1]:.2g})")
        for ax in axes[:, col]:
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("theta0_1")
            ax.set_ylabel("theta0_2")
    fig.suptitle(f"where the gate matters: steps to |g| < {res['tol']:g} (K = {res['K']}, "
                 f"lr {res['lr']:g})", fontsize=11)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    K = 600 if quick else 3000
    files: list[str] = []
    progress("phases")
    results = []
    for label, spec, theta0, f_star in PHASE_PROBLEMS:
        r = jump_study.phases(spec, theta0, lr=1e-2, K=K, f_star=f_star, **JUMP)
        r["label"] = label
        results.append(r)
    net = jump_study.mlp_phases(lr=1e-2, K=K, **JUMP)
    net["label"] = "1-16-1 tanh network, sin(2x) + noise"
    results.append(net)
    base = os.path.join(out_dir, "jump-phases")
    _phases_figure(results, base + ".png")
    write_json({"problems": results}, base + ".json")
    rows = []
    for r in results:
        for model in ("adam", "jumpadam"):
            d = r[model]
            for i, k in enumerate(d["k"]):
                rows.append([r["label"], model, k, d["gap"][i], d["grad"][i],
                             d.get("gate", [None] * len(d["k"]))[i],
                             d.get("multiplier", [None] * len(d["k"]))[i]])
    write_csv(["problem", "model", "k", "gap", "grad_norm", "open_fraction", "multiplier"], rows,
              base + ".csv")
    files += [base + ".png", base + ".json", base + ".csv"]

    progress("conditioning")
    cond = jump_study.conditioning(K=1000 if quick else jump_study.BUDGET, **JUMP)
    base = os.path.join(out_dir, "jump-conditioning")
    _conditioning_figure(cond, base + ".png")
    write_json(cond, base + ".json")
    write_csv(["problem", "cond", *METHODS, "diverged"],
              [[r["problem"], r["cond"], *[r[m] for m in METHODS], " ".join(r["diverged"])]
               for r in cond["rows"]], base + ".csv")
    files += [base + ".png", base + ".json", base + ".csv"]

    progress("gate map")
    gm = jump_study.gate_map(points=11 if quick else 21, K=800 if quick else 1500, **JUMP)
    base = os.path.join(out_dir, "jump-gate-map")
    _gate_map_figure(gm, base + ".png")
    write_json(gm, base + ".json")
    files += [base + ".png", base + ".json"]
    return files
