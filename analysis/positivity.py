"""Moment positivity (SPEC §3.2, §5, §6 preset "positivity"), ``adamflow positivity``.

For b2 < 1/2 the second-order kernel K2_{b2} changes sign, so the second moment v of the
second-order model can become negative. Sufficient condition for v(s) >= 0 (arXiv 2602.09101):

    min_{[0,s]} g^2 >= exp(-pi / sqrt(1 - 2 b2)) * max_{[0,s]} g^2

evaluated at every output time s on the sampled gradient g(theta(s)) of the lane (elementwise in
the coordinates; a sample satisfies it when every coordinate does). It is defined only for
b2 < 1/2; for b2 >= 1/2 the kernel is nonnegative and the condition is reported as not applicable.

Per lane: the number of samples satisfying the condition, the first time it fails, and min v with a
flag for v < 0 (discrete Adam: the optimizer's v_k; flows: their v output). All moments start at
v(0) = 0, so min v <= 0 always; ``min_v_after_start`` is the minimum over the samples with s > 0.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import torch

import landscapes
from analysis.cli_options import (
    add_problem_options,
    problem_from_args,
)
from analysis.lyapunov import run_specs
from analysis.study import Study
from core.output import save_figure
from runner import experiment
from runner.options import parse_float as _float
from runner.options import parse_int as _int

#: SPEC §6 preset "positivity"
DEFAULTS = {"landscape": "rosenbrock1d(c=1.5)", "theta0": [[-1.5]], "beta1": 0.5, "beta2": 0.2,
            "alpha": [1e-2], "steps": 270, "models": ["adam", "adam-flow1", "adam-flow2"],
            "u0": [0.0, 1.0]}


def threshold_ratio(beta2: float) -> float | None:
    """exp(-pi/sqrt(1 - 2 b2)) for b2 < 1/2, None otherwise."""
    if not beta2 < 0.5:
        return None
    return math.exp(-math.pi / math.sqrt(1.0 - 2.0 * beta2))


def positivity_condition(s, g, beta2: float) -> dict:
    """The sufficient-condition counter on a sampled gradient series.

    Args:
        s: (T,) sample times (nondecreasing); g: (T,) or (T, n) gradients at those times.

    Returns ``applicable``, ``ratio`` (the threshold exp(-pi/sqrt(1-2 b2)) or None), ``holds``
    ((T,) bool array, None if not applicable), ``holds_count``, ``n_samples``,
    ``first_failure_s`` (None if it never fails), and the running ``min_g2``, ``max_g2`` (T,)
    (minimum over coordinates of the running min, maximum of the running max).
    """
    s = np.asarray(s, dtype=np.float64).ravel()
    g = np.asarray(g, dtype=np.float64).reshape(s.shape[0], -1)
    g2 = g * g
    run_min = np.minimum.accumulate(g2, axis=0) if s.size else g2
    run_max = np.maximum.accumulate(g2, axis=0) if s.size else g2
    r = threshold_ratio(beta2)
    out = {"applicable": r is not None, "ratio": r, "holds": None, "holds_count": None,
           "n_samples": int(s.size), "first_failure_s": None,
           "min_g2": run_min.min(axis=1) if s.size else np.zeros(0),
           "max_g2": run_max.max(axis=1) if s.size else np.zeros(0)}
    if r is None:
        return out
    holds = np.all(run_min >= r * run_max, axis=1)
    out["holds"] = holds
    out["holds_count"] = int(holds.sum())
    fails = np.flatnonzero(~holds)
    if fails.size:
        out["first_failure_s"] = float(s[fails[0]])
    return out


def gradients(landscape, theta) -> "torch.Tensor":  # noqa: F821
    """grad f along a (B, T, n) trajectory, one batched call per output column (per-lane
    landscape parameters stay aligned with the lanes)."""

    B, T, n = theta.shape
    cols = [landscape.grad(theta[:, j]) for j in range(T)]
    return torch.stack(cols, dim=1) if cols else theta.new_zeros(B, 0, n)


def lane_positivity(s, g, v, beta2: float) -> dict:
    """One lane: the condition counter on g plus min v (over samples and coordinates)."""
    cond = positivity_condition(s, g, beta2)
    v = np.asarray(v, dtype=np.float64) if v is not None else None
    min_v = float(np.min(v)) if v is not None and v.size else None
    s = np.asarray(s, dtype=np.float64).ravel()
    later = v[s > s[0]] if v is not None and v.size else None
    min_v_later = float(np.min(later)) if later is not None and later.size else None
    cond.update({"min_v": min_v, "min_v_after_start": min_v_later,
                 "v_negative": (min_v < 0) if min_v is not None else None,
                 "v": None if v is None else v.reshape(len(cond["min_g2"]), -1).min(axis=1)})
    return cond


def positivity(traj, landscape, b: int | None = None) -> list[dict]:
    """Per-lane positivity results of a :class:`core.trajectory.Trajectory` (all lanes, or
    lane ``b``)."""
    g_all = gradients(landscape, traj.theta)
    lanes = range(traj.n_lanes) if b is None else [b]
    out = []
    for i in lanes:
        k = int(traj.n_out[i])
        b2 = traj.params.get("beta2", [None] * traj.n_lanes)[i]
        v = traj.extras["v"][i, :k].detach().cpu().numpy() if "v" in traj.extras else None
        res = lane_positivity(traj.t[i, :k].detach().cpu().numpy(),
                              g_all[i, :k].detach().cpu().numpy(), v,
                              b2 if b2 is not None else 1.0)
        res["beta2"] = b2
        res["s"] = traj.t[i, :k].detach().cpu().numpy()
        out.append(res)
    return out


def study(problem, *, steps: int | None = None, horizon: float | None = None,
          quiet: bool = True) -> dict:
    """Run the problem's models and count positivity per lane; {"lanes": [record, ...]} with the
    arrays for :func:`figure` under ``"arrays"``."""
    from tqdm import tqdm

    if steps is None and horizon is None:
        steps = DEFAULTS["steps"]
    land = landscapes.parse(problem.landscape)
    specs = run_specs(problem, steps=steps, horizon=horizon)
    lanes = []
    for spec in tqdm(specs, desc="positivity", disable=quiet, file=sys.stderr):
        (info, traj), = experiment.run(spec)
        for b, res in enumerate(positivity(traj, land)):
            p = {key: val[b] for key, val in traj.params.items()}
            lanes.append({
                "model": info.name, "u0": p.get("u0"), "alpha": p.get("alpha"),
                "beta1": p.get("beta1"), "beta2": p.get("beta2"), "theta0": p.get("theta0"),
                "status": traj.status_label(b),
                "min_v": res["min_v"], "min_v_after_start": res["min_v_after_start"],
                "v_negative": res["v_negative"],
                "condition_applicable": res["applicable"],
                "condition_ratio": res["ratio"],
                "condition_holds_count": res["holds_count"], "n_samples": res["n_samples"],
                "first_failure_s": res["first_failure_s"],
                "arrays": {"s": res["s"], "v": res["v"], "min_g2": res["min_g2"],
                           "max_g2": res["max_g2"]},
            })
    return {"lanes": lanes}


def json_lanes(results: dict) -> dict:
    return {"lanes": [{k: v for k, v in rec.items() if k != "arrays"} for rec in results["lanes"]]}


def _label(rec: dict) -> str:
    lab = rec["model"]
    if rec.get("u0") is not None:
        lab += f" u0={rec['u0']:g}"
    if rec.get("alpha") is not None:
        lab += f" a={rec['alpha']:g}"
    return lab


def figure(results: dict):
    """v vs s per lane (min over coordinates for n > 1) and the running ratio
    min g^2 / max g^2 against the threshold exp(-pi/sqrt(1 - 2 b2))."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = results["lanes"]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    for rec in recs:
        a = rec["arrays"]
        if a["v"] is not None:
            ls = "-" if rec["model"] == "adam" else ("--" if "flow1" in rec["model"] else "-.")
            ax.plot(a["s"], a["v"], ls, lw=1.3,
                    label=f"{_label(rec)} (min v = {rec['min_v']:.3g})")
    ax.axhline(0.0, color="k", lw=0.6)
    vmax = max((float(np.nanmax(np.abs(r["arrays"]["v"]))) for r in recs
                if r["arrays"]["v"] is not None and r["arrays"]["v"].size), default=0.0)
    if vmax > 0:
        # linscale 3: the linear band around 0 spans 3 decades, so the labels of -linthresh, 0
        # and +linthresh do not run into each other
        ax.set_yscale("symlog", linthresh=1e-6 * vmax, linscale=3.0)
    ax.set_xlabel("s")
    ax.set_ylabel("v")
    ax.set_title("second moment v (negative v: positivity lost)")
    ax.legend(fontsize=7)
    ratios = set()
    for rec in recs:
        a = rec["arrays"]
        with np.errstate(divide="ignore", invalid="ignore"):
            q = a["min_g2"] / a["max_g2"]
        ax2.plot(a["s"], q, lw=1.0, label=_label(rec))
        if rec["condition_ratio"] is not None:
            ratios.add((rec["beta2"], rec["condition_ratio"]))
    for b2, r in sorted(ratios):
        ax2.axhline(r, color="r", ls=":", lw=1.0, label=f"exp(-pi/sqrt(1-2 b2)), b2={b2:g}")
    ax2.set_yscale("log")
    ax2.set_xlabel("s")
    ax2.set_ylabel("min g^2 / max g^2 over [0, s]")
    ax2.set_title("sufficient condition holds above the threshold")
    ax2.legend(fontsize=7)
    return fig


# -- CLI ----------------------------------------------------------------------------------------

class PositivityStudy(Study):
    command = "positivity"
    help = "moment positivity: the sufficient-condition counter and min v along runs"

    def add_options(self, p) -> None:
        add_problem_options(p, models_default=DEFAULTS["models"], alpha_required=False)
        p.set_defaults(**{k: DEFAULTS[k] for k in ("landscape", "theta0", "beta1", "beta2", "alpha",
                                                   "u0")})
        g = p.add_mutually_exclusive_group()
        g.add_argument("--steps", type=_int, help=f"K steps per lane (default {DEFAULTS['steps']})")
        g.add_argument("--horizon", type=_float, help="time horizon T, K = round(T/alpha)")

    def compute(self, args, numerics):
        problem = problem_from_args(args, schemes=self.schemes, horizon_default=None,
                                    steps_default=DEFAULTS["steps"])
        return study(problem, steps=args.steps, horizon=args.horizon, quiet=args.quiet)

    def to_json(self, result):
        return json_lanes(result)

    def plot(self, result, path) -> None:
        save_figure(figure(result), path)

    def summary(self, result) -> None:
        for rec in result["lanes"]:
            if rec["condition_applicable"]:
                cond = (f"condition holds {rec['condition_holds_count']}/{rec['n_samples']}, "
                        f"first failure s={rec['first_failure_s']}")
            else:
                cond = "condition n/a (b2 >= 1/2)"
            mv = "-" if rec["min_v"] is None else f"{rec['min_v']:.4g}"
            mv1 = "-" if rec["min_v_after_start"] is None else f"{rec['min_v_after_start']:.4g}"
            print(f"{_label(rec):<24} min v={mv} (s>0: {mv1}) v<0={rec['v_negative']}  {cond}")


STUDY = PositivityStudy()
COMMAND, HELP, add_arguments, main = STUDY.command, STUDY.help, STUDY.add_arguments, STUDY.main
