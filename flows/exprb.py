"""Exponential Rosenbrock method exprb43 with embedded error estimate and dense-output midpoint.

Reference: M. Hochbruck, A. Ostermann, J. Schweitzer, "Exponential Rosenbrock-type methods",
SIAM J. Numer. Anal. 47 (2009) 786-803 (method ``exprb43``, stiff order 4, embedded order 3).

Why a Rosenbrock-type method: the Adam flows are stiff in two ways. The *linear* stiffness (friction
2/alpha, memory roots ~ 1/alpha) is constant, but late in a run the adaptive gain 1/sqrt(v) grows and
the flow oscillates with omega^2 ~ lam1 f''/sqrt(v) (with small beta2 the flow becomes sign-like and
chatters around the minimiser, omega up to ~1e6). That stiffness sits in the nonlinear part, so an
exponential integrator with a fixed linear part would be limited by its stability. exprb43 linearises
the *full* right-hand side at every step,

    w = (y, t),   w' = F~(w) = (L y + N(t, y), 1),   J~ = dF~/dw = [[J_y, J_t], [0, 0]],
    g(w) = F~(w) - J~ w,   D_i = g(U_i) - g(w_n)

    U_2 = w_n + (h/2) phi_1(h/2 J~) F~(w_n)
    U_3 = w_n + h phi_1(h J~) F~(w_n) + h phi_1(h J~) D_2
    w_{n+1} = w_n + h phi_1 F~(w_n) + h phi_3 (16 D_2 - 2 D_3) + h phi_4 (-48 D_2 + 12 D_3)
    w^_{n+1} = w_n + h phi_1 F~(w_n) + h phi_3 (16 D_2 - 2 D_3)                  (order 3)

(all phi_k at h J~ unless stated), so every linearised mode, constant or state dependent, is
propagated exactly and the step is set by accuracy alone. The time is carried as a state component
(non-autonomous bias factors), J_t = dF/dt.

Dense output: the stages define D(tau) ~ p tau^2 + q tau^3 on the step (D(0) = 0, since g has zero
derivative at w_n); integrating the variation-of-constants formula with it at tau = h/2 gives the
midpoint with the same local order,

    w(h/2) = w_n + h' phi_1' F~ + h' [(4 phi_3' - 6 phi_4') D_2 + (1.5 phi_4' - 0.5 phi_3') D_3],

h' = h/2, phi_k' = phi_k(h' J~). Together with the derivatives at both ends and the midpoint this
feeds the quintic Hermite interpolant (:class:`flows.interpolation.QuinticHermite`).

Cost per attempted step: one Jacobian, three batched ``matrix_exp`` calls of sizes D+2 to D+5
(phi-vector products by the augmented-matrix trick, :func:`flows.phi.phi_combination`), and four
evaluations of N (U_2, U_3, the midpoint, and w_{n+1}, which is the first stage of the next step:
first same as last, charged on acceptance only).
The state is flattened per lane to D = n d components: the Jacobian couples coordinates through the
Hessian of f, so the method suits the small systems this project studies (D up to a few dozen).
"""
from __future__ import annotations

import torch

from flows.interpolation import QuinticHermite
from flows.phi import phi_combination
from flows.semilinear import apply_linear
from flows.stepper import FirstSameAsLast, StepResult


def _mv(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B, D, D) x (B, D) -> (B, D)."""
    return torch.bmm(M, x.unsqueeze(-1)).squeeze(-1)


class ExpRosenbrock43(FirstSameAsLast):
    """exprb43: a :class:`flows.stepper.Stepper` of order 4 whose error estimate is the difference to
    its embedded order-3 solution (``error_order`` 3: the estimate is O(h^4) per step).

    State: ``(N0,)`` with N0 = N(t, y) at the start of the step (first same as last: the previous
    step's N at its end; recomputed where ``made_jump``). ``dense_info`` = (y0, y0', y_mid, y_mid', y1,
    y1') for :class:`flows.interpolation.QuinticHermite`, y' = L y + N. The flow must provide
    ``jacobian(t, y)`` (see :meth:`flows.semilinear.SemilinearFlow.jacobian`); L is queried from the
    flow on every step.
    """

    name = "exprb43"
    order = 4
    error_order = 3
    interpolation = QuinticHermite()

    def step(self, flow, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, state: tuple,
             made_jump: torch.Tensor | None = None, t1: torch.Tensor | None = None) -> StepResult:
        N0, extra, L = self.start(flow, t, y, state, made_jump)
        B, n, d = y.shape
        D = n * d
        Jy, Jt = flow.jacobian(t, y)
        Z = y.new_zeros(B, D + 1, D + 1)
        Z[:, :D, :D] = Jy
        Z[:, :D, D] = Jt
        hh = h[:, None, None]
        Zf, Zh = hh * Z, 0.5 * hh * Z                                     # h J~ and (h/2) J~

        w = y.reshape(B, D)
        F0 = (apply_linear(L, y) + N0).reshape(B, D)
        Ft = torch.cat([F0, torch.ones_like(F0[:, :1])], dim=1)          # (B, D+1)
        hv, h2 = h[:, None], 0.5 * h

        def residual(tc, U, dt):
            """D_i = F(U) - F(w) - J_y (U - w) - J_t dt, extended by a zero time component."""
            Ny = flow.nonlinear(tc, U.reshape(B, n, d))
            FU = (apply_linear(L, U.reshape(B, n, d)) + Ny).reshape(B, D)
            Di = FU - F0 - _mv(Jy, U - w) - Jt * dt[:, None]
            return torch.cat([Di, torch.zeros_like(Di[:, :1])], dim=1)

        # (1) phi_1(hJ/2) F~ and phi_1(hJ) F~ in one call
        both = phi_combination(torch.cat([Zh, Zf]), [torch.cat([Ft, Ft])])
        base_half, base_full = both[:B], both[B:]
        U2 = w + (h2[:, None] * base_half)[:, :D]
        D2 = residual(t + h2, U2, h2)
        # (2) U_3 = w + h phi_1(hJ) (F~ + D_2)
        U3 = w + (hv * (base_full + phi_combination(Zf, [D2])))[:, :D]
        D3 = residual(t + h, U3, h)
        # (3) the update, its error estimate and the dense-output midpoint in one call
        a3, a4 = 16.0 * D2 - 2.0 * D3, -48.0 * D2 + 12.0 * D3
        c3, c4 = 4.0 * D2 - 0.5 * D3, -6.0 * D2 + 1.5 * D3
        zero = torch.zeros_like(Ft)
        out = phi_combination(torch.cat([Zf, Zf, Zh]), [
            zero.repeat(3, 1), zero.repeat(3, 1), torch.cat([a3, zero, c3]), torch.cat([a4, a4, c4])])
        corr, corr4, mid = out[:B], out[B:2 * B], out[2 * B:]
        y_new = w + (hv * (base_full + corr))[:, :D]
        err = (hv * corr4)[:, :D]
        y_mid = (w + (h2[:, None] * (base_half + mid))[:, :D]).reshape(B, n, d)
        N_mid = flow.nonlinear(t + h2, y_mid)
        y_new = y_new.reshape(B, n, d)
        N1 = flow.nonlinear(t + h if t1 is None else t1, y_new)
        f0 = apply_linear(L, y) + N0
        fm = apply_linear(L, y_mid) + N_mid
        f1 = apply_linear(L, y_new) + N1
        return StepResult(y=y_new, y_error=err.reshape(B, n, d), dense_info=(y, f0, y_mid, fm, y_new, f1),
                          state=(N1,), nfev=3 + extra, nfev_fsal=1)


__all__ = ["ExpRosenbrock43"]
