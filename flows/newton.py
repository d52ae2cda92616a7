"""Newton limit flows of the secant jump (SPEC §3.4): the full and the diagonal Newton flow.

Time. Every model shares t = k alpha (SPEC §0). The discrete counterpart of these flows is Jump Adam
(SPEC §2, seeds/jump_adam.md) with its gate open and its clamp inactive: each step moves by the jump
-jump_lr g/h, so per unit of t = k alpha the velocity is -(jump_lr/alpha) g/h. With
r = jump_lr/alpha (per lane):

    newton-flow        theta' = -r H(theta)^{-1} g(theta)
    diag-newton-flow   theta' = -r g(theta) / diag H(theta)          (per coordinate)

In the jump time tau = r t = k jump_lr these are the Newton flows of SPEC §3.4, d theta/d tau =
-H^{-1} g. Along the full flow dg/dtau = H d theta/dtau = -g, so

    g(t) = exp(-r t) g(0)                                            (newton-flow, any landscape)
    g_i(t) = exp(-r t) g_i(0)                                        (diag-newton-flow, separable f)

(for a separable f the two flows coincide). Which limit: Jump Adam's curvature estimate is the
per-coordinate secant h_i = (g_k - g_{k-1})_i / (theta_{k-1} - theta_{k-2})_i, which tends to the
diagonal H_ii as the steps shrink, so jump_lr -> 0 of the per-coordinate jump is the diagonal flow;
the full flow is the same limit for a full-matrix secant (quasi-Newton) curvature.

Domain (the guard). Both flows divide by curvature, and Jump Adam jumps only where it is positive
(h > h_min): the flows are defined where H is positive definite (newton-flow: a per-lane Cholesky
factorisation succeeds) or every H_ii > 0 (diag-newton-flow). Outside, N is NaN on that lane only:
no exception (the factorisation runs as ``cholesky_ex`` and the solve on a safe matrix), no effect on
the other lanes. The integrator then ends the lane with a per-lane status (SPEC STYLE "statuses, not
exceptions"): a trial step into the non-positive region is non-finite, is rejected, and the step
shrinks to the floor, so the lane becomes ``Status.DIVERGED`` with ``diverged_at`` the time it
reached the boundary (``STEP_UNDERFLOW`` where the speed ~ 1/curvature blows up before it); a start
with an indefinite or singular Hessian is ``DIVERGED`` at t = 0. A positive definite path that
becomes indefinite has to pass through a singular H, where the Newton speed is unbounded: the flow
ceases to exist there, which is what the status records.

The Jacobian (for the exponential Rosenbrock integrator, :mod:`flows.exprb`) is in closed form with
third derivatives of f by automatic differentiation of ``landscape.grad`` (double backward):

    d/dtheta (H^{-1} g) = I - H^{-1} T(p),  T(p)_ij = d/dtheta_j (H p)_i at fixed p = H^{-1} g
    d/dtheta_j (g_i/H_ii) = H_ij/H_ii - g_i (d H_ii/dtheta_j) / H_ii^2

(where ``grad`` is not twice differentiable by autograd the third-derivative terms are dropped: the
integrator stays correct, with more steps).

Models: ``newton-flow``, ``diag-newton-flow``; both model ``jumpadam`` (registry method).
References: SPEC §3.4; the continuous Newton method: A. G. Ramm, "Dynamical systems method for
solving operator equations", Elsevier (2007) and J. W. Neuberger, "Continuous Newton's method for
polynomials", Math. Intelligencer 21 (1999) 18-23.
"""
from __future__ import annotations

import math

import torch

from core.method import ALPHA, JUMP_LR
from flows.compiled_form import NewtonForm
from flows.velocity import VelocityFlow
from landscapes.base import Landscape

# -- third derivatives by double backward ---------------------------------------------------------

def _rows(F: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, n) function F(x) with graph -> (B, n, n) dF_i/dx_j (lanes independent: one backward pass
    per row i over all lanes); zero rows where F_i does not depend on x."""
    B, n = x.shape
    rows = []
    for i in range(n):
        if not F.requires_grad:
            rows.append(torch.zeros_like(x))
            continue
        (r,) = torch.autograd.grad(F[:, i].sum(), x, retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(x) if r is None else r)
    return torch.stack(rows, dim=1)


def hessian_derivative(landscape: Landscape, theta: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """T(p) (B, n, n), T_ij = d/dtheta_j (H(theta) p)_i at fixed p (the third derivative of f
    contracted with p), by autograd of ``landscape.grad``; zeros where it is not differentiable."""
    try:
        with torch.enable_grad():
            x = theta.detach().requires_grad_(True)
            g = landscape.grad(x)
            if not g.requires_grad:
                return theta.new_zeros(*theta.shape, theta.shape[-1])
            (hp,) = torch.autograd.grad(g, x, grad_outputs=p.detach(), create_graph=True,
                                        allow_unused=True)
            if hp is None:
                return theta.new_zeros(*theta.shape, theta.shape[-1])
            return _rows(hp, x).detach()
    except RuntimeError:
        return theta.new_zeros(*theta.shape, theta.shape[-1])


def hessian_diag_gradient(landscape: Landscape, theta: torch.Tensor) -> torch.Tensor:
    """(B, n, n) with row i = grad_theta H_ii (third derivatives of f), by autograd of
    ``landscape.grad`` (2 n backward passes); zeros where it is not differentiable."""
    B, n = theta.shape
    zero = theta.new_zeros(B, n, n)
    try:
        with torch.enable_grad():
            x = theta.detach().requires_grad_(True)
            g = landscape.grad(x)
            if not g.requires_grad:
                return zero
            rows = []
            for i in range(n):
                (hrow,) = torch.autograd.grad(g[:, i].sum(), x, create_graph=True, allow_unused=True)
                hii = None if hrow is None else hrow[:, i]
                if hii is None or not hii.requires_grad:
                    rows.append(torch.zeros_like(x))
                    continue
                (r,) = torch.autograd.grad(hii.sum(), x, retain_graph=True, allow_unused=True)
                rows.append(torch.zeros_like(x) if r is None else r)
            return torch.stack(rows, dim=1).detach()
    except RuntimeError:
        return zero


# -- the flows --------------------------------------------------------------------------------------

class _CurvatureFlow(VelocityFlow):
    """theta' = r V(theta) with r = jump_lr/alpha per lane, one component per coordinate, L = 0."""

    hyper = (ALPHA, JUMP_LR)
    method = "jumpadam"

    def __init__(self, landscape: Landscape, *, n_lanes: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu", **hyper):
        super().__init__(landscape, n_lanes=n_lanes, dtype=dtype, device=device, **hyper)
        #: r = jump_lr/alpha: the jump time is tau = r t
        self.rate = self.jump_lr / self.alpha

    def in_domain(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B,) bool: the lanes where the flow is defined (see the module docstring)."""
        raise NotImplementedError

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed form with third derivatives by autograd (module docstring); -r I on lanes outside
        the domain (their N is NaN anyway); J_t = 0 (autonomous)."""
        theta = y[..., 0]
        J = self.velocity_jacobian(theta)
        return J, y.new_zeros(y.shape[0], y.shape[1] * y.shape[2])

    def velocity_jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compiled_form(self) -> NewtonForm:
        """This flow as data of the Newton form (:mod:`flows.compiled_form`): theta_i' =
        -r phi'(theta_i)/phi''(theta_i). Both flows are that form on a separable landscape (H is
        diagonal there, so H^{-1} g = g/diag H and the Cholesky guard is every H_ii > 0), the only
        kind the compiled engine runs it on (:func:`landscapes.compiled.compiled_curvature`)."""
        return NewtonForm(rate=self.rate)


class NewtonFlow(_CurvatureFlow):
    """Full Newton flow theta' = -(jump_lr/alpha) H^{-1} g on the positive definite region.

    Per lane: H from ``landscape.hessian`` (dense, (B, n, n)), a Cholesky test of positive
    definiteness (``torch.linalg.cholesky_ex``: no exception, one flag per lane) and
    ``torch.linalg.solve`` on H where it passed (the identity elsewhere, then NaN). Invariant:
    g(t) = exp(-(jump_lr/alpha) t) g(0).
    """

    name = "newton-flow"
    description = ("Newton flow theta' = -(jump_lr/alpha) H^{-1} g, the jump_lr -> 0 limit of the "
                   "secant jump; H positive definite, else the lane stops")

    def _solve(self, theta: torch.Tensor):
        H = self.landscape.hessian(theta)
        g = self.landscape.grad(theta)
        _, info = torch.linalg.cholesky_ex(H)
        ok = (info == 0) & torch.isfinite(H).all(dim=-1).all(dim=-1) & torch.isfinite(g).all(dim=-1)
        eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device).expand_as(H)
        Hs = torch.where(ok[:, None, None], H, eye)
        gs = torch.where(ok[:, None], g, torch.zeros_like(g))
        p = torch.linalg.solve(Hs, gs.unsqueeze(-1)).squeeze(-1)
        return Hs, p, ok

    def in_domain(self, theta: torch.Tensor) -> torch.Tensor:
        return self._solve(theta)[2]

    def velocity(self, theta: torch.Tensor) -> torch.Tensor:
        _, p, ok = self._solve(theta)
        v = -self.rate[:, None] * p
        return torch.where(ok[:, None], v, torch.full_like(v, math.nan))

    def velocity_jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        Hs, p, ok = self._solve(theta)
        B, n = theta.shape
        eye = torch.eye(n, dtype=theta.dtype, device=theta.device).expand(B, n, n)
        T = hessian_derivative(self.landscape, theta, p)
        J = -self.rate[:, None, None] * (eye - torch.linalg.solve(Hs, T))
        return torch.where(ok[:, None, None], J, -self.rate[:, None, None] * eye)


class DiagNewtonFlow(_CurvatureFlow):
    """Diagonal Newton flow theta_i' = -(jump_lr/alpha) g_i / H_ii where every H_ii > 0.

    The per-coordinate secant jump of Jump Adam in the limit jump_lr -> 0 (gate open, clamp
    inactive). Guard: a lane with some H_ii <= 0 (or non-finite) is outside the domain and its
    velocity is NaN (module docstring); no floor is applied, so inside the domain the flow is exactly
    -r g/diag(H). On a separable f: g_i(t) = exp(-(jump_lr/alpha) t) g_i(0).
    """

    name = "diag-newton-flow"
    description = ("diagonal Newton flow theta_i' = -(jump_lr/alpha) g_i/H_ii (per-coordinate secant "
                   "limit); every H_ii > 0, else the lane stops")

    def _parts(self, theta: torch.Tensor):
        g = self.landscape.grad(theta)
        hd = self.landscape.hessian_diag(theta)
        ok = ((hd > 0) & torch.isfinite(hd) & torch.isfinite(g)).all(dim=-1)
        hs = torch.where(ok[:, None], hd, torch.ones_like(hd))
        return g, hs, ok

    def in_domain(self, theta: torch.Tensor) -> torch.Tensor:
        return self._parts(theta)[2]

    def velocity(self, theta: torch.Tensor) -> torch.Tensor:
        g, hs, ok = self._parts(theta)
        v = -self.rate[:, None] * g / hs
        return torch.where(ok[:, None], v, torch.full_like(v, math.nan))

    def velocity_jacobian(self, theta: torch.Tensor) -> torch.Tensor:
        g, hs, ok = self._parts(theta)
        B, n = theta.shape
        H = self.landscape.hessian(theta)
        dH = hessian_diag_gradient(self.landscape, theta)          # row i: grad H_ii
        J = -self.rate[:, None, None] * (H / hs[..., None] - (g / (hs * hs))[..., None] * dH)
        eye = torch.eye(n, dtype=theta.dtype, device=theta.device).expand(B, n, n)
        J = torch.where(ok[:, None, None] & torch.isfinite(J).all(-1).all(-1)[:, None, None], J,
                        -self.rate[:, None, None] * eye)
        return J


__all__ = ["DiagNewtonFlow", "NewtonFlow", "hessian_derivative", "hessian_diag_gradient"]
