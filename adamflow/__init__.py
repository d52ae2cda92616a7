"""adamflow: discrete optimizers beside the continuous-time models that claim to describe them.

Data flows one way::

    landscapes -> (discrete optimizer | flow + integrator) -> Trajectory -> analysis -> figure/table

This package is the top layer: the Python API (:mod:`adamflow.api`, re-exported here) and the CLI
(:mod:`adamflow.cli`). The packages below it: ``core`` (shared types), ``landscapes``, ``discrete``,
``flows``, ``runner`` (registry, the one runner, presets), ``analysis`` (studies), ``paper_figs``.

>>> import adamflow
>>> traj = adamflow.simulate("rosenbrock1d(c=4)", "adam", -1.5, alpha=1e-3, steps=100)
"""
from adamflow.api import (
           basin,
           landscape,
           lyapunov,
           positivity,
           rates,
           refine,
           simulate,
           velocity,
)
from core.errors import ConfigError
from core.method import HyperParam
from core.trajectory import DIVERGENCE_BOUND, Status, Trajectory
from runner.registry import get_model, methods, register, registry

__all__ = ["simulate", "landscape", "refine", "velocity", "lyapunov", "positivity", "rates", "basin",
           "ConfigError", "Status", "Trajectory", "DIVERGENCE_BOUND", "HyperParam", "register",
           "registry", "get_model", "methods"]
__version__ = "0.2.0"
