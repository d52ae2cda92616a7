"""Lyapunov / energy monitors and the PL bound check (SPEC §5), ``adamflow lyapunov``.

Energy along a trajectory sampled at s (s = k*alpha for discrete iterates):

    Phi     = f - f*
    kinetic = (alpha/4) |theta'|^2
    memory  = sum_i mu_i(s) / (2 lam1) m_i^2,   mu = eta(s) / (sqrt(max(v, 0)) + epsq(s)),
              lam1 = (1 - b1)/alpha, eta and epsq the bias factors at q = s/alpha + 1 (SPEC §3)
    V       = Phi + kinetic + memory

theta' per model kind:

* second-order flow (``adam-flow2``): the velocity output u = theta';
* discrete optimizer: the backward difference (theta_k - theta_{k-1}) / (s_k - s_{k-1}), i.e.
  (theta_k - theta_{k-1})/alpha with every sample recorded, and 0 at k = 0;
* first-order flow: no inertia, the kinetic term is 0.

The memory term needs the Adam moments m, v and beta1 (Adam, first- and second-order Adam flows);
it is 0 for models without them. For discrete Adam m_k, v_k are the moments after k updates,
evaluated with the same bias index q = s/alpha + 1 as the flows.

dV/ds > 0 episodes: the backward differences of V on the sample grid over intervals that start at
s >= delta; an interval counts as increasing when V rises by more than rel_tol * max(|V|) of its
two ends (round-off guard, rel_tol = 1e-12); an episode is a maximal run of increasing intervals.
Reported: count, total duration, the largest rise of V over one episode, and the largest rate.

f* comes from ``Landscape.minimum_value``; where it is unknown (or -inf) the smallest f seen along
the lane is used and ``fstar_source`` says "observed".
"""
from __future__ import annotations

import math
import sys

import numpy as np

import discrete
import landscapes
from analysis.cli_options import (
    add_problem_options,
    problem_from_args,
)
from analysis.pl_bound import pl_bound, scalars, violation_indices
from analysis.study import Study
from core.errors import ConfigError
from core.output import save_figure
from core.validation import check_delta, steps_from_horizon
from runner import experiment
from runner.options import check_run_spec
from runner.options import parse_float as _float
from runner.options import parse_int as _int

#: default horizon: 6000 iterates theta_0..theta_5999 at alpha = 1e-3 (SPEC §6 preset "pl")
DEFAULT_HORIZON = 5.999


# -- hyper-parameter facts ----------------------------------------------------------------------

def rho(alpha: float, beta1: float, beta2: float) -> float:
    """rho(alpha, b1, b2) = max(alpha, (alpha/(1-b1))^2, alpha/(1-b2)) (SPEC §3.2)."""
    r1 = alpha / (1.0 - beta1)
    return max(alpha, r1 * r1, alpha / (1.0 - beta2))     # r1 * r1: inf, not OverflowError


def stable(beta1: float, beta2: float) -> bool:
    """The stability condition b1 <= sqrt(b2)."""
    return bool(beta1 <= math.sqrt(beta2))


def bias_factors(s: np.ndarray, alpha: float, beta1: float, beta2: float, eps: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """eta(s), epsq(s) at q = s/alpha + 1 (cancellation-free 1 - b^q)."""
    q = np.asarray(s, dtype=np.float64) / alpha + 1.0

    def one_minus_pow(b):
        if b == 0.0:
            return np.ones_like(q)
        return -np.expm1(q * math.log(b))

    c1 = one_minus_pow(beta1)
    c2 = one_minus_pow(beta2)
    sq = np.sqrt(c2)
    return sq / c1, eps * sq


# -- energy -------------------------------------------------------------------------------------

def energy_arrays(s, theta, f, *, fstar: float, alpha: float, kind: str, u=None, m=None, v=None,
                  beta1: float | None = None, beta2: float | None = None, eps: float = 1e-8
                  ) -> dict:
    """Energy terms on plain arrays: s (T,), theta (T, n), f (T,), u/m/v (T, n) or None.

    ``kind`` is "discrete", "first" or "second" (see the module docstring). Returns arrays
    ``s``, ``phi``, ``kinetic``, ``memory``, ``V``.
    """
    s = np.asarray(s, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64).reshape(s.shape[0], -1)
    f = np.asarray(f, dtype=np.float64)
    phi = f - fstar
    if kind == "second":
        if u is None:
            raise ValueError("the second-order kinetic term needs the velocity u")
        vel = np.asarray(u, dtype=np.float64).reshape(theta.shape)
    elif kind == "discrete":
        vel = np.zeros_like(theta)
        if s.shape[0] > 1:
            ds = np.diff(s)[:, None]
            vel[1:] = np.diff(theta, axis=0) / ds
    elif kind == "first":
        vel = np.zeros_like(theta)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    kinetic = (alpha / 4.0) * np.sum(vel * vel, axis=1)
    if m is not None and v is not None and beta1 is not None and beta2 is not None:
        m = np.asarray(m, dtype=np.float64).reshape(theta.shape)
        v = np.asarray(v, dtype=np.float64).reshape(theta.shape)
        eta, epsq = bias_factors(s, alpha, beta1, beta2, eps)
        mu = eta[:, None] / (np.sqrt(np.maximum(v, 0.0)) + epsq[:, None])
        lam1 = (1.0 - beta1) / alpha
        memory = np.sum(mu * m * m, axis=1) / (2.0 * lam1)
    else:
        memory = np.zeros_like(phi)
    return {"s": s, "phi": phi, "kinetic": kinetic, "memory": memory,
            "V": phi + kinetic + memory}


def model_kind(traj) -> str:
    """"second" when the trajectory has a velocity u, "discrete" for discrete optimizers, else
    "first"."""
    if "u" in traj.extras:
        return "second"
    return "discrete" if traj.meta.get("model") in discrete.MODELS else "first"


def lane_fstar(traj, b: int, fstar: float | None = None) -> tuple[float, str]:
    """f* of lane b: given, from the landscape, or the smallest observed f."""
    if fstar is not None:
        return float(fstar), "given"
    spec = traj.meta.get("landscape")
    val = None
    if spec is not None:
        val = landscapes.parse(spec).minimum_value(traj.dim)
    if val is not None and not isinstance(val, float):
        val = float(val.reshape(-1)[b if val.numel() > 1 else 0])
    if val is not None and math.isfinite(val):
        return float(val), "landscape"
    k = int(traj.n_out[b])
    return float(traj.f[b, :k].min()) if k else math.nan, "observed"


def energy(traj, b: int = 0, *, fstar: float | None = None) -> dict:
    """Energy terms along lane ``b`` of a :class:`core.trajectory.Trajectory`.

    Returns :func:`energy_arrays`' arrays plus ``kind``, ``fstar`` and ``fstar_source``.
    """
    k = int(traj.n_out[b])
    p = {key: val[b] for key, val in traj.params.items()}
    kind = model_kind(traj)
    fs, src = lane_fstar(traj, b, fstar)
    ex = {key: traj.extras[key][b, :k].detach().cpu().numpy() for key in ("u", "m", "v")
          if key in traj.extras}
    out = energy_arrays(
        traj.t[b, :k].detach().cpu().numpy(), traj.theta[b, :k].detach().cpu().numpy(),
        traj.f[b, :k].detach().cpu().numpy(), fstar=fs, alpha=float(p["alpha"]), kind=kind,
        u=ex.get("u"), m=ex.get("m"), v=ex.get("v"), beta1=p.get("beta1"), beta2=p.get("beta2"),
        eps=float(p.get("eps", 1e-8)))
    out.update({"kind": kind, "fstar": fs, "fstar_source": src})
    return out


def episodes(s, V, delta: float = 1.0, rel_tol: float = 1e-12) -> dict:
    """dV/ds > 0 episodes after delta (see the module docstring); vectorised."""
    s = np.asarray(s, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    empty = {"count": 0, "total_duration": 0.0, "max_increase": 0.0, "max_rate": 0.0,
             "first_start": None, "delta": float(delta)}
    if s.shape[0] < 2:
        return empty
    dV = np.diff(V)
    ds = np.diff(s)
    thr = rel_tol * np.maximum(np.abs(V[1:]), np.abs(V[:-1]))
    with np.errstate(invalid="ignore"):
        inc = (s[:-1] >= delta) & (dV > thr) & (ds > 0)
    if not inc.any():
        return empty
    edges = np.diff(np.concatenate([[0], inc.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)           # first increasing interval of each episode
    ends = np.flatnonzero(edges == -1)            # one past the last
    rise = V[ends] - V[starts]
    dur = s[ends] - s[starts]
    return {"count": int(starts.size), "total_duration": float(dur.sum()),
            "max_increase": float(rise.max()), "max_rate": float(np.max(dV[inc] / ds[inc])),
            "first_start": float(s[starts[0]]), "delta": float(delta)}


# -- study --------------------------------------------------------------------------------------

def study(problem, *, steps: int | None = None, horizon: float | None = None, delta: float = 1.0,
          pl: bool = False, fstar: float | None = None, quiet: bool = True) -> dict:
    """Run the problem's models and monitor every lane.

    ``problem`` is an :class:`analysis.cli_options.Problem`. Returns {"lanes": [record, ...]}
    where each record has the JSON fields and, under ``"arrays"``, the energy terms and (with
    ``pl``) the PL check arrays used by :func:`figure`.
    """
    from tqdm import tqdm

    if not (math.isfinite(delta) and delta >= 0):
        raise ConfigError(f"delta must be a finite number >= 0, got {delta}")
    if steps is None and horizon is None:
        horizon = DEFAULT_HORIZON
    specs = run_specs(problem, steps=steps, horizon=horizon)
    for a in problem.alpha:            # rho(alpha, b1, b2) must be a number (it is reported)
        try:
            r = rho(float(a), problem.beta1, problem.beta2)
        except OverflowError:
            r = math.inf
        if not math.isfinite(r):
            raise ConfigError(f"alpha={a:g} is too large: rho(alpha, beta1, beta2) overflows")
    for spec in specs:                 # the window [delta, T] inside every lane's horizon
        for a in spec.alpha:
            K = spec.steps if spec.steps is not None else steps_from_horizon(spec.horizon, a)
            check_delta(delta, K * a, what=f" of alpha={a:g}")
    lanes = []
    for spec in tqdm(specs, desc="lyapunov", disable=quiet, file=sys.stderr):
        (info, traj), = experiment.run(spec)
        for b in range(traj.n_lanes):
            lanes.append(_lane_record(info.name, traj, b, delta=delta, pl=pl, fstar=fstar))
    return {"lanes": lanes}


def run_specs(problem, *, steps: int | None, horizon: float | None) -> list:
    """One validated :class:`runner.experiment.RunSpec` per model of ``problem`` (all input
    errors are raised here, before any run starts)."""

    specs = []
    for model in problem.models:
        spec = experiment.RunSpec(
            landscape=problem.landscape, models=[model], theta0=problem.theta0,
            alpha=problem.alpha, beta1=[problem.beta1], beta2=[problem.beta2], eps=[problem.eps],
            u0=problem.u0, steps=steps, horizon=horizon, device=problem.device,
            dtype=problem.dtype, scheme=problem.scheme, integrator=problem.integrator, engine=problem.engine,
            rtol=problem.rtol, atol=problem.atol)
        check_run_spec(spec)           # sizes, horizons, eps, memory: before any run starts
        specs.append(spec)
    if not specs:
        raise ConfigError("at least one model is required")
    return specs


def _lane_record(model: str, traj, b: int, *, delta: float, pl: bool, fstar) -> dict:
    p = {key: val[b] for key, val in traj.params.items()}
    alpha = float(p["alpha"])
    b1, b2 = p.get("beta1"), p.get("beta2")
    e = energy(traj, b, fstar=fstar)
    rec = {
        "model": model, "kind": e["kind"], "u0": p.get("u0"), "alpha": alpha,
        "beta1": b1, "beta2": b2, "theta0": p.get("theta0"),
        "status": traj.status_label(b),
        "rho": rho(alpha, b1, b2) if b1 is not None and b2 is not None else None,
        "stable_b1_le_sqrt_b2": stable(b1, b2) if b1 is not None and b2 is not None else None,
        "fstar": e["fstar"], "fstar_source": e["fstar_source"],
        "final": ({key: float(e[key][-1]) for key in ("phi", "kinetic", "memory", "V")}
                  if e["s"].size else None),
        "episodes": episodes(e["s"], e["V"], delta),
        "pl": None,
    }
    arrays = {key: e[key] for key in ("s", "phi", "kinetic", "memory", "V")}
    if pl:
        res = pl_bound(e["s"], e["phi"], delta=delta)
        rec["pl"] = scalars(res)
        arrays["pl"] = {"s": res["s"], "env": res["env"], "bound": res["bound"],
                        "violations": violation_indices(res), "touch": res["touch"]}
    rec["arrays"] = arrays
    return rec


def json_lanes(results: dict) -> dict:
    """The JSON document: the records without their arrays."""
    return {"lanes": [{k: v for k, v in rec.items() if k != "arrays"} for rec in results["lanes"]]}


def lane_label(rec: dict) -> str:
    lab = f"{rec['model']} a={rec['alpha']:g}"
    if rec.get("u0") is not None:
        lab += f" u0={rec['u0']:g}"
    return lab


def figure(results: dict):
    """Energy panel (Phi, kinetic, memory, V vs s; log y) and, where the PL check ran, the
    envelope with the fitted bound A exp(-omega (s - delta)) + B and violation markers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = results["lanes"]
    has_pl = any(r["pl"] is not None for r in recs)
    fig, axes = plt.subplots(1, 2 if has_pl else 1, figsize=(13 if has_pl else 7, 4.8),
                             squeeze=False, layout="constrained")
    ax = axes[0, 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"V": "-", "phi": "--", "kinetic": ":", "memory": "-."}
    names = {"V": "V", "phi": "Phi", "kinetic": "kinetic", "memory": "memory"}
    for i, rec in enumerate(recs):
        a = rec["arrays"]
        c = colors[i % len(colors)]
        for key, ls in styles.items():
            y = np.where(a[key] > 0, a[key], np.nan)
            if np.isfinite(y).any():
                ax.plot(a["s"], y, ls, color=c, lw=1.2,
                        label=f"{names[key]}  {lane_label(rec)}" if key == "V" or i == 0 else
                        None)
    ax.set_yscale("log")
    ax.set_xlabel("s")
    ax.set_ylabel("energy")
    ax.set_title("Lyapunov energy: V (solid), Phi (--), kinetic (:), memory (-.)")
    ax.legend(fontsize=7)
    if has_pl:
        ax = axes[0, 1]
        for i, rec in enumerate(recs):
            if rec["pl"] is None:
                continue
            a = rec["arrays"]["pl"]
            c = colors[i % len(colors)]
            ax.plot(a["s"], a["env"], "-", color=c, lw=1.2, label=f"env  {lane_label(rec)}")
            pl = rec["pl"]
            if pl["ok"]:
                ax.plot(a["s"], a["bound"], "--", color=c, lw=1.0,
                        label=f"A e^(-w(s-d))+B: A={pl['A']:.3g} w={pl['omega']:.3g} "
                              f"B={pl['B']:.3g}")
                vi = a["violations"]
                if len(vi):
                    ax.plot(a["s"][vi], a["env"][vi], "x", color="red", ms=6,
                            label=f"violations ({len(vi)})")
                if a["touch"] is not None:
                    ax.plot(a["s"][a["touch"]], a["env"][a["touch"]], "o", mfc="none",
                            color=c, ms=7)
        ax.set_yscale("log")
        ax.set_xlabel("s")
        ax.set_ylabel("env(Phi)")
        ax.set_title("PL bound check (o: sample that sets A; x: violation)")
        ax.legend(fontsize=7)
    return fig


# -- CLI ----------------------------------------------------------------------------------------

class LyapunovStudy(Study):
    command = "lyapunov"
    help = "energy (Lyapunov) monitors along trajectories and the PL bound check"

    def add_options(self, p) -> None:
        add_problem_options(p, models_default=["adam", "adam-flow2"], alpha_required=False)
        p.set_defaults(landscape="rosenbrock1d(c=0)", alpha=[1e-3])
        g = p.add_mutually_exclusive_group()
        g.add_argument("--steps", type=_int, help="K steps per lane (flows: horizon K*alpha)")
        g.add_argument("--horizon", type=_float,
                       help=f"time horizon T, K = round(T/alpha) (default {DEFAULT_HORIZON}: 6000 "
                            "iterates at alpha = 1e-3)")
        p.add_argument("--delta", type=_float, default=1.0,
                       help="initial layer excluded from episodes and the PL fit (default 1)")
        p.add_argument("--fstar", type=_float, default=None,
                       help="f* (default: the landscape's known minimum)")
        p.add_argument("--pl", action="store_true", help="run the PL bound check")

    def compute(self, args, numerics):
        problem = problem_from_args(args, schemes=self.schemes, horizon_default=DEFAULT_HORIZON)
        if args.fstar is not None and not math.isfinite(args.fstar):
            raise ConfigError(f"fstar must be finite, got {args.fstar}")
        return study(problem, steps=args.steps, horizon=args.horizon, delta=args.delta,
                     pl=args.pl, fstar=args.fstar, quiet=args.quiet)

    def to_json(self, result):
        return json_lanes(result)

    def plot(self, result, path) -> None:
        save_figure(figure(result), path)

    def summary(self, result) -> None:
        for rec in result["lanes"]:
            ep = rec["episodes"]
            line = (f"{lane_label(rec):<28} rho={_g(rec['rho'])} b1<=sqrt(b2)="
                    f"{rec['stable_b1_le_sqrt_b2']} dV>0 episodes={ep['count']} "
                    f"duration={ep['total_duration']:.4g} max_rise={ep['max_increase']:.3g}")
            if rec["pl"] is not None:
                pl = rec["pl"]
                line += (f" | PL B={pl['B']:.4g} omega={pl['omega']:.4g} A={pl['A']:.4g} "
                         f"violation={pl['violation']:.3g}")
            print(line)


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


STUDY = LyapunovStudy()
COMMAND, HELP, add_arguments, main = STUDY.command, STUDY.help, STUDY.add_arguments, STUDY.main
