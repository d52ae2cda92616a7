"""Velocity independence panels (arXiv 2602.09101, preset ``heredia2026-velocity``): the
second-order model adam-flow2 on rosenbrock1d(c=1.5), theta0 = -1.5, betas .99/.999, exact flow,
initial velocities u0 = theta'(0) in {-1, 0, 1, 2}, one row per alpha of the preset (its epochs,
T = min(10, (epochs - 1) alpha), :func:`analysis.velocity.horizon_for`), delta = 1.

Columns: (a) theta(t) for every u0 with a vertical line at t = delta (the initial layer); (b) the
overlay of theta after delta (t >= delta): the curves collapse onto one; (c) Phi = f - f* after
delta (log y); (d) the phase portrait (theta, theta'), theta' = u recorded by the flow. One shared
legend (the u0 colours) for the whole figure.

Samples: every ``every``-th step of alpha (at most about :data:`MAX_SAMPLES` per lane; the last step
always); the sup distances of the JSON are taken on the same samples.

Files: ``velocity-independence.png``; ``velocity-independence.csv`` (long format: alpha, u0, k, t,
theta, u, phi); ``velocity-independence.json`` (the setting and, per (alpha, u0): T, K, every,
status, sup over all t and over t >= delta of |theta_u0 - theta_0|, |u_u0 - u_0| and
|Phi_u0 - Phi_0|). The velocity difference starts at |u0| and is gone after the layer (sup over
t >= delta far below |u0|); theta keeps the O(alpha u0) shift the layer made, so its sup after
delta may equal its sup over all t.
"""
from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import landscapes  # noqa: E402
from analysis.velocity import horizon_for  # noqa: E402
from core.output import save_figure, write_csv, write_json  # noqa: E402
from runner import presets  # noqa: E402
from runner.experiment import run_lanes  # noqa: E402

NAME = "velocity-independence"
SCHEMES = ("exact",)
PRESET = "heredia2026-velocity"
MODEL = "adam-flow2"
TITLE = ("velocity independence of the second-order model (adam-flow2, exact): c = 1.5, "
         "theta0 = -1.5, betas .99/.999, delta = 1")
#: the initial velocities drawn (u0 = 0 is the reference of the sup distances)
U0S = (-1.0, 0.0, 1.0, 2.0)
#: about this many samples per lane at most (every = ceil(K / MAX_SAMPLES))
MAX_SAMPLES = 2000
QUICK = {"alpha": [1e-2, 5e-2], "epochs": [201, 41]}


def _sup(xs):
    return max(xs) if xs else math.nan


def compute(alphas, epochs, *, horizon: float, delta: float, setting: dict) -> dict:
    land = landscapes.parse(setting["landscape"])
    fstar = float(land.minimum_value())
    lanes, table = [], []
    for a, e in zip(alphas, epochs):
        T, K = horizon_for(a, epochs=e, horizon=horizon)
        every = max(1, -(-K // MAX_SAMPLES))
        hp = [{"theta0": list(setting["theta0"]), "alpha": a, "beta1": setting["beta1"],
               "beta2": setting["beta2"], "eps": setting["eps"], "u0": u} for u in U0S]
        traj = run_lanes(MODEL, land, hp, [K] * len(U0S), every=every)
        rows = {}
        for b, u in enumerate(U0S):
            n = int(traj.n_out[b])
            t = traj.t[b, :n].tolist()
            rows[u] = {"alpha": a, "u0": u, "T": T, "K": K, "every": every,
                       "status": traj.status_label(b),
                       "k": [int(round(x / a)) for x in t], "t": t,
                       "theta": traj.theta[b, :n, 0].tolist(),
                       "u": traj.extras["u"][b, :n, 0].tolist(),
                       "phi": (traj.f[b, :n] - fstar).tolist()}
        ref = rows[0.0]
        for u, r in rows.items():
            after = [j for j, x in enumerate(r["t"]) if x >= delta - 1e-12]
            dth = [abs(x - y) for x, y in zip(r["theta"], ref["theta"])]
            dph = [abs(x - y) for x, y in zip(r["phi"], ref["phi"])]
            r["sup_theta_all"] = _sup(dth)
            r["sup_theta_after"] = _sup([dth[j] for j in after])
            r["sup_phi_all"] = _sup(dph)
            r["sup_phi_after"] = _sup([dph[j] for j in after])
            du = [abs(x - y) for x, y in zip(r["u"], ref["u"])]
            r["sup_u_all"] = _sup(du)
            r["sup_u_after"] = _sup([du[j] for j in after])
            lanes.append(r)
        table.append({"alpha": a, "epochs": e, "T": T, "K": K, "every": every})
    return {"setting": {**setting, "model": MODEL, "u0s": list(U0S), "delta": delta,
                        "horizon": horizon, "fstar": fstar, "scheme": "exact"},
            "alphas": table, "lanes": lanes}


def plot(d: dict, png: str) -> None:
    from matplotlib.lines import Line2D

    delta = d["setting"]["delta"]
    alphas = [r["alpha"] for r in d["alphas"]]
    n = len(alphas)
    fig, axes = plt.subplots(n, 4, figsize=(16, 2.9 * n + 1.2), layout="constrained",
                             squeeze=False)
    colors = {u: f"C{i}" for i, u in enumerate(U0S)}
    # widths decrease in drawing order: where the lanes coincide each one still shows as a band
    # around the next (the collapse after delta reads as nested coloured lines)
    widths = {u: 3.2 - 0.75 * i for i, u in enumerate(U0S)}
    for i, a in enumerate(alphas):
        row = axes[i]
        T = d["alphas"][i]["T"]
        for ln in (r for r in d["lanes"] if r["alpha"] == a):
            c, t, lw = colors[ln["u0"]], ln["t"], widths[ln["u0"]]
            after = [j for j, x in enumerate(t) if x >= delta - 1e-12]
            row[0].plot(t, ln["theta"], color=c, lw=lw)
            row[1].plot([t[j] for j in after], [ln["theta"][j] for j in after], color=c, lw=lw)
            row[2].plot([t[j] for j in after],
                        [ln["phi"][j] if ln["phi"][j] > 0 else math.nan for j in after],
                        color=c, lw=lw)
            row[3].plot(ln["theta"], ln["u"], color=c, lw=lw)
            row[3].plot(ln["theta"][:1], ln["u"][:1], "o", color=c, ms=4)
        row[0].axvline(delta, color="0.3", ls=":", lw=1.2)
        row[2].set_yscale("log")
        tag = f"alpha = {a:g}, T = {T:.4g}"
        row[0].set_title(f"(a) theta(t); {tag}", fontsize=9)
        row[1].set_title(f"(b) theta for t >= delta = {delta:g}; {tag}", fontsize=9)
        row[2].set_title(f"(c) Phi = f - f* for t >= delta; {tag}", fontsize=9)
        row[3].set_title(f"(d) phase portrait; {tag}", fontsize=9)
        for ax in row[:3]:
            ax.set_xlabel("t = k alpha")
        row[0].set_ylabel("theta")
        row[1].set_ylabel("theta")
        row[2].set_ylabel("f - f*")
        row[3].set_xlabel("theta")
        row[3].set_ylabel("theta' (per unit t)")
        for ax in row:
            ax.grid(True, which="major", alpha=0.3)
    handles = [Line2D([], [], color=colors[u], lw=widths[u]) for u in U0S]
    labels = [f"u0 = theta'(0) = {u:g}" for u in U0S]
    handles += [Line2D([], [], color="0.3", ls=":", lw=1.2),
                Line2D([], [], ls="", marker="o", color="0.3", ms=4)]
    labels += [f"t = delta = {delta:g}", "start (theta0, u0)"]
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=9)
    fig.suptitle(TITLE, fontsize=11)
    save_figure(fig, png)


def make(out_dir: str, progress=lambda msg: None, quick: bool = False) -> list[str]:
    d = presets.command_defaults(PRESET, "velocity")
    alphas, epochs = (QUICK["alpha"], QUICK["epochs"]) if quick else (d["alpha"], d["epochs"])
    setting = {"landscape": d["landscape"], "theta0": list(d["theta0"][0]), "beta1": d["beta1"],
               "beta2": d["beta2"], "eps": d["eps"], "preset": PRESET, "quick": quick}
    progress(f"{MODEL} for u0 in {list(U0S)} at {len(alphas)} step sizes")
    res = compute(alphas, epochs, horizon=d["horizon"], delta=d["delta"], setting=setting)
    progress("plotting")
    png, csv, js = (os.path.join(out_dir, f"{NAME}.{e}") for e in ("png", "csv", "json"))
    plot(res, png)
    cols = ["alpha", "u0", "k", "t", "theta", "u", "phi"]
    rows = [[ln["alpha"], ln["u0"], k, t, th, u, ph] for ln in res["lanes"]
            for k, t, th, u, ph in zip(ln["k"], ln["t"], ln["theta"], ln["u"], ln["phi"])]
    write_csv(cols, rows, csv)
    summary = [{k: v for k, v in ln.items() if k not in ("k", "t", "theta", "u", "phi")}
               for ln in res["lanes"]]
    write_json({"setting": res["setting"], "alphas": res["alphas"], "lanes": summary}, js)
    return [png, csv, js]
