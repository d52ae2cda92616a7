"""adamflow: discrete optimizers beside the continuous-time models that claim to describe them.

Data flows one way::

    landscapes -> (discrete optimizer | flow + integrator) -> Trajectory -> analysis -> figure/table

Top-level packages: ``landscapes`` (objectives), ``discrete`` (batched optimizers), ``flows``
(continuous models and integrators), ``analysis`` (studies), ``paper_figs`` (reproduced figures).
This package holds the shared types (:class:`Trajectory`, lane statuses, input errors) and the CLI.
"""
from core.errors import ConfigError
from core.trajectory import Status, Trajectory, DIVERGENCE_BOUND

__all__ = ["ConfigError", "Status", "Trajectory", "DIVERGENCE_BOUND"]
__version__ = "0.1.0"
