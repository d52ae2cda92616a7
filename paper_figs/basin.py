"""Basin selection vs alpha (arXiv 2602.09101, preset `heredia2026-basin`).

rosenbrock1d(c=4), theta0 = -1.5, betas .99/.999, alpha from 1e-4 to 1e-1 with the table's epochs:
final theta of discrete Adam and of the second-order model (u0 = 1) against alpha, classified by
basin (local minimum near -0.854 or global minimum 1). Schemes: exact (basin.json) and/or the
published scheme (basin-paper.json, final row s = (epochs-1) alpha); with both, basin-both.png.
Library: :func:`analysis.basin.basin_study`.
"""
from __future__ import annotations

from analysis.basin import basin_study, plot_basin
from core.output import write_json
from paper_figs import _common
from runner import presets

NAME = "basin"
SCHEMES = ("exact", "paper")
PRESET = "heredia2026-basin"
TITLE = "final state vs alpha, c = 4, theta0 = -1.5: discrete Adam vs second-order model u0 = 1"


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:

    d = presets.command_defaults(PRESET, "basin")
    alpha, epochs = d["alpha"], d["epochs"]
    if quick:
        alpha, epochs = [1e-2, 1e-1], [150, 100]
    files, results = [], {}
    for s in _common.schemes(scheme, supported=SCHEMES, name=NAME):
        progress(f"final states ({s})")
        result = basin_study(landscape=d["landscape"], models=d["models"], theta0=d["theta0"],
                             alpha=alpha, epochs=epochs, beta1=d["beta1"], beta2=d["beta2"],
                             eps=d["eps"], u0=d["u0"], scheme=s)
        result["preset"] = PRESET
        progress("plotting")
        png, js = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "json")
        plot_basin(result, png)
        write_json(result, js)
        files += [png, js]
        results[s] = result
    if len(results) == 2:
        for r in results.values():
            for row in r["rows"]:
                row["final"] = (row["final_theta"] or [None])[0]
        png = _common.path(out_dir, NAME, "both", "png")
        _common.plot_compare(results, png, key="final", group=("model", "u0"), logy=False,
                             title=f"{TITLE}: final theta, exact (solid) vs paper scheme (dashed)")
        for r in results.values():
            for row in r["rows"]:
                row.pop("final", None)
        files.append(png)
    return files
