"""Batched discrete optimizers (SPEC §2): registry and public API.

>>> import torch, discrete
>>> opt = discrete.get("adam")(alpha=torch.tensor([1e-3, 1e-2]), beta1=0.9, beta2=0.999, eps=1e-8)
>>> traj = opt.run(landscape, theta0, steps=1000, every=10)   # doctest: +SKIP

Models: gd, heavyball, adam, rmsprop, adagrad, jumpadam (Jump Adam: gated secant jumps,
:mod:`discrete.jump_adam`), aitkengd (Steffensen-accelerated GD, :mod:`discrete.aitken`).

``torch.optim`` optimizers for any ``nn.Module`` (:mod:`discrete.torch_optim`): :class:`JumpAdam`,
:class:`AitkenGD`; they share the per-element update of the ``jumpadam`` / ``aitkengd`` models.
``hilladam`` (Hill-ADAM, :mod:`discrete.hill_adam`) and its closure-based :class:`HillAdam` share
one decision function.
"""
from __future__ import annotations

from core.errors import ConfigError

from .aitken import AitkenGDLanes
from .base import DiscreteOptimizer, lane_pow, sample_indices
from .classic import GD, AdaGrad, Adam, HeavyBall, RMSProp
from .hill_adam import HillAdam, HillAdamLanes
from .jump_adam import JumpAdamLanes
from .polyak import PolyakLanes, PolyakStep
from .torch_optim import AitkenGD, JumpAdam

#: registry name -> optimizer class
MODELS: dict[str, type[DiscreteOptimizer]] = {
    cls.name: cls for cls in (GD, HeavyBall, Adam, RMSProp, AdaGrad, JumpAdamLanes, AitkenGDLanes,
                 PolyakLanes, HillAdamLanes)
}


def get(name: str) -> type[DiscreteOptimizer]:
    """The optimizer class registered as ``name``; ConfigError listing the choices otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown discrete optimizer {name!r} (choose from {', '.join(MODELS)})") from None


def available() -> list[tuple[str, str]]:
    """[(name, one-line description)] of the registered optimizers."""
    return [(name, cls.description) for name, cls in MODELS.items()]


__all__ = ["DiscreteOptimizer", "GD", "HeavyBall", "Adam", "RMSProp", "AdaGrad", "JumpAdamLanes",
           "AitkenGDLanes", "JumpAdam", "AitkenGD", "MODELS", "get", "available", "lane_pow",
           "sample_indices", "PolyakLanes", "PolyakStep", "HillAdamLanes", "HillAdam"]
