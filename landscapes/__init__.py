"""Objective functions ("landscapes"), batched over lanes, with exact gradients.

Use :func:`parse` to build one from a spec string (``rosenbrock1d(c=4)``, ``quadratic(diag=[1,100],
center=[1,2])``, ...), or the classes directly. :data:`REGISTRY` maps names to classes and
:func:`available` lists ``(name, description)`` for ``adamflow landscapes``. The contract every
landscape follows is :class:`Landscape` (landscapes/base.py).

:func:`from_function` (:class:`FunctionLandscape`) makes a landscape from any differentiable torch
function, with derivatives by autograd; it is Python-only (not in the spec language).
"""
from landscapes.base import CriticalPoint, Landscape, Separable
from landscapes.function import FunctionLandscape, from_function
from landscapes.models import LinReg, TinyMLP
from landscapes.registry import REGISTRY, available
from landscapes.rosenbrock import Rosenbrock, Rosenbrock1D, rosenbrock1d_critical_points
from landscapes.simple import (
    DoubleWell,
    Quadratic,
    Sextic,
    Shifted,
    sextic_critical_points,
)
from landscapes.spec import parse

__all__ = [
    "Landscape", "Separable", "REGISTRY", "available", "parse",
    "Rosenbrock1D", "Rosenbrock", "Quadratic", "Shifted", "DoubleWell", "Sextic", "LinReg", "TinyMLP",
    "CriticalPoint", "rosenbrock1d_critical_points", "sextic_critical_points",
    "FunctionLandscape", "from_function",
]
