"""PL bound check of SPEC §5 drawn in detail (arXiv 2602.09101, preset ``heredia2026-pl``):
rosenbrock1d(c=0) (convex, f* = 0), theta0 = -1.5, betas .99/.999, alpha = 1e-3, 6000 epochs
(theta_0..theta_5999), discrete Adam and the second-order model adam-flow2 (u0 = 1, exact flow),
paper protocol (env over a 0.1 window, B from the last 1.7 time units, omega the least-squares
rate after delta = 1, A the smallest constant that bounds env after delta).

Panels: (1) env(s) and the fitted bound A exp(-omega (s - delta)) + B per model (log y; the legend
gives B, omega, A and the violation of each model); (2) the violation env - bound against s for
s >= delta (symlog y, zero line) with an inset zooming on the samples around the largest value
(the sample that sets A, where the bound touches env).

Files: ``pl-check.png``; ``pl-check.json`` (the setting, per model the PL numbers and the curves
s, env, bound, excess = env - bound, and the zoom window). Library:
:func:`analysis.lyapunov.study` (energy monitors and :func:`analysis.pl_bound.pl_bound`).
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from mpl_toolkits.axes_grid1.inset_locator import inset_axes, mark_inset  # noqa: E402

from analysis.lyapunov import lane_label, study  # noqa: E402
from core.output import save_figure, write_json  # noqa: E402
from paper_figs import _common  # noqa: E402
from runner import presets  # noqa: E402

NAME = "pl-check"
SCHEMES = ("exact",)
PRESET = "heredia2026-pl"
TITLE = ("PL bound check (SPEC §5 protocol): c = 0, theta0 = -1.5, alpha = 1e-3, betas .99/.999, "
         "delta = 1")
#: quick: 3000 iterates (T = 2.999: the fit window is [1, 1.299])
QUICK_STEPS = 2999
#: half width of the inset's zoom window, as a fraction of the drawn range [delta, T]
ZOOM = 0.04
QUANTITIES = ("B", "omega", "A", "violation")


def _label(rec: dict) -> str:
    return lane_label(rec).replace(f" a={rec['alpha']:g}", "")


def lanes(results: dict, delta: float) -> list[dict]:
    """Per model: the PL numbers and the curves after delta (s, env, bound, excess)."""
    out = []
    for rec in results["lanes"]:
        a = rec["arrays"]["pl"]
        s, env, bound = (np.asarray(a[k], dtype=np.float64) for k in ("s", "env", "bound"))
        out.append({"model": rec["model"], "u0": rec["u0"], "alpha": rec["alpha"],
                    "status": rec["status"], "label": _label(rec),
                    "pl": dict(rec["pl"]), "touch": a["touch"],
                    "n_violations": int(len(a["violations"])),
                    "s": s.tolist(), "env": env.tolist(), "bound": bound.tolist(),
                    "excess": (env - bound).tolist()})
    return out


def _zoom(ln: dict, delta: float, T: float) -> tuple[float, float]:
    """The inset's s window: around the sample where env - bound is largest."""
    ex = np.asarray(ln["excess"], dtype=np.float64)
    j = int(np.nanargmax(np.where(np.isfinite(ex), ex, -np.inf)))
    w = ZOOM * (T - delta)
    s0 = ln["s"][j]
    return max(delta, s0 - w), min(T, s0 + w)


def plot(d: dict, png: str) -> None:

    delta = d["setting"]["delta"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 5.4), layout="constrained")
    # discrete Adam wide and pale under the thinner flow: both stay visible where they agree
    styles = {"adam": dict(color="C0", lw=3.0, alpha=0.55), "adam-flow2": dict(color="C1", lw=1.2)}
    T = max(ln["s"][-1] for ln in d["lanes"])
    for ln in d["lanes"]:
        st = styles.get(ln["model"], dict(lw=1.4))
        pl = ln["pl"]
        s = np.asarray(ln["s"])
        ax.plot(s, ln["env"], **st, label=f"env  {ln['label']}")
        nums = ", ".join(f"{q} = {pl[q]:.4g}" for q in QUANTITIES if pl.get(q) is not None)
        ax.plot(s, ln["bound"], **{**st, "ls": "--"}, label=f"bound  {ln['label']}: {nums}")
        if ln["touch"] is not None:
            ax.plot([s[ln["touch"]]], [ln["env"][ln["touch"]]], "o", mfc="none",
                    color=st.get("color"), ms=8)
        after = s >= delta
        ax2.plot(s[after], np.asarray(ln["excess"])[after], **st, label=ln["label"])
    ax.axvline(delta, color="0.4", ls=":", lw=1.0)
    ax.axvline(T - d["setting"]["tail"], color="0.4", ls="-.", lw=1.0)
    ax.set_yscale("log")
    ax.set_xlabel("s = k alpha")
    ax.set_ylabel("env(s) = max of f - f* over [s - 0.1, s]")
    ax.set_title("envelope and fitted bound A exp(-omega (s - delta)) + B "
                 "(o: sample that sets A; dotted: delta; dash-dot: T - 1.7)", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", framealpha=0.95)
    ax2.axhline(0.0, color="k", lw=0.8)
    ex_all = np.concatenate([np.asarray(ln["excess"])[np.asarray(ln["s"]) >= delta]
                             for ln in d["lanes"]])
    ex_all = ex_all[np.isfinite(ex_all)]
    scale = float(np.max(np.abs(ex_all))) if ex_all.size else 1.0
    lin = max(1e-4 * scale, 1e-300)
    ax2.set_yscale("symlog", linthresh=lin, linscale=1.0)
    # env - bound <= 0 after delta: the positive half is empty; make it as tall as the negative
    # one so that the inset sits there, above the curves
    lo_y = ax2.get_ylim()[0]
    ax2.set_ylim(lo_y, max(-lo_y, 10 * lin))
    ax2.set_xlabel("s = k alpha")
    ax2.set_ylabel("violation env - bound (f units)")
    ax2.set_title("env - bound for s >= delta (symlog; <= 0: the bound holds)", fontsize=9)
    ax2.grid(True, which="major", alpha=0.3)
    ax2.legend(fontsize=8, loc="lower right", framealpha=0.95)
    # inset: the window around the largest env - bound of the first model
    lo, hi = d["zoom"]
    ins = inset_axes(ax2, width="44%", height="34%", loc="upper right", borderpad=1.6)
    ymin, ymax = 0.0, 0.0
    for ln in d["lanes"]:
        s = np.asarray(ln["s"])
        w = (s >= lo) & (s <= hi)
        ex = np.asarray(ln["excess"])[w]
        ins.plot(s[w], ex, **styles.get(ln["model"], dict(lw=1.4)))
        if ex.size:
            ymin, ymax = min(ymin, float(np.nanmin(ex))), max(ymax, float(np.nanmax(ex)))
    ins.axhline(0.0, color="k", lw=0.8)
    pad = 0.08 * (ymax - ymin) if ymax > ymin else 1e-12
    ins.set_xlim(lo, hi)
    ins.set_ylim(ymin - pad, ymax + pad)
    ins.set_title(f"zoom s in [{lo:.3g}, {hi:.3g}] (linear)", fontsize=7)
    ins.tick_params(labelsize=7)
    ins.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ins.yaxis.get_offset_text().set_fontsize(7)
    ins.grid(True, alpha=0.3)
    mark_inset(ax2, ins, loc1=2, loc2=3, fc="none", ec="0.5", lw=0.7)
    fig.suptitle(f"{TITLE}, {d['setting']['epochs']} iterates", fontsize=10)
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    d = presets.command_defaults(PRESET, "lyapunov")
    steps = QUICK_STEPS if quick else d["steps"]
    problem = _common.problem(PRESET, "lyapunov", "exact")
    progress("discrete Adam and adam-flow2: energy and PL fit")
    results = study(problem, steps=steps, delta=d["delta"], pl=True)
    ls = lanes(results, d["delta"])
    T = max(ln["s"][-1] for ln in ls)
    setting = {"preset": PRESET, "landscape": d["landscape"], "theta0": d["theta0"][0],
               "alpha": d["alpha"][0], "beta1": d["beta1"], "beta2": d["beta2"], "eps": d["eps"],
               "u0": d["u0"], "steps": steps, "epochs": steps + 1, "delta": d["delta"],
               "window": 0.1, "tail": 1.7, "scheme": "exact", "quick": quick}
    doc = {"setting": setting, "lanes": ls,
           "numbers": {ln["label"]: {q: ln["pl"].get(q) for q in QUANTITIES + ("n_fit", "ok")}
                       for ln in ls}}
    doc["zoom"] = list(_zoom(ls[0], d["delta"], T))
    progress("plotting")
    png, js = (os.path.join(out_dir, f"{NAME}.{e}") for e in ("png", "json"))
    plot(doc, png)
    write_json(doc, js)
    return [png, js]
