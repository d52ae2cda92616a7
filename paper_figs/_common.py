"""Shared helpers of the figure modules: presets as study inputs, schemes, output files."""
from __future__ import annotations

import math
import os

from analysis.cli_options import Problem, check_scheme
from core.errors import ConfigError
from core.output import save_figure
from runner import presets


def schemes(scheme: str, *, supported: tuple[str, ...] = ("exact", "paper"), name: str = ""
            ) -> list[str]:
    """The flow schemes to draw for ``--scheme`` (exact, paper or both); ConfigError when one is
    unknown, not provided by the library yet, or not honoured by this figure's study."""

    if scheme not in ("exact", "paper", "both"):
        raise ConfigError(f"unknown scheme {scheme!r} (choose from: exact, paper, both)")
    out = ["exact", "paper"] if scheme == "both" else [scheme]
    for s in out:
        check_scheme(s)
        if s not in supported:
            raise ConfigError(f"{s} scheme not available for figure {name!r}")
    return out


def suffix(scheme: str) -> str:
    return "" if scheme == "exact" else f"-{scheme}"


def path(out_dir: str, name: str, scheme: str, ext: str) -> str:
    return os.path.join(out_dir, f"{name}{suffix(scheme)}.{ext}")


def problem(preset: str, command: str, scheme: str = "exact", **override):
    """An :class:`analysis.cli_options.Problem` from preset defaults of ``command``."""

    d = presets.command_defaults(preset, command)
    d.update(override)
    return Problem(landscape=d["landscape"], theta0=d["theta0"], alpha=list(d["alpha"]),
                   models=list(d["models"]), beta1=d["beta1"], beta2=d["beta2"], eps=d["eps"],
                   u0=list(d.get("u0", [0.0])), scheme=scheme,
                   quadrature=d.get("quadrature", "exact"))


#: result keys that change from run to run (wall times); figure data leave them out so that a
#: figure set is reproducible byte for byte (``adamflow figs --resume`` relies on it)
VOLATILE = ("runtime_s",)


def reproducible(result: dict) -> dict:
    """``result`` without its :data:`VOLATILE` keys."""
    return {k: v for k, v in result.items() if k not in VOLATILE}


def plot_compare(results: dict, png: str, *, key: str, group: tuple[str, ...], title: str,
                 logy: bool = True) -> None:
    """``results[scheme]["rows"][key]`` vs alpha (log x), one line per ``group`` value and scheme:
    exact solid, paper dashed, the same colour per group."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = []
    for res in results.values():
        for r in res["rows"]:
            g = tuple(r.get(k) for k in group)
            if g not in keys:
                keys.append(g)
    for ci, g in enumerate(keys):
        for s, res in results.items():
            sel = sorted((r for r in res["rows"] if tuple(r.get(k) for k in group) == g),
                         key=lambda r: r["alpha"])
            pts = [(r["alpha"], r[key]) for r in sel
                   if r.get(key) is not None and math.isfinite(r[key]) and (not logy or r[key] > 0)]
            if not pts:
                continue
            lab = " ".join(f"{k}={v:g}" if isinstance(v, float) else str(v)
                           for k, v in zip(group, g) if v is not None)
            ax.plot([x for x, _ in pts], [y for _, y in pts], "o-" if s == "exact" else "s--",
                    color=colors[ci % len(colors)], label=f"{lab} ({s})", lw=1.3, ms=4)
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel(key)
    ax.set_title(title, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, png)


def draw_lane(ax, ln: dict, color, styles: dict, limit: int | None = None) -> None:
    """One lane of a first-paper figure: its computed curves (``ln["curves"][key]`` for each key of
    ``styles``, against k) and the published traces as markers (o nonlocal, x discrete, every
    ~25th point; the first ``limit`` points when given)."""
    for key, st in styles.items():
        ys = ln["curves"].get(key)
        if ys is not None:
            ax.plot(range(len(ys)), ys, color=color, label=f"{ln['label']} {key}", **st)
    for key, mk in (("published_nonlocal", "o"), ("published_discrete", "x")):
        tr = ln["curves"].get(key)
        if tr is None:
            continue
        xs, ys = tr
        if limit is not None:
            xs, ys = xs[:limit], ys[:limit]
        n = max(1, len(xs) // 25)
        ax.plot(xs[::n], ys[::n], mk, color=color, ms=5, mfc="none" if mk == "o" else color,
                label=f"{ln['label']} {key.replace('_', ' ')}")


def row_legend(ax, lanes: list[tuple[str, str]], styles: dict) -> None:
    """The shared legend of a row of :func:`draw_lane` panels, outside ``ax`` on the right: one
    entry per lane (its colour) and one per curve kind (its line style, and the published
    markers)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=2.0) for _, c in lanes]
    labels = [lab for lab, _ in lanes]
    for key, st in styles.items():
        handles.append(Line2D([], [], color="0.3", **st))
        labels.append(key)
    handles += [Line2D([], [], ls="", marker="o", mfc="none", color="0.3"),
                Line2D([], [], ls="", marker="x", color="0.3")]
    labels += ["published nonlocal", "published discrete"]
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0)


def curve_rows(res: dict, lead: tuple[str, ...]) -> list[list]:
    """Long-format CSV rows (lead fields of the lane, lane label, curve, k, t, value) of the
    computed curves (indexed by k) and the published traces ((k list, value list))."""
    rows = []
    for ln in res["lanes"]:
        for key, c in ln["curves"].items():
            pts = zip(*c) if key.startswith("published") else enumerate(c)
            for k, y in pts:
                rows.append([ln[f] for f in lead] + [ln["label"], key, f"{k:.12g}",
                                                     f"{k * ln['alpha']:.12g}", repr(float(y))])
    return rows
