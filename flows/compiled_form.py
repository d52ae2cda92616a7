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

The velocity flows of :mod:`flows.modified` (every modified-equation flow but the heavy-ball mass
ODE, which is an :class:`AdamForm` with kA = 0) form a third family, :class:`ModifiedForm`: on a
separable landscape they are, per coordinate,

    theta_i' = V(g, h, t3; lane constants),
    g = phi'(theta_i), h = phi''(theta_i), t3 = phi'''(theta_i),

with V one of the formulas of :mod:`flows.modified_math` (``kind``) and the separable actions
Hg = h g, HHg = h^2 g, T[g, g] = t3 g^2, H F0 = h F0 (the principal flow: -phi(alpha h) g). The
compiled right-hand side (:func:`flows.fast.rhs.modified_form`) compiles those same formulas; where
a velocity is not defined (the principal flow where alpha h >= 1, a denominator that is 0) the
whole lane is NaN, as for the Newton form. It asks the landscape only for the derivatives the
formula reads (:meth:`ModifiedForm.derivative_order`; phi''' from ``d3phi_point``,
:func:`landscapes.compiled.compiled_third`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AdamForm:
    """Per-lane data of the Adam-family form (tensors on any device; B lanes, d components); the
    compiled engine packs it into rows (:func:`flows.fast.rhs.pack_adam_form`)."""

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


@dataclass
class NewtonForm:
    """Per-lane data of the Newton form theta_i' = -r phi'(theta_i)/phi''(theta_i) (B lanes, d = 1).

    Valid for both flows of :mod:`flows.newton` on a separable landscape; the compiled engine runs
    it only there (its curvature comes from ``d2phi_point``)."""

    rate: torch.Tensor     # (B,) r = jump_lr/alpha

    def rows(self) -> torch.Tensor:
        """(B, 1) float64 CPU rows in the layout of :func:`flows.fast.rhs.newton_form`: r."""
        return self.rate.detach().to("cpu", torch.float64).reshape(-1, 1).contiguous()


#: the velocities of :class:`ModifiedForm` (``kind``), each a formula of :mod:`flows.modified_math`
GD_SERIES = 0           # gd_velocity truncated after alpha^(order-1): gd-flow, gd-flow2, gd-flow3
GD_PRINCIPAL = 1        # -principal_factor(alpha h) g: gd-principal-flow
HEAVYBALL_REDUCED = 2   # heavyball_reduced_velocity: heavyball-reduced-flow
ADAM_SIGN = 3           # sign_velocity: adam-sign-flow
ADAM_MODIFIED = 4       # F0 + alpha c(g) h F0 (adam_leading, adam_correction): adam-modified-flow


@dataclass
class ModifiedForm:
    """Per-lane data of a velocity flow theta_i' = V(g, h, t3) of :mod:`flows.modified` (B lanes,
    d = 1): which formula, and the lane constants it reads (None for those it does not read).

    The compiled engine runs it on separable landscapes only (h, t3 from ``d2phi_point``,
    ``d3phi_point``)."""

    kind: int                               # GD_SERIES, GD_PRINCIPAL, ... (above)
    alpha: torch.Tensor                     # (B,)
    order: int = 1                          # GD_SERIES: the truncation order (1, 2 or 3)
    momentum: torch.Tensor | None = None    # (B,) HEAVYBALL_REDUCED
    eps: torch.Tensor | None = None         # (B,) ADAM_SIGN, ADAM_MODIFIED
    beta1: torch.Tensor | None = None       # (B,) ADAM_MODIFIED
    beta2: torch.Tensor | None = None       # (B,) ADAM_MODIFIED

    def derivative_order(self) -> int:
        """The highest derivative of phi the velocity reads: 1 (phi' only: gd-flow, the sign
        flow), 2 (phi'') or 3 (phi''', gd-flow3). The engine asks the landscape for no more, so a
        landscape without d3phi_point still runs every flow but gd-flow3 compiled."""
        if self.kind == GD_SERIES:
            return self.order
        return 1 if self.kind == ADAM_SIGN else 2

    def rows(self) -> torch.Tensor:
        """(B, 7) float64 CPU rows in the layout of :func:`flows.fast.rhs.modified_form`:
        kind, order, alpha, momentum, eps, beta1, beta2 (0 where None)."""
        f = lambda x: x.detach().to("cpu", torch.float64).reshape(-1)   # noqa: E731
        alpha = f(self.alpha)
        const = lambda v: torch.full_like(alpha, float(v))               # noqa: E731
        cols = [const(self.kind), const(self.order), alpha]
        cols += [const(0.0) if x is None else f(x).expand_as(alpha)
                 for x in (self.momentum, self.eps, self.beta1, self.beta2)]
        return torch.stack(cols, dim=1).contiguous()
