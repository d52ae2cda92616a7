"""Named experiment presets (``--preset NAME``): the experiments of arXiv 2602.09101 (SPEC §6) and of
the first paper, arXiv 2411.09734 (convex Adam/RMSProp/AdaGrad, double well, MSE appendix).

A preset is plain data: landscape, theta0, betas, alphas with epochs (or a horizon), models, u0s,
delta... :func:`command_defaults` turns one into the option defaults of one command; the CLI sets
them as the parser's defaults, so explicit options override the preset. A preset that makes no sense
for a command raises :class:`ConfigError` (one line, exit 2).

Epochs follow the paper protocol (SPEC §4): ``epochs`` rows theta_0..theta_{epochs-1}, i.e.
``epochs - 1`` updates.
"""
from __future__ import annotations

import copy
from typing import Any

from core.errors import ConfigError

_ROS = dict(eps=1e-8, beta1=[0.99], beta2=[0.999])
_REFINE_ALPHAS = [5e-4, 1e-3, 5e-3, 1e-2, 5e-2]
_REFINE_EPOCHS = [9000, 5500, 2000, 1500, 1000]

#: every preset; keys: description, landscape, theta0 (list of points), alpha, epochs (one per alpha)
#: or horizon, beta1/beta2/beta (lists), eps, models, u0, delta, commands (where it applies) and
#: per-command overrides (option dest -> value)
PRESETS: dict[str, dict[str, Any]] = {
    "heredia2026-trajectories": dict(
        description="2602.09101 trajectories: c=4, theta0=-1.5, alpha=1e-3, 3000 epochs, "
                    "adam vs flow1 vs flow2 u0 in {-1,0,1}",
        landscape="rosenbrock1d(c=4)", theta0=[[-1.5]], alpha=[1e-3], epochs=[3000],
        models=["adam", "adam-flow1", "adam-flow2"], u0=[-1.0, 0.0, 1.0], **_ROS,
        commands=("run", "lyapunov", "positivity")),
    "heredia2026-trajectories-global": dict(
        description="2602.09101 trajectories to the global minimum: c=4, theta0=2, alpha=1e-3, "
                    "4000 epochs",
        landscape="rosenbrock1d(c=4)", theta0=[[2.0]], alpha=[1e-3], epochs=[4000],
        models=["adam", "adam-flow1", "adam-flow2"], u0=[-1.0, 0.0, 1.0], **_ROS,
        commands=("run", "lyapunov", "positivity")),
    "heredia2026-basin": dict(
        description="2602.09101 basin selection: c=4, theta0=-1.5, final theta vs alpha in "
                    "[1e-4, 1e-1], adam and flow2 u0=1",
        landscape="rosenbrock1d(c=4)", theta0=[[-1.5]],
        alpha=[1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1],
        epochs=[12000, 5000, 3000, 1500, 1500, 1000, 1000],
        models=["adam", "adam-flow2"], u0=[1.0], **_ROS, commands=("basin",)),
    "heredia2026-refine": dict(
        description="2602.09101 alpha-refinement: c=1.5, theta0=-1.5, alpha 5e-4..5e-2, T=10, "
                    "flow1 and flow2 u0 in {-1,0,1,2}",
        landscape="rosenbrock1d(c=1.5)", theta0=[[-1.5]], alpha=list(_REFINE_ALPHAS),
        epochs=list(_REFINE_EPOCHS), horizon=10.0, models=["adam-flow1", "adam-flow2"],
        u0=[-1.0, 0.0, 1.0, 2.0], **_ROS, commands=("refine", "velocity", "run"),
        overrides={"run": {"models": ["adam", "adam-flow1", "adam-flow2"]},
                   "refine": {"protocol": "paper", "quadrature": "gl1000"}}),
    "heredia2026-velocity": dict(
        description="2602.09101 velocity independence: c=1.5, flow2 u0 in {-1,1,2} vs u0=0, "
                    "delta=1, alphas as refine",
        landscape="rosenbrock1d(c=1.5)", theta0=[[-1.5]], alpha=list(_REFINE_ALPHAS),
        epochs=list(_REFINE_EPOCHS), horizon=10.0, models=["adam-flow2"], u0=[-1.0, 1.0, 2.0],
        delta=1.0, **_ROS, commands=("velocity", "refine", "run"),
        overrides={"run": {"u0": [-1.0, 0.0, 1.0, 2.0]}}),
    "heredia2026-pl": dict(
        description="2602.09101 PL bound check: c=0, theta0=-1.5, alpha=1e-3, 6000 epochs, "
                    "adam and flow2 u0=1",
        landscape="rosenbrock1d(c=0)", theta0=[[-1.5]], alpha=[1e-3], epochs=[6000],
        models=["adam", "adam-flow2"], u0=[1.0], delta=1.0, **_ROS,
        commands=("lyapunov", "run"), overrides={"lyapunov": {"pl": True}}),
    "heredia2026-positivity": dict(
        description="2602.09101 moment positivity: c=1.5, betas .5/.2, alpha=1e-2, 270 epochs, "
                    "adam, flow1, flow2 u0 in {0,1}",
        landscape="rosenbrock1d(c=1.5)", theta0=[[-1.5]], alpha=[1e-2], epochs=[270],
        models=["adam", "adam-flow1", "adam-flow2"], u0=[0.0, 1.0], eps=1e-8, beta1=[0.5],
        beta2=[0.2], commands=("positivity", "lyapunov", "run")),
    "heredia2024-convex-adam": dict(
        description="2411.09734 convex: f=(theta-4)^2, theta0=1, alpha in {0.1,0.01}, T=10, "
                    "adam vs flow1, betas {0,.9}x{.99,.999}",
        landscape="shifted(center=4)", theta0=[[1.0]], alpha=[0.1, 0.01], horizon=10.0,
        models=["adam", "adam-flow1"], beta1=[0.0, 0.9], beta2=[0.99, 0.999], eps=1e-8,
        commands=("run",)),
    "heredia2024-convex-rmsprop": dict(
        description="2411.09734 convex: f=(theta-4)^2, theta0=1, alpha in {0.1,0.01}, T=6, "
                    "rmsprop vs rmsprop-flow, beta in {0,.9,.99}",
        landscape="shifted(center=4)", theta0=[[1.0]], alpha=[0.1, 0.01], horizon=6.0,
        models=["rmsprop", "rmsprop-flow"], beta=[0.0, 0.9, 0.99], eps=1e-8, commands=("run",)),
    "heredia2024-convex-adagrad": dict(
        description="2411.09734 convex: f=(theta-4)^2, theta0=1, alpha in {0.1,0.01}, T=6, "
                    "adagrad vs adagrad-flow",
        landscape="shifted(center=4)", theta0=[[1.0]], alpha=[0.1, 0.01], horizon=6.0,
        models=["adagrad", "adagrad-flow"], eps=1e-8, commands=("run",)),
    "heredia2024-doublewell": dict(
        description="2411.09734 nonconvex double well (x^2-1)^2/4, theta0=0.5, alpha in "
                    "{0.1,0.01}, T=10, adam vs flow1",
        landscape="doublewell", theta0=[[0.5]], alpha=[0.1, 0.01], horizon=10.0,
        models=["adam", "adam-flow1"], beta1=[0.9], beta2=[0.999], eps=1e-8, commands=("run",)),
    "heredia2024-mse": dict(
        description="2411.09734 MSE appendix, figure 1: mean((y - theta x)^2) on the notebook's "
                    "data, theta0=0, alpha in {0.1,0.01}, rmsprop beta .9, adam .9/.99",
        landscape="mse2024", theta0=[[0.0]], alpha=[0.1, 0.01], horizon=6.0,
        models=["adagrad", "rmsprop", "adam", "adagrad-flow", "rmsprop-flow", "adam-flow1"],
        beta1=[0.9], beta2=[0.99], beta=[0.9], eps=1e-8, commands=("run",)),
    "heredia2024-mse-2": dict(
        description="2411.09734 MSE appendix, figure 2: as figure 1 with rmsprop beta .99, "
                    "adam .99/.999",
        landscape="mse2024", theta0=[[0.0]], alpha=[0.1, 0.01], horizon=8.0,
        models=["adagrad", "rmsprop", "adam", "adagrad-flow", "rmsprop-flow", "adam-flow1"],
        beta1=[0.99], beta2=[0.999], beta=[0.99], eps=1e-8, commands=("run",)),
}

#: commands that take ``--preset``
COMMANDS = ("run", "refine", "basin", "lyapunov", "velocity", "positivity")


def names() -> list[str]:
    return list(PRESETS)


def get(name: str) -> dict[str, Any]:
    """A copy of preset ``name`` (ConfigError for an unknown name)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (see `adamflow presets`; choose from: "
                          f"{', '.join(PRESETS)})")
    return copy.deepcopy(PRESETS[name])


def describe() -> list[tuple[str, str]]:
    """(name, one-line description with the commands it applies to) per preset."""
    return [(n, f"{p['description']} [{', '.join(p['commands'])}]") for n, p in PRESETS.items()]


def _scalar(p: dict, key: str, name: str, command: str):
    vals = p.get(key)
    if vals is None:
        return None
    if len(vals) != 1:
        raise ConfigError(f"preset {name!r} has several {key} values; `{command}` takes one")
    return vals[0]


def _single_steps(p: dict, name: str, command: str) -> dict[str, Any]:
    """steps (one alpha with epochs) or horizon: the step rule of run/lyapunov/positivity."""
    if p.get("epochs") is not None and len(p["epochs"]) == 1 and len(p["alpha"]) == 1:
        return {"steps": int(p["epochs"][0]) - 1}
    if p.get("horizon") is not None:
        return {"horizon": float(p["horizon"])}
    raise ConfigError(f"preset {name!r} has per-alpha epochs; `{command}` needs one step count")


def command_defaults(name: str, command: str) -> dict[str, Any]:
    """Option defaults (argparse dest -> value) that preset ``name`` gives command ``command``."""
    p = get(name)
    if command not in COMMANDS:
        raise ConfigError(f"`{command}` takes no --preset")
    if command not in p["commands"]:
        raise ConfigError(f"preset {name!r} makes no sense for `{command}` "
                          f"(it applies to: {', '.join(p['commands'])})")
    d: dict[str, Any] = {"landscape": p["landscape"], "models": list(p["models"]),
                         "alpha": list(p["alpha"])}
    if command == "run":
        d["theta0"] = [list(t) for t in p["theta0"]]
        for key in ("beta1", "beta2", "beta", "u0"):
            if p.get(key) is not None:
                d[key] = list(p[key])
        d["eps"] = [p["eps"]]
        d.update(_single_steps(p, name, command))
    else:
        if command == "basin":
            if len(p["theta0"]) != 1:
                raise ConfigError(f"preset {name!r} has several theta0; `basin` takes one")
            d["theta0"] = list(p["theta0"][0])
        else:
            d["theta0"] = [list(t) for t in p["theta0"]]
        for key in ("beta1", "beta2"):
            val = _scalar(p, key, name, command)
            if val is not None:
                d[key] = val
        d["eps"] = p["eps"]
        if p.get("u0") is not None:
            d["u0"] = list(p["u0"])
        if command in ("refine", "velocity", "basin"):
            if p.get("epochs") is not None:
                d["epochs"] = list(p["epochs"])
            if p.get("horizon") is not None and command != "basin":
                d["horizon"] = float(p["horizon"])
        else:  # lyapunov, positivity
            d.update(_single_steps(p, name, command))
        if command in ("velocity", "lyapunov") and p.get("delta") is not None:
            d["delta"] = float(p["delta"])
    d.update(copy.deepcopy(p.get("overrides", {}).get(command, {})))
    return d


# -- argparse glue -------------------------------------------------------------------------------

def apply_to_parser(parser, name: str, command: str) -> dict[str, Any]:
    """Make preset ``name`` the defaults of ``parser`` (the sub-parser of ``command``): options the
    preset fills stop being required. Returns the defaults set (for :func:`resolve_exclusive`)."""
    defaults = command_defaults(name, command)
    dests = {a.dest: a for a in parser._actions}
    defaults = {k: v for k, v in defaults.items() if k in dests}
    for dest in defaults:
        dests[dest].required = False
    for group in parser._mutually_exclusive_groups:
        if any(a.dest in defaults for a in group._group_actions):
            group.required = False
    parser.set_defaults(**defaults)
    return defaults


def resolve_exclusive(parser, args, defaults: dict[str, Any]) -> None:
    """In each mutually exclusive group (``--steps``/``--horizon``, ``--epochs``...), an option given
    on the command line replaces the one the preset filled."""
    for group in parser._mutually_exclusive_groups:
        given = [a.dest for a in group._group_actions if getattr(args, a.dest, None) is not None]
        if len(given) < 2:
            continue
        explicit = [d for d in given if d not in defaults or getattr(args, d) != defaults[d]]
        for d in given:
            if d not in explicit:
                setattr(args, d, None)

