"""Moment positivity (arXiv 2602.09101, preset `heredia2026-positivity`).

rosenbrock1d(c=1.5), theta0 = -1.5, betas .5/.2 (b2 < 1/2: the second-order kernel changes sign),
alpha = 1e-2, 270 epochs: v of discrete Adam, the first-order flow and the second-order model
(u0 in {0, 1}) and the sufficient-condition counter. Library: :func:`analysis.positivity.study`.
"""
from __future__ import annotations

import matplotlib

from analysis.positivity import figure, json_lanes, study

matplotlib.use("Agg")

from core.output import save_figure, write_json  # noqa: E402
from paper_figs import _common  # noqa: E402
from runner import presets  # noqa: E402

NAME = "positivity"
PRESET = "heredia2026-positivity"
TITLE = "moment positivity, c = 1.5, b1 = 0.5, b2 = 0.2, alpha = 1e-2"
QUICK_STEPS = 60


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:

    d = presets.command_defaults(PRESET, "positivity")
    files = []
    for s in _common.schemes(scheme, name=NAME):
        problem = _common.problem(PRESET, "positivity", s)
        progress(f"v and the positivity counter ({s})")
        results = study(problem, steps=QUICK_STEPS if quick else d["steps"])
        progress("plotting")
        png, js = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "json")
        fig = figure(results)
        fig.suptitle(f"{TITLE} ({s} scheme)", fontsize=10)
        save_figure(fig, png)
        data = json_lanes(results)
        data.update(preset=PRESET, scheme=s)
        write_json(data, js)
        files += [png, js]
    return files
