"""Log-log least-squares slope fits with confidence intervals (used by the refinement studies).

:func:`fit_loglog` fits log E = p log alpha + c by ordinary least squares over the points with finite,
positive E and alpha, and gives a two-sided confidence interval for p from the t-distribution with
N - 2 degrees of freedom on the slope's standard error (None when fewer than 3 points).
"""
from __future__ import annotations

import math
from typing import Sequence


def t_quantile(q: float, dof: int) -> float:
    """The q-quantile of Student's t with ``dof`` degrees of freedom (``scipy.special.stdtrit``,
    the function behind ``scipy.stats.t.ppf``, without importing scipy.stats: 0.5 s faster)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, q))


def fit_loglog(x: Sequence[float], y: Sequence[float], level: float = 0.95) -> dict:
    """Least-squares fit of log y against log x.

    Returns ``{"p", "intercept", "se", "ci", "n"}``: slope p, intercept of log y, standard error of
    p (None with fewer than 3 points), ``ci = [lo, hi]`` at confidence ``level`` (None with fewer than
    3 points) and the number of points used. Points with non-finite or non-positive x or y are
    skipped; with fewer than 2 usable points (or all x equal) p is None.
    """
    pts = [(math.log(a), math.log(b)) for a, b in zip(x, y)
           if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
           and a > 0 and b > 0]
    n = len(pts)
    out = {"p": None, "intercept": None, "se": None, "ci": None, "n": n}
    if n < 2:
        return out
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx <= 0:
        return out
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pts)
    slope = sxy / sxx
    icpt = my - slope * mx
    out["p"], out["intercept"] = slope, icpt
    if n >= 3:
        rss = sum((p[1] - icpt - slope * p[0]) ** 2 for p in pts)
        se = math.sqrt(rss / (n - 2) / sxx)
        half = t_quantile(0.5 + level / 2.0, n - 2) * se
        out["se"] = se
        out["ci"] = [slope - half, slope + half]
    return out


def fit_groups(rows: list[dict], slopes: dict[str, str], ci: tuple[str, str],
               more_ci: dict[str, str] | None = None) -> list[dict]:
    """Log-log slopes against alpha per (model, u0) group of study rows.

    ``slopes`` maps output key -> row metric (e.g. ``{"p_T": "E_T"}``); ``ci`` = (output key,
    metric) whose 95% confidence interval is reported; ``n`` counts the points of that fit.
    ``more_ci`` (output key -> metric): further intervals, e.g. ``{"ci_sup": "E_sup"}``.
    """
    keys: list[tuple] = []
    for r in rows:
        if (r["model"], r["u0"]) not in keys:
            keys.append((r["model"], r["u0"]))
    out = []
    for model, u0 in keys:
        sel = sorted((r for r in rows if r["model"] == model and r["u0"] == u0),
                     key=lambda r: r["alpha"])
        al = [r["alpha"] for r in sel]
        rec = {"model": model, "u0": u0}
        for key, metric in slopes.items():
            rec[key] = fit_loglog(al, [r[metric] for r in sel])["p"]
        main = fit_loglog(al, [r[ci[1]] for r in sel])
        rec[ci[0]] = main["ci"]
        rec["n"] = main["n"]
        for key, metric in (more_ci or {}).items():
            rec[key] = fit_loglog(al, [r[metric] for r in sel])["ci"]
        out.append(rec)
    return out
