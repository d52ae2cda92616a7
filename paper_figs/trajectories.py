"""Trajectories on the bistable Rosenbrock-type landscape (arXiv 2602.09101, preset `trajectories`).

rosenbrock1d(c=4), theta0 = -1.5, alpha = 1e-3, (b1, b2) = (0.99, 0.999), 3000 iterations:
discrete Adam beside the first-order flow and the second-order model with u0 in {-1, 0, 1};
theta, f, m and v against the iteration index k = t/alpha. Schemes: the exact flows
(trajectories.png/.csv) and/or the published scheme (trajectories-paper.*); with both,
trajectories-both.png draws exact and paper curves together and their gap.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.output import save_figure  # noqa: E402
from paper_figs import _common  # noqa: E402
from paper_figs.trajectories_global import _label as label  # noqa: E402,F401
from paper_figs.trajectories_global import _y, plot, write_data  # noqa: E402
from runner import experiment  # noqa: E402

NAME = "trajectories"
SCHEMES = ("exact", "paper")
TITLE = "discrete Adam vs nonlocal flows, c = 4, theta0 = -1.5, alpha = 1e-3"

LANDSCAPE = "rosenbrock1d(c=4)"
THETA0 = -1.5
ALPHA = 1e-3
STEPS = 3000
QUICK_STEPS = 200
BETAS = (0.99, 0.999)
U0S = (-1.0, 0.0, 1.0)


def records(steps: int = STEPS, every: int = 1, scheme: str = "exact") -> list[dict]:
    spec = experiment.RunSpec(
        landscape=LANDSCAPE, models=["adam", "adam-flow1", "adam-flow2"], theta0=[[THETA0]],
        alpha=[ALPHA], beta1=[BETAS[0]], beta2=[BETAS[1]], u0=list(U0S), steps=steps,
        every=every, scheme=scheme)
    return experiment.lane_records(experiment.run(spec))


def plot_both(recs: dict[str, list[dict]], png: str) -> None:
    """theta of every flow lane by both schemes (exact solid, paper dashed) with discrete Adam, and
    |theta_exact - theta_paper| per lane against k."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ref = next(r for r in recs["exact"] if r["model"] == "adam")
    ax.plot([t / ALPHA for t in ref["t"]], [_y(r) for r in ref["theta"]], color="k", lw=2.2,
            label="discrete Adam")
    flows = [r for r in recs["exact"] if r["model"] != "adam"]
    for i, ex in enumerate(flows):
        pa = next(r for r in recs["paper"] if r["model"] == ex["model"] and r["u0"] == ex["u0"])
        c = colors[i % len(colors)]
        k = [t / ALPHA for t in ex["t"]]
        ax.plot(k, [_y(r) for r in ex["theta"]], "-", color=c, lw=1.2, label=f"{label(ex)} exact")
        ax.plot([t / ALPHA for t in pa["t"]], [_y(r) for r in pa["theta"]], "--", color=c, lw=1.2,
                label=f"{label(pa)} paper")
        n = min(len(ex["theta"]), len(pa["theta"]))
        gap = [max(abs(_y(ex["theta"][j]) - _y(pa["theta"][j])), 1e-300) for j in range(1, n)]
        ax2.semilogy(k[1:n], gap, color=c, lw=1.2, label=label(ex))
    ax.set_xlabel("iteration k = t / alpha")
    ax.set_ylabel(r"$\theta$")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax2.set_xlabel("iteration k = t / alpha")
    ax2.set_ylabel(r"$|\theta_{exact}(k\alpha) - \theta_{paper}(k\alpha)|$")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=7)
    fig.suptitle(f"{TITLE}: exact (solid) vs paper scheme (dashed)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False,
         scheme: str = "exact") -> list[str]:
    files, recs = [], {}
    steps = QUICK_STEPS if quick else STEPS
    for s in _common.schemes(scheme, supported=SCHEMES, name=NAME):
        progress(f"running lanes ({s})")
        recs[s] = records(steps, scheme=s)
        progress("plotting")
        png, csv = _common.path(out_dir, NAME, s, "png"), _common.path(out_dir, NAME, s, "csv")
        plot(recs[s], ALPHA, f"{TITLE} ({s} scheme)", png)
        write_data(recs[s], ALPHA, csv)
        files += [png, csv]
    if len(recs) == 2:
        png = _common.path(out_dir, NAME, "both", "png")
        plot_both(recs, png)
        files.append(png)
    return files
