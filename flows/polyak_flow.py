"""Polyak flow (SPEC §3.4): the lr -> 0 limit of the Polyak root step (:mod:`discrete.polyak`).

    theta' = -(f - f_target)_+ g / ||g||^2,        f = f(theta), g = grad f(theta)

Time. The discrete step with lr = alpha moves by -alpha (f - f*)_+ g/||g||^2 and sits at
t = k alpha (SPEC §0), so per unit of t the velocity is the right-hand side above: alpha only sets
the output grid, not the vector field. The discrete method converges to this flow at first order in
alpha at fixed t (tests/test_polyak.py). The flow is the limit of the *global* scope (one scalar for
all coordinates); per-block scopes are discrete-only (a lane's ``scope`` does not enter this model).

Invariant. Along the flow df/dt = g . theta' = -(f - f*) wherever f > f*, so

    f(t) - f_target = exp(-t) (f(0) - f_target)            (any landscape, f(0) >= f_target)

the level f* is approached exponentially and never crossed. A start at or below the target
(f(0) <= f*) rests: the clamp (f - f*)_+ is the discrete method's guard "no step below the
target" (the unclamped field would climb back to the level set f = f*).

Domain (the guard). The speed is (f - f*)/||g||: the flow is defined where g != 0 or f <= f*. A
stationary point above the target (a local minimum with f > f*, or f* below the minimum value) is
reached in finite time t* = ln((f0 - f*)/(f_c - f*)) with unbounded speed: the flow ceases to exist
there. As in :mod:`flows.newton`, N is NaN on such a lane only (g = 0 with f > f*, or non-finite
f, g), never on the others; the integrator ends the lane with a per-lane status
(``Status.DIVERGED`` / ``STEP_UNDERFLOW``) at the time it got there. A lane at its target (f = f*)
has velocity 0.

Jacobian (for the exponential Rosenbrock integrator; H the Hessian, q = ||g||^2, e = f - f* > 0):

    d theta'/d theta = -(g g^T)/q - (e/q) (H - 2 g (H g)^T / q)

(0 below the target; -I on lanes outside the domain, whose N is NaN anyway); dtheta'/dt = 0.
Tested against autograd.

Model ``polyak-flow`` (registry method ``polyak``). References: B. T. Polyak, "Introduction to
Optimization" (1987), §5.3 (the step (f - f*)/||g||^2); the continuous Newton method of the root
problem f = f*: A. G. Ramm, "Dynamical systems method for solving operator equations" (2007).
"""
from __future__ import annotations

import math

import torch

from core.method import ALPHA, F_TARGET
from flows.velocity import VelocityFlow


class PolyakFlow(VelocityFlow):
    """theta' = -(f - f_target)_+ g/||g||^2 per lane (module docstring); one component, L = 0.

    Args:
        landscape: the objective.
        alpha: the discrete lr it is compared with (t = k alpha); no effect on the field.
        f_target: f* per lane (default 0).
    """

    name = "polyak-flow"
    description = ("Polyak flow theta' = -(f - f_target) g/||g||^2 (lr -> 0 of the Polyak step): "
                   "f - f_target = exp(-t)(f0 - f_target); a stationary point above the target "
                   "stops the lane")
    hyper = (ALPHA, F_TARGET)
    method = "polyak"

    def _parts(self, theta: torch.Tensor):
        """f - f*, g, q = ||g||^2, the scale e_+/q (0 where e <= 0) and the domain mask (B,)."""
        f, g = self.landscape.value_and_grad(theta)
        e = f - self.f_target.to(f)
        q = (g * g).sum(dim=-1)
        rest = e <= 0
        ok = (rest | (q > 0)) & torch.isfinite(e) & torch.isfinite(q)
        s = torch.where(rest | ~ok, torch.zeros_like(e), e / torch.where(q > 0, q, torch.ones_like(q)))
        ok = ok & torch.isfinite(s)
        return e, g, q, s, ok

    def in_domain(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B,) bool: g != 0 or f <= f* (and f, g finite)."""
        return self._parts(theta)[4]

    def velocity(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n) theta' (NaN on lanes outside the domain)."""
        _, g, _, s, ok = self._parts(theta)
        v = -s[:, None] * g
        return torch.where(ok[:, None], v, torch.full_like(v, math.nan))

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The closed form of the module docstring; J_t = 0 (autonomous)."""
        theta = y[..., 0]
        e, g, q, s, ok = self._parts(theta)
        B, n = theta.shape
        H = self.landscape.hessian(theta)
        qs = torch.where(q > 0, q, torch.ones_like(q))[:, None, None]
        gg = g[:, :, None] * g[:, None, :]
        Hg = torch.einsum("bij,bj->bi", H, g)
        J = -gg / qs - s[:, None, None] * (H - 2.0 * g[:, :, None] * Hg[:, None, :] / qs)
        above = (e > 0)[:, None, None]
        J = torch.where(above, J, torch.zeros_like(J))
        eye = torch.eye(n, dtype=theta.dtype, device=theta.device).expand(B, n, n)
        J = torch.where(ok[:, None, None] & torch.isfinite(J).all(-1).all(-1)[:, None, None], J,
                        -eye)
        return J, y.new_zeros(B, n * y.shape[2])

    def compiled_form(self):
        """None: no compiled form (torch engine)."""
        return None


__all__ = ["PolyakFlow"]
