"""One registry over discrete optimizers and flows, for the CLI and the experiment runner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import discrete
import flows
from core.errors import ConfigError


@dataclass(frozen=True)
class ModelInfo:
    name: str
    kind: str                     # "discrete" or "flow"
    cls: type
    description: str
    hyperparameters: dict[str, Any]   # name -> default (None = required)


def registry() -> dict[str, ModelInfo]:
    out: dict[str, ModelInfo] = {}
    for name, cls in discrete.MODELS.items():
        out[name] = ModelInfo(name, "discrete", cls, cls.description, dict(cls.hyperparameters))
    for name, cls in flows.registry().items():
        out[name] = ModelInfo(name, "flow", cls, cls.description, dict(cls.hyperparameters))
    return out


def get_model(name: str) -> ModelInfo:
    reg = registry()
    if name not in reg:
        raise ConfigError(f"unknown model {name!r}; choose from: {', '.join(reg)}")
    return reg[name]
