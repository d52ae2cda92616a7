"""PL bound check (arXiv 2602.09101, preset `heredia2026-pl`).

rosenbrock1d(c=0) (convex, f* = 0), theta0 = -1.5, betas .99/.999, alpha = 1e-3, 6000 epochs:
discrete Adam and the second-order model (u0 = 1); energy monitors and the paper's PL envelope fit
env <= A exp(-omega (s - delta)) + B (SPEC §5). Library: :func:`analysis.lyapunov.study`.

alpha sweep (SPEC §6 pl row, "also 5e-4..1e-1"): the PL numbers (B, omega, A, violation) of
:func:`analysis.pl_bound.pl_bound` on the sampled f - f* for alpha in ALPHAS over the same horizon
of 6 time units (epochs = 6 / alpha rows theta_0..theta_{epochs-1}, steps = epochs - 1),
discrete Adam and the second-order model u0 = 1: rows under
``alpha_sweep`` in pl.json / pl-paper.json and the panel pl-alpha.png / pl-alpha-paper.png. The
paper scheme is not run below PAPER_MIN_ALPHA (about a minute per run there; listed in the rows'
``skipped``).
"""
from __future__ import annotations

import math

import matplotlib

from analysis.lyapunov import figure, json_lanes, study

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.output import save_figure, write_json  # noqa: E402
from paper_figs import _common  # noqa: E402
from runner import presets  # noqa: E402

NAME = "pl"
PRESET = "heredia2026-pl"
TITLE = "PL bound check, c = 0, theta0 = -1.5, alpha = 1e-3"
QUICK_STEPS = 2999
#: alpha sweep: horizon (time units; steps = HORIZON / alpha) and step sizes
HORIZON = 6.0
ALPHAS = (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1)
QUICK_ALPHAS = (5e-2, 1e-1)
#: the paper scheme's fixed point is slow for small alpha (~1 min at 5e-4): not run below this
PAPER_MIN_ALPHA = 1e-3
QUANTITIES = ("B", "omega", "A", "violation")


def _rows(results: dict, scheme: str, steps: dict) -> list[dict]:
    out = []
    for rec in results["lanes"]:
        pl = rec.get("pl") or {}
        out.append({"scheme": scheme, "model": rec["model"], "u0": rec.get("u0"),
                    "alpha": rec["alpha"], "steps": steps.get(rec["alpha"]),
                    "status": rec.get("status"),
                    **{q: pl.get(q) for q in QUANTITIES + ("n_fit", "ok")}})
    return out


def alpha_sweep(scheme: str, *, quick: bool = False, progress=lambda msg: None,
                reuse: dict | None = None) -> dict:
    """PL numbers vs alpha for ``scheme``; ``reuse`` = {alpha: study results} already computed
    over the same horizon."""

    rows, skipped = [], []
    for a in (QUICK_ALPHAS if quick else ALPHAS):
        steps = int(round(HORIZON / a)) - 1         # epochs = HORIZON / alpha (paper protocol)
        if scheme == "paper" and a < PAPER_MIN_ALPHA:
            skipped.append({"alpha": a, "reason": f"paper scheme not run below alpha = "
                            f"{PAPER_MIN_ALPHA:g} (about a minute per run)"})
            continue
        if reuse and a in reuse:
            res = reuse[a]
        else:
            progress(f"alpha sweep {a:g} ({scheme})")
            problem = _common.problem(PRESET, "lyapunov", scheme, alpha=[a])
            res = study(problem, steps=steps, delta=presets.command_defaults(
                PRESET, "lyapunov")["delta"], pl=True)
        rows += _rows(res, scheme, {a: steps})
    return {"horizon": HORIZON, "rows": rows, "skipped": skipped}


def plot_sweep(sweep: dict, png: str, title: str) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    models = []
    for r in sweep["rows"]:
        if (r["model"], r["u0"]) not in models:
            models.append((r["model"], r["u0"]))
    for ax, q in zip(axes.ravel(), QUANTITIES):
        logy = q != "violation"
        for ci, (m, u0) in enumerate(models):
            pts = sorted((r["alpha"], r[q]) for r in sweep["rows"]
                         if (r["model"], r["u0"]) == (m, u0) and r.get(q) is not None
                         and math.isfinite(r[q]) and (not logy or r[q] > 0))
            if pts:
                lab = m + ("" if u0 is None else f" u0={u0:g}")
                ax.plot([x for x, _ in pts], [y for _, y in pts], "o-" if ci == 0 else "s--",
                        color=colors[ci % len(colors)], label=lab, ms=4)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("alpha")
        ax.set_ylabel(q)
        ax.grid(True, which="both", alpha=0.3)
    # one legend for the four panels (the same models in each)
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncol=len(handles), fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:

    d = presets.command_defaults(PRESET, "lyapunov")
    files = []
    for s in _common.schemes(scheme, name=NAME):
        problem = _common.problem(PRESET, "lyapunov", s)
        progress(f"energy and PL fit ({s})")
        steps = QUICK_STEPS if quick else d["steps"]
        results = study(problem, steps=steps, delta=d["delta"], pl=d.get("pl", True))
        progress("plotting")
        png, js = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "json")
        fig = figure(results)
        fig.suptitle(f"{TITLE} ({s} scheme)", fontsize=10)
        save_figure(fig, png)
        data = json_lanes(results)
        # the main run is one alpha sweep point when it covers the sweep's horizon
        alphas = {r["alpha"] for r in results["lanes"]}
        covers = all(abs((steps + 1) * a - HORIZON) < 1e-9 for a in alphas)
        reuse = {a: results for a in alphas} if len(alphas) == 1 and covers else None
        sweep = alpha_sweep(s, quick=quick, progress=progress, reuse=reuse)
        data.update(preset=PRESET, scheme=s, alpha_sweep=sweep)
        write_json(data, js)
        spng = _common.path(out_dir, NAME + "-alpha", s, "png")
        plot_sweep(sweep, spng, f"PL numbers vs alpha, c = 0, theta0 = -1.5, horizon "
                                f"{HORIZON:g} (epochs = {HORIZON:g}/alpha), {s} scheme")
        files += [png, js, spng]
    return files
