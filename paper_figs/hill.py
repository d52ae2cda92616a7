"""The Hill-ADAM seed experiments (``adamflow figs --only hill``; studies in
:mod:`analysis.hill_study`).

Files:

* ``hill-sextic.png`` / ``.json`` / ``.csv``: the sextic from 27 starts x0 = -0.6 + 2.6 i/26,
  15 000 steps, lr 0.1 and 0.01: Adam vs Hill-ADAM original vs robust: fraction of lanes whose best
  state is in the global basin (left of the hill -0.699511), best loss per start;
* ``hill-delta.png`` / ``.json`` / ``.csv``: delta in {1e-5, 1e-4, 1e-3, 1e-2}: global-basin
  fraction and plateau toggles per lane;
* ``hill-gamma.png`` / ``.json`` / ``.csv``: gamma in {100, 500, 1000} on ``cubic`` (unbounded
  below as x -> -inf): dead-end excursions, best loss, fraction of lanes that got past the hill,
  against Adam;
* ``hill-run.png`` / ``.json`` / ``.csv``: one run per variant from x0 = 1 (lr 0.1): x(k) and f(k)
  with the ascents shaded and the resets marked;
* ``hill-results.md``: the results tables (generated from the JSON above).

``quick`` runs 7 starts (3 on the cubic) for 3000 steps and a 600-step drawn run.
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis import hill_study  # noqa: E402
from core.output import atomic_write_text, save_figure, write_csv, write_json  # noqa: E402

NAME = "hill"
SCHEMES = ("exact",)
TITLE = "Hill-ADAM seed experiments: sextic starts, delta sweep, gamma dead-end sweep, one run"

LABELS = {"adam": "Adam", "original": "Hill-ADAM original", "robust": "Hill-ADAM robust"}
COLORS = {"adam": "C0", "original": "C3", "robust": "C2"}
MARKERS = {"adam": "o", "original": "s", "robust": "^"}
LR_STYLES = {0.1: "-", 0.01: "--"}


def _fmt(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _sextic_figure(res: dict, png: str) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    xs = [-1.45 + 3.5 * i / 700 for i in range(701)]
    ax.plot(xs, [x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x for x in xs], color="k", lw=1.2)
    ax.axvline(res["hill"], color="0.5", ls=":", lw=1)
    ax.axvspan(-1.45, res["hill"], color="#c7e9c0", lw=0, zorder=0, label="global basin")
    ax.plot(res["x0"], [-0.25] * len(res["x0"]), "|", color="C1", ms=10, label="starts x0")
    ax.set_ylim(-0.4, 3.0)
    ax.set_xlim(-1.45, 2.05)
    ax.set_xlabel("x")
    ax.set_ylabel("f(x) = x^6 + x^5 + 3x^3 + 4x^2 + x")
    ax.set_title("the sextic: global min -1.1848 (f = -0.1278), hill -0.6995, local min -0.1509",
                 fontsize=9)
    ax.legend(loc="upper center", fontsize=8)
    ax = axes[0, 1]
    lrs = res["lrs"]
    width = 0.25
    for j, m in enumerate(hill_study.METHODS):
        vals = [next(s["global_fraction"] for s in res["summary"]
                     if s["method"] == m and s["lr"] == lr) for lr in lrs]
        pos = [i + (j - 1) * width for i in range(len(lrs))]
        ax.bar(pos, vals, width, color=COLORS[m], label=LABELS[m])
        for p, v in zip(pos, vals):
            ax.text(p, v + 0.02, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(lrs)))
    ax.set_xticklabels([f"lr = {lr:g}" for lr in lrs])
    ax.set_ylim(0, 1.3)
    ax.set_ylabel("fraction of starts with best state in the global basin")
    ax.set_title(f"{len(res['x0'])} starts, {res['K']} steps, delta {res['delta']:g}, "
                 f"gamma {res['gamma']:g}", fontsize=10)
    ax.legend(loc="upper center", fontsize=8, ncol=3)
    for ax, lr in zip(axes[1], lrs):
        for m in hill_study.METHODS:
            rs = [r for r in res["rows"] if r["method"] == m and r["lr"] == lr]
            ax.plot([r["x0"] for r in rs], [r["best_f"] for r in rs], MARKERS[m], color=COLORS[m],
                    label=LABELS[m], ms=6, mfc="none" if m == "adam" else COLORS[m], alpha=0.85)
        ax.axhline(res["f_min"], color="0.5", ls=":", lw=1)
        ax.set_xlabel("start x0")
        ax.set_ylabel("best loss found")
        ax.set_title(f"lr = {lr:g} (dotted: global minimum value)", fontsize=10)
        ax.set_ylim(-0.14, -0.035)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def _delta_figure(res: dict, png: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for m in ("original", "robust"):
        for lr in res["lrs"]:
            ss = sorted((s for s in res["summary"] if s["method"] == m and s["lr"] == lr),
                        key=lambda s: s["delta"])
            d = [s["delta"] for s in ss]
            kw = dict(color=COLORS[m], ls=LR_STYLES.get(lr, "-"), marker=MARKERS[m],
                      label=f"{LABELS[m]}, lr {lr:g}")
            axes[0].semilogx(d, [s["global_fraction"] for s in ss], **kw)
            axes[1].loglog(d, [max(s["plateau_mean"], 0.1) for s in ss], **kw)
    axes[0].set_ylim(-0.05, 1.1)
    axes[0].set_ylabel("fraction of starts with best state in the global basin")
    axes[1].set_ylabel("plateau toggles per lane (mean; floor 0.1)")
    for ax in axes:
        ax.set_xlabel("delta (plateau threshold, loss units)")
    axes[1].set_ylim(top=max(s["plateau_mean"] for s in res["summary"]) * 30)
    axes[1].legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle(f"delta sweep on the sextic ({len(res['x0'])} starts, {res['K']} steps)",
                 fontsize=11)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def _gamma_figure(res: dict, png: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.0))
    for m in ("original", "robust"):
        for lr in res["lrs"]:
            ss = sorted((s for s in res["summary"] if s["method"] == m and s["lr"] == lr),
                        key=lambda s: s["gamma"])
            g = [s["gamma"] for s in ss]
            kw = dict(color=COLORS[m], ls=LR_STYLES.get(lr, "-"), marker=MARKERS[m],
                      label=f"{LABELS[m]}, lr {lr:g}")
            axes[0].plot(g, [s["dead_end_excursions_mean"] for s in ss], **kw)
            axes[1].plot(g, [s["best_f_mean"] for s in ss], **kw)
            axes[2].plot(g, [s["escaped_fraction"] for s in ss], **kw)
    for lr in res["lrs"]:
        a = next(s for s in res["summary"] if s["method"] == "adam" and s["lr"] == lr)
        axes[1].axhline(a["best_f_mean"], color=COLORS["adam"], ls=LR_STYLES.get(lr, "-"), lw=1,
                        label=f"Adam, lr {lr:g}")
        axes[2].axhline(a["escaped_fraction"], color=COLORS["adam"], ls=LR_STYLES.get(lr, "-"),
                        lw=1, label=f"Adam, lr {lr:g}")
    axes[0].set_ylabel("dead-end excursions per lane (mean)")
    axes[1].set_yscale("symlog", linthresh=1.0)
    axes[1].set_ylabel("best loss (mean over starts; symlog)")
    axes[2].set_ylim(-0.05, 1.1)
    axes[2].set_ylabel("fraction of lanes past the hill (best < -2)")
    for ax in axes:
        ax.set_xlabel("gamma (original: level; robust: relative to the best loss)")
    low = min(s["best_f_mean"] for s in res["summary"])
    axes[1].set_ylim(min(3.0 * low, -10.0), -0.5)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=8)
    fig.suptitle(f"dead-end sweep on cubic x^3 - 3x ({len(res['x0'])} starts in [-0.5, 3], "
                 f"{res['K']} steps, gamma_low {res['gamma_low']:g})", fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, png)
    plt.close(fig)


def _ascent_spans(sigma: list[float]) -> list[tuple[int, int]]:
    spans, start = [], None
    for k, s in enumerate(sigma):
        if s < 0 and start is None:
            start = k
        elif s >= 0 and start is not None:
            spans.append((start, k))
            start = None
    if start is not None:
        spans.append((start, len(sigma)))
    return spans


def _run_figure(res: dict, png: str) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5), sharex=True)
    marks = {1: ("plateau", "v", "C4"), 2: ("crest", "^", "C1"), 3: ("dead end", "x", "k"),
             4: ("floor", "+", "C5")}
    for col, name in enumerate(("original", "robust")):
        d = res[name]
        for ax in axes[:, col]:
            for a, b in _ascent_spans(d["sigma"]):
                ax.axvspan(a - 0.5, b - 0.5, color="#fdd0a2", lw=0, zorder=0)
            for k, r in zip(d["k"], d["reset"]):
                if r:
                    ax.axvline(k, color="0.6", lw=0.5, zorder=1)
        axes[0, col].plot(res["adam"]["k"], res["adam"]["x"], color=COLORS["adam"], lw=1, ls="--",
                          label="Adam")
        axes[0, col].plot(d["k"], d["x"], color=COLORS[name], lw=1.1, label=LABELS[name])
        axes[0, col].axhline(hill_study.SEXTIC_HILL, color="0.3", ls=":", lw=1)
        for code, (lab, mk, c) in marks.items():
            ks = [k for k, e in zip(d["k"], d["event"]) if e == code]
            if ks:
                axes[0, col].plot(ks, [d["x"][k] for k in ks], mk, color=c, ms=5, label=lab)
        lo, hi = min(d["x"] + res["adam"]["x"]), max(d["x"] + res["adam"]["x"])
        axes[0, col].set_ylim(lo - 0.1 * (hi - lo), hi + 0.45 * (hi - lo))
        axes[0, col].set_ylabel("x_k")
        axes[0, col].set_title(f"{LABELS[name]}: x0 = {res['x0']:g}, lr {res['lr']:g} (orange: "
                               f"ascent, grey lines: resets, dotted: hill)", fontsize=9)
        axes[0, col].legend(loc="upper left", fontsize=7, ncol=3)
        axes[1, col].plot(d["k"], d["f"], color=COLORS[name], lw=1.0, label="f(x_k)")
        axes[1, col].plot(d["k"], d["best_f"], color="k", lw=1.0, ls="-.", label="best loss so far")
        axes[1, col].set_yscale("symlog", linthresh=0.1)
        axes[1, col].set_ylim(top=max(d["f"]) * 30)
        axes[1, col].set_ylabel("loss (symlog)")
        axes[1, col].set_xlabel("step k")
        axes[1, col].legend(loc="upper left", fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)


def results_markdown(sx: dict, dl: dict, gm: dict, run: dict) -> str:
    """The results tables of the four studies (markdown)."""
    lines = ["# Hill-ADAM results", "",
             "Generated by `adamflow figs --only hill` (studies in `analysis/hill_study.py`).", "",
             f"## Sextic, {len(sx['x0'])} starts x0 = -0.6 + 2.6 i/{len(sx['x0']) - 1}, "
             f"{sx['K']} steps, delta {sx['delta']:g}, gamma {sx['gamma']:g}", "",
             "Global basin: best state left of the hill x = -0.699511. Steps: first k with "
             "x_k < hill (median / max over the lanes that got there).", "",
             "| method | lr | in global basin | best loss mean | worst lane's best | steps to "
             "global basin (median / max) | plateau toggles / lane | dead-end excursions / lane |",
             "|---|---|---|---|---|---|---|---|"]
    for s in sx["summary"]:
        lines.append(f"| {s['method']} | {s['lr']:g} | {s['global_count']}/{s['lanes']} "
                     f"({s['global_fraction']:.2f}) | {s['best_f_mean']:.5f} | "
                     f"{s['best_f_max']:.5f} | {_fmt(s['steps_median'])} / {_fmt(s['steps_max'])} | "
                     f"{s['plateau_mean']:.1f} | {s['dead_end_excursions_mean']:.1f} |")
    lines += ["", "Claim robust >= original >= Adam (global-basin counts): " + "; ".join(
        f"lr {lr:g}: {c['robust']} >= {c['original']} >= {c['adam']} -> "
        f"{'holds' if c['holds'] else 'FAILS'}" for lr, c in sx["claim"].items()), ""]
    lines += [f"## Delta sweep (sextic, same starts, {dl['K']} steps)", "",
              "| variant | lr | delta | in global basin | plateau toggles / lane | crest ends / lane "
              "| best loss mean | worst lane's best |", "|---|---|---|---|---|---|---|---|"]
    for s in sorted(dl["summary"], key=lambda s: (s["method"], -s["lr"], s["delta"])):
        lines.append(f"| {s['method']} | {s['lr']:g} | {s['delta']:g} | "
                     f"{s['global_fraction']:.2f} | {s['plateau_mean']:.1f} | "
                     f"{s['crest_mean']:.1f} | {s['best_f_mean']:.5f} | {s['best_f_max']:.5f} |")
    lines += ["", f"## Dead-end sweep (cubic x^3 - 3x, {len(gm['x0'])} starts in [-0.5, 3], "
              f"{gm['K']} steps, gamma_low {gm['gamma_low']:g})", "",
              "Original: dead end when L > gamma. Robust: when L > best + gamma max(1, |best|). "
              "Past the hill: best loss < -2 (the local minimum).", "",
              "| method | lr | gamma | dead-end excursions / lane | dead-end steps / lane | "
              "floor excursions / lane | past the hill | best loss mean | worst lane's best |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(gm["summary"], key=lambda s: (s["method"], -s["lr"], s["gamma"] or 0)):
        lines.append(f"| {s['method']} | {s['lr']:g} | {_fmt(s['gamma'])} | "
                     f"{s['dead_end_excursions_mean']:.1f} | {s['dead_end_steps_mean']:.1f} | "
                     f"{s['floor_excursions_mean']:.1f} | {s['escaped_fraction']:.2f} | "
                     f"{s['best_f_mean']:.1f} | {s['best_f_max']:.1f} |")
    lines += ["", f"## One run (sextic, x0 = {run['x0']:g}, lr {run['lr']:g}, {run['K']} steps)",
              "", "| method | plateau | crest | dead end | floor | resets | best loss | "
              "first step in the global basin |", "|---|---|---|---|---|---|---|---|"]
    for name in ("original", "robust"):
        d = run[name]
        cnt = {c: sum(1 for e in d["event"] if e == c) for c in (1, 2, 3, 4)}
        first = next((k for k, x in zip(d["k"], d["x"]) if x < hill_study.SEXTIC_HILL), None)
        lines.append(f"| {name} | {cnt[1]} | {cnt[2]} | {cnt[3]} | {cnt[4]} | {sum(d['reset'])} | "
                     f"{d['best_f'][-1]:.5f} | {_fmt(first)} |")
    a = run["adam"]
    lines.append(f"| adam | - | - | - | - | - | {min(a['f']):.5f} | "
                 f"{_fmt(next((k for k, x in zip(a['k'], a['x']) if x < hill_study.SEXTIC_HILL), None))} |")
    return "\n".join(lines) + "\n"


def _rows_csv(res: dict, keys: list[str], path: str) -> None:
    write_csv(keys, [[r.get(k) for k in keys] for r in res["rows"]], path)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    K = 3000 if quick else 15000
    n_sx, n_cu = (7, 3) if quick else (27, 9)
    files: list[str] = []
    common = ["method", "lr", "x0", "status", "best_f", "best_x", "final_x", "final_f", "plateau",
              "crest", "dead end", "floor", "resets", "dead_end_excursions", "dead_end_steps",
              "floor_excursions"]

    progress("sextic starts")
    sx = hill_study.sextic_starts(n_starts=n_sx, K=K)
    base = os.path.join(out_dir, "hill-sextic")
    _sextic_figure(sx, base + ".png")
    write_json(sx, base + ".json")
    _rows_csv(sx, common + ["delta", "gamma", "in_global", "steps_to_global"], base + ".csv")
    files += [base + ".png", base + ".json", base + ".csv"]

    progress("delta sweep")
    dl = hill_study.delta_sweep(n_starts=n_sx, K=K)
    base = os.path.join(out_dir, "hill-delta")
    _delta_figure(dl, base + ".png")
    write_json(dl, base + ".json")
    _rows_csv(dl, common + ["delta", "in_global"], base + ".csv")
    files += [base + ".png", base + ".json", base + ".csv"]

    progress("gamma sweep")
    gm = hill_study.gamma_sweep(n_starts=n_cu, K=K)
    base = os.path.join(out_dir, "hill-gamma")
    _gamma_figure(gm, base + ".png")
    write_json(gm, base + ".json")
    _rows_csv(gm, common + ["gamma", "gamma_low", "escaped"], base + ".csv")
    files += [base + ".png", base + ".json", base + ".csv"]

    progress("one run")
    run = hill_study.one_run(x0=1.0, lr=0.1, K=600 if quick else 1500)
    base = os.path.join(out_dir, "hill-run")
    _run_figure(run, base + ".png")
    write_json(run, base + ".json")
    rows = []
    for name in ("original", "robust"):
        d = run[name]
        for i, k in enumerate(d["k"]):
            rows.append([name, k, d["x"][i], d["f"][i], d["sigma"][i], d["event"][i], d["reset"][i],
                         d["best_f"][i]])
    for i, k in enumerate(run["adam"]["k"]):
        rows.append(["adam", k, run["adam"]["x"][i], run["adam"]["f"][i], 1.0, 0, 0, None])
    write_csv(["method", "k", "x", "f", "sigma", "event", "reset", "best_f"], rows, base + ".csv")
    files += [base + ".png", base + ".json", base + ".csv"]

    path = os.path.join(out_dir, "hill-results.md")
    atomic_write_text(path, results_markdown(sx, dl, gm, run))
    files.append(path)
    return files
