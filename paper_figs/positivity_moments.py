"""The positivity experiment as curves (arXiv 2602.09101, preset ``heredia2026-positivity``):
rosenbrock1d(c=1.5), theta0 = -1.5, betas .5/.2 (b2 < 1/2: the second-order kernel changes sign,
so v of the second-order model may become negative), alpha = 1e-2, 270 epochs; discrete Adam, the
first-order flow adam-flow1 and the second-order model adam-flow2 with u0 in {0, 1} (exact flows
sampled at t = k alpha).

Panels (2 x 2): f - f*, theta, m and v against the iteration k, each with an inset over the
iterations :data:`INSET` (230-250; the last stretch of the run, where the lanes separate least
visibly at full scale). One shared legend.

Files: ``positivity-moments.png``; ``positivity-moments.csv`` (long format: model, u0, k, t,
theta, f, m, v); ``positivity-moments.json`` (the setting, the inset window, per lane its
status, the min v over all samples and after the start, v_negative, and the sufficient-condition
counter of :func:`analysis.positivity.positivity`, computed from the sampled run).
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from mpl_toolkits.axes_grid1.inset_locator import inset_axes, mark_inset  # noqa: E402

import landscapes  # noqa: E402
from analysis.positivity import positivity  # noqa: E402
from core.output import save_figure, write_csv, write_json  # noqa: E402
from runner import experiment, presets  # noqa: E402

NAME = "positivity-moments"
SCHEMES = ("exact",)
PRESET = "heredia2026-positivity"
TITLE = ("positivity experiment: c = 1.5, theta0 = -1.5, betas .5/.2, alpha = 1e-2, "
         "270 epochs; exact flows sampled at t = k alpha")
#: iterations the insets zoom on (full run); quick: :data:`QUICK_INSET` of :data:`QUICK_STEPS`
INSET = (230, 250)
QUICK_STEPS = 99
QUICK_INSET = (70, 90)
KEYS = ("f", "theta", "m", "v")
YLABELS = {"f": "f - f*", "theta": "theta", "m": "first moment m (gradient units)",
           "v": "second moment v (gradient^2 units)"}


def _label(model: str, u0) -> str:
    name = {"adam": "discrete Adam"}.get(model, model)
    return name if u0 is None else f"{name} u0={u0:g}"


def compute(steps: int, quick: bool = False) -> dict:
    d = presets.command_defaults(PRESET, "run")
    spec = experiment.RunSpec(landscape=d["landscape"], models=d["models"], theta0=d["theta0"],
                              alpha=d["alpha"], beta1=d["beta1"], beta2=d["beta2"], eps=d["eps"],
                              u0=d["u0"], steps=steps, scheme="exact")
    land = landscapes.parse(d["landscape"])
    fstar = float(land.minimum_value())
    lanes = []
    for info, traj in experiment.run(spec):
        pos = positivity(traj, land)
        for b in range(traj.n_lanes):
            n = int(traj.n_out[b])
            u0 = traj.params.get("u0", [None] * traj.n_lanes)[b]
            alpha = float(traj.params["alpha"][b])
            t = traj.t[b, :n].tolist()
            p = pos[b]
            lanes.append({
                "model": info.name, "u0": u0, "label": _label(info.name, u0), "alpha": alpha,
                "status": traj.status_label(b),
                "min_v": p["min_v"], "min_v_after_start": p["min_v_after_start"],
                "v_negative": p["v_negative"], "condition_applicable": p["applicable"],
                "condition_ratio": p["ratio"], "condition_holds_count": p["holds_count"],
                "n_samples": p["n_samples"], "first_failure_s": p["first_failure_s"],
                "k": [int(round(x / alpha)) for x in t], "t": t,
                "theta": traj.theta[b, :n, 0].tolist(), "f": (traj.f[b, :n] - fstar).tolist(),
                "m": traj.extras["m"][b, :n, 0].tolist(),
                "v": traj.extras["v"][b, :n, 0].tolist()})
    setting = {"preset": PRESET, "landscape": d["landscape"], "theta0": d["theta0"][0],
               "alpha": d["alpha"][0], "beta1": d["beta1"][0], "beta2": d["beta2"][0],
               "eps": d["eps"][0], "u0": d["u0"], "models": d["models"], "steps": steps,
               "epochs": steps + 1, "fstar": fstar, "scheme": "exact", "quick": quick}
    return {"setting": setting, "lanes": lanes}


STYLES = {("adam", None): dict(color="k", lw=2.4, alpha=0.45),
          ("adam-flow1", None): dict(color="C0", lw=1.3),
          ("adam-flow2", 0.0): dict(color="C1", lw=1.3, ls="--"),
          ("adam-flow2", 1.0): dict(color="C3", lw=1.3, ls="-.")}


def _style(ln):
    return STYLES.get((ln["model"], ln["u0"]), dict(lw=1.2))


def plot(d: dict, png: str) -> None:
    from matplotlib.lines import Line2D

    lo, hi = d["inset"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.6), layout="constrained")
    # inset corner per panel: where the curves are not (f and v decay, theta rises, m grows
    # from a negative minimum towards 0)
    where = {"f": "upper right", "theta": "lower right", "m": "lower right", "v": "upper right"}
    for ax, key in zip(axes.flat, KEYS):
        for ln in d["lanes"]:
            ax.plot(ln["k"], ln[key], **_style(ln))
        if key in ("m", "v"):
            ax.axhline(0.0, color="0.3", lw=0.7)
        ax.set_xlabel("iteration k = t/alpha")
        ax.set_ylabel(YLABELS[key])
        ax.set_title(f"{YLABELS[key].split(' (')[0]} vs iteration; inset: k in [{lo}, {hi}]",
                     fontsize=9)
        ax.grid(True, alpha=0.3)
        ins = inset_axes(ax, width="40%", height="40%", loc=where[key], borderpad=1.4)
        ys = []
        for ln in d["lanes"]:
            sel = [j for j, k in enumerate(ln["k"]) if lo <= k <= hi]
            ins.plot([ln["k"][j] for j in sel], [ln[key][j] for j in sel], **_style(ln))
            ys += [ln[key][j] for j in sel if math.isfinite(ln[key][j])]
        if ys:
            pad = 0.08 * (max(ys) - min(ys)) or 1e-12
            ins.set_ylim(min(ys) - pad, max(ys) + pad)
        ins.set_xlim(lo, hi)
        ins.tick_params(labelsize=7)
        ins.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3), useOffset=False)
        ins.yaxis.get_offset_text().set_fontsize(7)
        ins.grid(True, alpha=0.3)
        mark_inset(ax, ins, loc1=1 if where[key].startswith("lower") else 3,
                   loc2=2 if where[key].startswith("lower") else 4, fc="none", ec="0.5", lw=0.7)
    handles = [Line2D([], [], **_style(ln)) for ln in d["lanes"]]
    labels = [f"{ln['label']} (min v after start = {ln['min_v_after_start']:.3g})"
              for ln in d["lanes"]]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=8.5)
    fig.suptitle(TITLE.replace("270 epochs", f"{d['setting']['epochs']} epochs"), fontsize=10)
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    steps = QUICK_STEPS if quick else presets.command_defaults(PRESET, "run")["steps"]
    progress("discrete Adam, adam-flow1, adam-flow2 u0 in {0, 1}")
    d = compute(steps, quick)
    d["inset"] = list(QUICK_INSET if quick else INSET)
    progress("plotting")
    png, csv, js = (os.path.join(out_dir, f"{NAME}.{e}") for e in ("png", "csv", "json"))
    plot(d, png)
    cols = ["model", "u0", "k", "t", "theta", "f", "m", "v"]
    rows = [[ln["model"], "" if ln["u0"] is None else ln["u0"], k, t, th, f, m, v]
            for ln in d["lanes"]
            for k, t, th, f, m, v in zip(ln["k"], ln["t"], ln["theta"], ln["f"], ln["m"],
                                         ln["v"])]
    write_csv(cols, rows, csv)
    curves = ("k", "t", "theta", "f", "m", "v")
    write_json({"setting": d["setting"], "inset": d["inset"],
                "lanes": [{k: v for k, v in ln.items() if k not in curves}
                          for ln in d["lanes"]]}, js)
    return [png, csv, js]
