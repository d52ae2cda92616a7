"""alpha-refinement study (SPEC §4 error protocols, §5): distance between a discrete method and its
continuous-time models as alpha -> 0, with log-log slope fits.

For each step size alpha the discrete reference (default Adam) runs K steps and every (model, u0) flow
is integrated exactly and sampled at the same times t = k*alpha (and, under the paper protocol, at
T_used). Errors, with the Euclidean norm over theta's coordinates:

* ``clean`` (default): T = horizon (when per-alpha epochs are given, T = min(T, (epochs-1) alpha));
  K = round(T/alpha); E_T = |theta_K - theta(K alpha)|, E_f = |f(theta_K) - f(theta(K alpha))|.
* ``paper`` (arXiv 2602.09101): h = alpha/5, n = 5(epochs-1);
  T_used = min(T, (epochs-1) alpha, (n-1) h) (T = horizon, default 10); K = round(T_used/alpha);
  E_T = |theta_K - theta_c(T_used)|, E_f = |f(theta_K) - f(theta_c(T_used))| with theta_c the exact flow
  evaluated at T_used (dense output, instead of the published cubic interpolation of rows).
* both: E_sup = max_{k <= K} |theta_k - theta(k alpha)|.

Slopes: least-squares fit of log E against log alpha per (model, u0) (:mod:`analysis.slopes`), with a
95% t-interval for p_T (None with fewer than 3 alphas).

All (alpha, u0) lanes of one flow model run as ONE batched :func:`flows.simulate.simulate` call (per-lane
alpha, u0 and output grid); the discrete reference runs once per distinct K.

Library: :func:`refine` (plain dict), :func:`plot_refine` (figure from that dict); the CLI
(``adamflow refine``) is a thin layer over both.
"""
from __future__ import annotations

import bisect
import dataclasses
import math
import sys
import time
from typing import Any

import torch

import landscapes
from analysis.cli_options import (
    add_model_options,
    add_problem_options,
    problem_from_args,
)
from analysis.slopes import fit_groups
from analysis.study import Study
from core.errors import ConfigError
from core.hyper import check_alpha, resolve_device, resolve_dtype
from core.output import save_figure
from flows.paper_quadrature import parse_quadrature
from flows.paper_scheme import SUBSTEPS, paper_solve
from runner.experiment import (
    Numerics,
    conditioning_label,
    conditioning_threshold,
    final_sensitivity,
    run_lanes,
)
from runner.options import parse_float as _float
from runner.options import parse_int as _int
from runner.registry import get_model, methods

PROTOCOLS = ("paper", "clean")
DEFAULT_HORIZON = 10.0


# -- protocol arithmetic -----------------------------------------------------------------------------

def protocol_times(alpha: float, *, protocol: str = "clean", epochs: int | None = None,
                   horizon: float | None = None) -> tuple[float, int]:
    """(T_used, K) for one step size under ``protocol`` (SPEC §4).

    paper: T_used = min(T, (epochs-1) alpha, (n-1) h) with h = alpha/5, n = 5(epochs-1) (epochs
    required; T = horizon, default 10). clean: T_used = horizon, or min(horizon, (epochs-1) alpha) when
    epochs are given (horizon default 10 then). K = round(T_used/alpha) >= 1.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r} (choose from: {', '.join(PROTOCOLS)})")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"alpha must be a positive finite number, got {alpha!r}")
    if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 2):
        raise ConfigError(f"epochs must be an integer >= 2, got {epochs!r}")
    if horizon is not None and not (math.isfinite(horizon) and horizon > 0):
        raise ConfigError(f"horizon must be a positive finite number, got {horizon!r}")
    if protocol == "paper":
        if epochs is None:
            raise ConfigError("the paper protocol needs --epochs (one per alpha)")
        T = DEFAULT_HORIZON if horizon is None else float(horizon)
        h = alpha / 5.0
        n = 5 * (int(epochs) - 1)
        T_used = min(T, (int(epochs) - 1) * alpha, (n - 1) * h)
    else:
        if epochs is None and horizon is None:
            raise ConfigError("give --horizon or --epochs (one per alpha)")
        T = DEFAULT_HORIZON if horizon is None else float(horizon)
        T_used = T if epochs is None else min(T, (int(epochs) - 1) * alpha)
    K = int(round(T_used / alpha))
    if K < 1:
        raise ConfigError(f"horizon {T_used:g} is shorter than one step of alpha={alpha:g}")
    return T_used, K


# -- hyper-parameters of a model from the study's scalars ---------------------------------------------

def model_hyper(info, *, alpha: float, beta1: float, beta2: float, eps: float,
                u0: float | None = None, hyper: dict[str, float] | None = None,
                jump_rate: float | None = None) -> dict[str, float]:
    """The hyper-parameters ``info`` takes, from the study's (alpha, beta1, beta2, eps, u0) and its
    fixed further values ``hyper`` (trust_coefficient, h_min, ...): each parameter its own value,
    else its declared ``fallback`` (RMSProp's ``beta`` takes beta2, heavy-ball ``momentum`` beta1),
    else its default (:meth:`core.method.ModelInfo.study_hyper`). ``jump_rate`` R sets
    jump_lr = R alpha (the secant-jump limit, below)."""
    given = {**(hyper or {}), "alpha": alpha, "beta1": beta1, "beta2": beta2, "eps": eps, "u0": u0}
    if jump_rate is not None:
        given["jump_lr"] = jump_rate * alpha
    return info.study_hyper(given)


def _uses_u0(info) -> bool:
    return "u0" in info.hyperparameters


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, file=sys.stderr, leave=False)


def _setup(problem):
    if not problem.alpha:
        raise ConfigError("at least one --alpha is required")
    check_alpha(problem.alpha)
    if len(set(problem.alpha)) != len(problem.alpha):
        raise ConfigError("alphas must be distinct")
    if len(problem.theta0) != 1:
        raise ConfigError("give exactly one --theta0 point for this study")
    dtype = resolve_dtype(problem.dtype)
    device = resolve_device(problem.device)
    land = landscapes.parse(problem.landscape)
    land.check_dim(len(problem.theta0[0]))
    return land, dtype, device


def _lane_grid(alpha: float, K: int, T_used: float) -> tuple[list[float], list[int], int]:
    """Output times k*alpha (k = 0..K) plus T_used when it is not one of them.

    Returns (times, row of each k, row of T_used)."""
    times = [k * alpha for k in range(K + 1)]
    rows = list(range(K + 1))
    if abs(T_used - K * alpha) <= 1e-12 * max(1.0, abs(T_used)):
        return times, rows, K
    pos = bisect.bisect_left(times, T_used)
    times.insert(pos, T_used)
    rows = [k if k < pos else k + 1 for k in range(K + 1)]
    return times, rows, pos


def run_discrete_reference(info, land, theta0: list[float], alphas: list[float], Ks: list[int], *,
                           beta1: float, beta2: float, eps: float, numerics: Numerics,
                           hyper: dict[str, float] | None = None, jump_rate: float | None = None,
                           bar=None) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
    """alpha -> (theta (K+1, n), f (K+1,)) of the discrete reference: one batched run, each lane
    stopping after its own K."""
    lanes = reference_lanes(info, theta0, alphas, beta1=beta1, beta2=beta2, eps=eps, hyper=hyper,
                            jump_rate=jump_rate)
    traj = run_lanes(info, land, lanes, Ks, numerics=numerics).to("cpu")
    if bar is not None:
        bar.update(1)
    return {a: (traj.theta[i, :K + 1], traj.f[i, :K + 1]) for i, (a, K) in enumerate(zip(alphas, Ks))}


def reference_lanes(info, theta0: list[float], alphas: list[float], *, beta1: float, beta2: float,
                    eps: float, hyper: dict[str, float] | None = None,
                    jump_rate: float | None = None) -> list[dict[str, Any]]:
    """The discrete reference's lanes, one per alpha."""
    return [{"theta0": theta0, **model_hyper(info, alpha=a, beta1=beta1, beta2=beta2, eps=eps,
                                             hyper=hyper, jump_rate=jump_rate)} for a in alphas]


def run_flow_lanes(info, land, theta0: list[float], lanes: list[dict[str, float]],
                   grids: list[list[float]], *, numerics: Numerics):
    """One batched exact solve over ``lanes`` (hyper-parameter dicts) with per-lane output ``grids``.

    Returns the Trajectory (theta (B, T, n), f (B, T) on the CPU)."""
    lanes = [{"theta0": theta0, **ln} for ln in lanes]
    traj = run_lanes(info, land, lanes, [0] * len(lanes), grids=grids,
                     numerics=dataclasses.replace(numerics, scheme="exact"))
    return traj.to("cpu")


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1)


def _f(x: torch.Tensor) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def default_models(reference: str) -> list[str]:
    """The continuous models of the reference's method (registry), else Adam's two flows."""
    flows = [f.name for f in methods()[reference].flows] if reference in methods() else []
    return flows or ["adam-flow1", "adam-flow2"]


def resolve_jump_rate(infos, hyper: dict[str, float], jump_rate: float | None) -> float | None:
    """R of jump_lr = R alpha: given, else 1 where a model of the study declares jump_lr (the
    secant-jump limit jump_lr -> 0 with t = k alpha = k jump_lr / R), else None."""
    if jump_rate is not None:
        if not (math.isfinite(jump_rate) and jump_rate > 0):
            raise ConfigError(f"jump rate must be a positive finite number, got {jump_rate!r}")
        if "jump_lr" in hyper:
            raise ConfigError("give --jump-rate (jump_lr = rate * alpha) or a fixed jump_lr, not both")
        return float(jump_rate)
    if "jump_lr" in hyper:
        return None
    if any("jump_lr" in info.hyperparameters for info in infos):
        return 1.0
    return None


def refine(problem, *, protocol: str = "clean", epochs: list[int] | None = None,
           horizon: float | None = None, reference: str = "adam", jump_rate: float | None = None,
           progress: bool = False, conditioning: bool = True) -> dict[str, Any]:
    """Run the alpha-refinement study.

    Args:
        problem: :class:`analysis.cli_options.Problem` (landscape, one theta0, alphas, models, beta1,
            beta2, eps, u0 list for models with an initial velocity, numerics).
        protocol: "clean" or "paper" (SPEC §4).
        epochs: one per alpha (paper protocol: required), or None.
        horizon: T (default 10 when epochs are given).
        reference: registry name of the discrete method compared against (``jumpadam``: Jump
            Adam against its secant-jump limit flows, default models newton-flow,
            diag-newton-flow, jump-flow).
        jump_rate: R with jump_lr = R alpha on every lane (reference and flows; the flows' rate
            jump_lr/alpha is then R for every alpha, so alpha -> 0 is the limit jump_lr -> 0 with
            t = k alpha = k jump_lr / R of SPEC §3.4); default 1 when a model declares jump_lr
            and ``problem.hyper`` fixes none.
        progress: show a tqdm bar on stderr.
        conditioning: estimate every row's forward sensitivity |d theta(T)/d theta0| of the flow
            lane (exact scheme) and of the discrete reference lane
            (:func:`runner.experiment.final_sensitivity`); a row where either exceeds its
            threshold (:func:`runner.experiment.conditioning_threshold`) is ``ill-conditioned``:
            it stays in ``rows`` and is listed in ``ill_conditioned``, but not used in the slope
            fits (its E_T is not a trustworthy number at the requested accuracy).

    Returns ``{"rows": [{alpha, model, u0, T, K, E_T, E_f, E_sup, status, sensitivity,
    sensitivity_reference, conditioning}], "slopes": [{model, u0, p_T, p_f, p_sup, ci_T, ci_f,
    ci_sup}], "ill_conditioned": [...], ...}`` (u0 None for models without it; non-finite errors
    None; sensitivities None and conditioning "not estimated" where not computed).
    """

    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r} (choose from: {', '.join(PROTOCOLS)})")
    alphas = [float(a) for a in problem.alpha]
    if epochs is not None and len(epochs) != len(alphas):
        raise ConfigError(f"--epochs needs one value per alpha ({len(alphas)}), got {len(epochs)}")
    land, dtype, device = _setup(problem)
    ref = get_model(reference)
    if ref.kind != "discrete":
        raise ConfigError(f"reference {reference!r} is not a discrete method")
    models = list(problem.models) or default_models(reference)
    infos = [get_model(m) for m in models]
    for info in infos:
        if info.kind != "flow":
            raise ConfigError(f"model {info.name!r} is not a continuous model (flow)")
    hyper = dict(problem.hyper)
    jump_rate = resolve_jump_rate([ref, *infos], hyper, jump_rate)
    u0s = [float(u) for u in (problem.u0 or [0.0])]
    times = [protocol_times(a, protocol=protocol, epochs=None if epochs is None else epochs[i],
                            horizon=horizon) for i, a in enumerate(alphas)]
    Ks = [K for _, K in times]
    theta0 = [float(x) for x in problem.theta0[0]]
    numerics = problem.numerics

    started = time.perf_counter()
    n_groups = len(set(Ks))
    bar = _progress(n_groups + len(infos), progress, "refine")
    try:
        disc = run_discrete_reference(ref, land, theta0, alphas, Ks, beta1=problem.beta1,
                                      beta2=problem.beta2, eps=problem.eps,
                                      numerics=numerics, hyper=hyper, jump_rate=jump_rate,
                                      bar=bar)
        S_ref = {}
        if conditioning:
            rl = reference_lanes(ref, theta0, alphas, beta1=problem.beta1, beta2=problem.beta2,
                                 eps=problem.eps, hyper=hyper, jump_rate=jump_rate)
            S = final_sensitivity(ref, land, rl, steps=Ks, numerics=numerics)
            S_ref = {a: float(S[i]) for i, a in enumerate(alphas)}
        thr_ref = conditioning_threshold(ref, numerics, dtype)
        rows: list[dict[str, Any]] = []
        for info in infos:
            lane_u0 = u0s if _uses_u0(info) else [None]
            if problem.scheme == "paper":
                rows += paper_scheme_rows(info, land, theta0, alphas, times, lane_u0, disc,
                                          protocol=protocol, epochs=epochs, problem=problem,
                                          dtype=dtype, device=device)
                bar.update(1)
                continue
            lanes, meta, grids = [], [], []
            for i, a in enumerate(alphas):
                T_used, K = times[i]
                grid, krows, trow = _lane_grid(a, K, T_used)
                for u in lane_u0:
                    lanes.append(model_hyper(info, alpha=a, beta1=problem.beta1,
                                             beta2=problem.beta2, eps=problem.eps, u0=u,
                                             hyper=hyper, jump_rate=jump_rate))
                    meta.append((a, u, T_used, K, krows, trow))
                    grids.append(grid)
            traj = run_flow_lanes(info, land, theta0, lanes, grids, numerics=numerics)
            S_flow = (final_sensitivity(info, land, [{"theta0": theta0, **ln} for ln in lanes],
                                        times=[m[2] for m in meta], numerics=numerics).tolist()
                      if conditioning else [None] * len(lanes))
            thr = conditioning_threshold(info, numerics, dtype)
            for b, (a, u, T_used, K, krows, trow) in enumerate(meta):
                th_d, f_d = disc[a]
                kr = torch.tensor(krows)
                th_c, f_c = traj.theta[b, kr], traj.f[b, kr]          # flow at k*alpha, k = 0..K
                th_T, f_T = traj.theta[b, trow], traj.f[b, trow]      # flow at T_used
                if protocol == "clean":
                    th_T, f_T = th_c[K], f_c[K]
                e_sup = _norm(th_d - th_c).max()
                rows.append({
                    "alpha": a, "model": info.name, "u0": u, "T": T_used, "K": K,
                    "E_T": _f(_norm(th_d[K] - th_T)), "E_f": _f((f_d[K] - f_T).abs()),
                    "E_sup": _f(e_sup), "status": traj.status_label(b),
                    **_conditioning(S_flow[b], thr, S_ref.get(a), thr_ref),
                })
            bar.update(1)
    finally:
        bar.close()
    if conditioning:
        for r in rows:                      # paper-scheme rows: the reference's part only
            r.setdefault("sensitivity", None)
            if "conditioning" not in r:
                r.update(_conditioning(None, math.inf, S_ref.get(r["alpha"]), thr_ref))
    ill = [{k: r[k] for k in ("model", "u0", "alpha", "sensitivity", "sensitivity_reference")}
           for r in rows if r.get("conditioning") == "ill-conditioned"]
    fit_rows = [r for r in rows if r.get("conditioning") != "ill-conditioned"]
    elapsed = time.perf_counter() - started
    return {
        "study": "refine", "protocol": protocol, "reference": reference, "scheme": problem.scheme,
        **({"quadrature": problem.quadrature} if problem.scheme == "paper" else {}),
        "landscape": land.spec(), "theta0": theta0, "beta1": problem.beta1, "beta2": problem.beta2,
        "eps": problem.eps, "epochs": None if epochs is None else list(epochs), "horizon": horizon,
        "hyper": hyper, "jump_rate": jump_rate,
        "rows": rows, "slopes": fit_slopes(fit_rows), "ill_conditioned": ill,
        "conditioning_thresholds": {"flow": conditioning_threshold(infos[0], numerics, dtype)
                                    if infos else None, "reference": thr_ref}
        if conditioning else None,
        "runtime_s": elapsed,
    }


def _conditioning(S_flow, thr_flow, S_ref, thr_ref) -> dict[str, Any]:
    """Row fields: the two sensitivities (None where not estimated) and the verdict."""
    if S_flow is None and S_ref is None:
        return {"sensitivity": None, "sensitivity_reference": None, "conditioning": "not estimated"}
    bad = any(S is not None and conditioning_label(S, t) != "ok"
              for S, t in ((S_flow, thr_flow), (S_ref, thr_ref)))
    fin = lambda S: None if S is None or not math.isfinite(S) else S  # noqa: E731
    return {"sensitivity": fin(S_flow), "sensitivity_reference": fin(S_ref),
            "conditioning": "ill-conditioned" if bad else "ok"}


def paper_scheme_rows(info, land, theta0, alphas, times, lane_u0, disc, *, protocol, epochs,
                      problem, dtype, device) -> list[dict[str, Any]]:
    """Rows of the refinement study with the continuous model solved by the published scheme.

    Per alpha, the (u0) lanes run as one :func:`flows.paper_scheme.paper_solve` on the grid
    s_j = j h, h = alpha/5, with n = 5(epochs-1) points under the paper protocol (SPEC §4) or
    5K + 1 points (covering K alpha) under the clean one. theta_c(T_used) is the grid row when
    T_used is a grid point, else the not-a-knot cubic spline of the rows (the published protocol);
    E_sup runs over the k <= K whose time k alpha is a grid row.
    """
    from scipy.interpolate import CubicSpline

    info.check_scheme("paper")
    rows = []
    for i, a in enumerate(alphas):
        T_used, K = times[i]
        if protocol == "paper":
            N = SUBSTEPS * (int(epochs[i]) - 1)
        else:
            N = SUBSTEPS * K + 1
        hps = [model_hyper(info, alpha=a, beta1=problem.beta1, beta2=problem.beta2, eps=problem.eps,
                           u0=u, hyper=problem.hyper) for u in lane_u0]
        B = len(hps)
        flow = info.cls(land, n_lanes=B, dtype=dtype, device=device,
                        **{k: torch.tensor([hp[k] for hp in hps], dtype=dtype, device=device)
                           for k in hps[0]})
        th0 = torch.tensor([theta0] * B, dtype=dtype, device=device)
        sol = paper_solve(flow, th0, N, quadrature=parse_quadrature(problem.quadrature))
        s_grid = sol.s[0].cpu().numpy()
        th_grid = sol.theta.cpu()
        th_d, f_d = disc[a]
        h = a / SUBSTEPS
        j_T = T_used / h
        for b, u in enumerate(lane_u0):
            if abs(j_T - round(j_T)) <= 1e-9 * max(1.0, j_T) and round(j_T) < N:
                th_T = th_grid[b, int(round(j_T))]
            else:
                spline = CubicSpline(s_grid, th_grid[b].numpy(), axis=0)
                th_T = torch.as_tensor(spline(T_used), dtype=th_grid.dtype)
            f_T = land.value(th_T[None].to(dtype=dtype, device=device))[0].cpu()
            ks = [k for k in range(K + 1) if SUBSTEPS * k < N]
            th_c = th_grid[b, [SUBSTEPS * k for k in ks]]
            e_sup = _norm(th_d[ks] - th_c).max()
            status = "ok" if bool(torch.isfinite(th_grid[b]).all()) else "diverged"
            rows.append({
                "alpha": a, "model": info.name, "u0": u, "T": T_used, "K": K,
                "E_T": _f(_norm(th_d[K] - th_T)), "E_f": _f((f_d[K] - f_T).abs()),
                "E_sup": _f(e_sup), "status": status,
                "sweeps": int(sol.sweeps[b]), "residual": float(sol.residual[b]),
            })
    return rows


def fit_slopes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, u0): slopes of log E_T, log E_f, log E_sup against log alpha, CI for p_T."""

    return fit_groups(rows, {"p_T": "E_T", "p_f": "E_f", "p_sup": "E_sup"}, ci=("ci_T", "E_T"),
                      more_ci={"ci_f": "E_f", "ci_sup": "E_sup"})


def _label(model: str, u0) -> str:
    return model if u0 is None else f"{model} u0={u0:g}"


def plot_refine(result: dict[str, Any], path: str) -> None:
    """E_T and E_f vs alpha (log-log), one line per (model, u0), fitted slopes in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    slopes = {(s["model"], s["u0"]): s for s in result["slopes"]}
    for (model, u0), s in slopes.items():
        sel = sorted((r for r in result["rows"] if r["model"] == model and r["u0"] == u0),
                     key=lambda r: r["alpha"])
        for ax, key, pk in ((axes[0], "E_T", "p_T"), (axes[1], "E_f", "p_f")):
            pts = [(r["alpha"], r[key]) for r in sel if r[key] is not None and r[key] > 0]
            if not pts:
                continue
            p = s[pk]
            lab = _label(model, u0) + (f"  p={p:.2f}" if p is not None else "")
            ax.loglog([x for x, _ in pts], [y for _, y in pts], "o-", label=lab)
    proto = result.get("protocol", "")
    ref = result.get("reference", "")
    for ax, key in ((axes[0], "E_T"), (axes[1], "E_f")):
        ax.set_xlabel("alpha")
        ax.set_ylabel(key)
        ax.set_title(f"{key} vs alpha ({proto} protocol, reference {ref})")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# -- CLI -------------------------------------------------------------------------------------------

class RefineStudy(Study):
    command = "refine"
    help = "alpha-refinement: discrete method vs continuous models, errors and log-log slopes"

    def add_options(self, p) -> None:
        add_problem_options(p, models_default=None)
        add_model_options(p, exclude=("jump_lr",))
        p.add_argument("--jump-rate", type=_float, default=None,
                       help="jump_lr = rate * alpha on every lane (default 1 with a model that "
                            "has jump_lr: the secant-jump limit, t = k jump_lr)")
        p.add_argument("--epochs", nargs="+", type=_int, default=None,
                       help="discrete rows per alpha (one per alpha; paper protocol)")
        p.add_argument("--horizon", type=_float, default=None,
                       help="time horizon T (default 10 with --epochs)")
        p.add_argument("--reference", default="adam",
                       help="discrete method compared against (default adam; jumpadam: Jump Adam "
                            "vs newton-flow, diag-newton-flow, jump-flow)")
        p.add_argument("--protocol", default="clean",
                       help="error protocol: paper or clean (default)")
        p.add_argument("--no-conditioning", dest="conditioning", action="store_false",
                       help="skip the per-row sensitivity estimates (two more runs of every "
                            "lane; default: estimate them and keep ill-conditioned rows out of "
                            "the fits)")

    def compute(self, args, numerics):
        if args.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {args.protocol!r} "
                              f"(choose from: {', '.join(PROTOCOLS)})")
        problem = problem_from_args(args, schemes=self.schemes)
        return refine(problem, protocol=args.protocol, epochs=args.epochs, horizon=args.horizon,
                      reference=args.reference, jump_rate=args.jump_rate,
                      progress=not args.quiet, conditioning=args.conditioning)

    def plot(self, result, path) -> None:
        plot_refine(result, path)

    def summary(self, result) -> None:
        _print_table(result)


def _print_table(result: dict[str, Any]) -> None:
    print(f"{'model':<22} {'u0':>5} {'alpha':>9} {'T':>8} {'K':>6} {'E_T':>11} {'E_f':>11} "
          f"{'E_sup':>11}")
    fmt = lambda x: "-" if x is None else f"{x:.4e}"  # noqa: E731
    for r in result["rows"]:
        u = "-" if r["u0"] is None else f"{r['u0']:g}"
        print(f"{r['model']:<22} {u:>5} {r['alpha']:>9g} {r['T']:>8.4g} {r['K']:>6d} "
              f"{fmt(r['E_T']):>11} {fmt(r['E_f']):>11} {fmt(r['E_sup']):>11}")
    print("slopes:")
    p = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    ci = lambda c: "-" if c is None else f"[{c[0]:.3f}, {c[1]:.3f}]"  # noqa: E731
    for s in result["slopes"]:
        print(f"  {_label(s['model'], s['u0']):<22} p_T={p(s['p_T'])} CI {ci(s['ci_T'])}  "
              f"p_f={p(s['p_f'])}  p_sup={p(s['p_sup'])} CI {ci(s.get('ci_sup'))}")


STUDY = RefineStudy()
COMMAND, HELP, add_arguments, main = STUDY.command, STUDY.help, STUDY.add_arguments, STUDY.main
