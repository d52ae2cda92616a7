"""What a flow hands the compiled engine (:mod:`flows.fast`): its data, not a second copy of its code.

Every Adam-family flow of adamflow is, per coordinate (state z of d components, theta = z[0]),

    z' = L z + e_r kA A(s) + bg g + bgg g^2,
    A(s) = eta(s) (c_m . z + wg g) / (sqrt(max(c_v . z, 0)) + epsq(s)),

with g = df/dtheta_i, (eta, epsq) the bias factors of :mod:`flows.direction` (eta = 1, epsq = eps
when ``bias`` is off) and constant per-lane data (L, c_m, c_v, bg, bgg, kA, r, wg, alpha, betas,
eps). First- and second-order nonlocal Adam (any realised kernel: the companion form of lam K2,
exponential sums) have wg = 0 and memories read through c_m, c_v; RMSProp/AdaGrad flows have
c_m = 0, wg = 1, v = z[1] and no bias factors. A flow returns its :class:`AdamForm` from
``compiled_form()``; the compiled right-hand side (:func:`flows.fast.rhs.adam_form`) evaluates
exactly the formula above with the shared direction code, and ``tests/test_fast_engine.py`` holds it
to the flow's own ``forward`` on every registered flow.

The Newton limit flows of :mod:`flows.newton` (newton-flow, diag-newton-flow) form a second family,
:class:`NewtonForm`: on a separable landscape (the only kind with a compiled gradient) the Hessian
is diag(phi''(theta_i)), so H^{-1} g = g / diag H and both flows are, per coordinate,

    theta_i' = -r phi'(theta_i) / phi''(theta_i),      r = jump_lr/alpha per lane,

defined where every phi''(theta_i) > 0 (and phi', phi'' are finite); elsewhere the whole lane's
velocity is NaN, as on the torch engine (the integrator then ends the lane as DIVERGED). The
compiled right-hand side (:func:`flows.fast.rhs.newton_form`) reads phi'' from the landscape's
``d2phi_point`` (:func:`landscapes.compiled.compiled_curvature`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AdamForm:
    """Per-lane data of the Adam-family form (tensors on any device; B lanes, d components)."""

    L: torch.Tensor        # (B, d, d) constant linear part
    cm: torch.Tensor       # (B, d) m = cm . z
    cv: torch.Tensor       # (B, d) v = cv . z
    bg: torch.Tensor       # (B, d) gain of g
    bgg: torch.Tensor      # (B, d) gain of g^2
    kA: torch.Tensor       # (B,) gain of the direction in row r
    alpha: torch.Tensor    # (B,)
    beta1: torch.Tensor    # (B,)
    beta2: torch.Tensor    # (B,)
    eps: torch.Tensor      # (B,)
    row: int               # r: the row the direction drives
    wg: float              # weight of g in the direction's numerator
    bias: bool             # bias factors eta(s), epsq(s) (else 1 and eps)

    def rows(self) -> torch.Tensor:
        """(B, P) float64 CPU rows in the layout of :func:`flows.fast.rhs.adam_form`:
        L (d d), cm, cv, bg, bgg (d each), kA, alpha, beta1, beta2, eps, wg, row, bias."""
        B, d, _ = self.L.shape
        f = lambda x: x.detach().to("cpu", torch.float64)          # noqa: E731
        ones = torch.ones(B, dtype=torch.float64)
        tail = torch.stack([f(self.kA), f(self.alpha), f(self.beta1), f(self.beta2), f(self.eps),
                            self.wg * ones, float(self.row) * ones,
                            (1.0 if self.bias else 0.0) * ones], dim=1)
        return torch.cat([f(self.L).reshape(B, d * d), f(self.cm), f(self.cv), f(self.bg),
                          f(self.bgg), tail], dim=1).contiguous()


@dataclass
class NewtonForm:
    """Per-lane data of the Newton form theta_i' = -r phi'(theta_i)/phi''(theta_i) (B lanes, d = 1).

    Valid for both flows of :mod:`flows.newton` on a separable landscape; the compiled engine runs
    it only there (its curvature comes from ``d2phi_point``)."""

    rate: torch.Tensor     # (B,) r = jump_lr/alpha

    def rows(self) -> torch.Tensor:
        """(B, 1) float64 CPU rows in the layout of :func:`flows.fast.rhs.newton_form`: r."""
        return self.rate.detach().to("cpu", torch.float64).reshape(-1, 1).contiguous()
