"""A landscape unbounded below on one side: the cubic f = sum_i x_i^3 - 3 x_i (SPEC §7, Hill-ADAM's
dead-end sweep).

Per coordinate phi(x) = x^3 - 3x, phi' = 3x^2 - 3, phi'' = 6x: a local minimum at x = 1 (phi = -2),
a hill at x = -1 (phi = 2), phi -> +inf as x -> +inf (an ascent to the right never finds a crest:
Hill-ADAM's dead-end rule, loss > gamma, has to stop it) and phi -> -inf as x -> -inf (a descent
past the hill never finds a minimum: the floor rule, loss < gamma_low, has to stop it). Gradient
descent from any x0 > -1 stops at the local minimum.
"""
from __future__ import annotations

import math

from landscapes.base import CriticalPoint, Separable


class Cubic(Separable):
    """f(x) = sum_i x_i^3 - 3 x_i;  f' = 3x^2 - 3,  f'' = 6x. Per coordinate: hill x = -1 (f = 2),
    local min x = 1 (f = -2); unbounded below as x -> -inf, above as x -> +inf."""
    name = "cubic"
    description = "x^3 - 3x (local min 1, hill -1, unbounded below as x -> -inf: Hill-ADAM dead ends)"

    def phi(self, x):
        return x * x * x - 3 * x

    @staticmethod
    def dphi_point(x, p):
        return 3 * x * x - 3

    @staticmethod
    def d2phi_point(x, p):
        return 6 * x

    @staticmethod
    def d3phi_point(x, p):
        return 6.0

    def critical_points(self, lane: int = 0) -> list[CriticalPoint]:
        """Per coordinate: the hill x = -1 (f = 2) and the local minimum x = 1 (f = -2)."""
        return [CriticalPoint(-1.0, "max", 2.0), CriticalPoint(1.0, "min", -2.0)]

    def minimum_value(self, n: int | None = None) -> float:
        """-inf: f is unbounded below."""
        return -math.inf
