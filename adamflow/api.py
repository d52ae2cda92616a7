"""The Python API: what the CLI does, callable from a script or a notebook.

>>> import adamflow
>>> traj = adamflow.simulate("rosenbrock1d(c=4)", "adam-flow2", -1.5, alpha=1e-3, beta1=0.99,
...                          beta2=0.999, u0=[0.0, 1.0], steps=3000)
>>> traj.final_theta()                     # (2, 1): one lane per u0
>>> runs = adamflow.simulate(lambda x: (x ** 2 - 1).pow(2).sum() / 4, ["adam", "adam-flow1"],
...                          [[0.3]], alpha=1e-2, horizon=5.0)     # any torch function f(theta)
>>> res = adamflow.refine("rosenbrock1d(c=1.5)", -1.5, alpha=[5e-2, 2e-2, 1e-2], horizon=4.0)

Lanes are the cartesian product theta0 x (each model's hyper-parameters), exactly as
``adamflow run`` forms them; every simulation goes through :mod:`runner.experiment`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

import landscapes
from analysis.basin import basin_study
from analysis.cli_options import Problem
from analysis.lyapunov import study as lyapunov_study
from analysis.positivity import study as positivity_study
from analysis.rates import rate_study
from analysis.refine import refine as refine_study
from analysis.velocity import velocity as velocity_study
from core.errors import ConfigError
from core.trajectory import Trajectory
from landscapes.base import Landscape
from runner import experiment
from runner.experiment import Numerics


def landscape(spec: str | Landscape | Callable[[torch.Tensor], torch.Tensor], **kw) -> Landscape:
    """A Landscape from a spec string (``"rosenbrock1d(c=4)"``), a Landscape (returned as is) or
    any differentiable torch function ``f(theta: (n,)) -> scalar`` (gradient and HVP by autograd;
    ``kw`` go to :func:`landscapes.from_function`, e.g. ``dim=2``, ``batched=True``)."""
    if isinstance(spec, Landscape):
        return spec
    if isinstance(spec, str):
        return landscapes.parse(spec)
    if callable(spec):
        return landscapes.from_function(spec, **kw)
    raise ConfigError(f"landscape must be a spec string, a Landscape or a function, got {spec!r}")


def _points(theta0) -> list[list[float]]:
    if isinstance(theta0, torch.Tensor):
        t = theta0.detach().to(torch.float64).cpu()
        return [[float(t)]] if t.dim() == 0 else ([[float(x)] for x in t] if t.dim() == 1
                                                   else t.tolist())
    if isinstance(theta0, (int, float)):
        return [[float(theta0)]]
    pts = list(theta0)
    if pts and all(isinstance(x, (int, float)) for x in pts):
        return [[float(x)] for x in pts]          # several 1-D starts
    return [[float(x) for x in p] for p in pts]


def _values(x) -> list[float] | None:
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return [float(v) for v in x.reshape(-1).tolist()]
    if isinstance(x, (int, float)):
        return [float(x)]
    return [float(v) for v in x]


def simulate(landscape_: str | Landscape | Callable, models: str | Sequence[str], theta0, *,
             alpha, steps: int | None = None, horizon: float | None = None, every: int = 1,
             scheme: str = "exact", integrator: str = "auto", engine: str = "auto", rtol: float | None = None,
             atol: float | None = None, device: str = "cpu", dtype: str = "float64",
             **hyper) -> Trajectory | dict[str, Trajectory]:
    """Run discrete optimizers and/or continuous models side by side.

    Args:
        landscape_: spec string, Landscape or torch function (see :func:`landscape`).
        models: one registry name (returns a :class:`Trajectory`) or several (returns
            ``{name: Trajectory}``); ``adamflow models`` lists them.
        theta0: one start (a number, a list for n > 1 given as ``[[x, y]]``), several 1-D starts
            (``[-1.5, 0.5]``), a list of points or a (B, n) tensor.
        alpha: step size(s); with ``steps`` K (flows: horizon K alpha) or ``horizon`` T
            (K = round(T/alpha)) per lane.
        every: record every ``every``-th step (the last always).
        scheme, integrator, engine, rtol, atol, device, dtype: the numerics (:class:`runner.experiment.Numerics`).
        **hyper: per-lane hyper-parameters by name (``beta1``, ``beta2``, ``u0``, ``eps``, ``beta``,
            ``momentum``, ...), a value or a list of values each.

    Each model runs the cartesian product theta0 x (the hyper-parameters it takes) as one batch.
    """
    names = [models] if isinstance(models, str) else list(models)
    land = landscape(landscape_)
    pts = _points(theta0)
    opts = {k: _values(v) for k, v in hyper.items()}
    spec = experiment.RunSpec(
        landscape=land, models=names, theta0=pts, steps=steps, horizon=horizon, every=every,
        scheme=scheme, integrator=integrator, engine=engine, rtol=rtol, atol=atol, device=device, dtype=dtype,
        alpha=_values(alpha), **opts)
    out = {info.name: traj for info, traj in experiment.run(spec)}
    return out[names[0]] if isinstance(models, str) else out


def _problem(landscape_: str, theta0, alpha, models, beta1, beta2, eps, u0, numerics: Numerics
             ) -> Problem:
    if not isinstance(landscape_, str):
        raise ConfigError("studies take a landscape spec string (their results record it)")
    return Problem(landscape=landscape_, theta0=_points(theta0), alpha=_values(alpha) or [],
                   models=list(models or []), beta1=float(beta1), beta2=float(beta2),
                   eps=float(eps), u0=_values(u0) or [0.0], scheme=numerics.scheme,
                   rtol=numerics.rtol, atol=numerics.atol, device=numerics.device,
                   dtype=numerics.dtype, integrator=numerics.integrator,
                   engine=numerics.engine, arithmetic=numerics.arithmetic,
                   quadrature=numerics.quadrature)


def refine(landscape_: str, theta0, *, alpha, models: Sequence[str] | None = None,
           reference: str = "adam", protocol: str = "clean", epochs: Sequence[int] | None = None,
           horizon: float | None = None, beta1: float = 0.99, beta2: float = 0.999,
           eps: float = 1e-8, u0=0.0, progress: bool = False, **numerics) -> dict[str, Any]:
    """The alpha-refinement study (``adamflow refine``): rows of E_T, E_f, E_sup and slopes."""
    prob = _problem(landscape_, theta0, alpha, models, beta1, beta2, eps, u0, Numerics(**numerics))
    return refine_study(prob, protocol=protocol, epochs=None if epochs is None else list(epochs),
                        horizon=horizon, reference=reference, progress=progress)


def velocity(landscape_: str, theta0, *, alpha, models: Sequence[str] = ("adam-flow2",),
             u0=(-1.0, 1.0, 2.0), delta: float = 1.0, horizon: float | None = None,
             epochs: Sequence[int] | None = None, every: int = 1, beta1: float = 0.99,
             beta2: float = 0.999, eps: float = 1e-8, progress: bool = False, **numerics
             ) -> dict[str, Any]:
    """Velocity independence (``adamflow velocity``)."""
    prob = _problem(landscape_, theta0, alpha, models, beta1, beta2, eps, u0, Numerics(**numerics))
    return velocity_study(prob, delta=delta, horizon=horizon,
                          epochs=None if epochs is None else list(epochs), every=every,
                          progress=progress)


def lyapunov(landscape_: str, theta0, *, alpha, models: Sequence[str] = ("adam", "adam-flow2"),
             u0=0.0, steps: int | None = None, horizon: float | None = None, delta: float = 1.0,
             pl: bool = False, fstar: float | None = None, beta1: float = 0.99,
             beta2: float = 0.999, eps: float = 1e-8, progress: bool = False, **numerics
             ) -> dict[str, Any]:
    """Energy monitors and the PL bound check (``adamflow lyapunov``)."""
    prob = _problem(landscape_, theta0, alpha, models, beta1, beta2, eps, u0, Numerics(**numerics))
    return lyapunov_study(prob, steps=steps, horizon=horizon, delta=delta, pl=pl, fstar=fstar,
                          quiet=not progress)


def positivity(landscape_: str, theta0, *, alpha, models: Sequence[str], u0=0.0,
               steps: int | None = None, horizon: float | None = None, beta1: float = 0.5,
               beta2: float = 0.2, eps: float = 1e-8, progress: bool = False, **numerics
               ) -> dict[str, Any]:
    """Moment positivity (``adamflow positivity``)."""
    prob = _problem(landscape_, theta0, alpha, models, beta1, beta2, eps, u0, Numerics(**numerics))
    return positivity_study(prob, steps=steps, horizon=horizon, quiet=not progress)


def rates(landscape_: str = "rosenbrock1d(c=0)", **kw) -> dict[str, Any]:
    """Convergence-rate study (``adamflow rates``); keyword arguments of
    :func:`analysis.rates.rate_study`."""
    return rate_study(landscape=landscape_, **kw)


def basin(landscape_: str = "rosenbrock1d(c=4)", **kw) -> dict[str, Any]:
    """Basin selection (``adamflow basin``); keyword arguments of :func:`analysis.basin.basin_study`."""
    return basin_study(landscape=landscape_, **kw)


__all__ = ["simulate", "landscape", "refine", "velocity", "lyapunov", "positivity", "rates", "basin"]
