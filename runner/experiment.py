"""The one runner: every run, study and figure turns lanes into trajectories through here.

Two entry points:

* :func:`run_lanes` -- one model over explicit lanes (a hyper-parameter dict plus ``theta0`` each)
  with per-lane step counts K (or explicit per-lane output times for flows), under one
  :class:`Numerics` (scheme, integrator, tolerances, device, dtype). It owns what every caller used to
  repeat: discrete lanes with different K run as ONE batch (each lane stops after its own K); exact
  flows run as one batch with per-lane output grids; schemes that need a common grid (the paper
  schemes) are grouped by K and the lane order restored; per-lane landscape parameters follow the
  lanes through every grouping (:meth:`landscapes.base.Landscape.subset`); the default tolerances
  per dtype; which integrator; the signed-record monitors (``min_v``).
* :func:`run` -- ``adamflow run``: a :class:`RunSpec` whose per-lane options form, per model, the
  cartesian product theta0 x (the model's hyper-parameters, in the model's order); an option a
  model does not take is ignored for that model.

Discrete and continuous models share the output indices k (t = k alpha). Which schemes a flow
supports, which hyper-parameters a model takes and what it records come from the model's
descriptor (:mod:`core.method`, collected by :mod:`runner.registry`); nothing here names a model.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

import landscapes
from core.errors import ConfigError
from core.hyper import check_alpha, resolve_device, resolve_dtype
from core.method import ModelInfo
from core.trajectory import Status, Trajectory
from core.validation import (
    check_flow_alpha,
    check_flow_eps,
    check_horizon,
    check_steps,
    steps_from_horizon,
)
from discrete.fast import compiled_support
from flows.fast.solve import fast_stepper, fast_support
from flows.paper_quadrature import parse_quadrature
from flows.paper_scheme import SUBSTEPS, run_paper_scheme
from flows.paper_scheme_2024 import run_paper2024
from flows.simulate import output_grid, simulate
from flows.solvers import HochbruckOstermann4
from runner.registry import get_model, hyper_params, registry

#: exact-mode steppers (``--integrator``):
#: auto    - the compiled engine where it applies, each lane on dop853 or rodas5p
#:           (:func:`flows.fast.solve.lane_steppers`: rodas5p for the stiff lanes of the Adam
#:           family, from the start or from where dop853's stiffness test fires), else exprb43
#:           (the default)
#: dop853  - Dormand-Prince 8(5,3) on every lane, one adaptive loop per lane in one compiled kernel
#:           (:mod:`flows.fast`; compiled engine only)
#: rodas5p - the Rosenbrock method Rodas5P on every lane (the Adam-family flows on landscapes with
#:           a compiled phi''; compiled engine only)
#: exprb43 - exponential Rosenbrock, full Jacobian: robust also where the adaptive gain makes the
#:           flow stiff (small beta2, late in a run); the torch engine's default
#: etd4    - step doubling of the stiff-order-4 exponential RK with the fixed linear part: fewer
#:           steps on smooth runs, stability-limited where the nonlinear part is stiff (torch)
INTEGRATORS = ("auto", "dop853", "rodas5p", "exprb43", "etd4")
#: which engine runs each integrator
INTEGRATOR_ENGINE = {"dop853": "compiled", "rodas5p": "compiled", "exprb43": "torch",
                     "etd4": "torch"}

#: evaluation orders of the discrete optimizers (``--arithmetic``, :mod:`discrete.classic`):
#: spec  - the SPEC §2 formulas literally, left to right (the default; the compiled engine's order)
#: torch - torch.optim's single-tensor kernels replayed (lerp/addcmul/addcdiv): a lane equals a
#:         torch.optim run bit for bit on the CPU (torch engine only)
ARITHMETICS = ("spec", "torch")

#: exact-mode engines (``--engine``): auto (compiled where the flow, the landscape, the dtype and
#: the device allow it, else torch), compiled (:mod:`flows.fast`; an error where it does not apply),
#: torch (the reference engine, :func:`flows.solve.solve`)
ENGINES = ("auto", "compiled", "torch")

#: flow schemes: "exact" (every flow), "paper" (the substep scheme of arXiv 2602.09101,
#: :mod:`flows.paper_scheme`), "paper2024" (the published fixed-point IDE solver of
#: arXiv 2411.09734, :mod:`flows.paper_scheme_2024`). Which flow supports which is declared by the
#: flow (``schemes``); :func:`scheme_models` lists them.
SCHEME_NAMES = ("exact", "paper", "paper2024")

DEFAULT_TOLERANCES = {torch.float64: (1e-10, 1e-12), torch.float32: (1e-5, 1e-7)}

#: ``extra`` options understood by the paper schemes
PAPER_OPTIONS = ("substeps",)
PAPER2024_OPTIONS = ("tol", "max_iterations", "nodes")


def scheme_models(scheme: str) -> tuple[str, ...]:
    """The registered flows that support ``scheme``."""
    return tuple(n for n, info in registry().items() if info.kind == "flow" and scheme in info.schemes)


def integrator_kwargs(name: str) -> dict:
    """Keyword arguments of :func:`flows.solve.solve` selecting the stepper ``name``."""
    if name == "etd4":
        return {"solver": HochbruckOstermann4()}
    return {}


@dataclass
class Numerics:
    """How flows are solved: scheme, exact-mode engine, integrator and tolerances, device, dtype.

    ``rtol``/``atol`` None take :data:`DEFAULT_TOLERANCES` of the dtype; ``extra`` holds
    scheme options (:data:`PAPER_OPTIONS`, :data:`PAPER2024_OPTIONS`).
    """

    scheme: str = "exact"
    integrator: str = "auto"
    engine: str = "auto"
    rtol: float | None = None
    atol: float | None = None
    device: str = "cpu"
    dtype: str = "float64"
    extra: dict[str, Any] = field(default_factory=dict)
    #: evaluation order of the discrete optimizers (:data:`ARITHMETICS`)
    arithmetic: str = "spec"
    #: memories of the paper scheme: exact (piecewise-linear convolution) or glN (the published
    #: N-node Gauss-Legendre rule on the cubic spline of theta, :mod:`flows.paper_quadrature`);
    #: other schemes ignore it
    quadrature: str = "exact"

    def validate(self) -> None:
        parse_quadrature(self.quadrature)
        if self.arithmetic not in ARITHMETICS:
            raise ConfigError(f"unknown arithmetic {self.arithmetic!r} "
                              f"(choose from: {', '.join(ARITHMETICS)})")
        if self.integrator not in INTEGRATORS:
            raise ConfigError(f"unknown integrator {self.integrator!r} "
                              f"(choose from: {', '.join(INTEGRATORS)})")
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r} (choose from: {', '.join(ENGINES)})")
        need = INTEGRATOR_ENGINE.get(self.integrator)
        if need is not None and self.engine not in ("auto", need):
            raise ConfigError(f"integrator {self.integrator} runs on the {need} engine, "
                              f"not --engine {self.engine}")
        if self.scheme not in SCHEME_NAMES:
            raise ConfigError(f"unknown scheme {self.scheme!r} (available: {', '.join(SCHEME_NAMES)})")
        for tol, name in ((self.rtol, "rtol"), (self.atol, "atol")):
            if tol is not None and (not math.isfinite(tol) or tol <= 0):
                raise ConfigError(f"{name} must be a positive finite number, got {tol}")
        resolve_dtype(self.dtype)
        resolve_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype)

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def tolerances(self, dtype: torch.dtype | None = None) -> tuple[float, float]:
        rtol, atol = DEFAULT_TOLERANCES[dtype or self.torch_dtype]
        return (self.rtol if self.rtol is not None else rtol,
                self.atol if self.atol is not None else atol)

    def solve_kwargs(self, dtype: torch.dtype | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`flows.solve.solve` (the torch engine)."""
        rtol, atol = self.tolerances(dtype)
        return {"rtol": rtol, "atol": atol, **integrator_kwargs(self.integrator)}

    def discrete_engine(self, opt, landscape) -> str:
        """The engine that runs the discrete optimizer ``opt`` (auto: compiled where
        :func:`discrete.fast.compiled_support` allows it)."""
        if self.engine == "torch":
            return "torch"
        why = compiled_support(opt, landscape, self.torch_dtype, self.torch_device)
        if why is None:
            return "compiled"
        if self.engine == "compiled":
            raise ConfigError(f"the compiled engine cannot run this: {why} (use --engine torch)")
        return "torch"

    def choose_engine(self, flow) -> tuple[str, str]:
        """(engine, integrator) that run ``flow`` in the exact mode under these numerics; on the
        compiled engine the integrator is dop853, rodas5p or dop853+rodas5p (auto's per-lane choice
        for the Adam-family flows, :func:`flows.fast.solve.lane_steppers`).

        auto takes the compiled engine where :func:`flows.fast.solve.fast_support` allows it (and no
        torch stepper was named); ``--engine compiled`` or ``--integrator dop853`` where it does not
        is a ConfigError with the reason."""
        want = INTEGRATOR_ENGINE.get(self.integrator, self.engine)
        if want == "torch":
            return "torch", "exprb43" if self.integrator == "auto" else self.integrator
        why = fast_support(flow, self.torch_dtype, self.torch_device)
        if why is None:
            try:
                return "compiled", fast_stepper(flow, self.integrator)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        if want == "compiled":
            raise ConfigError(f"the compiled engine cannot run this: {why} (use --engine torch)")
        return "torch", "exprb43"


# -- one model over explicit lanes ------------------------------------------------------------------

def _landscape(land) -> Any:
    return landscapes.parse(land) if isinstance(land, str) else land


def _lane_subset(land, idx: list[int], B: int):
    """The landscape for lanes ``idx`` of a B-lane run (itself when no parameter is per lane)."""
    if len(idx) == B and idx == list(range(B)):
        return land
    return land.subset(torch.tensor(idx, dtype=torch.long))


def _params(info: ModelInfo, lanes: list[dict[str, Any]]) -> dict[str, list]:
    params: dict[str, list] = {"theta0": [list(ln["theta0"]) for ln in lanes]}
    for p in info.hyper:
        params[p.name] = [ln[p.name] for ln in lanes]
    return params


def _hp_tensors(info: ModelInfo, lanes, dtype, device) -> dict[str, torch.Tensor]:
    return {p.name: torch.tensor([ln[p.name] for ln in lanes], dtype=dtype, device=device)
            for p in info.hyper}


def select_lanes(traj: Trajectory, idx: torch.Tensor) -> Trajectory:
    """The lanes ``idx`` of ``traj`` (a reordering or a subset), every per-lane field kept aligned."""
    i = idx.to(traj.theta.device)
    return Trajectory(
        t=traj.t[i], theta=traj.theta[i], f=traj.f[i], status=traj.status[i],
        diverged_at=traj.diverged_at[i], n_out=traj.n_out[i],
        extras={k: v[i] for k, v in traj.extras.items()},
        params={k: [v[j] for j in idx.tolist()] for k, v in traj.params.items()},
        stats={k: v[idx.to(v.device)] for k, v in traj.stats.items()}, meta=dict(traj.meta),
        events={k: v[idx.to(v.device)] for k, v in traj.events.items()})


def by_group(keys: list, run_group) -> Trajectory:
    """Run ``run_group(idx)`` per distinct key (lanes with equal key together) and return one
    Trajectory in the original lane order."""
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    parts, order = [], []
    for key, idx in groups.items():
        parts.append(run_group(key, idx))
        order += idx
    if len(parts) == 1:
        return parts[0]
    traj = Trajectory.concat(parts)
    inv = torch.empty(len(order), dtype=torch.long)
    inv[torch.tensor(order)] = torch.arange(len(order))
    return select_lanes(traj, inv)


def run_lanes(model: str | ModelInfo, landscape, lanes: list[dict[str, Any]], steps: list[int], *,
              every: int = 1, grids: list[list[float]] | None = None,
              numerics: Numerics | None = None) -> Trajectory:
    """Run ``model`` on ``lanes`` and return one Trajectory in lane order.

    Args:
        model: registry name or :class:`core.method.ModelInfo`.
        landscape: a Landscape or a spec string; per-lane parameters have one value per lane.
        lanes: per lane ``{"theta0": [...], <hyper-parameter>: value, ...}``; missing
            hyper-parameters take the model's defaults; every value is checked.
        steps: K per lane (t = k alpha, k = 0, every, ..., K).
        every: record every ``every``-th step (the last always).
        grids: exact flows only: explicit per-lane output times instead of the k alpha grid.
        numerics: :class:`Numerics` (default: exact scheme, exprb43, default tolerances, CPU float64).
    """
    info = model if isinstance(model, ModelInfo) else get_model(model)
    num = numerics or Numerics()
    num.validate()
    info.check_scheme(num.scheme)
    if len(steps) != len(lanes) or not lanes:
        raise ConfigError(f"run_lanes: {len(lanes)} lanes but {len(steps)} step counts")
    dtype, device = num.torch_dtype, num.torch_device
    land = _landscape(landscape)
    full = [{"theta0": [float(x) for x in ln["theta0"]], **hp}
            for ln, hp in zip(lanes, info.lanes_hyper(lanes))]
    dims = {len(ln["theta0"]) for ln in full}
    if len(dims) != 1:
        raise ConfigError("all theta0 lanes must have the same dimension")
    land.check_dim(dims.pop())
    nl = land.n_lanes()
    if nl is not None and nl != len(full):
        raise ConfigError(f"landscape {land.spec()} has per-lane parameters for {nl} lanes, "
                          f"but {info.name} runs {len(full)} lanes")
    Ks = [int(k) for k in steps]
    if any(k < 0 for k in Ks):
        raise ConfigError("steps must be >= 0")
    theta0 = torch.tensor([ln["theta0"] for ln in full], dtype=dtype, device=device)
    if info.kind == "discrete":
        if grids is not None:
            raise ConfigError("explicit output times apply to flows only")
        opt = info.cls(arithmetic=num.arithmetic, **_hp_tensors(info, full, dtype, device))
        engine = num.discrete_engine(opt, land)
        traj = opt.run(land, theta0, steps=Ks[0] if len(set(Ks)) == 1 else Ks, every=every,
                       engine=engine)
        traj.params = _params(info, full)
        traj.meta["engine"] = engine
        traj.meta["arithmetic"] = num.arithmetic
    elif num.scheme == "exact":
        traj = _run_exact(info, land, full, Ks, every, grids, num, theta0)
    elif grids is not None:
        raise ConfigError(f"explicit output times need the exact scheme, not {num.scheme!r}")
    elif num.scheme == "paper":
        traj = _run_paper(info, land, full, Ks, every, num, theta0)
    else:
        traj = _run_paper2024(info, land, full, Ks, every, num)
    _signed_monitors(info, traj)
    traj.meta.update({"model": info.name, "landscape": land.spec()})
    if info.kind == "flow":
        traj.meta.setdefault("integrator", num.integrator)
        traj.meta["scheme"] = num.scheme
    return traj


def _run_exact(info, land, lanes, Ks, every, grids, num, theta0) -> Trajectory:
    dtype, device = theta0.dtype, theta0.device
    hp = _hp_tensors(info, lanes, dtype, device)
    flow = info.cls(land, n_lanes=len(lanes), dtype=dtype, device=device, **hp)
    if grids is None:
        t_out, _, n_out = output_grid(hp["alpha"], Ks, every)
    else:
        if len(grids) != len(lanes):
            raise ConfigError(f"{len(grids)} output grids for {len(lanes)} lanes")
        T = max(len(g) for g in grids)
        t_out = torch.full((len(grids), T), math.nan, dtype=dtype)
        for b, g in enumerate(grids):
            t_out[b, :len(g)] = torch.tensor(g, dtype=dtype)
        t_out = t_out.to(device)
        n_out = torch.tensor([len(g) for g in grids], dtype=torch.long, device=device)
    engine, integrator = num.choose_engine(flow)
    rtol, atol = num.tolerances(dtype)
    if engine == "compiled":
        traj = simulate(flow, theta0, t_out, n_out, params=_params(info, lanes), rtol=rtol,
                        atol=atol, engine="compiled",
                        stepper="auto" if num.integrator == "auto" else integrator)
    else:
        # the model's own events (a switched flow's gates) are located by the torch engine
        traj = simulate(flow, theta0, t_out, n_out, params=_params(info, lanes), rtol=rtol,
                        atol=atol, events=flow.events() or None, **integrator_kwargs(integrator))
    traj.meta.update({"engine": engine, "integrator": integrator})
    return traj


def _run_paper(info, land, lanes, Ks, every, num, theta0) -> Trajectory:
    """Paper scheme: one fixed-point solve per distinct K (grid N = substeps K + 1)."""
    substeps = int(num.extra.get("substeps", SUBSTEPS))
    dtype, device = theta0.dtype, theta0.device

    def group(K, idx):
        sub = [lanes[i] for i in idx]
        flow = info.cls(_lane_subset(land, idx, len(lanes)), n_lanes=len(idx), dtype=dtype,
                        device=device, **_hp_tensors(info, sub, dtype, device))
        sel = torch.tensor(idx, dtype=torch.long, device=device)
        return run_paper_scheme(flow, theta0[sel], steps=K, every=every, substeps=substeps,
                                params=_params(info, sub), quadrature=nodes)

    nodes = parse_quadrature(num.quadrature)

    return by_group(Ks, group)


def _run_paper2024(info, land, lanes, Ks, every, num) -> Trajectory:
    """Published IDE solver of arXiv 2411.09734, one lane at a time (t_i = 1e-12 + i alpha)."""
    parts = []
    for b, (ln, K) in enumerate(zip(lanes, Ks)):
        hyper = {k: ln[k] for k in info.hyperparameters if k != "alpha"}
        hyper.update({k: v for k, v in num.extra.items() if k in PAPER2024_OPTIONS})
        parts.append(run_paper2024(info.name, _lane_subset(land, [b], len(lanes)), ln["theta0"],
                                   ln["alpha"], K, every=every, params=_params(info, [ln]),
                                   dtype=num.torch_dtype, **hyper))
    return parts[0] if len(parts) == 1 else Trajectory.concat(parts)


def _signed_monitors(info: ModelInfo, traj: Trajectory) -> None:
    """stats["min_<r>"] over the valid samples for each signed record r of the model."""
    for name in info.signed_records:
        if name not in traj.extras:
            continue
        x = traj.extras[name]
        rows = torch.arange(x.shape[1], device=x.device)[None, :] < traj.n_out.to(x.device)[:, None]
        xmin = torch.where(rows[..., None], x, torch.full_like(x, math.inf)).amin(dim=(1, 2))
        traj.stats[f"min_{name}"] = xmin


# -- adamflow run: the cartesian product of per-lane options ----------------------------------------

class RunSpec:
    """What ``adamflow run`` runs. Per-lane options are lists; ``None`` means "the model's default".

    Hyper-parameters are keyword arguments named as the models declare them (``alpha``, ``beta1``,
    ``u0``, ...: :func:`runner.registry.hyper_params`); an unknown name is a :class:`ConfigError`.
    Numerics: ``device``, ``dtype``, ``scheme``, ``integrator``, ``rtol``, ``atol``, ``extra``
    (see :class:`Numerics`). ``landscape`` is a spec string or a Landscape object.
    """

    NUMERICS = tuple(f.name for f in dataclasses.fields(Numerics))

    def __init__(self, landscape, models: list[str], theta0: list[list[float]], *,
                 steps: int | None = None, horizon: float | None = None, every: int = 1,
                 sensitivity: bool = False, **options: Any) -> None:
        self.landscape = landscape
        #: also estimate each lane's |d theta(T)/d theta0| (:func:`final_sensitivity`)
        self.sensitivity = bool(sensitivity)
        self.models = list(models)
        self.theta0 = theta0
        self.steps = steps
        self.horizon = horizon
        self.every = every
        num = {k: options.pop(k) for k in list(options) if k in self.NUMERICS}
        self.numerics = Numerics(**{k: v for k, v in num.items() if v is not None})
        known = hyper_params()
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(unknown)} (hyper-parameters: "
                              f"{', '.join(known)})")
        self.hyper: dict[str, list[float] | None] = {k: options.get(k) for k in known}

    def option(self, name: str) -> list[float] | None:
        return self.hyper.get(name)

    def __getattr__(self, name: str):
        # hyper-parameters and numerics read as attributes (spec.alpha, spec.scheme, ...)
        d = self.__dict__
        if "hyper" in d and name in d["hyper"]:
            return d["hyper"][name]
        if "numerics" in d and name in RunSpec.NUMERICS:
            return getattr(d["numerics"], name)
        raise AttributeError(name)

    def replace(self, **changes: Any) -> "RunSpec":
        kw: dict[str, Any] = dict(steps=self.steps, horizon=self.horizon, every=self.every,
                                  sensitivity=self.sensitivity)
        kw.update({k: getattr(self.numerics, k) for k in self.NUMERICS})
        kw.update({k: v for k, v in self.hyper.items() if v is not None})
        base = dict(landscape=self.landscape, models=self.models, theta0=self.theta0)
        base.update({k: changes.pop(k) for k in list(changes) if k in base})
        kw.update(changes)
        return RunSpec(**base, **kw)


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
    spec.numerics.validate()
    infos = [get_model(m) for m in spec.models]
    if spec.scheme != "exact":
        bad = [i.name for i in infos if not i.supports(spec.scheme)]
        if bad:
            raise ConfigError(f"scheme {spec.scheme!r} applies to "
                              f"{', '.join(scheme_models(spec.scheme))} only, not {', '.join(bad)}")
    for info in infos:
        for p in info.hyper:
            given = spec.option(p.name)
            if given:
                p.validate(given)
    # the checks the CLI makes (core.validation), for every caller of the library: bounded step
    # counts, finite horizons, flows with eps > 0 and alpha >= MIN_FLOW_ALPHA
    if spec.steps is not None:
        check_steps(spec.steps, "steps")
    for info in infos:
        for a in spec.alpha:
            K = int(spec.steps) if spec.steps is not None else \
                steps_from_horizon(spec.horizon, float(a))
            check_horizon(float(a), K, what=f" for {info.name}")
        if info.kind == "flow":
            check_flow_alpha(spec.alpha, info.name)
            if "eps" in info.hyperparameters:
                check_flow_eps(spec.option("eps") or [info.hyperparameters["eps"]], info.name)


def tolerances(spec: RunSpec, dtype: torch.dtype) -> tuple[float, float]:
    return spec.numerics.tolerances(dtype)


def steps_for(spec: RunSpec, alpha: float) -> int:
    if spec.steps is not None:
        return int(spec.steps)
    K = int(round(spec.horizon / alpha))
    if K < 1:
        raise ConfigError(f"horizon {spec.horizon} is shorter than one step of alpha={alpha}")
    return K


def lanes_for(info: ModelInfo, spec: RunSpec) -> list[dict[str, Any]]:
    """The cartesian product theta0 x (per-lane settings used by this model, in its order)."""
    names = [p.name for p in info.hyper]
    choices = []
    for p in info.hyper:
        given = spec.option(p.name)
        if given is None or len(given) == 0:
            if p.default is None:
                raise ConfigError(f"model {info.name} needs {p.flag}")
            given = [p.default]
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
    land = _landscape(spec.landscape)
    land.check_dim(len(spec.theta0[0]))
    out = []
    for info in (get_model(m) for m in spec.models):
        lanes = lanes_for(info, spec)
        Ks = [steps_for(spec, ln["alpha"]) for ln in lanes]
        traj = run_lanes(info, land, lanes, Ks, every=spec.every, numerics=spec.numerics)
        if spec.sensitivity:
            S = final_sensitivity(info, land, lanes, steps=Ks, numerics=spec.numerics)
            traj.meta["sensitivity"] = S.tolist()
            traj.meta["conditioning_threshold"] = conditioning_threshold(
                info, spec.numerics, spec.numerics.torch_dtype)
        out.append((info, traj))
    return out


# -- conditioning ---------------------------------------------------------------------------------

#: relative size of the theta0 perturbation of :func:`final_sensitivity` (times max(1, |theta0|))
SENSITIVITY_STEP = 1e-8


def conditioning_threshold(info: ModelInfo, numerics: Numerics, dtype: torch.dtype) -> float:
    """The sensitivity above which a lane's final state is ill-conditioned: 1/sqrt(u), with u the
    accuracy asked of the lane (a flow: the integrator's rtol; a discrete method: the unit roundoff
    of the dtype). A perturbation at that accuracy then grows past sqrt(u): fewer than half the
    requested digits of theta(T) can be trusted."""
    u = numerics.tolerances(dtype)[0] if info.kind == "flow" else torch.finfo(dtype).eps
    return 1.0 / math.sqrt(u)


def final_sensitivity(info: ModelInfo, land, lanes: list[dict[str, Any]], *,
                      steps: list[int] | None = None, times: list[float] | None = None,
                      numerics: Numerics | None = None) -> torch.Tensor:
    """Forward-sensitivity estimate |d theta(T)/d theta0| per lane (B,) float64, by central
    differences: every lane run again from theta0 +- d e (e = (1, ..., 1)/sqrt(n), d =
    SENSITIVITY_STEP max(1, |theta0|_inf)) in one batch, S = |theta_+(T) - theta_-(T)| / (2 d).
    Lanes are batch invariant (bit for bit on the compiled engine), so the difference is the
    model's, not the batch's. ``steps``: a discrete method's (or a flow's) step counts K (T = K
    alpha); ``times``: a flow's horizons T. inf where a perturbed lane does not finish (diverged)."""
    land = _landscape(land)
    pert, Ks, grids, ds = [], [], [], []
    for b, ln in enumerate(lanes):
        th = [float(x) for x in ln["theta0"]]
        d = SENSITIVITY_STEP * max(1.0, max(abs(x) for x in th))
        e = 1.0 / math.sqrt(len(th))
        ds.append(d)
        for sgn in (1.0, -1.0):
            pert.append({**ln, "theta0": [x + sgn * d * e for x in th]})
            if times is not None:
                grids.append([0.0, float(times[b])])
                Ks.append(0)
            else:
                Ks.append(int(steps[b]))
    idx = [b for b in range(len(lanes)) for _ in range(2)]
    sub = _lane_subset(land, idx, len(lanes))            # itself when no parameter is per lane
    if times is not None:
        num = dataclasses.replace(numerics or Numerics(), scheme="exact")
        tr = run_lanes(info, sub, pert, Ks, grids=grids, numerics=num)
    else:
        tr = run_lanes(info, sub, pert, Ks, every=max(1, max(Ks)), numerics=numerics)
    last = (tr.n_out - 1).clamp(min=0)
    fin = tr.theta[torch.arange(len(pert)), last].to("cpu", torch.float64)            # (2B, n)
    ok = (tr.status.cpu() == int(Status.OK)) & torch.isfinite(fin).all(-1)
    diff = torch.linalg.vector_norm(fin[0::2] - fin[1::2], dim=-1)
    S = diff / (2.0 * torch.tensor(ds, dtype=torch.float64))
    return torch.where(ok[0::2] & ok[1::2], S, torch.full_like(S, math.inf))


def conditioning_label(S: float, threshold: float) -> str:
    return "ok" if math.isfinite(S) and S <= threshold else "ill-conditioned"


# -- serialisation ---------------------------------------------------------------------------------

#: lane statuses whose last sample is the state at the end of the run
FINISHED = ("ok", "event")

def lane_records(results: list[tuple[ModelInfo, Trajectory]]) -> list[dict[str, Any]]:
    """The JSON lanes of ``adamflow run`` (see README for the schema), generated from the models'
    descriptors: the ``reported`` hyper-parameters always (null where a model lacks one), the
    model's other hyper-parameters, its records, its signed-record monitors."""
    reported = [p.name for p in hyper_params().values() if p.reported]
    records = []
    for info, traj in results:
        own = [p.name for p in info.hyper if not p.reported]
        for b in range(traj.n_lanes):
            p = {k: v[b] for k, v in traj.params.items()}
            lane = traj.lane(b)
            rec: dict[str, Any] = {"model": info.name, "kind": info.kind,
                                   "landscape": traj.meta.get("landscape"),
                                   "theta0": p.get("theta0")}
            for name in reported:
                rec[name] = p.get(name)
            for name in own:
                if name in p:
                    rec[name] = p[name]
            rec["status"] = traj.status_label(b)
            rec["diverged_at"] = traj.diverged_time(b)
            rec["t"] = lane["t"]
            rec["theta"] = lane["theta"]
            rec["f"] = lane["f"]
            for key in info.records:
                if key in lane:
                    rec[key] = lane[key]
            k = int(traj.n_out[b])
            # the state at the end of the run: null for a lane that did not get there (diverged,
            # step underflow, max steps; diverged_at says when), as in basin; its trajectory up to
            # the stop stays in theta
            finished = k and rec["status"] in FINISHED
            rec["final_theta"] = traj.theta[b, k - 1].tolist() if finished else None
            rec["final_f"] = float(traj.f[b, k - 1]) if finished else None
            stats = {name: (float(v[b]) if v.is_floating_point() else int(v[b]))
                     for name, v in traj.stats.items()}
            if stats:
                rec["stats"] = stats
            if "sensitivity" in traj.meta:
                S = traj.meta["sensitivity"][b]
                rec["sensitivity"] = S if math.isfinite(S) else None
                rec["conditioning"] = conditioning_label(S, traj.meta["conditioning_threshold"])
            for name in info.signed_records:
                if f"min_{name}" in stats:
                    rec[f"min_{name}"] = stats[f"min_{name}"]
                    rec[f"{name}_negative"] = bool(stats[f"min_{name}"] < 0)
            if traj.events and int(traj.events["count"][b]) > 0:
                c = int(traj.events["count"][b])
                rec["events"] = {"t": traj.events["t"][b, :c].tolist(),
                                 "index": traj.events["index"][b, :c].tolist(),
                                 "direction": traj.events["direction"][b, :c].tolist()}
            records.append(rec)
    return records


def csv_rows(records: list[dict[str, Any]], results: list[tuple[ModelInfo, Trajectory]] | None = None
             ) -> tuple[list[str], list[list[Any]]]:
    """One CSV row per lane and sample: the reported hyper-parameters, status, t, theta_i, f and
    the per-coordinate records of the models in the run (m_i, v_i, u_i, ...)."""
    n = len(records[0]["theta0"]) if records else 1
    reported = [p.name for p in hyper_params().values() if p.reported]
    rec_names: list[str] = []
    infos = [info for info, _ in results] if results else [get_model(r["model"]) for r in records]
    for info in infos:
        rec_names += [r for r in info.records if r not in rec_names]
    header = ["model", "lane"] + reported + ["status", "t"]
    header += [f"theta_{i}" for i in range(n)] + ["f"]
    for key in rec_names:
        header += [f"{key}_{i}" for i in range(n)]
    rows = []
    for lane_id, rec in enumerate(records):
        for j, t in enumerate(rec["t"]):
            row = [rec["model"], lane_id] + [rec.get(name) for name in reported]
            row += [rec["status"], t] + list(rec["theta"][j]) + [rec["f"][j]]
            for key in rec_names:
                row += list(rec[key][j]) if key in rec else [""] * n
            rows.append(row)
    return header, rows
