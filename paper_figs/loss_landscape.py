"""The Rosenbrock-type loss for several c (arXiv 2602.09101, Figure 2): f(theta) = (1 - theta)^2 +
c (theta^2 - 1)^2 on [-2, 2] for c in :data:`CS`, with the closed-form critical points marked
(minima filled; hollow the barrier of the bistable c > 2 and the inflection point at c = 2).

Files: ``loss-landscape.png``; ``loss-landscape.csv`` (c, theta, f); ``loss-landscape.json``
(the critical points per c: theta, kind, f).
"""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import landscapes  # noqa: E402
from core.output import save_figure, write_csv, write_json  # noqa: E402

NAME = "loss-landscape"
SCHEMES = ("exact",)
TITLE = "Rosenbrock-type loss f = (1 - theta)^2 + c (theta^2 - 1)^2 for several c"
#: the values of c drawn (c = 1.5: the refinement setting; c = 4: bistable; c = 0: convex)
CS = (0.0, 1.0, 1.5, 2.0, 4.0)
RANGE = (-2.0, 2.0)
#: upper end of the drawn f axis (f(-2) = 45 at c = 4; the data file has the whole curves)
YMAX = 20.0


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    n = 101 if quick else 801
    theta = torch.linspace(*RANGE, n, dtype=torch.float64)
    progress("loss and critical points")
    curves, points = {}, {}
    for c in CS:
        land = landscapes.parse(f"rosenbrock1d(c={c:g})")
        curves[c] = land.value(theta[:, None]).tolist()
        points[c] = [{"theta": p.x, "kind": p.kind, "f": p.f} for p in land.critical_points()]
    progress("plotting")
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(CS):
        col = colors[i % len(colors)]
        ax.plot(theta.tolist(), curves[c], color=col, lw=1.5, label=f"c = {c:g}")
        for p in points[c]:
            ax.plot([p["theta"]], [p["f"]], "o", color=col, ms=6,
                    mfc=col if p["kind"] == "min" else "white")
    ax.set_ylim(-0.5, YMAX)
    ax.set_xlabel("theta")
    ax.set_ylabel(f"f(theta) (clipped at {YMAX:g})")
    ax.set_title(TITLE, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(title="filled: minima; hollow: barrier (c = 2: inflection)", fontsize=8, title_fontsize=8,
              loc="upper center")
    png = os.path.join(out_dir, f"{NAME}.png")
    save_figure(fig, png)
    csv = os.path.join(out_dir, f"{NAME}.csv")
    write_csv(["c", "theta", "f"], [[c, x, y] for c in CS for x, y in zip(theta.tolist(),
                                                                        curves[c])], csv)
    js = os.path.join(out_dir, f"{NAME}.json")
    write_json({"cs": list(CS), "range": list(RANGE), "critical_points":
                {f"{c:g}": points[c] for c in CS}}, js)
    return [png, csv, js]
