"""Options and input shared by the study commands (``adamflow refine``, ``lyapunov``, ...).

:func:`add_problem_options` adds the problem (landscape, theta0, alphas, models, betas, eps, u0);
the numerics (--scheme, --integrator, --rtol, --atol, --device, --dtype) and the output options are
added to every study by :class:`analysis.study.Study`. :func:`problem_from_args` validates them into
a :class:`Problem`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import landscapes
from core.errors import ConfigError
from core.hyper import check_alpha, check_beta, check_eps, check_finite
from runner.experiment import Numerics
from runner.options import code_parser, numerics_from_args
from runner.options import parse_float as _float
from runner.options import parse_vector as _vector
from runner.registry import get_model, hyper_params, registry


def add_problem_options(p: argparse.ArgumentParser, *, models_default: list[str] | None = None,
                        alpha_required: bool = True) -> None:
    """--landscape, --theta0, --alpha, --models, --beta1, --beta2, --eps, --u0."""
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


#: the hyper-parameters :func:`add_problem_options` sets (or that take one of those by fallback)
PROBLEM_HYPER = ("alpha", "beta1", "beta2", "eps", "u0")


def model_option_names() -> list[str]:
    """The registered models' further hyper-parameters: neither a problem option nor taking one of
    those by fallback (jump_lr, trust_coefficient, h_min, ...)."""
    return [name for name, hp in hyper_params().items()
            if name not in PROBLEM_HYPER and not hp.fallback]


def add_model_options(p: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """One scalar option per :func:`model_option_names` entry (flag and help from its declaration;
    default: each model's own default)."""
    reg = registry()
    for name in model_option_names():
        if name in exclude:
            continue
        hp = hyper_params()[name]
        users = [info.name for info in reg.values() if any(q.name == name for q in info.hyper)]
        p.add_argument(hp.flag, type=code_parser(hp.choices) if hp.choices else _float, default=None,
                       dest=name,
                       help=f"{hp.help} (one value for the whole study; {', '.join(users)})")


def model_options_from_args(args) -> dict[str, float]:
    """The options of :func:`add_model_options` that were given, checked."""
    out = {}
    for name in model_option_names():
        val = getattr(args, name, None)
        if val is not None:
            hyper_params()[name].validate(val)
            out[name] = float(val)
    return out


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
    integrator: str = "auto"
    engine: str = "auto"
    extra: dict = field(default_factory=dict)
    #: fixed values of the models' further hyper-parameters (trust_coefficient, h_min, ...): set on
    #: every model of the study that declares them, the others keep their defaults
    hyper: dict = field(default_factory=dict)
    #: evaluation order of the discrete optimizers (spec or torch; :data:`runner.experiment.ARITHMETICS`)
    arithmetic: str = "spec"
    #: memories of the paper scheme (exact or glN; :attr:`runner.experiment.Numerics.quadrature`)
    quadrature: str = "exact"

    @property
    def numerics(self) -> Numerics:
        return Numerics(scheme=self.scheme, integrator=self.integrator, engine=self.engine,
                        rtol=self.rtol, atol=self.atol, device=self.device, dtype=self.dtype,
                        extra=dict(self.extra), arithmetic=self.arithmetic,
                        quadrature=self.quadrature)


def check_scheme(name: str, models: list[str] = (), allowed: tuple[str, ...] = ("exact", "paper")
                 ) -> None:
    """ConfigError unless the study allows scheme ``name`` and every flow in ``models`` supports it
    (as its descriptor declares)."""
    if name not in allowed:
        raise ConfigError(f"unknown scheme {name!r} (choose from: {', '.join(allowed)})")
    for m in models:
        get_model(m).check_scheme(name)


def problem_from_args(args, *, schemes: tuple[str, ...] = ("exact", "paper")) -> Problem:
    if args.alpha is not None:
        check_alpha(args.alpha)
    check_beta(args.beta1, "beta1")
    check_beta(args.beta2, "beta2")
    check_eps(args.eps)
    check_finite(args.u0, "u0")
    if args.scheme not in schemes:
        raise ConfigError(f"unknown scheme {args.scheme!r} (choose from: {', '.join(schemes)})")
    numerics_from_args(args)
    for m in args.models or []:
        get_model(m)
    land = landscapes.parse(args.landscape)
    land.check_dim(len(args.theta0[0]))
    return Problem(landscape=args.landscape, theta0=args.theta0, alpha=list(args.alpha or []),
                   models=list(args.models or []), beta1=args.beta1, beta2=args.beta2,
                   eps=args.eps, u0=list(args.u0), scheme=args.scheme, rtol=args.rtol,
                   atol=args.atol, device=args.device, dtype=args.dtype, integrator=args.integrator,
                   engine=args.engine, hyper=model_options_from_args(args),
                   arithmetic=getattr(args, "arithmetic", "spec"),
                   quadrature=getattr(args, "quadrature", "exact"))
