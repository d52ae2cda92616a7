"""Which order does a continuous model capture? Measured vs predicted error slopes of the
modified-equation flows (SPEC §3.5, :mod:`flows.modified`), per optimizer family.

For each family (GD, heavy ball, Adam at given betas) an alpha-refinement study
(:func:`analysis.refine.refine`, clean protocol, fixed horizon) runs the discrete method and its
flows over a geometric grid of step sizes. Per flow and error metric (E_T, E_sup):

* the predicted slope (:data:`flows.modified.PREDICTED_SLOPES`; adam-flow1/adam-flow2, the nonlocal
  flows, are first order at fixed betas: SPEC §3.1);
* the local slopes log(E_{j+1}/E_j)/log(alpha_{j+1}/alpha_j) between neighbouring step sizes;
* the asymptotic range: the longest run of neighbouring step sizes, starting at the smallest, whose
  local slopes lie within ``tol`` of the prediction (None when the smallest pair already misses it:
  the asymptotic regime is not reached on the grid);
* the measured slope: the least-squares fit with its 95% interval over the asymptotic range (over
  the whole grid when there is none), and the fit over the whole grid beside it.

Library: :func:`family_study` (one family), :func:`order_study` (every family of
:data:`FAMILIES`), :func:`table_rows` (the README table). The figure: :mod:`paper_figs.modified`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from analysis.cli_options import Problem
from analysis.refine import refine
from analysis.slopes import fit_loglog
from flows.modified import PREDICTED_SLOPES

#: the nonlocal Adam flows at fixed betas are first-order models of Adam (SPEC §3.1)
NONLOCAL_SLOPES = {"adam-flow1": (1.0, 1.0), "adam-flow2": (1.0, 1.0)}
METRICS = ("E_T", "E_sup")
#: a local slope within this of the prediction counts as asymptotic
TOL = 0.15


def predicted(model: str) -> tuple[float, float]:
    """(E_T slope, E_sup slope) predicted for ``model``."""
    return {**PREDICTED_SLOPES, **NONLOCAL_SLOPES}[model]


@dataclass(frozen=True)
class Family:
    """One refinement study: a discrete method, its flows and the problem they run on."""

    key: str                       # label in tables and files
    reference: str                 # the discrete method
    models: tuple[str, ...]
    title: str
    alphas: tuple[float, ...]
    horizon: float
    landscape: str = "rosenbrock1d(c=1.5)"
    theta0: float = -1.5
    beta1: float = 0.9             # heavy ball: the momentum mu (its fallback)
    beta2: float = 0.999
    #: the metric the figure draws (the other is in the table)
    metric: str = "E_sup"
    rtol: float = 1e-12
    atol: float = 1e-15
    note: str = ""
    extra: dict = field(default_factory=dict)


def _grid(lo: float, n: int) -> tuple[float, ...]:
    return tuple(lo * 2.0 ** j for j in range(n))


#: the families of ``adamflow figs --only modified`` (rosenbrock1d(c=1.5) from theta0 = -1.5)
FAMILIES: tuple[Family, ...] = (
    Family("gd", "gd", ("gd-flow", "gd-flow2", "gd-flow3", "gd-principal-flow"),
           "GD, T = 1", _grid(2.5e-4, 8), 1.0),
    Family("heavyball", "heavyball", ("heavyball-flow", "heavyball-reduced-flow"),
           "heavy ball, mu = 0.5, T = 0.2", _grid(6.25e-5, 8), 0.2, beta1=0.5, metric="E_T",
           note="E_sup has slope 1: the initial layer (module flows.modified)"),
    Family("heavyball-0.9", "heavyball", ("heavyball-flow", "heavyball-reduced-flow"),
           "heavy ball, mu = 0.9, T = 0.05", _grid(1.5625e-5, 8), 0.05, beta1=0.9, metric="E_T",
           note="alpha |g0| mu/(1-mu)^2 (the initial shift) must be small"),
    Family("adam", "adam", ("adam-sign-flow", "adam-modified-flow", "adam-flow1"),
           "Adam, betas .5/.9, T = 1", _grid(3.125e-5, 8), 1.0, beta1=0.5, beta2=0.9),
    Family("adam-paper-betas", "adam", ("adam-sign-flow", "adam-modified-flow", "adam-flow1"),
           "Adam, betas .9/.999, T = 1", _grid(3.125e-5, 8), 1.0, beta1=0.9, beta2=0.999,
           note="expansion parameter alpha/(1-beta2): asymptotic only for alpha << 1e-3"),
)


def local_slopes(alphas: list[float], errors: list[float | None]) -> list[float | None]:
    """Slopes between neighbouring (alpha, E) points (None where an error is missing or 0)."""
    out = []
    for (a0, e0), (a1, e1) in zip(zip(alphas, errors), zip(alphas[1:], errors[1:])):
        ok = all(e is not None and math.isfinite(e) and e > 0 for e in (e0, e1))
        out.append(math.log(e1 / e0) / math.log(a1 / a0) if ok else None)
    return out


def asymptotic_range(alphas: list[float], errors: list[float | None], slope: float,
                     tol: float = TOL) -> tuple[float, float] | None:
    """(alpha_lo, alpha_hi): the longest run of neighbours from the smallest alpha up whose local
    slopes are within ``tol`` of ``slope``; None when the smallest pair is already outside."""
    loc = local_slopes(alphas, errors)
    n = 0
    while n < len(loc) and loc[n] is not None and abs(loc[n] - slope) <= tol:
        n += 1
    return None if n == 0 else (alphas[0], alphas[n])


def family_study(fam: Family, *, engine: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Run one family; returns the refinement result with ``orders``: one record per (model,
    metric) with predicted, local slopes, asymptotic range, measured slope and CI, whole-grid fit."""
    problem = Problem(landscape=fam.landscape, theta0=[[fam.theta0]], alpha=list(fam.alphas),
                      models=list(fam.models), beta1=fam.beta1, beta2=fam.beta2, eps=1e-8,
                      u0=[0.0], rtol=fam.rtol, atol=fam.atol, engine=engine)
    res = refine(problem, protocol="clean", horizon=fam.horizon, reference=fam.reference,
                 progress=progress)
    orders = []
    for model in fam.models:
        rows = sorted((r for r in res["rows"] if r["model"] == model), key=lambda r: r["alpha"])
        al = [r["alpha"] for r in rows]
        for j, metric in enumerate(METRICS):
            errs = [r[metric] for r in rows]
            pred = predicted(model)[j]
            rng = asymptotic_range(al, errs, pred)
            sel = [i for i, a in enumerate(al) if rng is not None and rng[0] <= a <= rng[1]]
            fit = fit_loglog([al[i] for i in sel], [errs[i] for i in sel]) if len(sel) >= 2 \
                else None
            whole = fit_loglog(al, errs)
            orders.append({"model": model, "metric": metric, "predicted": pred,
                           "local": local_slopes(al, errs), "range": rng,
                           "p": (fit or whole)["p"], "ci": (fit or whole)["ci"],
                           "p_whole": whole["p"], "ci_whole": whole["ci"],
                           "agrees": rng is not None and len(sel) >= 3})
    res.update(family=fam.key, title=fam.title, metric=fam.metric, note=fam.note, orders=orders)
    return res


def order_study(families: tuple[Family, ...] = FAMILIES, **kw) -> list[dict[str, Any]]:
    return [family_study(f, **kw) for f in families]


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (family, flow, metric): the README table."""
    out = []
    for res in results:
        for o in res["orders"]:
            out.append({"family": res["family"], "setting": res["title"], "flow": o["model"],
                        "metric": o["metric"], "predicted": o["predicted"], "measured": o["p"],
                        "ci": o["ci"], "range": o["range"], "whole_grid": o["p_whole"]})
    return out


def table_markdown(results: list[dict[str, Any]]) -> str:
    """The table as Markdown (generated: the README copies it from a run)."""
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    lines = ["| setting | flow | metric | predicted | measured [95% CI] | alpha range (asymptotic) "
             "| whole grid |", "|---|---|---|---|---|---|---|"]
    for r in table_rows(results):
        ci = "" if r["ci"] is None else f" [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
        rng = "not reached" if r["range"] is None else f"{r['range'][0]:.3g} - {r['range'][1]:.3g}"
        lines.append(f"| {r['setting']} | {r['flow']} | {r['metric']} | {r['predicted']:g} | "
                     f"{f(r['measured'])}{ci} | {rng} | {f(r['whole_grid'])} |")
    return "\n".join(lines) + "\n"
