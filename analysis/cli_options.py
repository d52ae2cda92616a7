"""Command-line options shared by the study commands (``adamflow refine``, ``lyapunov``, ...).

Each study module adds its own options on top of :func:`add_problem_options` and
:func:`add_output_options`, then builds an :class:`runner.experiment.RunSpec`-like problem with
:func:`problem_from_args`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import landscapes
from core.errors import ConfigError
from core.hyper import check_alpha, check_beta, check_eps, check_finite
from runner import experiment
from runner.options import parse_float as _float
from runner.options import parse_vector as _vector
from runner.registry import get_model


def add_problem_options(p: argparse.ArgumentParser, *, models_default: list[str] | None = None,
                        alpha_required: bool = True) -> None:
    """--landscape, --theta0, --alpha, --models, --beta1, --beta2, --eps, --u0, numerics."""
    p.add_argument("--landscape", default="rosenbrock1d(c=1.5)", help="landscape spec")
    p.add_argument("--theta0", nargs="+", type=_vector, default=[[-1.5]],
                   help="initial point(s); comma list for n > 1")
    p.add_argument("--alpha", nargs="+", type=_float, required=alpha_required, help="step sizes")
    p.add_argument("--models", nargs="+", default=models_default,
                   help="models to study (see `adamflow models`)")
    p.add_argument("--beta1", type=_float, default=0.99, help="Adam beta1 (default 0.99)")
    p.add_argument("--beta2", type=_float, default=0.999, help="Adam beta2 (default 0.999)")
    p.add_argument("--eps", type=_float, default=1e-8, help="epsilon (default 1e-8)")
    p.add_argument("--u0", nargs="+", type=_float, default=[0.0],
                   help="initial velocities of second-order flows")
    p.add_argument("--scheme", default="exact", help="flow scheme: exact (default) or paper")
    p.add_argument("--rtol", type=_float, default=None, help="flow relative tolerance")
    p.add_argument("--atol", type=_float, default=None, help="flow absolute tolerance")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float64", help="float64 or float32")


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--json PATH|-, --plot PATH, --quiet."""
    p.add_argument("--json", metavar="PATH", help="write the results as JSON ('-' = stdout)")
    p.add_argument("--plot", metavar="PATH", help="write the figure (PNG)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@dataclass
class Problem:
    """The shared part of a study's input, validated."""
    landscape: str
    theta0: list[list[float]]
    alpha: list[float]
    models: list[str]
    beta1: float
    beta2: float
    eps: float
    u0: list[float]
    scheme: str = "exact"
    rtol: float | None = None
    atol: float | None = None
    device: str = "cpu"
    dtype: str = "float64"
    extra: dict = field(default_factory=dict)


SCHEMES = ("exact", "paper")


def scheme_available(name: str) -> bool:
    """Whether :func:`runner.experiment.validate` accepts flow scheme ``name``."""

    spec = experiment.RunSpec(landscape="rosenbrock1d(c=4)", models=["adam-flow1"],
                              theta0=[[0.0]], alpha=[0.1], steps=1, scheme=name)
    try:
        experiment.validate(spec)
    except ConfigError:
        return False
    return True


def check_scheme(name: str) -> None:
    """ConfigError unless ``name`` is a flow scheme (exact, paper) that the library provides."""

    if name not in SCHEMES:
        raise ConfigError(f"unknown scheme {name!r} (choose from: {', '.join(SCHEMES)})")
    if name != "exact" and not scheme_available(name):
        raise ConfigError(f"{name} scheme not available")


def problem_from_args(args) -> Problem:
    if args.alpha is not None:
        check_alpha(args.alpha)
    check_beta(args.beta1, "beta1")
    check_beta(args.beta2, "beta2")
    check_eps(args.eps)
    check_finite(args.u0, "u0")
    check_scheme(args.scheme)
    for name in ("rtol", "atol"):
        val = getattr(args, name)
        if val is not None and not (val > 0 and val < float("inf")):
            raise ConfigError(f"{name} must be a positive finite number, got {val}")
    if args.models:
        for m in args.models:
            get_model(m)
    land = landscapes.parse(args.landscape)
    land.check_dim(len(args.theta0[0]))
    return Problem(landscape=args.landscape, theta0=args.theta0, alpha=list(args.alpha or []),
                   models=list(args.models or []), beta1=args.beta1, beta2=args.beta2,
                   eps=args.eps, u0=list(args.u0), scheme=args.scheme, rtol=args.rtol,
                   atol=args.atol, device=args.device, dtype=args.dtype)
