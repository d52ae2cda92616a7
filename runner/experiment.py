"""Batched runs of several models over the cartesian product of per-lane settings.

This is the library behind ``adamflow run``: everything the CLI does is callable from here.

Lanes of one model are the product theta0 x (the model's hyper-parameters, in the model's order);
a value list that the model does not use is ignored for that model. All lanes of a model run as one
batched computation (discrete lanes with different step counts K are grouped by K). Discrete and
continuous models share the output indices k (t = k*alpha).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

import landscapes
from core.errors import ConfigError
from core.hyper import check_alpha, resolve_device, resolve_dtype
from core.trajectory import Trajectory
from flows.paper_scheme import run_paper_scheme
from flows.paper_scheme_2024 import run_paper2024
from flows.simulate import output_grid, simulate
from flows.solvers import HochbruckOstermann4
from runner.registry import ModelInfo, get_model


@dataclass
class RunSpec:
    """What to run. Per-lane options are lists; ``None`` means "the model's default"."""

    landscape: str
    models: list[str]
    theta0: list[list[float]]
    alpha: list[float]
    beta1: list[float] | None = None
    beta2: list[float] | None = None
    beta: list[float] | None = None
    momentum: list[float] | None = None
    eps: list[float] | None = None
    u0: list[float] | None = None
    steps: int | None = None
    horizon: float | None = None
    every: int = 1
    device: str = "cpu"
    dtype: str = "float64"
    scheme: str = "exact"
    integrator: str = "exprb43"   # exact-mode stepper, see INTEGRATORS
    rtol: float | None = None     # default: 1e-10 (float64), 1e-5 (float32)
    atol: float | None = None     # default: 1e-12 (float64), 1e-7 (float32)
    extra: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str) -> list[float] | None:
        return getattr(self, name, None)


def validate(spec: RunSpec) -> None:
    if not spec.models:
        raise ConfigError("at least one model is required")
    if (spec.steps is None) == (spec.horizon is None):
        raise ConfigError("give exactly one of --steps or --horizon")
    if spec.steps is not None and spec.steps < 1:
        raise ConfigError(f"steps must be >= 1, got {spec.steps}")
    if spec.horizon is not None and (not math.isfinite(spec.horizon) or spec.horizon <= 0):
        raise ConfigError(f"horizon must be a positive finite number, got {spec.horizon}")
    if spec.every < 1:
        raise ConfigError(f"every must be >= 1, got {spec.every}")
    if not spec.alpha:
        raise ConfigError("alpha is required")
    check_alpha(spec.alpha)
    if not spec.theta0:
        raise ConfigError("theta0 is required")
    dims = {len(t) for t in spec.theta0}
    if len(dims) != 1:
        raise ConfigError("all theta0 lanes must have the same dimension")
    for t in spec.theta0:
        for x in t:
            if not math.isfinite(x):
                raise ConfigError(f"theta0 must be finite, got {x}")
    if spec.integrator not in INTEGRATORS:
        raise ConfigError(f"unknown integrator {spec.integrator!r} "
                          f"(choose from: {', '.join(INTEGRATORS)})")
    if spec.scheme not in SCHEMES:
        raise ConfigError(f"unknown scheme {spec.scheme!r} (available: {', '.join(SCHEMES)})")
    if spec.scheme != "exact":
        bad = [m for m in spec.models
               if get_model(m).kind == "flow" and m not in SCHEMES[spec.scheme]]
        if bad:
            raise ConfigError(f"scheme {spec.scheme!r} applies to "
                              f"{', '.join(SCHEMES[spec.scheme])} only, not {', '.join(bad)}")
    for tol, name in ((spec.rtol, "rtol"), (spec.atol, "atol")):
        if tol is not None and (not math.isfinite(tol) or tol <= 0):
            raise ConfigError(f"{name} must be a positive finite number, got {tol}")


#: schemes -> models they apply to ("exact": every model; "paper": arXiv 2602.09101 substep scheme,
#: see :mod:`flows.paper_scheme`; "paper2024": the published fixed-point IDE solver of
#: arXiv 2411.09734, see :mod:`flows.paper_scheme_2024`)
SCHEMES = {"exact": None, "paper": ("adam-flow1", "adam-flow2"),
           "paper2024": ("adam-flow1", "rmsprop-flow", "adagrad-flow")}


#: exact-mode steppers (``--integrator``):
#: exprb43 - exponential Rosenbrock, full Jacobian: robust also where the adaptive gain makes the
#:           flow stiff (small beta2, late in a run); the default
#: etd4    - step doubling of the stiff-order-4 exponential RK with the fixed linear part: fewer
#:           steps on smooth runs, stability-limited where the nonlinear part is stiff
INTEGRATORS = ("exprb43", "etd4")


def integrator_kwargs(name: str) -> dict:
    """Keyword arguments of :func:`flows.solve.solve` selecting the stepper ``name``."""
    if name == "etd4":
        return {"solver": HochbruckOstermann4()}
    return {}


DEFAULT_TOLERANCES = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-5, 1e-7)}


def tolerances(spec: RunSpec, dtype: torch.dtype) -> tuple[float, float]:
    rtol, atol = DEFAULT_TOLERANCES[dtype]
    return (spec.rtol if spec.rtol is not None else rtol,
            spec.atol if spec.atol is not None else atol)


def steps_for(spec: RunSpec, alpha: float) -> int:
    if spec.steps is not None:
        return int(spec.steps)
    K = int(round(spec.horizon / alpha))
    if K < 1:
        raise ConfigError(f"horizon {spec.horizon} is shorter than one step of alpha={alpha}")
    return K


def lanes_for(info: ModelInfo, spec: RunSpec) -> list[dict[str, Any]]:
    """The cartesian product of per-lane settings used by this model."""
    names = list(info.hyperparameters)
    choices = []
    for name in names:
        given = spec.option(name)
        if given is None or len(given) == 0:
            default = info.hyperparameters[name]
            if default is None:
                raise ConfigError(f"model {info.name} needs --{name}")
            given = [default]
        choices.append([float(x) for x in given])
    lanes = []
    for th in spec.theta0:
        for combo in itertools.product(*choices):
            lane = {"theta0": list(th)}
            lane.update(dict(zip(names, combo)))
            lanes.append(lane)
    return lanes


def run(spec: RunSpec) -> list[tuple[ModelInfo, Trajectory]]:
    """Run every model of ``spec``; returns (model info, trajectory) per model."""
    validate(spec)
    dtype = resolve_dtype(spec.dtype)
    device = resolve_device(spec.device)
    land = landscapes.parse(spec.landscape)
    land.check_dim(len(spec.theta0[0]))
    infos = [get_model(m) for m in spec.models]
    out = []
    for info in infos:
        lanes = lanes_for(info, spec)
        if info.kind == "discrete":
            traj = _run_discrete(info, land, lanes, spec, dtype, device)
        else:
            traj = _run_flow(info, land, lanes, spec, dtype, device)
        out.append((info, traj))
    return out


def _hp_tensors(info, lanes, dtype, device) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([ln[name] for ln in lanes], dtype=dtype, device=device)
            for name in info.hyperparameters}


def _params(info, lanes) -> dict[str, list]:
    params = {"theta0": [ln["theta0"] for ln in lanes]}
    for name in info.hyperparameters:
        params[name] = [ln[name] for ln in lanes]
    return params


def _run_discrete(info, land, lanes, spec, dtype, device) -> Trajectory:
    groups: dict[int, list[int]] = {}
    for i, ln in enumerate(lanes):
        groups.setdefault(steps_for(spec, ln["alpha"]), []).append(i)
    parts, order = [], []
    for K, idx in groups.items():
        sub = [lanes[i] for i in idx]
        opt = info.cls(**_hp_tensors(info, sub, dtype, device))
        theta0 = torch.tensor([ln["theta0"] for ln in sub], dtype=dtype, device=device)
        traj = opt.run(land, theta0, steps=K, every=spec.every)
        traj.params = _params(info, sub)
        traj.meta.update({"model": info.name, "landscape": land.spec(), "steps": K})
        parts.append(traj)
        order += idx
    traj = parts[0] if len(parts) == 1 else Trajectory.concat(parts)
    if len(parts) > 1:
        inv = torch.empty(len(order), dtype=torch.long)
        inv[torch.tensor(order)] = torch.arange(len(order))
        traj = _select(traj, inv)
    traj.meta.update({"model": info.name, "landscape": land.spec()})
    return traj


def _select(traj: Trajectory, idx: torch.Tensor) -> Trajectory:
    dev = traj.theta.device
    i = idx.to(dev)
    return Trajectory(
        t=traj.t[i], theta=traj.theta[i], f=traj.f[i], status=traj.status[i],
        diverged_at=traj.diverged_at[i], n_out=traj.n_out[i],
        extras={k: v[i] for k, v in traj.extras.items()},
        params={k: [v[j] for j in idx.tolist()] for k, v in traj.params.items()},
        stats={k: v[idx.to(v.device)] for k, v in traj.stats.items()}, meta=dict(traj.meta))


def _run_flow(info, land, lanes, spec, dtype, device) -> Trajectory:
    hp = _hp_tensors(info, lanes, dtype, device)
    B = len(lanes)
    flow = info.cls(land, n_lanes=B, dtype=dtype, device=device, **hp)
    Ks = [steps_for(spec, ln["alpha"]) for ln in lanes]
    t_out, k_out, n_out = output_grid(hp["alpha"], Ks, spec.every)
    theta0 = torch.tensor([ln["theta0"] for ln in lanes], dtype=dtype, device=device)
    if spec.scheme == "paper":
        return _run_paper(flow, theta0, Ks, info, lanes, spec)
    if spec.scheme == "paper2024":
        return _run_paper2024(info, land, lanes, Ks, spec, dtype)
    rtol, atol = tolerances(spec, dtype)
    traj = simulate(flow, theta0, t_out, n_out, rtol=rtol, atol=atol,
                    params=_params(info, lanes),
                    meta={"scheme": spec.scheme, "integrator": spec.integrator},
                    **integrator_kwargs(spec.integrator))
    if "v" in traj.extras and info.name == "adam-flow2":
        v = traj.extras["v"]
        rows = torch.arange(v.shape[1], device=v.device)[None, :] < traj.n_out[:, None]
        vmin = torch.where(rows[..., None], v, torch.full_like(v, math.inf)).amin(dim=(1, 2))
        traj.stats["min_v"] = vmin
    return traj


def _run_paper(flow, theta0, Ks, info, lanes, spec) -> Trajectory:
    """Paper scheme (one fixed-point solve per distinct step count K; grid N = substeps*K + 1)."""

    substeps = int(spec.extra.get("substeps", 5))
    groups: dict[int, list[int]] = {}
    for i, K in enumerate(Ks):
        groups.setdefault(K, []).append(i)
    parts, order = [], []
    for K, idx in groups.items():
        sel = torch.tensor(idx, dtype=torch.long, device=theta0.device)
        sub = flow if len(groups) == 1 else flow.subset(sel)
        traj = run_paper_scheme(sub, theta0[sel], steps=K, every=spec.every, substeps=substeps,
                                params=_params(info, [lanes[i] for i in idx]))
        parts.append(traj)
        order += idx
    if len(parts) == 1:
        return parts[0]
    traj = Trajectory.concat(parts)
    inv = torch.empty(len(order), dtype=torch.long)
    inv[torch.tensor(order)] = torch.arange(len(order))
    traj = _select(traj, inv)
    traj.meta.update({"model": info.name, "scheme": "paper"})
    return traj


def _run_paper2024(info, land, lanes, Ks, spec, dtype) -> Trajectory:
    """Published IDE solver of arXiv 2411.09734, one lane at a time (t_i = 1e-12 + i alpha)."""

    parts = []
    for b, (ln, K) in enumerate(zip(lanes, Ks)):
        sub = getattr(land, "subset", None)
        land_b = sub(torch.tensor([b])) if callable(sub) else land
        hyper = {k: ln[k] for k in info.hyperparameters if k != "alpha"}
        for k, v in spec.extra.items():
            if k in ("tol", "max_iterations", "nodes"):
                hyper[k] = v
        traj = run_paper2024(info.name, land_b, ln["theta0"], ln["alpha"], K, every=spec.every,
                             params=_params(info, [ln]), dtype=dtype, **hyper)
        parts.append(traj)
    traj = parts[0] if len(parts) == 1 else Trajectory.concat(parts)
    traj.meta.update({"model": info.name, "landscape": land.spec(), "scheme": "paper2024"})
    return traj


# -- serialisation ---------------------------------------------------------------------------------

def lane_records(results: list[tuple[ModelInfo, Trajectory]]) -> list[dict[str, Any]]:
    """The JSON lanes of ``adamflow run`` (see README for the schema)."""
    records = []
    for info, traj in results:
        for b in range(traj.n_lanes):
            p = {k: v[b] for k, v in traj.params.items()}
            lane = traj.lane(b)
            rec: dict[str, Any] = {
                "model": info.name,
                "kind": info.kind,
                "landscape": traj.meta.get("landscape"),
                "alpha": p.get("alpha"),
                "beta1": p.get("beta1"),
                "beta2": p.get("beta2"),
                "theta0": p.get("theta0"),
                "u0": p.get("u0"),
            }
            for extra in ("beta", "momentum", "eps"):
                if extra in p:
                    rec[extra] = p[extra]
            rec["status"] = traj.status_label(b)
            rec["diverged_at"] = traj.diverged_time(b)
            rec["t"] = lane["t"]
            rec["theta"] = lane["theta"]
            rec["f"] = lane["f"]
            for key in ("m", "v", "u"):
                if key in lane:
                    rec[key] = lane[key]
            k = int(traj.n_out[b])
            rec["final_theta"] = traj.theta[b, k - 1].tolist() if k else None
            rec["final_f"] = float(traj.f[b, k - 1]) if k else None
            stats = {name: (float(v[b]) if v.is_floating_point() else int(v[b]))
                     for name, v in traj.stats.items()}
            if stats:
                rec["stats"] = stats
            if "min_v" in stats:
                rec["min_v"] = stats["min_v"]
                rec["v_negative"] = bool(stats["min_v"] < 0)
            records.append(rec)
    return records


def csv_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    n = len(records[0]["theta0"]) if records else 1
    header = ["model", "lane", "alpha", "beta1", "beta2", "u0", "status", "t"]
    header += [f"theta_{i}" for i in range(n)] + ["f"]
    header += [f"m_{i}" for i in range(n)] + [f"v_{i}" for i in range(n)]
    rows = []
    for lane_id, rec in enumerate(records):
        for j, t in enumerate(rec["t"]):
            row = [rec["model"], lane_id, rec["alpha"], rec["beta1"], rec["beta2"], rec["u0"],
                   rec["status"], t] + list(rec["theta"][j]) + [rec["f"][j]]
            for key in ("m", "v"):
                row += list(rec[key][j]) if key in rec else [""] * n
            rows.append(row)
    return header, rows
