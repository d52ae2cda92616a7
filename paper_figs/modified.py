"""Which order each continuous model captures (``adamflow figs --only modified``): measured vs
predicted error slopes of the modified-equation flows of GD, heavy ball and Adam (SPEC §3.5;
studies in :mod:`analysis.order_study`).

Files:

* ``modified.png``: one panel per family setting (:data:`analysis.order_study.FAMILIES`): the
  error the family is judged by (E_sup; heavy ball: E_T) against alpha on log-log axes, one colour
  per flow; filled markers inside the flow's asymptotic range, hollow outside; the legend gives
  the measured slope (fit over the asymptotic range) and the predicted one; a dotted line of the
  predicted slope through the smallest-alpha point;
* ``modified.json``: every family's refinement study with its ``orders`` records;
* ``modified-table.md``: the table "setting, flow, metric, predicted, measured [95% CI], alpha
  range where the asymptotic regime holds, whole-grid fit" (the README copies it);
* ``modified.csv``: the rows (family, model, alpha, E_T, E_f, E_sup, status).
"""
from __future__ import annotations

import math
import os
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis import order_study  # noqa: E402
from core.output import atomic_write_text, save_figure, write_csv, write_json  # noqa: E402
from paper_figs import _common  # noqa: E402

NAME = "modified"
SCHEMES = ("exact",)
TITLE = "modified-equation flows: measured vs predicted error slopes (rosenbrock1d c = 1.5, theta0 = -1.5)"


def _quick(fam: order_study.Family) -> order_study.Family:
    """Three step sizes at the coarse end (tests)."""
    return replace(fam, alphas=fam.alphas[-3:])


def plot(results: list[dict], png: str) -> None:
    n = len(results)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.3 * rows), squeeze=False,
                             layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, res in zip(axes.flat, results):
        metric = res["metric"]
        drawn = [r[metric] for r in res["rows"]]
        for c, o in enumerate(o for o in res["orders"] if o["metric"] == metric):
            pts = sorted(((r["alpha"], r[metric]) for r in res["rows"] if r["model"] == o["model"]
                          and r[metric] is not None and r[metric] > 0), key=lambda p: p[0])
            if not pts:
                continue
            al, er = zip(*pts)
            col = colors[c % len(colors)]
            rng = o["range"]
            inside = [rng is not None and rng[0] <= a <= rng[1] for a in al]
            meas = "-" if o["p"] is None else f"{o['p']:.2f}"
            where = (f" for alpha <= {rng[1]:.2g}" if rng is not None and rng[1] < al[-1]
                     else "" if rng is not None else " (not asymptotic)")
            ax.plot(al, er, "-", color=col, lw=1.2,
                    label=f"{o['model']}: p = {meas}{where}; pred. {o['predicted']:g}")
            ax.scatter([a for a, i in zip(al, inside) if i], [e for e, i in zip(er, inside) if i],
                       color=col, s=22, zorder=3)
            ax.scatter([a for a, i in zip(al, inside) if not i],
                       [e for e, i in zip(er, inside) if not i], facecolors="white",
                       edgecolors=col, s=22, zorder=3)
            a0, e0 = al[0], er[0]
            guide = e0 * (al[-1] / a0) ** o["predicted"]
            ax.plot([a0, al[-1]], [e0, guide], ":", color=col, lw=1.0)
            drawn.append(guide)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _headroom(ax, drawn)
        ax.set_xlabel("step size alpha (t = k alpha)")
        ax.set_ylabel(f"{metric} (|theta| units)")
        ax.set_title(f"{res['title']} ({metric})", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9)
    spare = list(axes.flat)[n:]
    if spare:
        _plot_local(spare[0], results, colors)
    for ax in spare[1:]:
        ax.axis("off")
    fig.suptitle("filled: asymptotic range; dotted: predicted slope", fontsize=10)
    save_figure(fig, png)
    plt.close(fig)


def _headroom(ax, errors) -> None:
    """Log y-limits with the top 30% free of data: the legend (upper left) never covers a curve."""
    vals = [e for e in errors if e is not None and math.isfinite(e) and e > 0]
    if not vals:
        return
    lo, hi = math.log10(min(vals)), math.log10(max(vals))
    span = max(hi - lo, 1.0)
    ax.set_ylim(10 ** (lo - 0.05 * span), 10 ** (hi + 0.45 * span))


def _plot_local(ax, results: list[dict], colors) -> None:
    """Local slope minus predicted slope between neighbouring alphas (at their geometric mean),
    every flow of every setting, one colour per setting; the band is the asymptotic tolerance."""
    for c, res in enumerate(results):
        col = colors[c % len(colors)]
        first = True
        for o in res["orders"]:
            if o["metric"] != res["metric"]:
                continue
            al = sorted({r["alpha"] for r in res["rows"] if r["model"] == o["model"]})
            mid = [math.sqrt(a * b) for a, b in zip(al, al[1:])]
            pts = [(m, p - o["predicted"]) for m, p in zip(mid, o["local"]) if p is not None]
            if pts:
                ax.plot(*zip(*pts), ".-", color=col, lw=0.9, ms=4,
                        label=res["title"] if first else None)
                first = False
    ax.axhspan(-order_study.TOL, order_study.TOL, color="0.85", zorder=0)
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(-2.0, 1.0)
    ax.set_xlabel("step size alpha (geometric mean of neighbours)")
    ax.set_ylabel("local slope - predicted slope")
    ax.set_title(f"every flow: local slopes (band: +-{order_study.TOL:g})", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left", framealpha=0.9)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    fams = order_study.FAMILIES
    if quick:
        fams = tuple(_quick(f) for f in fams[:2])
    results = []
    for fam in fams:
        progress(f"refinement: {fam.title}")
        results.append(order_study.family_study(fam))
    png = os.path.join(out_dir, f"{NAME}.png")
    js = os.path.join(out_dir, f"{NAME}.json")
    md = os.path.join(out_dir, f"{NAME}-table.md")
    csv = os.path.join(out_dir, f"{NAME}.csv")
    progress("plotting")
    plot(results, png)
    write_json([_common.reproducible(r) for r in results], js)
    atomic_write_text(md, order_study.table_markdown(results))
    write_csv(["family", "model", "alpha", "E_T", "E_f", "E_sup", "status"],
              [[res["family"], r["model"], r["alpha"], r["E_T"], r["E_f"], r["E_sup"], r["status"]]
               for res in results for r in res["rows"]], csv)
    return [png, js, md, csv]
