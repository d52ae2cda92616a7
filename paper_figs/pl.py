"""PL bound check (arXiv 2602.09101, preset `heredia2026-pl`).

rosenbrock1d(c=0) (convex, f* = 0), theta0 = -1.5, betas .99/.999, alpha = 1e-3, 6000 epochs:
discrete Adam and the second-order model (u0 = 1); energy monitors and the paper's PL envelope fit
env <= A exp(-omega (s - delta)) + B (SPEC §5). Library: :func:`analysis.lyapunov.study`.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from adamflow import presets  # noqa: E402
from adamflow.output import save_figure, write_json  # noqa: E402
from paper_figs import _common  # noqa: E402

NAME = "pl"
PRESET = "heredia2026-pl"
TITLE = "PL bound check, c = 0, theta0 = -1.5, alpha = 1e-3"
QUICK_STEPS = 2999


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:
    from analysis.lyapunov import figure, json_lanes, study

    d = presets.command_defaults(PRESET, "lyapunov")
    files = []
    for s in _common.schemes(scheme, name=NAME):
        problem = _common.problem(PRESET, "lyapunov", s)
        progress(f"energy and PL fit ({s})")
        results = study(problem, steps=QUICK_STEPS if quick else d["steps"], delta=d["delta"],
                        pl=d.get("pl", True))
        progress("plotting")
        png, js = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "json")
        fig = figure(results)
        fig.suptitle(f"{TITLE} ({s} scheme)", fontsize=10)
        save_figure(fig, png)
        plt.close(fig)
        data = json_lanes(results)
        data.update(preset=PRESET, scheme=s)
        write_json(data, js)
        files += [png, js]
    return files
