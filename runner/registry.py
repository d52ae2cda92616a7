"""The model registry: every discrete optimizer and flow, and the methods that pair them.

Built-in models come from the packages' own lists (:data:`discrete.MODELS`, :data:`flows.FLOWS`):
adding one is a new module plus one entry there. Models defined elsewhere (a notebook, a test, a
plug-in) join with :func:`register`. Each class declares its descriptor (:mod:`core.method`):
hyper-parameters with defaults, checks, flags and help, what it records, the schemes it supports and,
for flows, the discrete ``method`` it models. Everything downstream -- the options of ``adamflow run``,
the run spec, the JSON/CSV columns, the scheme gates -- is generated from these records.
"""
from __future__ import annotations

import discrete
import flows
from core.errors import ConfigError
from core.method import HyperParam, Method, ModelInfo

_EXTRA: dict[str, type] = {}


def _builtin() -> list[type]:
    return list(discrete.MODELS.values()) + list(flows.FLOWS)


def _check_consistent(infos: list[ModelInfo]) -> None:
    seen: dict[str, tuple[HyperParam, str]] = {}
    for info in infos:
        for p in info.hyper:
            if p.name in seen and not p.same_meaning(seen[p.name][0]):
                raise ValueError(f"hyper-parameter {p.name!r} of {info.name} is declared differently "
                                 f"from {seen[p.name][1]}'s (check, flag or reporting differ)")
            seen.setdefault(p.name, (p, info.name))


def registry() -> dict[str, ModelInfo]:
    """name -> :class:`core.method.ModelInfo`, built-ins first, in listing order."""
    out: dict[str, ModelInfo] = {}
    for cls in _builtin() + list(_EXTRA.values()):
        out[cls.name] = ModelInfo.of(cls)
    return out


def register(cls: type) -> ModelInfo:
    """Add a model class defined outside the packages (its descriptor is checked now).

    A flow's ``method`` must name a registered discrete optimizer (or be None). Registering the same
    name again replaces the earlier class (re-running a notebook cell); a built-in name is refused.
    """
    info = ModelInfo.of(cls)
    if cls.name in {c.name for c in _builtin()}:
        raise ValueError(f"model name {cls.name!r} is taken by a built-in model")
    reg = registry()
    if info.kind == "flow" and info.method is not None:
        target = reg.get(info.method) or (info if info.method == info.name else None)
        if target is None or target.kind != "discrete":
            raise ValueError(f"flow {info.name}: method {info.method!r} is not a registered "
                             f"discrete optimizer")
    _check_consistent(list(reg.values()) + [info])
    _EXTRA[cls.name] = cls
    return info


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (no-op for unknown names)."""
    _EXTRA.pop(name, None)


def get_model(name: str) -> ModelInfo:
    reg = registry()
    if name not in reg:
        raise ConfigError(f"unknown model {name!r}; choose from: {', '.join(reg)}")
    return reg[name]


def methods() -> dict[str, Method]:
    """method name -> :class:`core.method.Method`: each discrete optimizer with the flows that
    model it (flows whose method is not registered form a method without a discrete side)."""
    reg = registry()
    out: dict[str, Method] = {}
    for info in reg.values():
        key = info.name if info.kind == "discrete" else (info.method or info.name)
        m = out.get(key, Method(key, None, ()))
        if info.kind == "discrete":
            m = Method(key, info, m.flows)
        else:
            m = Method(key, m.discrete, m.flows + (info,))
        out[key] = m
    return out


def hyper_params(names: list[str] | None = None) -> dict[str, HyperParam]:
    """Every hyper-parameter of the registered models (or of ``names``), first declaration wins
    (their meaning agrees: :func:`register` checks it), in first-appearance order."""
    reg = registry()
    infos = [reg[n] for n in names] if names is not None else list(reg.values())
    out: dict[str, HyperParam] = {}
    for info in infos:
        for p in info.hyper:
            out.setdefault(p.name, p)
    return out


_check_consistent(list(registry().values()))

__all__ = ["registry", "register", "unregister", "get_model", "methods", "hyper_params", "ModelInfo",
           "Method"]
