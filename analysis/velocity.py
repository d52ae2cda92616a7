"""Velocity independence of second-order flows (SPEC §5): how much the free initial velocity
u0 = theta'(0) matters away from the initial layer, as alpha -> 0.

For each alpha and each u0 in the list, against the same flow with u0 = 0:

    sup_theta = sup_{s in [delta, T]} |theta_{u0}(s) - theta_{0}(s)|      (Euclidean norm)
    sup_f     = sup_{s in [delta, T]} |f(theta_{u0}(s)) - f(theta_{0}(s))|

sampled on the grid s = k*alpha, k = 0, every, 2 every, ..., K (K = round(T/alpha)); T = horizon
(default 10), or min(T, (epochs-1) alpha) when per-alpha epochs are given. All (alpha, u0) lanes
(u0 = 0 included) run as ONE batched :func:`flows.simulate.simulate` call per model. Slopes: log-log
least-squares fits against alpha per (model, u0) with a 95% CI for p_theta.

Library: :func:`velocity`, :func:`plot_velocity`; the CLI (``adamflow velocity``) is a thin layer.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch

from analysis.cli_options import (
    add_problem_options,
    problem_from_args,
)
from analysis.refine import (
    DEFAULT_HORIZON,
    _f,
    _norm,
    _progress,
    _setup,
    model_hyper,
    run_flow_lanes,
)
from analysis.slopes import fit_groups
from analysis.study import Study
from core.errors import ConfigError
from core.output import save_figure
from core.validation import steps_from_horizon
from flows.paper_scheme import SUBSTEPS, paper_solve
from flows.simulate import output_indices
from runner.options import parse_float as _float
from runner.options import parse_int as _int
from runner.registry import get_model


def horizon_for(alpha: float, *, epochs: int | None = None, horizon: float | None = None
                ) -> tuple[float, int]:
    """(T, K): T = horizon (default 10), capped at (epochs-1) alpha when epochs are given."""
    if horizon is not None and not (math.isfinite(horizon) and horizon > 0):
        raise ConfigError(f"horizon must be a positive finite number, got {horizon!r}")
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 2):
        raise ConfigError(f"epochs must be an integer >= 2, got {epochs!r}")
    T = DEFAULT_HORIZON if horizon is None else float(horizon)
    if epochs is not None:
        T = min(T, (int(epochs) - 1) * alpha)
    return T, steps_from_horizon(T, alpha)


def velocity(problem, *, u0s: list[float] | None = None, delta: float = 1.0,
             horizon: float | None = None, epochs: list[int] | None = None, every: int = 1,
             progress: bool = False) -> dict[str, Any]:
    """Run the velocity-independence study.

    Args:
        problem: :class:`analysis.cli_options.Problem` (landscape, one theta0, alphas, models with an
            initial velocity, betas, eps, numerics); ``problem.u0`` is used when ``u0s`` is None.
        u0s: initial velocities compared with u0 = 0 (default: problem.u0).
        delta: start of the sup window [delta, T] (skips the initial layer).
        horizon, epochs: T per alpha (see :func:`horizon_for`).
        every: sample every ``every``-th step of alpha.

    Returns ``{"rows": [{model, alpha, u0, T, sup_theta, sup_f, status}], "slopes": [{model, u0,
    p_theta, p_f, ci_theta}], ...}``.
    """

    alphas = [float(a) for a in problem.alpha]
    if epochs is not None and len(epochs) != len(alphas):
        raise ConfigError(f"--epochs needs one value per alpha ({len(alphas)}), got {len(epochs)}")
    if not (math.isfinite(delta) and delta >= 0):
        raise ConfigError(f"delta must be a finite number >= 0, got {delta!r}")
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"every must be an integer >= 1, got {every!r}")
    land, dtype, device = _setup(problem)
    models = list(problem.models) or ["adam-flow2"]
    infos = [get_model(m) for m in models]
    for info in infos:
        if info.kind != "flow" or "u0" not in info.hyperparameters:
            raise ConfigError(f"model {info.name!r} has no initial velocity u0 "
                              "(velocity needs a second-order flow)")
    u0s = [float(u) for u in (problem.u0 if u0s is None else u0s)]
    if not u0s:
        raise ConfigError("at least one --u0 is required")
    for u in u0s:
        if not math.isfinite(u):
            raise ConfigError(f"u0 must be finite, got {u!r}")
    lane_u0 = [0.0] + [u for u in dict.fromkeys(u0s) if u != 0.0]
    times = [horizon_for(a, epochs=None if epochs is None else epochs[i], horizon=horizon)
             for i, a in enumerate(alphas)]
    for a, (T, _) in zip(alphas, times):
        if delta > T:
            raise ConfigError(f"delta {delta:g} exceeds the horizon {T:g} of alpha={a:g}")
    theta0 = [float(x) for x in problem.theta0[0]]

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    bar = _progress(len(infos), progress, "velocity")
    try:
        for info in infos:
            if problem.scheme == "paper":
                rows += _paper_rows(info, land, theta0, alphas, times, lane_u0, u0s, every=every,
                                    delta=delta, problem=problem, dtype=dtype, device=device)
                bar.update(1)
                continue
            lanes, grids, meta = [], [], []
            for i, a in enumerate(alphas):
                T, K = times[i]
                ks = output_indices(K, every)
                grid = [k * a for k in ks]
                for u in lane_u0:
                    lanes.append(model_hyper(info, alpha=a, beta1=problem.beta1,
                                             beta2=problem.beta2, eps=problem.eps, u0=u))
                    grids.append(grid)
                    meta.append((i, u))
            traj = run_flow_lanes(info, land, theta0, lanes, grids, numerics=problem.numerics)
            base = {i: b for b, (i, u) in enumerate(meta) if u == 0.0}
            for b, (i, u) in enumerate(meta):
                if u not in u0s:
                    continue
                a, (T, K) = alphas[i], times[i]
                b0 = base[i]
                n = len(grids[b])
                s = traj.t[b, :n]
                win = (s >= delta - 1e-12 * max(1.0, delta)) & (s <= T + 1e-12 * max(1.0, T))
                d_th = _norm(traj.theta[b, :n] - traj.theta[b0, :n])[win]
                d_f = (traj.f[b, :n] - traj.f[b0, :n]).abs()[win]
                # NaN (divergence) propagates: max of a tensor with NaN is NaN -> None in JSON
                sup_th = d_th.max() if d_th.numel() else torch.tensor(math.nan)
                sup_f = d_f.max() if d_f.numel() else torch.tensor(math.nan)
                status = traj.status_label(b)
                if status == "ok" and traj.status_label(b0) != "ok":
                    status = traj.status_label(b0)
                rows.append({"model": info.name, "alpha": a, "u0": u, "T": T, "K": K,
                             "sup_theta": _f(sup_th), "sup_f": _f(sup_f), "status": status})
            bar.update(1)
    finally:
        bar.close()
    return {
        "study": "velocity", "scheme": problem.scheme, "landscape": land.spec(), "theta0": theta0, "beta1": problem.beta1,
        "beta2": problem.beta2, "eps": problem.eps, "delta": delta, "every": every,
        "horizon": horizon, "epochs": None if epochs is None else list(epochs),
        "rows": rows, "slopes": fit_slopes(rows), "runtime_s": time.perf_counter() - started,
    }


def _paper_rows(info, land, theta0, alphas, times, lane_u0, u0s, *, every, delta, problem, dtype,
                device) -> list[dict[str, Any]]:
    """Rows with the second-order model solved by the published scheme (flows.paper_scheme).

    Per alpha the (u0) lanes (u0 = 0 included) run as one :func:`flows.paper_scheme.paper_solve` on
    s_j = j h, h = alpha/5, with 5K + 1 points (covering K alpha); the sup runs over the rows
    s = k alpha (k on the same ``every`` grid as the exact study) in [delta, T].
    """

    info.check_scheme("paper")
    rows = []
    for i, a in enumerate(alphas):
        T, K = times[i]
        hps = [model_hyper(info, alpha=a, beta1=problem.beta1, beta2=problem.beta2,
                           eps=problem.eps, u0=u) for u in lane_u0]
        B = len(hps)
        flow = info.cls(land, n_lanes=B, dtype=dtype, device=device,
                        **{k: torch.tensor([hp[k] for hp in hps], dtype=dtype, device=device)
                           for k in hps[0]})
        th0 = torch.tensor([theta0] * B, dtype=dtype, device=device)
        sol = paper_solve(flow, th0, SUBSTEPS * K + 1)
        ks = list(output_indices(K, every))
        idx = torch.tensor([SUBSTEPS * k for k in ks], device=sol.theta.device)
        th = sol.theta[:, idx]                                                # (B, n_k, n)
        f = land.value(th.reshape(-1, th.shape[-1])).reshape(B, len(ks)).cpu()
        th = th.cpu()
        s = torch.tensor([k * a for k in ks], dtype=th.dtype)
        win = (s >= delta - 1e-12 * max(1.0, delta)) & (s <= T + 1e-12 * max(1.0, T))
        finite = torch.isfinite(th).all(-1).all(-1)
        for b, u in enumerate(lane_u0):
            if u not in u0s:
                continue
            d_th = _norm(th[b] - th[0])[win]
            d_f = (f[b] - f[0]).abs()[win]
            sup_th = d_th.max() if d_th.numel() else torch.tensor(math.nan)
            sup_f = d_f.max() if d_f.numel() else torch.tensor(math.nan)
            ok = bool(finite[b]) and bool(finite[0])
            rows.append({"model": info.name, "alpha": a, "u0": u, "T": T, "K": K,
                         "sup_theta": _f(sup_th), "sup_f": _f(sup_f),
                         "status": "ok" if ok else "diverged",
                         "sweeps": int(sol.sweeps[b]), "residual": float(sol.residual[b]),
                         "converged": bool(sol.converged[b])})
    return rows


def fit_slopes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, u0): slopes of log sup|theta diff| and log sup|f diff| against log alpha."""

    return fit_groups(rows, {"p_theta": "sup_theta", "p_f": "sup_f"}, ci=("ci_theta", "sup_theta"))


def plot_velocity(result: dict[str, Any], path: str) -> None:
    """sup_theta and sup_f vs alpha (log-log), one line per (model, u0), slopes in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    multi = len({s["model"] for s in result["slopes"]}) > 1
    for s in result["slopes"]:
        sel = sorted((r for r in result["rows"]
                      if r["model"] == s["model"] and r["u0"] == s["u0"]), key=lambda r: r["alpha"])
        name = (f"{s['model']} " if multi else "") + f"u0={s['u0']:g}"
        for ax, key, pk in ((axes[0], "sup_theta", "p_theta"), (axes[1], "sup_f", "p_f")):
            pts = [(r["alpha"], r[key]) for r in sel if r[key] is not None and r[key] > 0]
            if not pts:
                continue
            lab = name + (f"  p={s[pk]:.2f}" if s[pk] is not None else "")
            ax.loglog([x for x, _ in pts], [y for _, y in pts], "o-", label=lab)
    for ax, key, lab in ((axes[0], "sup_theta", "|theta_u0 - theta_0|"),
                         (axes[1], "sup_f", "|f_u0 - f_0|")):
        ax.set_xlabel("alpha")
        ax.set_ylabel(f"sup over [{result['delta']:g}, T] of {lab}")
        ax.set_title(f"{key} vs alpha (vs u0 = 0)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# -- CLI -------------------------------------------------------------------------------------------

class VelocityStudy(Study):
    command = "velocity"
    help = "velocity independence of second-order flows: sup |theta_u0 - theta_0| on [delta, T] vs alpha"

    def add_options(self, p) -> None:
        add_problem_options(p, models_default=["adam-flow2"])
        p.set_defaults(u0=[-1.0, 1.0, 2.0])
        p.add_argument("--delta", type=_float, default=1.0,
                       help="start of the sup window [delta, T] (default 1)")
        p.add_argument("--horizon", type=_float, default=None, help="time horizon T (default 10)")
        p.add_argument("--epochs", nargs="+", type=_int, default=None,
                       help="per-alpha epochs: T = min(T, (epochs-1) alpha)")
        p.add_argument("--every", type=_int, default=1, help="sample every N-th step of alpha")

    def compute(self, args, numerics):
        problem = problem_from_args(args, schemes=self.schemes)
        return velocity(problem, delta=args.delta, horizon=args.horizon, epochs=args.epochs,
                        every=args.every, progress=not args.quiet)

    def plot(self, result, path) -> None:
        plot_velocity(result, path)

    def summary(self, result) -> None:
        _print_table(result)


def _print_table(result: dict[str, Any]) -> None:
    fmt = lambda x: "-" if x is None else f"{x:.4e}"  # noqa: E731
    print(f"{'model':<11} {'u0':>5} {'alpha':>9} {'T':>8} {'sup_theta':>11} {'sup_f':>11}")
    for r in result["rows"]:
        print(f"{r['model']:<11} {r['u0']:>5g} {r['alpha']:>9g} {r['T']:>8.4g} "
              f"{fmt(r['sup_theta']):>11} {fmt(r['sup_f']):>11}")
    print("slopes:")
    for s in result["slopes"]:
        p = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        ci = "-" if s["ci_theta"] is None else f"[{s['ci_theta'][0]:.3f}, {s['ci_theta'][1]:.3f}]"
        print(f"  {s['model']} u0={s['u0']:g}  p_theta={p(s['p_theta'])} CI {ci}  p_f={p(s['p_f'])}")


STUDY = VelocityStudy()
COMMAND, HELP, add_arguments, main = STUDY.command, STUDY.help, STUDY.add_arguments, STUDY.main
