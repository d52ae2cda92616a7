"""Aitken / Steffensen gradient descent (SPEC §2): GD accelerated per coordinate by Aitken's
delta-squared process on every third iterate.

The fixed-point map is gradient descent, G(x) = x - alpha grad f(x). Steffensen's method (Aitken
1926, Steffensen 1933) runs it in triples: from x0 take x1 = G(x0), x2 = G(x1) and replace x2 by
Aitken's extrapolation, per coordinate::

    x0' = x0 - (x1 - x0)^2 / (x2 - 2 x1 + x0)

then start the next triple from x0'. With g0 = grad f(x0), g1 = grad f(x1) the triple needs no
third gradient: x1 - x0 = -alpha g0 and x2 - 2 x1 + x0 = -alpha (g1 - g0), so Aitken's point is
the secant jump of :mod:`discrete.jump_adam` from x1 (jump_lr = 1)::

    x0' = x1 - g1 / h,     h = (g1 - g0) / (x1 - x0)

(seeds/jump_adam_em_view.md: Jump Adam's jump is this accelerator; it also equals Anderson
acceleration with one stored step, Anderson 1965, Walker & Ni 2011 -- see tests/test_aitken.py).
One gradient per step, as GD: odd steps k = 1, 3, ... are GD steps, even steps replace the GD
point by Aitken's, so theta_2, theta_4, ... are the accelerated iterates.

Guard: the denominator x2 - 2 x1 + x0 = -alpha h (x1 - x0) is tiny against the motion x1 - x0 when
the observed contraction ratio r = (x2 - x1)/(x1 - x0) = 1 - alpha h is close to 1; where
alpha |h| <= aitken_guard (default 1e-6, so an extrapolation never exceeds 1e6 GD steps; float64
rounding of alpha h is ~1e-16, float32's ~1e-7) or the motion is zero (x1 = x0), the plain GD
point x2 is kept. No curvature-sign test: Steffensen's method is a root finder of the gradient and
may jump to a maximum (Jump Adam's gate is the guarded variant).
"""
from __future__ import annotations

import torch

from core.hyper import check_nonneg
from core.method import ALPHA, HyperParam

from .base import DiscreteOptimizer, col
from .jump_adam import Scalar, secant_curvature, secant_jump

#: default of the guard on alpha |h| = |1 - r| (see the module docstring)
AITKEN_GUARD_DEFAULT = 1e-6

AITKEN_GUARD = HyperParam("aitken_guard", AITKEN_GUARD_DEFAULT, check_nonneg,
                          "Aitken step only where alpha |h| = |1 - contraction ratio| > aitken_guard")


def gd_step(g: torch.Tensor, alpha: Scalar) -> torch.Tensor:
    """-alpha g (``theta + gd_step`` equals ``theta - alpha g`` bit for bit)."""
    return -(alpha * g)


def aitken_step(g: torch.Tensor, g_prev: torch.Tensor, motion: torch.Tensor, alpha: Scalar,
                guard: Scalar) -> tuple[torch.Tensor, torch.Tensor]:
    """(step, accelerated) at the end of a Steffensen triple: from x1 with ``g`` = g1,
    ``g_prev`` = g0, ``motion`` = x1 - x0, the step to Aitken's point x1 - g1/h where it is
    accelerated (motion != 0 and alpha |h| > guard), else the GD step -alpha g1."""
    h, measured = secant_curvature(g, g_prev, motion, 0.0)
    ok = measured & (alpha * h.abs() > guard)
    jump = secant_jump(g, torch.where(ok, h, torch.ones_like(h)), 1.0)
    return torch.where(ok, jump, gd_step(g, alpha)), ok


def steffensen_step(g: torch.Tensor, g_prev: torch.Tensor, motion: torch.Tensor, alpha: Scalar,
                    guard: Scalar, closes_triple: bool | torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(step, accelerated): :func:`aitken_step` where ``closes_triple`` (the update count k is
    even), else the GD step (accelerated False)."""
    s, ok = aitken_step(g, g_prev, motion, alpha, guard)
    if isinstance(closes_triple, bool):
        return (s, ok) if closes_triple else (gd_step(g, alpha), torch.zeros_like(ok))
    return torch.where(closes_triple, s, gd_step(g, alpha)), ok & closes_triple


class AitkenGDLanes(DiscreteOptimizer):
    """Steffensen-accelerated GD batched over lanes (registered as ``aitkengd``).

    Hyper-parameters (per lane): ``alpha``, ``aitken_guard`` = 1e-6. Records ``gate`` (1.0 in the
    coordinates where the update producing the sample took Aitken's point, else 0.0). Odd updates
    are exactly GD's (:class:`discrete.classic.GD`, bit for bit). The extra state ``prev_theta``,
    ``prev_grad`` holds x0 and g0 of the current triple.
    """

    name = "aitkengd"
    description = "Steffensen GD: GD with per-coordinate Aitken delta^2 on every third iterate"
    hyper = (ALPHA, AITKEN_GUARD)
    moment_names = ("gate",)

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["guard"] = col(h64["aitken_guard"], dtype)
        return h

    def _init_moments(self, theta0):
        zeros = torch.zeros_like(theta0)
        return {"gate": zeros, "prev_theta": theta0.clone(), "prev_grad": zeros.clone()}

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        theta = state["theta"]
        closes = (state["count"] % 2 == 1).unsqueeze(-1)
        s, ok = steffensen_step(grad, state["prev_grad"], theta - state["prev_theta"], h["alpha"],
                                h["guard"], closes)
        new = dict(state)
        new.update(theta=theta + s, count=state["count"] + 1, gate=ok.to(theta.dtype),
                   prev_theta=theta, prev_grad=grad)
        return new


__all__ = ["AitkenGDLanes", "aitken_step", "steffensen_step", "gd_step", "AITKEN_GUARD",
           "AITKEN_GUARD_DEFAULT"]
