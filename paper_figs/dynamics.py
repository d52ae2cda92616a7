"""Complete optimization dynamics of the second-order model (arXiv 2602.09101, Figure 4):
adam-flow2 on rosenbrock1d(c=4), alpha = 1e-3, betas .99/.999, theta(0) = 2, theta'(0) = u0 = 1,
4000 iterations (T = 4), exact flow sampled at every t = k alpha, discrete Adam beside it.

Panels (3 x 3): top row position theta, velocity theta' and acceleration theta''
(= (2/alpha)(-A(s) - theta'), the model's own equation, with A the Adam direction of the flow's
m, v and bias factors); middle row the memories m, v and the adaptive update scale
|m|/(sqrt(v) + eps); bottom row the phase portrait (theta, theta') coloured by iteration, the
kinetic energy |theta'|^2/2 (log scale), and f - f* of the flow and of discrete Adam (log scale).

Files: ``dynamics.png``; ``dynamics.csv`` (k, t, theta, u, acceleration, m, v, scale, f, and
discrete Adam's theta, m, v); ``dynamics.json`` (the setting and the final values).
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import landscapes  # noqa: E402
from core.output import save_figure, write_csv, write_json  # noqa: E402
from flows.direction import bias_factors, direction  # noqa: E402
from runner.experiment import run_lanes  # noqa: E402

NAME = "dynamics"
SCHEMES = ("exact",)
TITLE = ("complete dynamics of the second-order model: c = 4, alpha = 1e-3, betas .99/.999, "
         "theta0 = 2, u0 = 1")
SETTING = {"landscape": "rosenbrock1d(c=4)", "theta0": 2.0, "alpha": 1e-3, "beta1": 0.99,
           "beta2": 0.999, "eps": 1e-8, "u0": 1.0, "steps": 4000}


def compute(steps: int) -> dict:
    s = SETTING
    lane = {"theta0": [s["theta0"]], "alpha": s["alpha"], "beta1": s["beta1"],
            "beta2": s["beta2"], "eps": s["eps"]}
    flow = run_lanes("adam-flow2", s["landscape"], [{**lane, "u0": s["u0"]}], [steps])
    disc = run_lanes("adam", s["landscape"], [lane], [steps])
    t = flow.t[0]
    theta, u = flow.theta[0, :, 0], flow.extras["u"][0, :, 0]
    m, v = flow.extras["m"][0, :, 0], flow.extras["v"][0, :, 0]
    a = s["alpha"]
    f64 = lambda x: torch.as_tensor(x, dtype=torch.float64)              # noqa: E731
    eta, epsq = bias_factors(t / a + 1.0, f64(s["beta1"]), f64(s["beta2"]), f64(s["eps"]))
    A = direction(eta, epsq, m, v)
    land = landscapes.parse(s["landscape"])
    fstar = land.minimum_value()
    return {"k": torch.arange(t.numel()).tolist(), "t": t.tolist(), "theta": theta.tolist(),
            "u": u.tolist(), "acceleration": ((2.0 / a) * (-A - u)).tolist(), "m": m.tolist(),
            "v": v.tolist(), "scale": (m.abs() / (v.clamp(min=0).sqrt() + s["eps"])).tolist(),
            "f": (flow.f[0] - fstar).tolist(), "adam_theta": disc.theta[0, :, 0].tolist(),
            "adam_m": disc.extras["m"][0, :, 0].tolist(),
            "adam_v": disc.extras["v"][0, :, 0].tolist(),
            "adam_f": (disc.f[0] - fstar).tolist(), "fstar": fstar,
            "status": [flow.status_label(0), disc.status_label(0)]}


def _positive(xs):
    return [x if x > 0 else math.nan for x in xs]


def plot(d: dict, png: str) -> None:
    fig, axes = plt.subplots(3, 3, figsize=(14, 10.5), layout="constrained")
    k = d["k"]
    flow_kw = dict(color="C1", lw=1.4, label="adam-flow2 (exact)")
    disc_kw = dict(color="C0", lw=0.9, ls="--", label="discrete Adam")
    ax = axes[0, 0]
    ax.plot(k, d["theta"], **flow_kw)
    ax.plot(k, d["adam_theta"], **disc_kw)
    ax.axhline(1.0, color="0.5", lw=0.7, ls=":")
    ax.set_ylabel("position theta")
    axes[0, 1].plot(k, d["u"], **flow_kw)
    axes[0, 1].set_ylabel("velocity theta' (per unit t)")
    axes[0, 2].plot(k, d["acceleration"], **flow_kw)
    axes[0, 2].set_ylabel("acceleration theta'' (per unit t^2)")
    axes[0, 2].set_yscale("symlog", linthresh=1.0, linscale=2.0)
    ax = axes[1, 0]
    ax.plot(k, d["m"], **flow_kw)
    ax.plot(k, d["adam_m"], **disc_kw)
    ax.set_ylabel("first moment m")
    ax = axes[1, 1]
    ax.plot(k, _positive(d["v"]), **flow_kw)
    ax.plot(k, _positive(d["adam_v"]), **disc_kw)
    ax.set_yscale("log")
    ax.set_ylabel("second moment v")
    axes[1, 2].plot(k, d["scale"], **flow_kw)
    axes[1, 2].set_ylabel("update scale |m|/(sqrt(v) + eps)")
    ax = axes[2, 0]
    sc = ax.scatter(d["theta"], d["u"], c=k, s=3, cmap="viridis")
    fig.colorbar(sc, ax=ax, label="iteration k = t/alpha")
    ax.set_xlabel("theta")
    ax.set_ylabel("theta'")
    ax.set_title("phase portrait", fontsize=9)
    axes[2, 1].plot(k, _positive([0.5 * x * x for x in d["u"]]), **flow_kw)
    axes[2, 1].set_yscale("log")
    axes[2, 1].set_ylabel("kinetic energy |theta'|^2/2")
    ax = axes[2, 2]
    ax.plot(k, _positive(d["f"]), **flow_kw)
    ax.plot(k, _positive(d["adam_f"]), **disc_kw)
    ax.set_yscale("log")
    ax.set_ylabel("f - f*")
    for ax in list(axes.flat):
        if ax is not axes[2, 0]:
            ax.set_xlabel("iteration k = t/alpha")
        ax.grid(True, alpha=0.3)
    # one legend for the figure (every panel with discrete Adam draws the same two lines)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=9)
    fig.suptitle(TITLE, fontsize=10)
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    steps = 400 if quick else SETTING["steps"]
    progress("exact second-order flow and discrete Adam")
    d = compute(steps)
    progress("plotting")
    png = os.path.join(out_dir, f"{NAME}.png")
    plot(d, png)
    cols = ["k", "t", "theta", "u", "acceleration", "m", "v", "scale", "f", "adam_theta",
            "adam_m", "adam_v", "adam_f"]
    csv = os.path.join(out_dir, f"{NAME}.csv")
    write_csv(cols, [list(r) for r in zip(*(d[c] for c in cols))], csv)
    js = os.path.join(out_dir, f"{NAME}.json")
    write_json({"setting": {**SETTING, "steps": steps}, "status": d["status"], "fstar": d["fstar"],
                "final": {c: d[c][-1] for c in cols}}, js)
    return [png, csv, js]
