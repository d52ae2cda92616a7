"""The method descriptor: what a model declares once, and everything else is generated from.

A *model* is a discrete optimizer (:class:`discrete.base.DiscreteOptimizer`) or a continuous model
(:class:`flows.semilinear.SemilinearFlow`). Each declares, as class attributes,

* ``name``, ``description``;
* ``hyper``: a tuple of :class:`HyperParam` -- name, default (``None`` = required), the check that
  validates it, the CLI flag and the help text. The ``hyperparameters`` (name -> default) and
  ``checks`` (name -> check) mappings are derived from it (:func:`defaults`, :func:`checks`);
* ``records``: the per-coordinate quantities besides theta that a run reports (``("m", "v")``, ...),
  which become Trajectory extras, JSON fields and CSV columns;
* ``signed_records``: records that may change sign although they should not (v of the second-order
  model for beta2 < 1/2): the runner reports ``min_<name>`` and ``<name>_negative`` per lane;
* flows only: ``method`` -- the registry name of the discrete optimizer the flow models (this pairs
  them: ``adam-flow1`` and ``adam-flow2`` model ``adam``), and ``schemes`` -- the solution schemes it
  supports (``"exact"`` always; ``"paper"``, ``"paper2024"`` where the published schemes apply).

:mod:`runner.registry` collects the models into :class:`ModelInfo` and :class:`Method` records; the
CLI options of ``adamflow run``, the run spec, the JSON/CSV columns and the scheme gates are generated
from them. The shared hyper-parameters below are declared here once so that every model that takes
``beta1`` means the same thing by it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import ConfigError
from core.hyper import (
    LaneValue,
    check_alpha,
    check_beta,
    check_eps,
    check_finite,
    check_floor,
    check_level,
    check_nonneg,
)


@dataclass(frozen=True)
class HyperParam:
    """One per-lane hyper-parameter.

    Attributes:
        name: keyword argument of the model's constructor (and the JSON field).
        default: value when not given; ``None`` means required.
        check: validator ``check(value, name)`` raising :class:`ConfigError` (one line).
        help: one line for ``--help`` and ``adamflow models``.
        flag: CLI option (default ``--<name>``).
        reported: the JSON lanes of ``adamflow run`` always carry this field (``null`` for models
            without it), so that lanes of different models line up in one table.
        choices: names of a categorical parameter's codes 0, 1, ... (the CLI accepts either).
        fallback: in a study that sets only Adam's (alpha, beta1, beta2, eps, u0), the one whose
            value this parameter takes (RMSProp's ``beta`` takes ``beta2``, heavy-ball
            ``momentum`` takes ``beta1``); empty: the parameter's own default.
    """

    name: str
    default: float | None = None
    check: Callable[[LaneValue, str], None] | None = None
    help: str = ""
    flag: str = ""
    reported: bool = False
    fallback: str = ""
    #: names of the codes 0, 1, ... of a categorical parameter (a sign rule, a scope, a variant):
    #: the CLI takes a name or its code, lanes carry the code
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"hyper-parameter name must be an identifier, got {self.name!r}")
        if not self.flag:
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))

    def validate(self, value: LaneValue) -> None:
        if self.check is not None:
            self.check(value, self.name)

    def with_default(self, default: float | None) -> "HyperParam":
        """The same parameter with another default (a model whose natural default differs)."""
        return dataclasses.replace(self, default=default)

    def same_meaning(self, other: "HyperParam") -> bool:
        """Equal up to the default (two models may default a shared parameter differently)."""
        return (self.name, self.check, self.flag, self.reported, self.fallback) == (
            other.name, other.check, other.flag, other.reported, other.fallback)


ALPHA = HyperParam("alpha", None, check_alpha, "step size (learning rate); t = k alpha", reported=True)
BETA1 = HyperParam("beta1", 0.9, check_beta, "first-moment decay (Adam beta1)", reported=True)
BETA2 = HyperParam("beta2", 0.999, check_beta, "second-moment decay (Adam beta2)", reported=True)
BETA = HyperParam("beta", 0.99, check_beta, "RMSProp decay", fallback="beta2")
MOMENTUM = HyperParam("momentum", 0.9, check_beta, "heavy-ball momentum mu", fallback="beta1")
EPS = HyperParam("eps", 1e-8, check_eps, "epsilon in the denominator")
#: Jump Adam's secant jump (SPEC §2, §3.4), shared by the discrete ``jumpadam`` and the jump flows
#: (flows/newton.py, flows/jump_flow.py): one declaration, so a study sets them once for both
JUMP_LR = HyperParam("jump_lr", 1.0, check_alpha,
                     "secant jump scale: jump = -jump_lr g/h (jump time k jump_lr; the flows' rate "
                     "is jump_lr/alpha)")
TRUST_COEFFICIENT = HyperParam("trust_coefficient", 10.0, check_alpha,
                               "jump clamp: |executed jump| <= trust_coefficient * |Adam step|")
H_MIN = HyperParam("h_min", 1e-8, check_floor,
                   "jump only where the curvature h > h_min (absolute, units g/theta; inf: never)")
#: the Polyak root step (SPEC §2, §3.4), shared by the discrete ``polyak`` and ``polyak-flow``
F_TARGET = HyperParam("f_target", 0.0, check_finite,
                      "Polyak target value f*: step (f - f*) g/||g||^2")
#: Hill-ADAM's switching rules (SPEC §2, §3.4), shared by the discrete ``hilladam`` and ``hill-flow``
DELTA = HyperParam("delta", 1e-4, check_nonneg,
                   "Hill-ADAM plateau threshold: toggle descent/ascent when |L_k - L_{k-1}| < delta "
                   "(the flow: |df/ds| < delta/alpha)")
GAMMA = HyperParam("gamma", 200.0, check_level,
                   "Hill-ADAM dead end: a loss above gamma forces descent (inf: never)")
GAMMA_LOW = HyperParam("gamma_low", -1e4, check_level,
                       "Hill-ADAM floor: a loss below gamma_low forces ascent (-inf: never)")
U0 = HyperParam("u0", 0.0, check_finite, "initial velocity theta'(0) of second-order models",
                reported=True)


def defaults(hyper: tuple[HyperParam, ...]) -> dict[str, float | None]:
    """name -> default, in declaration order."""
    return {p.name: p.default for p in hyper}


def checks(hyper: tuple[HyperParam, ...]) -> dict[str, Callable[[LaneValue, str], None]]:
    return {p.name: p.check for p in hyper if p.check is not None}


def check_declaration(cls: type) -> None:
    """ValueError unless ``cls`` declares a consistent descriptor (run when it is registered)."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise ValueError(f"{cls.__name__}: a registered model needs a non-empty `name`")
    hyper = getattr(cls, "hyper", None)
    if not isinstance(hyper, tuple) or not all(isinstance(p, HyperParam) for p in hyper):
        raise ValueError(f"{name}: `hyper` must be a tuple of core.method.HyperParam")
    names = [p.name for p in hyper]
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: hyper-parameter declared twice in {names}")
    if "alpha" not in names:
        raise ValueError(f"{name}: every model takes alpha (t = k alpha)")
    for attr in ("records", "signed_records", "schemes"):
        val = getattr(cls, attr, ())
        if not isinstance(val, tuple) or not all(isinstance(x, str) for x in val):
            raise ValueError(f"{name}: `{attr}` must be a tuple of strings")
    missing = [r for r in getattr(cls, "signed_records", ()) if r not in getattr(cls, "records", ())]
    if missing:
        raise ValueError(f"{name}: signed_records {missing} are not records")


@dataclass(frozen=True)
class ModelInfo:
    """A registered model: its class and what it declares (see the module docstring)."""

    name: str
    kind: str                            # "discrete" or "flow"
    cls: type
    description: str
    hyper: tuple[HyperParam, ...]
    records: tuple[str, ...] = ()
    signed_records: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()        # flows: supported schemes; discrete: ()
    method: str | None = None            # flows: the discrete optimizer they model

    @property
    def hyperparameters(self) -> dict[str, float | None]:
        return defaults(self.hyper)

    def param(self, name: str) -> HyperParam:
        for p in self.hyper:
            if p.name == name:
                return p
        raise KeyError(name)

    def supports(self, scheme: str) -> bool:
        """Discrete models run the same way under every scheme; flows only under theirs."""
        return self.kind == "discrete" or scheme in self.schemes

    def check_scheme(self, scheme: str) -> None:
        if not self.supports(scheme):
            raise ConfigError(f"scheme {scheme!r} does not apply to {self.name} "
                              f"(it supports: {', '.join(self.schemes)})")

    def study_hyper(self, given: dict[str, Any]) -> dict[str, float]:
        """One lane's hyper-parameters from a study's settings ``given`` (alpha, beta1, beta2, eps,
        u0, ...): each parameter takes its own value, else its ``fallback``'s, else its default."""
        out = {}
        for p in self.hyper:
            val = given.get(p.name)
            if val is None and p.fallback:
                val = given.get(p.fallback)
            if val is None:
                val = p.default
            if val is None:
                raise ConfigError(f"model {self.name} needs hyper-parameter {p.name!r}")
            out[p.name] = float(val)
        return out

    def lane_hyper(self, given: dict[str, Any]) -> dict[str, float]:
        """The hyper-parameters of one lane: ``given`` where present, else the defaults; checked."""
        return self.lanes_hyper([given])[0]

    def lanes_hyper(self, lanes: list[dict[str, Any]]) -> list[dict[str, float]]:
        """:meth:`lane_hyper` of every lane, each distinct value checked once (1e5 lanes in
        milliseconds, with the same errors)."""
        cols = {}
        for p in self.hyper:
            vals = [ln.get(p.name) for ln in lanes]
            if any(v is None for v in vals):
                if p.default is None:
                    raise ConfigError(f"model {self.name} needs {p.flag}")
                vals = [p.default if v is None else v for v in vals]
            try:
                distinct = list(dict.fromkeys(vals))
            except TypeError:                          # unhashable: checked one by one
                distinct = vals
            for v in distinct:
                p.validate(v)
            cols[p.name] = [float(v) for v in vals]
        names = list(cols)
        return [dict(zip(names, row)) for row in zip(*cols.values())] if names \
            else [{} for _ in lanes]

    @staticmethod
    def of(cls: type) -> "ModelInfo":
        check_declaration(cls)
        kind = "flow" if getattr(cls, "schemes", ()) else "discrete"
        return ModelInfo(
            name=cls.name, kind=kind, cls=cls, description=getattr(cls, "description", ""),
            hyper=cls.hyper, records=tuple(getattr(cls, "records", ())),
            signed_records=tuple(getattr(cls, "signed_records", ())),
            schemes=tuple(getattr(cls, "schemes", ())),
            method=getattr(cls, "method", None) if kind == "flow" else cls.name)


@dataclass(frozen=True)
class Method:
    """A discrete optimizer paired with the continuous models that claim to describe it."""

    name: str
    discrete: ModelInfo | None
    flows: tuple[ModelInfo, ...]

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        return ((self.discrete,) if self.discrete is not None else ()) + self.flows


__all__ = ["HyperParam", "ModelInfo", "Method", "ALPHA", "BETA1", "BETA2", "BETA", "MOMENTUM", "EPS",
           "U0", "defaults", "checks", "check_declaration"]
