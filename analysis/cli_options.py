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
from core.trajectory import DIVERGENCE_BOUND
from core.validation import (
    check_flow_alpha,
    check_flow_eps,
    check_horizon,
    check_magnitude,
    check_memory,
    check_steps,
    n_samples,
    run_bytes,
    steps_from_horizon,
)
from runner.experiment import Numerics
from runner.options import check_landscape_size, code_parser, numerics_from_args
from runner.options import parse_float as _float
from runner.options import parse_vector as _vector
from runner.registry import get_model, hyper_params, registry


def add_problem_options(p: argparse.ArgumentParser, *, models_default: list[str] | None = None,
                        alpha_required: bool = True) -> None:
    """--landscape, --theta0, --alpha, --models, --beta1, --beta2, --eps, --u0."""
    p.add_argument("--landscape", default="rosenbrock1d(c=1.5)",
                   help="landscape spec (each study's default is the landscape of its SPEC preset)")
    p.add_argument("--theta0", nargs="+", type=_vector, default=[[-1.5]],
                   help="initial point(s); comma list for n > 1")
    p.add_argument("--alpha", nargs="+", type=_float, required=alpha_required,
                   help="step sizes" + ("" if alpha_required else " (default: the study's preset)"))
    p.add_argument("--models", nargs="+", default=models_default,
                   help="models to study (see `adamflow models`)" + (
                       "" if models_default else "; default: the study's choice (refine: the "
                       "reference method's flows)"))
    p.add_argument("--beta1", type=_float, default=0.99,
                   help="Adam beta1 (default 0.99, the papers' value; `adamflow run` uses each "
                        "model's own default, 0.9 for adam)")
    p.add_argument("--beta2", type=_float, default=0.999, help="Adam beta2 (default 0.999)")
    p.add_argument("--eps", type=_float, default=1e-8,
                   help="epsilon (default 1e-8; > 0 for flows, which divide by sqrt(v) + eps)")
    p.add_argument("--u0", nargs="+", type=_float, default=[0.0],
                   help="initial velocities of second-order flows (default 0 here and in `run`; "
                        "velocity, basin and rates default to their presets' values)")


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


#: the horizon a study runs when neither --steps, --epochs nor --horizon is given (refine,
#: velocity; lyapunov and positivity pass their own)
DEFAULT_STUDY_HORIZON = 10.0


def check_problem_size(args, *, horizon_default: float | None = DEFAULT_STUDY_HORIZON,
                       steps_default: int | None = None) -> None:
    """Steps, horizons, eps and memory of a study's lanes, before it runs anything: K per alpha
    from --steps, --epochs or --horizon (else the study's default) at most MAX_STEPS, K * alpha
    finite, eps > 0 where flows run, and alphas x u0 x models x theta0 lanes of K/every samples
    within the machine's memory."""
    alphas = [float(a) for a in (args.alpha or [])]
    models = list(getattr(args, "models", None) or [])
    infos = [get_model(m) for m in models]
    if not infos or any(i.kind == "flow" and "eps" in i.hyperparameters for i in infos):
        flows = [i.name for i in infos if i.kind == "flow"] or ["(the study's default flows)"]
        check_flow_eps(args.eps, flows[0])
        check_flow_alpha(alphas, flows[0])
    steps = getattr(args, "steps", None)
    epochs = getattr(args, "epochs", None)
    horizon = getattr(args, "horizon", None)
    every = getattr(args, "every", None) or 1
    check_steps(every, "every")
    Ks = []
    for i, a in enumerate(alphas):
        if steps is not None:
            K = check_steps(steps, "steps")
        elif epochs:
            K = check_steps(max(epochs), "epochs", minimum=0) - 1
        elif horizon is not None:
            K = steps_from_horizon(horizon, a, minimum=0)
        elif steps_default is not None:
            K = steps_default
        elif horizon_default is not None:
            K = steps_from_horizon(horizon_default, a, minimum=0)
        else:
            continue
        check_horizon(a, K)
        Ks.append(K)
    if not Ks:
        return
    u0 = list(getattr(args, "u0", None) or [0.0])
    lanes = len(args.theta0) * len(alphas) * (len(u0) + 1) * max(2, len(models))
    dim = len(args.theta0[0]) if args.theta0 else 1
    check_memory(run_bytes(lanes, n_samples(max(Ks), every), 2 + 4 * dim),
                 f"this study ({lanes} lanes of up to {max(Ks)} steps)")
    check_landscape_size(args.landscape, lanes)


def problem_from_args(args, *, schemes: tuple[str, ...] = ("exact", "paper"),
                      horizon_default: float | None = DEFAULT_STUDY_HORIZON,
                      steps_default: int | None = None) -> Problem:
    if args.alpha is not None:
        check_alpha(args.alpha)
    check_beta(args.beta1, "beta1")
    check_beta(args.beta2, "beta2")
    check_eps(args.eps)
    check_finite(args.u0, "u0")
    for th in args.theta0 or []:
        check_magnitude(th, "theta0", DIVERGENCE_BOUND)
    check_magnitude(args.u0, "u0", DIVERGENCE_BOUND)
    for m in args.models or []:
        get_model(m)
    check_problem_size(args, horizon_default=horizon_default, steps_default=steps_default)
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
