"""Convergence-rate studies (SPEC §5): fitted exponential (PL) or power-law (KL) rates of f - f*
vs alpha, beta1 or beta2, for discrete optimizers and continuous flows side by side.

Fit
---
Along one lane, with shifted time s = k*alpha and the gap  d(s) = max(f(s) - f*, 0):

* ``exp``:   log d = a - rate * s            (d ~ C exp(-rate s); rate per unit time)
* ``power``: log d = a - rate * log s        (d ~ C s^-rate)
* ``auto``:  both; the one with the larger R^2 (R^2 of the least-squares line in log d) wins.

Window rule (documented, applied to every lane alike)
-----------------------------------------------------
1. Envelope (``envelope="suffix-max"``, the default): d is replaced by its non-increasing upper
   envelope E(s) = max_{r >= s} d(r). For a monotone decay E = d exactly; for an oscillating decay
   (Adam with beta1 = 0.99, the inertial flow) E follows the peaks, so zero crossings of f - f* (theta
   passing through the minimizer) do not end or distort the fit. ``envelope="none"`` fits d itself.
2. Plateau / noise level B = max of d over the last ``tail`` fraction (default 10%) of the samples.
   The effective floor is F = max(floor, plateau_factor * B) (defaults 1e-12 and 10).
3. The window starts at s0 (default 1: after the initial layer, and s > 0 for the power law) and
   ends at s1 = the first sample time s >= s0 where E(s) < F (the horizon if it never does). The fit
   uses the samples with s0 <= s < s1 (all with E >= F > 0). Fewer than 3 samples: rate = None.

``window`` in the output is [s0, s1] (s1 = the end of the fitted range: the last sample used).
The library functions return plain dicts; :func:`plot_rates` draws from those only.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

import landscapes
from analysis.study import Study
from core.errors import ConfigError
from core.hyper import check_alpha, check_beta
from core.output import save_figure
from core.validation import steps_from_horizon
from runner import experiment
from runner.experiment import Numerics
from runner.options import check_run_spec
from runner.options import parse_float as _float
from runner.options import parse_int as _int
from runner.options import parse_vector as _vector
from runner.registry import get_model

FITS = ("exp", "power", "auto")
ENVELOPES = ("suffix-max", "none")
SWEEPS = ("alpha", "beta1", "beta2")
DEFAULT_MODELS = ["adam", "adam-flow1", "adam-flow2"]
DEFAULT_SWEEP_VALUES = {
    "alpha": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1],
    "beta1": [0.9, 0.95, 0.99, 0.995],
    "beta2": [0.99, 0.995, 0.999, 0.9999],
}
DEFAULT_FIXED = {"alpha": [1e-2], "beta1": [0.99], "beta2": [0.999]}


# -- fitting -----------------------------------------------------------------------------------------

def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares y = a + b x; returns (a, b, R^2)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx <= 0:
        return math.nan, math.nan, math.nan
    b = float(((x - xm) * (y - ym)).sum()) / sxx
    a = float(ym - b * xm)
    ss_tot = float(((y - ym) ** 2).sum())
    ss_res = float(((y - (a + b * x)) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return a, b, r2


def suffix_max(d: np.ndarray) -> np.ndarray:
    """E[i] = max(d[i:]) (the non-increasing upper envelope)."""
    return np.maximum.accumulate(d[::-1])[::-1]


def fit_window(s: np.ndarray, gap: np.ndarray, *, s0: float = 1.0, floor: float = 1e-12,
               envelope: str = "suffix-max", tail: float = 0.1,
               plateau_factor: float = 10.0) -> dict[str, Any]:
    """The fit window of the module docstring: indices used, envelope, floor and plateau level."""
    if envelope not in ENVELOPES:
        raise ConfigError(f"envelope must be one of {', '.join(ENVELOPES)}, got {envelope!r}")
    s = np.asarray(s, dtype=float)
    d = np.asarray(gap, dtype=float)
    ok = np.isfinite(s) & np.isfinite(d)
    s, d = s[ok], np.maximum(d[ok], 0.0)
    if s.size == 0:
        return {"idx": np.zeros(0, dtype=int), "E": d, "s": s, "floor": floor, "plateau": math.nan}
    E = suffix_max(d) if envelope == "suffix-max" else d
    n_tail = max(1, int(math.ceil(tail * s.size)))
    plateau = float(d[-n_tail:].max())
    F = max(floor, plateau_factor * plateau)
    after = s >= s0
    below = after & (E < F)
    end = int(np.argmax(below)) if below.any() else s.size
    idx = np.nonzero(after[:end] & (E[:end] >= F) & (E[:end] > 0))[0]
    return {"idx": idx, "E": E, "s": s, "floor": F, "plateau": plateau}


def fit_rate(s, gap, *, fit: str = "auto", s0: float = 1.0, floor: float = 1e-12,
             envelope: str = "suffix-max", tail: float = 0.1,
             plateau_factor: float = 10.0) -> dict[str, Any]:
    """Fit a rate to the gap series d(s) = f(s) - f* (see the module docstring).

    Returns {"fit": "exp"|"power", "rate", "r2", "window": [s0, s1], "n", "floor", "plateau",
    "r2_exp", "r2_power"}; rate/r2 are None when the window holds fewer than 3 samples.
    """
    if fit not in FITS:
        raise ConfigError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if not (s0 >= 0 and math.isfinite(s0)):
        raise ConfigError(f"s0 must be a finite number >= 0, got {s0}")
    if fit in ("power", "auto") and s0 <= 0:
        raise ConfigError("the power-law fit needs s0 > 0 (log s)")
    w = fit_window(s, gap, s0=s0, floor=floor, envelope=envelope, tail=tail,
                   plateau_factor=plateau_factor)
    idx, E, ss = w["idx"], w["E"], w["s"]
    out: dict[str, Any] = {"fit": fit if fit != "auto" else "exp", "rate": None, "r2": None,
                           "window": [float(s0), None], "n": int(idx.size),
                           "floor": w["floor"], "plateau": w["plateau"],
                           "r2_exp": None, "r2_power": None}
    if idx.size < 3:
        return out
    x, y = ss[idx], np.log(E[idx])
    out["window"] = [float(s0), float(x[-1])]
    cands = {}
    if fit in ("exp", "auto"):
        _, b, r2 = _line_fit(x, y)
        cands["exp"] = (-b, r2)
        out["r2_exp"] = r2
    if fit in ("power", "auto"):
        _, b, r2 = _line_fit(np.log(x), y)
        cands["power"] = (-b, r2)
        out["r2_power"] = r2
    if fit == "auto":
        r2e, r2p = cands["exp"][1], cands["power"][1]
        choice = "power" if (math.isfinite(r2p) and (not math.isfinite(r2e) or r2p > r2e)) else "exp"
    else:
        choice = fit
    rate, r2 = cands[choice]
    out.update(fit=choice, rate=float(rate) if math.isfinite(rate) else None,
               r2=float(r2) if math.isfinite(r2) else None)
    return out


# -- the study ---------------------------------------------------------------------------------------

def _fstar(landscape: str, fstar: float | None) -> float:
    if fstar is not None:
        if not math.isfinite(fstar):
            raise ConfigError(f"fstar must be finite, got {fstar}")
        return float(fstar)

    val = landscapes.parse(landscape).minimum_value()
    if val is None or not isinstance(val, (int, float)) or not math.isfinite(val):
        raise ConfigError(f"f* of {landscape} is not known in closed form (or differs per lane); "
                          f"give --fstar")
    return float(val)


def rate_study(*, landscape: str = "rosenbrock1d(c=0)", models: list[str] | None = None,
               theta0: list[float] | None = None, alpha: list[float] | None = None,
               beta1: list[float] | None = None, beta2: list[float] | None = None,
               eps: float = 1e-8, u0: list[float] | None = None, sweep: str = "alpha",
               horizon: float | None = None, steps: int | None = None, fit: str = "auto",
               s0: float = 1.0, floor: float = 1e-12, envelope: str = "suffix-max",
               fstar: float | None = None, every: int = 1, device: str = "cpu",
               dtype: str = "float64", rtol: float | None = None, atol: float | None = None,
               progress: bool = False, numerics: Numerics | None = None) -> dict[str, Any]:
    """Run every model once over all lanes (alpha x beta1 x beta2 x u0) and fit a rate per lane.

    Returns {"rows": [{"model", "u0", "alpha", "beta1", "beta2", "fit", "rate", "r2", "window",
    "n", "status"}], "sweep", "landscape", "fstar", "theta0", "horizon", "steps", "fit_rule"}.
    Hyper-parameters a model does not use are reported as None (e.g. beta1 for gd). The horizon
    defaults to T = 15 (K = round(T/alpha) steps per lane) unless ``steps`` is given.
    ``numerics`` (scheme, integrator, tolerances, device, dtype) overrides the separate
    ``device``/``dtype``/``rtol``/``atol`` arguments.
    """
    from tqdm.auto import tqdm

    if sweep not in SWEEPS:
        raise ConfigError(f"sweep must be one of {', '.join(SWEEPS)}, got {sweep!r}")
    if fit not in FITS:
        raise ConfigError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if envelope not in ENVELOPES:
        raise ConfigError(f"envelope must be one of {', '.join(ENVELOPES)}, got {envelope!r}")
    if not (floor > 0 and math.isfinite(floor)):
        raise ConfigError(f"floor must be a positive finite number, got {floor}")
    models = list(models or DEFAULT_MODELS)
    vals = {"alpha": alpha, "beta1": beta1, "beta2": beta2}
    for name in SWEEPS:
        if not vals[name]:
            vals[name] = list(DEFAULT_SWEEP_VALUES[name] if name == sweep else DEFAULT_FIXED[name])
    theta0 = list(theta0 if theta0 is not None else [-1.5])
    if horizon is None and steps is None:
        horizon = 15.0
    fs = _fstar(landscape, fstar)
    spec = experiment.RunSpec(
        landscape=landscape, models=models, theta0=[theta0], alpha=vals["alpha"],
        beta1=vals["beta1"], beta2=vals["beta2"], eps=[eps], u0=list(u0 or [1.0]),
        steps=steps, horizon=horizon if steps is None else None, every=every,
        **dataclasses.asdict(numerics or Numerics(device=device, dtype=dtype, rtol=rtol, atol=atol)))
    check_run_spec(spec)               # sizes, horizons, eps > 0 for flows, memory
    if not (isinstance(s0, (int, float)) and math.isfinite(s0) and s0 >= 0):
        raise ConfigError(f"s0 must be a finite number >= 0, got {s0}")
    if fit in ("power", "auto") and s0 <= 0:
        raise ConfigError("the power-law fit needs s0 > 0 (log s)")
    for a in spec.alpha:               # the fit window [s0, T] must hold samples
        K = spec.steps if spec.steps is not None else steps_from_horizon(spec.horizon, a)
        if K * a <= s0:
            raise ConfigError(f"the horizon {K * a:g} of alpha={a:g} ends before the fit window "
                              f"starts (s0={s0:g}); use a longer --horizon / more --steps or a "
                              "smaller --s0")
    rows = []
    for m in tqdm(models, desc="rates", unit="model", disable=not progress):
        one = spec.replace(models=[m])
        [(info, traj)] = experiment.run(one)
        for b in range(traj.n_lanes):
            n = int(traj.n_out[b])
            s = traj.t[b, :n].double().cpu().numpy()
            gap = traj.f[b, :n].double().cpu().numpy() - fs
            res = fit_rate(s, gap, fit=fit, s0=s0, floor=floor, envelope=envelope)
            p = {k: v[b] for k, v in traj.params.items()}
            rows.append({
                "model": info.name, "u0": p.get("u0"), "alpha": p.get("alpha"),
                "beta1": p.get("beta1"), "beta2": p.get("beta2"), "fit": res["fit"],
                "rate": res["rate"], "r2": res["r2"], "window": res["window"], "n": res["n"],
                "r2_exp": res["r2_exp"], "r2_power": res["r2_power"],
                "floor": res["floor"], "status": traj.status_label(b),
                "reason": None if res["rate"] is not None else _no_rate_reason(res, traj, b),
            })
    return {"rows": rows, "sweep": sweep, "landscape": landscape, "fstar": fs,
            "theta0": theta0, "horizon": spec.horizon, "steps": spec.steps, "fit": fit,
            "envelope": envelope, "s0": s0, "floor": floor}


def _no_rate_reason(res: dict[str, Any], traj, b: int) -> str:
    """Why a lane has no rate (rate null): the lane's status, or what the window held."""
    status = traj.status_label(b)
    if status != "ok":
        return f"lane {status}" + (f" at s={traj.diverged_time(b):g}"
                                   if traj.diverged_time(b) is not None else "")
    if res["n"] < 3:
        return (f"the fit window [s0={res['window'][0]:g}, first s where the gap envelope < "
                f"floor {res['floor']:.3g}] holds {res['n']} samples (< 3)")
    return "the least-squares fit is degenerate (constant gap or time)"


# -- figure ------------------------------------------------------------------------------------------

def plot_rates(result: dict[str, Any], path: str) -> None:
    """Rate vs the swept parameter, one line per model (and u0 / other fixed values)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = result["sweep"]
    others = [k for k in SWEEPS if k != sweep]
    groups: dict[tuple, list[dict]] = {}
    for r in result["rows"]:
        key = (r["model"], r["u0"]) + tuple(r[k] for k in others)
        groups.setdefault(key, []).append(r)
    multi = {k: len({g[i] for g in groups}) > 1 for i, k in enumerate(others, start=2)}
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for key, rs in groups.items():
        rs = sorted((r for r in rs if r["rate"] is not None and r[sweep] is not None),
                    key=lambda r: r[sweep])
        if not rs:
            continue
        label = key[0] + (f" u0={key[1]:g}" if key[1] is not None else "")
        for i, k in enumerate(others, start=2):
            if multi[k] and key[i] is not None:
                label += f" {k}={key[i]:g}"
        fits = {r["fit"] for r in rs}
        if len(fits) == 1:
            label += f" ({fits.pop()})"
        ax.plot([r[sweep] for r in rs], [r["rate"] for r in rs], "o-", label=label)
    if sweep == "alpha":
        ax.set_xscale("log")
    ax.set_xlabel({"alpha": "alpha", "beta1": "beta1", "beta2": "beta2"}[sweep])
    ax.set_ylabel("fitted rate")
    ax.set_title(f"convergence rate, {result['landscape']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


# -- CLI ---------------------------------------------------------------------------------------------

class RatesStudy(Study):
    command = "rates"
    help = "fitted exponential / power-law convergence rates vs alpha, beta1 or beta2"
    summary_only_without_json = True

    def add_options(self, p) -> None:
        p.add_argument("--landscape", default="rosenbrock1d(c=0)", help="landscape spec")
        p.add_argument("--theta0", type=_vector, default=[-1.5], help="initial point (comma list)")
        p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="models")
        p.add_argument("--sweep", choices=SWEEPS, default="alpha", help="swept parameter (x axis)")
        p.add_argument("--alpha", nargs="+", type=_float, help="step sizes")
        p.add_argument("--beta1", nargs="+", type=_float, help="beta1 values (default 0.99)")
        p.add_argument("--beta2", nargs="+", type=_float, help="beta2 values (default 0.999)")
        p.add_argument("--eps", type=_float, default=1e-8, help="epsilon")
        p.add_argument("--u0", nargs="+", type=_float, default=[1.0],
                       help="initial velocities of second-order flows (default 1)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--horizon", type=_float, default=None, help="time horizon T (default 15)")
        g.add_argument("--steps", type=_int, default=None, help="K steps per lane instead of T")
        p.add_argument("--fit", choices=FITS, default="auto", help="exp, power or auto (best R^2)")
        p.add_argument("--s0", type=_float, default=1.0, help="window start (default 1)")
        p.add_argument("--floor", type=_float, default=1e-12, help="gap floor ending the window")
        p.add_argument("--envelope", choices=ENVELOPES, default="suffix-max",
                       help="fit the non-increasing upper envelope (default) or the raw gap")
        p.add_argument("--fstar", type=_float, default=None, help="f* when not known in closed form")
        p.add_argument("--every", type=_int, default=1, help="record every N-th step")

    def compute(self, args, numerics):
        for m in args.models:
            get_model(m)
        if args.alpha:
            check_alpha(args.alpha)
        for name in ("beta1", "beta2"):
            if getattr(args, name):
                check_beta(getattr(args, name), name)
        return rate_study(
            landscape=args.landscape, models=args.models, theta0=args.theta0, alpha=args.alpha,
            beta1=args.beta1, beta2=args.beta2, eps=args.eps, u0=args.u0, sweep=args.sweep,
            horizon=args.horizon if args.steps is None else None,
            steps=args.steps, fit=args.fit, s0=args.s0, floor=args.floor, envelope=args.envelope,
            fstar=args.fstar, every=args.every, numerics=numerics, progress=not args.quiet)

    def plot(self, result, path) -> None:
        plot_rates(result, path)

    def summary(self, result) -> None:
        for r in result["rows"]:
            u = f" u0={r['u0']:g}" if r["u0"] is not None else ""
            rate = "None" if r["rate"] is None else f"{r['rate']:.6g}"
            print(f"{r['model']:<12}{u} alpha={r['alpha']:<8g} beta1={r['beta1']} "
                  f"beta2={r['beta2']} {r['fit']:<5} rate={rate} r2={r['r2']} "
                  f"window={r['window']}")


STUDY = RatesStudy()
COMMAND, HELP, add_arguments, main = STUDY.command, STUDY.help, STUDY.add_arguments, STUDY.main
