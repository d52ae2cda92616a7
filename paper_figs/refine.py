"""alpha-refinement (arXiv 2602.09101, preset `heredia2026-refine`).

rosenbrock1d(c=1.5), theta0 = -1.5, betas .99/.999, alpha in {5e-4, 1e-3, 5e-3, 1e-2, 5e-2} with the
table's epochs, T = 10: errors E_T, E_f, E_sup of the first-order flow and of the second-order model
(u0 in {-1, 0, 1, 2}) against discrete Adam, log-log slopes; paper error protocol (SPEC §4).
Schemes: the exact flows (refine.json) and/or the published scheme (refine-paper.json, memories by
the published 1000-node Gauss-Legendre quadrature, the preset's ``--quadrature gl1000``; beside it
refine-paper-linear.json, the same scheme with the exact piecewise-linear convolutions); with both,
refine-both.png draws E_T vs alpha of both schemes in one figure.
Library: :func:`analysis.refine.refine`.
"""
from __future__ import annotations

from analysis.refine import plot_refine, refine
from core.output import write_json
from paper_figs import _common
from runner import presets

NAME = "refine"
SCHEMES = ("exact", "paper")
PRESET = "heredia2026-refine"
TITLE = "alpha-refinement, c = 1.5, theta0 = -1.5, T = 10 (paper protocol)"
PROTOCOL = "paper"
#: file suffix of the paper scheme with exact (piecewise-linear) convolutions, beside the
#: preset's published quadrature (refine-paper.json)
LINEAR = "paper-linear"


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:

    d = presets.command_defaults(PRESET, "refine")
    alpha, epochs = d["alpha"], d["epochs"]
    if quick:
        alpha, epochs = [1e-2, 5e-2], [101, 41]
    files, results = [], {}
    for s in _common.schemes(scheme, supported=SCHEMES, name=NAME):
        problem = _common.problem(PRESET, "refine", s, alpha=alpha)
        progress(f"errors vs alpha ({s}" + (f", quadrature {problem.quadrature})"
                                            if s == "paper" else ")"))
        result = refine(problem, protocol=PROTOCOL, epochs=epochs, horizon=d["horizon"])
        result["preset"] = PRESET
        progress("plotting")
        png, js = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "json")
        plot_refine(result, png)
        write_json(_common.reproducible(result), js)
        files += [png, js]
        results[s] = result
        if s == "paper" and problem.quadrature != "exact":
            # the same scheme with the exact piecewise-linear convolutions, for the report's
            # quadrature column (what the published quadrature changes)
            progress("errors vs alpha (paper, quadrature exact)")
            problem.quadrature = "exact"
            lin = refine(problem, protocol=PROTOCOL, epochs=epochs, horizon=d["horizon"])
            lin["preset"] = PRESET
            js = _common.path(out_dir, NAME, LINEAR, "json")
            write_json(_common.reproducible(lin), js)
            files.append(js)
    if len(results) == 2:
        png = _common.path(out_dir, NAME, "both", "png")
        _common.plot_compare(results, png, key="E_T", group=("model", "u0"),
                             title=f"{TITLE}: E_T, exact (solid) vs paper scheme (dashed)")
        files.append(png)
    return files
