"""Velocity independence (arXiv 2602.09101, preset `heredia2026-velocity`).

rosenbrock1d(c=1.5), theta0 = -1.5, betas .99/.999, alphas and epochs as refine, T = 10: for the
second-order model, sup over [delta, T] (delta = 1) of |theta_{u0} - theta_{u0=0}| and of the f
difference for u0 in {-1, 1, 2}, against alpha. Schemes: exact (velocity.json) and/or the published
scheme (velocity-paper.json); with both, velocity-both.png overlays them.
Library: :func:`analysis.velocity.velocity`.
"""
from __future__ import annotations

from analysis.velocity import plot_velocity, velocity
from core.output import write_json
from paper_figs import _common
from runner import presets

NAME = "velocity"
SCHEMES = ("exact", "paper")
PRESET = "heredia2026-velocity"
TITLE = "velocity independence of the second-order model, c = 1.5, delta = 1, T = 10"


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:

    d = presets.command_defaults(PRESET, "velocity")
    alpha, epochs = d["alpha"], d["epochs"]
    if quick:
        alpha, epochs = [1e-2, 5e-2], [201, 41]
    files, results = [], {}
    for s in _common.schemes(scheme, supported=SCHEMES, name=NAME):
        problem = _common.problem(PRESET, "velocity", s, alpha=alpha)
        progress(f"sup differences vs alpha ({s})")
        result = velocity(problem, delta=d["delta"], horizon=d["horizon"], epochs=epochs)
        result.update(preset=PRESET, scheme=s)
        progress("plotting")
        png, js = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "json")
        plot_velocity(result, png)
        write_json(_common.reproducible(result), js)
        files += [png, js]
        results[s] = result
    if len(results) == 2:
        png = _common.path(out_dir, NAME, "both", "png")
        _common.plot_compare(results, png, key="sup_theta", group=("model", "u0"),
                             title=f"{TITLE}: sup |theta_u0 - theta_0|, exact (solid) vs paper "
                                   "scheme (dashed)")
        files.append(png)
    return files
