"""The Polyak root step seed experiments (``adamflow figs --only polyak``; studies in
:mod:`analysis.polyak_study`).

Files:

* ``polyak-exp1.png`` ... ``polyak-exp5.png``: one figure per seed experiment, float64 solid and
  float32 dashed, one colour per scope variant: (a) the trajectory (exp 1: x_n with the formula
  3 + (x0 - 3)/2^n as markers; exps 2-4: the path in the plane over the contours of f; exp 5: the 13
  parameters of start 0), (b) f - f* on a log scale, (c) the gradient-norm ratio ||g_A||/||g_B||
  with the kink (its first crossing of 1) marked (exp 1: the distance to the formula in ulp(3)
  instead), (d) the step scale lr (f - f*)/||g_B||^2 (mean over coordinates);
* ``polyak-results.md``: the generated results table and the verdict on each of the seed's
  predictions (:func:`analysis.polyak_study.results_markdown`);
* ``polyak-results.json``: the study (every lane's measures; the series of the plotted lanes, the
  iterates of experiment 5 for its global lanes only);
* ``polyak-series.csv``: long format (experiment, variant, start, dtype, k, gap, ratio, scale, theta)
  of the plotted lanes (theta as above).
"""
from __future__ import annotations

import math
import os

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import landscapes  # noqa: E402
from analysis import polyak_study  # noqa: E402
from core.output import atomic_write_text, save_figure, write_csv, write_json  # noqa: E402

NAME = "polyak"
SCHEMES = ("exact",)
TITLE = "Polyak root step seed experiments: trajectories, loss, gradient-norm ratio, step scale"

#: values below this are drawn at it on the log axes
GAP_FLOOR = 1e-32
STYLE = {"float64": dict(ls="-", lw=1.3), "float32": dict(ls="--", lw=1.0)}
#: the series kept in the JSON for lanes that are not plotted (experiment 5, starts > 0)
SERIES = ("k", "gap", "theta", "scale", "ratio", "coord_error")


def _floor(xs):
    return [max(x, GAP_FLOOR) if x is not None and math.isfinite(x) else math.nan for x in xs]


def _plotted(exp: dict, ln: dict) -> bool:
    return exp["id"] != 5 or ln["start"] == 0


def _color(exp: dict, ln: dict) -> str:
    """One colour per variant (per start where there is one variant and several starts)."""
    if len(exp["variants"]) == 1:
        return f"C{ln['start']}"
    return f"C{[v['label'] for v in exp['variants']].index(ln['variant'])}"


def _lanes(exp: dict, dtype: str, start: int | None = None):
    """The plotted lanes (a variant whose iterates equal an earlier one's is drawn once)."""
    return [ln for ln in exp["runs"][dtype]["lanes"]
            if ((start is None and _plotted(exp, ln)) or ln["start"] == start)
            and not ln.get("same_as")]


def _label(ln: dict, exp: dict) -> str:
    twins = sorted({x["variant"] for x in exp["runs"][ln["dtype"]]["lanes"]
                    if x.get("same_as") == ln["variant"]})
    lab = ln["variant"] + (f" (= {', '.join(twins)})" if twins else "")
    return f"{lab}, {ln['start_label']}" if len(exp["starts"]) > 1 and exp["id"] != 5 else lab


def _contours(ax, spec: str, view: list[list[float]]) -> None:
    """Contours of log10 f over the box around the points ``view`` (the axes limits)."""
    pts = np.array(view)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * np.maximum(hi - lo, 1.0)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 120)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 120)
    X, Y = np.meshgrid(xs, ys)
    land = landscapes.parse(spec)
    th = torch.tensor(np.stack([X.ravel(), Y.ravel()], axis=1), dtype=torch.float64)
    F = land.value(th).numpy().reshape(X.shape)
    ax.contour(X, Y, np.log10(F + 1e-12), levels=15, colors="0.8", linewidths=0.6, zorder=0)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])


def _figure(exp: dict, png: str, extra=()) -> None:
    """The 2 x 2 figure of one experiment; ``extra``: (lane, label, colour) drawn in panel (b)."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    (ax_tr, ax_gap), (ax_r, ax_s) = axes
    main = [ln for dt in ("float64", "float32") for ln in _lanes(exp, dt)]
    # (a) trajectory
    if exp["id"] == 1:
        for s, lab in enumerate(exp["start_labels"]):
            for dt in ("float64", "float32"):
                ln = _lanes(exp, dt, s)[0]
                ax_tr.plot(ln["k"], [t[0] for t in ln["theta"]], color=f"C{s}", **STYLE[dt],
                           label=f"{lab}, {dt}")
            n = list(range(0, len(ln["k"]), 3))
            x0 = exp["starts"][s][0]
            ax_tr.plot(n, [3 + (x0 - 3) / 2 ** i for i in n], "o", mfc="none", color=f"C{s}",
                       ms=5, label=f"{lab}: 3 + (x0 - 3)/2^n")
        ax_tr.set_xlabel("step n")
        ax_tr.set_ylabel("x_n")
        ax_tr.set_xlim(0, 30)
    elif exp["id"] == 5:
        ln = next(x for x in _lanes(exp, "float64", 0) if x["variant"] == "global")
        th = np.array(ln["theta"])
        for i in range(th.shape[1]):
            ax_tr.plot(ln["k"], th[:, i], lw=0.8, color=f"C{i % 10}")
        ax_tr.set_xscale("symlog", linthresh=10)
        ax_tr.set_xlim(left=0)
        ax_tr.set_xlabel("step k (linear to 10, then log)")
        ax_tr.set_ylabel("parameter value (w, b, v, c; start 0, global, float64)")
    else:
        ref = next(x for x in main if x["variant"] == "global" and x["dtype"] == "float64")
        _contours(ax_tr, exp["spec"], [p for p in ref["theta"] if all(map(math.isfinite, p))]
                  + ([exp["theta_star"]] if exp["theta_star"] else []))
        for ln in main:
            th = np.array([p for p in ln["theta"] if all(map(math.isfinite, p))])
            th = th[(np.abs(th) < 1e3).all(axis=1)]
            light = ln["variant"] != "global"
            ax_tr.plot(th[:, 0], th[:, 1], ".", color=_color(exp, ln),
                       ms=3 if ln["dtype"] == "float64" else 2, **STYLE[ln["dtype"]],
                       alpha=0.35 if light else 1.0, zorder=1 if light else 2)
        if exp["theta_star"] is not None:
            ax_tr.plot(*exp["theta_star"], "k*", ms=10, label="minimizer")
        names = exp["ratio_halves"]
        ax_tr.set_xlabel(names[0])
        ax_tr.set_ylabel(names[1])
        ax_tr.set_title("path (points: iterates; grey: contours of log10 f; view: the global "
                        "lane)", fontsize=9)
    if ax_tr.get_legend_handles_labels()[0]:
        ax_tr.legend(fontsize=7, loc="best")
    # (b) loss
    for ln in main:
        ax_gap.semilogy(ln["k"], _floor(ln["gap"]), color=_color(exp, ln),
                        **STYLE[ln["dtype"]], label=f"{_label(ln, exp)}, {ln['dtype']}")
    for ln, lab, col in extra:
        ax_gap.semilogy(ln["k"], _floor(ln["gap"]), color=col, **STYLE[ln["dtype"]], label=lab)
    ax_gap.set_xlabel("step k")
    ax_gap.set_ylabel(f"f - f* (floor {GAP_FLOOR:g})")
    # (c) gradient-norm ratio / exactness
    if exp["id"] == 1:
        for s, _ in enumerate(exp["starts"]):
            for dt in ("float64", "float32"):
                ln = _lanes(exp, dt, s)[0]
                x0 = float(torch.tensor(exp["starts"][s][0], dtype=polyak_study.DTYPES[dt]))
                u = polyak_study.ulp(3.0, dt)
                d = [abs(t[0] - float(polyak_study.exact_halving(x0, n))) / u
                     for n, t in enumerate(ln["theta"])]
                ax_r.plot(ln["k"], d, color=f"C{s}", marker="o", ms=3, **STYLE[dt])
        ax_r.set_ylabel("|x_n - (3 + (x0 - 3)/2^n)| in ulp(3) of the dtype")
        ax_r.set_title("distance to the exact formula (exact rational arithmetic)", fontsize=9)
    else:
        a, b = exp["ratio_halves"]
        for ln in main:
            r = [x if x is not None and math.isfinite(x) and x > 0 else math.nan
                 for x in ln["ratio"]]
            ax_r.semilogy(ln["k"], r, color=_color(exp, ln), **STYLE[ln["dtype"]],
                          label=f"{_label(ln, exp)}, {ln['dtype']}")
            if ln["kink"] is not None and ln["dtype"] == "float64":
                ax_r.plot(ln["k"][ln["kink"]], r[ln["kink"]], "v", color=_color(exp, ln),
                          ms=9, mec="k")
        vals = [x for ln in main for x in ln["ratio"] if x is not None and math.isfinite(x) and x > 0]
        if vals and max(vals) / min(vals) < 10:
            ax_r.set_yscale("linear")                # a narrow range reads better on a linear axis
        ax_r.axhline(1.0, color="0.4", lw=0.8, ls=":")
        ax_r.set_ylabel(f"||g_{a}|| / ||g_{b}||")
        ax_r.set_title("gradient-norm ratio; triangles: the kink (first crossing of 1, float64)",
                       fontsize=9)
    ax_r.set_xlabel("step k")
    # (d) step scale
    for ln in main:
        sc = [x if x is not None and math.isfinite(x) and x > 0 else math.nan
              for x in ln["scale"]]
        ax_s.semilogy(ln["k"][1:], sc[1:], color=_color(exp, ln), **STYLE[ln["dtype"]],
                      label=f"{_label(ln, exp)}, {ln['dtype']}")
    if exp["id"] == 3:
        for y, lab in ((1 / 400, "1/(4c)"), (0.25, "1/4")):
            ax_s.axhline(y, color="0.4", lw=0.8, ls=":")
            ax_s.annotate(lab, (1.0, y), xycoords=("axes fraction", "data"), fontsize=8,
                          ha="right", va="bottom")
    ax_s.set_xlabel("step k")
    ax_s.set_ylabel("step scale lr (f - f*)_+ / ||g_B||^2 (mean over coordinates)")
    if exp["id"] in (3, 4, 5):
        for ax in (ax_gap, ax_r, ax_s):
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(left=0)
            ax.set_xlabel("step k (linear to 10, then log)")
    fig.suptitle(f"{exp['title']} (lr 1, f_target 0; float64 solid, float32 dashed"
                 + ("; start 0 of the seeded starts" if exp["id"] == 5 else "") + ")", fontsize=11)
    handles, labels = ax_gap.get_legend_handles_labels()
    ncol = 4 if len(labels) > 6 else max(1, len(labels))
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    rows = math.ceil(len(labels) / ncol)
    fig.tight_layout(rect=(0, 0.02 + 0.022 * rows, 1, 1))
    save_figure(fig, png)
    plt.close(fig)


def _compact(res: dict) -> dict:
    """The study for the JSON: series only for the plotted lanes."""
    exps = []
    for exp in res["experiments"]:
        runs = {}
        for dt, run in exp["runs"].items():
            lanes = [ln if _plotted(exp, ln) and (exp["id"] != 5 or ln["variant"] == "global")
                     else {k: v for k, v in ln.items()
                           if k not in (SERIES if not _plotted(exp, ln) else ("theta",))}
                     for ln in run["lanes"]]
            runs[dt] = {**run, "lanes": lanes}
        exps.append({**exp, "runs": runs})
    return {**res, "experiments": exps}


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    progress("five experiments x float32/float64")
    res = polyak_study.study(quick=quick)
    files: list[str] = []
    by_id = {e["id"]: e for e in res["experiments"]}
    noisy = by_id["4n"]
    extra = {4: [(ln, f"noise 0.1, {ln['variant']}, {ln['dtype']}", c)
                 for dt in ("float64", "float32")
                 for ln, c in zip(noisy["runs"][dt]["lanes"], ("k", "0.5"))]}
    for i in (1, 2, 3, 4, 5):
        progress(f"figure {i}")
        png = os.path.join(out_dir, f"polyak-exp{i}.png")
        _figure(by_id[i], png, extra.get(i, ()))
        files.append(png)
    md = os.path.join(out_dir, "polyak-results.md")
    atomic_write_text(md, polyak_study.results_markdown(res))
    js = os.path.join(out_dir, "polyak-results.json")
    write_json(_compact(res), js)
    rows = []
    for exp in res["experiments"]:
        for dt in ("float64", "float32"):
            for ln in _lanes(exp, dt):
                for j, k in enumerate(ln["k"]):
                    rows.append([exp["id"], ln["variant"], ln["start"], dt, k, ln["gap"][j],
                                 ln["ratio"][j] if "ratio" in ln else None, ln["scale"][j],
                                 " ".join(repr(x) for x in ln["theta"][j])
                                 if exp["id"] != 5 or ln["variant"] == "global" else ""])
    csv = os.path.join(out_dir, "polyak-series.csv")
    write_csv(["experiment", "variant", "start", "dtype", "k", "gap", "ratio", "scale", "theta"],
              rows, csv)
    return files + [md, js, csv]
