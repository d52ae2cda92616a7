"""Continuous-time models (flows) and their integrators.

* :mod:`flows.semilinear` — the flow/integrator contract dy/dt = L y + N(t, y).
* :mod:`flows.kernels`    — memory kernels K1, K2, power law; state-space realisations; quadrature.
* :mod:`flows.adam`       — nonlocal Adam, RMSProp and AdaGrad flows.
* :mod:`flows.velocity`   — the skeleton of flows theta' = V(theta) (declared per-lane hyper-parameters,
  L = 0, lane subsets): the Newton, Polyak and modified-equation flows.
* :mod:`flows.newton`     — Newton limit flows of the secant jump (full and diagonal, SPEC §3.4).
* :mod:`flows.jump_flow`  — the gated jump flow: adam-flow1 switching to the clamped secant velocity,
  gate switches located by events (SPEC §3.4).
* :mod:`flows.modified`   — modified-equation flows of GD, heavy ball and Adam with their predicted
  error slopes (SPEC §3.5).
* :mod:`flows.simulate`   — run a flow over lanes into a Trajectory.
"""
from __future__ import annotations

from core.errors import ConfigError
from flows.adam import AdaGradFlow, AdamFlow1, AdamFlow2, RMSPropFlow
from flows.hill_flow import HillFlow
from flows.jump_flow import JumpFlow
from flows.modified import MODIFIED_FLOWS
from flows.newton import DiagNewtonFlow, NewtonFlow
from flows.polyak_flow import PolyakFlow

#: the built-in flows, in listing order: adding a flow is one module plus one entry here
#: (:mod:`runner.registry` pairs each with the discrete optimizer named by its ``method``)
FLOWS: tuple[type, ...] = (AdamFlow1, AdamFlow2, RMSPropFlow, AdaGradFlow, NewtonFlow, DiagNewtonFlow,
                           JumpFlow, PolyakFlow, HillFlow, *MODIFIED_FLOWS)


def registry() -> dict:
    return {c.name: c for c in FLOWS}


def get(name: str):
    reg = registry()
    if name not in reg:
        raise ConfigError(f"unknown flow {name!r}; choose from: {', '.join(sorted(reg))}")
    return reg[name]


def available() -> list[tuple[str, str]]:
    return [(n, c.description) for n, c in registry().items()]


__all__ = ["FLOWS", "AdaGradFlow", "AdamFlow1", "AdamFlow2", "DiagNewtonFlow", "JumpFlow", "NewtonFlow", "PolyakFlow",
           "RMSPropFlow", "available", "get", "registry"]
