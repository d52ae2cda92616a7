"""Exponential Runge-Kutta steps for semilinear flows, error estimation and dense output.

Problem (see :mod:`flows.semilinear`): dy/dt = L y + N(t, y), y (B, n, d), L (B, d, d) constant per lane
(between events: a switching event may change it, and the steppers query it on every step).

An s-stage explicit exponential Runge-Kutta method with nodes c_i and step h (per lane, (B,)):

    U_1 = y,   U_i = e^{c_i h L} y + h sum_{j<i} a_ij(h L) N(t + c_j h, U_j)
    y_1 = e^{h L} y + h sum_i b_i(h L) N(t + c_i h, U_i)

a_ij, b_i are linear combinations of phi_k(c h L) (:mod:`flows.phi`), (B, d, d) matrices applied to every
coordinate (``einsum('bij,bnj->bni')``). The linear part is integrated exactly, so the step is limited by
accuracy on the slow scales only, never by the stability limit of the fast modes.

Contract of a solver (what :class:`StepDoubling` relies on):

* ``order``: classical/stiff order p; ``c``: nodes; ``n_phi``: highest phi index used;
  ``phi_scales``: the multiples c of h at which phi_k(c h L) is needed (always includes 1.0).
* ``step(flow, t, y, h, phi, N0) -> (y1, nfev)``: one step from per-lane times t (B,) with per-lane h (B,);
  ``phi[c]`` is the list [e^{c h L}, phi_1(c h L), ..., phi_{n_phi}(c h L)]; ``N0 = N(t, y)`` is supplied
  (first same as last: it is N at the end of the previous step); ``nfev`` = number of new N calls.

:class:`StepDoubling` wraps a solver into a :class:`flows.stepper.Stepper` (the error-estimating step
used by :func:`flows.solve.solve`); its dense output is :class:`flows.interpolation.QuinticHermite`
(:func:`hermite5_weights` and :func:`hermite5_defect` are re-exported here).
"""
from __future__ import annotations

import numpy as np
import torch

from flows.interpolation import QuinticHermite, hermite5_defect, hermite5_weights
from flows.phi import phi_functions
from flows.semilinear import apply_linear
from flows.stepper import FirstSameAsLast, StepResult


def _combine(y: torch.Tensor, E: torch.Tensor, terms: list, hh: torch.Tensor) -> torch.Tensor:
    """E y + h sum_j A_j N_j per coordinate, as one batched matmul:
    [y, N_1, ..., N_k] (B, n, (k+1)d) @ [E^T; h A_1^T; ...; h A_k^T] (B, (k+1)d, d)."""
    vecs = [y] + [N for N, _ in terms]
    mats = [E.transpose(-1, -2)] + [hh * A.transpose(-1, -2) for _, A in terms]
    return torch.bmm(torch.cat(vecs, dim=-1), torch.cat(mats, dim=-2))


class ExponentialRK:
    """Generic explicit exponential RK method defined by :meth:`tableau`.

    Subclasses set ``order``, ``c`` and ``n_phi`` and implement ``tableau(phi)`` returning
    ``(a, b)``: ``a[i][j]`` (j < i) and ``b[i]`` as (..., d, d) matrices or ``None`` for zero entries.
    The constructor checks the tableau (fail at construction): row sums a_i = c_i phi_1(c_i Z),
    sum b = phi_1(Z) on a non-normal test matrix Z, and the classical order conditions up to ``order``
    at Z = 0.
    """

    order: int = 0
    c: tuple[float, ...] = ()
    n_phi: int = 1
    name: str = ""

    def __init__(self) -> None:
        self.phi_scales = tuple(sorted((set(self.c) - {0.0}) | {1.0}, reverse=True))
        self._check()

    # -- to implement -------------------------------------------------------------------------------
    def tableau(self, phi: dict[float, list[torch.Tensor]]):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the step -------------------------------------------------------------------------------------
    def step(self, flow, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor,
             phi: dict[float, list[torch.Tensor]], N0: torch.Tensor) -> tuple[torch.Tensor, int]:
        a, b = self.tableau(phi)
        hh = h[:, None, None]
        Ns = [N0]
        nfev = 0
        for i in range(1, len(self.c)):
            ci = self.c[i]
            U = _combine(y, phi[ci][0], [(Ns[j], aij) for j, aij in enumerate(a[i]) if aij is not None],
                         hh)
            Ns.append(flow.nonlinear(t + ci * h, U))
            nfev += 1
        y1 = _combine(y, phi[1.0][0], [(Ni, bi) for Ni, bi in zip(Ns, b) if bi is not None], hh)
        return y1, nfev

    # -- construction checks --------------------------------------------------------------------------
    def _phis(self, Z: torch.Tensor) -> dict[float, list[torch.Tensor]]:
        return {s: phi_functions(s * Z, self.n_phi) for s in self.phi_scales}

    def _check(self) -> None:
        Z = torch.tensor([[-0.7, 0.9], [-0.4, -2.3]], dtype=torch.float64)
        phi = self._phis(Z)
        a, b = self.tableau(phi)
        s = len(self.c)
        if len(a) != s or len(b) != s or self.c[0] != 0.0:
            raise ValueError(f"{type(self).__name__}: tableau shape does not match c")
        for i in range(1, s):
            rs = sum((x for x in a[i][:i] if x is not None), torch.zeros_like(Z))
            want = self.c[i] * phi[self.c[i]][1]
            if not torch.allclose(rs, want, atol=1e-12):
                raise ValueError(f"{type(self).__name__}: row {i} of a does not sum to c_i phi_1(c_i Z)")
        bs = sum((x for x in b if x is not None), torch.zeros_like(Z))
        if not torch.allclose(bs, phi[1.0][1], atol=1e-12):
            raise ValueError(f"{type(self).__name__}: weights do not sum to phi_1(Z)")
        # classical conditions at Z = 0 (scalars)
        a0, b0 = self.tableau(self._phis(torch.zeros(1, 1, dtype=torch.float64)))
        A = np.zeros((s, s))
        for i in range(s):
            for j in range(i):
                if a0[i][j] is not None:
                    A[i, j] = float(a0[i][j])
        bv = np.array([0.0 if x is None else float(x) for x in b0])
        cv = np.array(self.c)
        conds = [(bv.sum(), 1.0), (bv @ cv, 1 / 2)]
        if self.order >= 3:
            conds += [(bv @ cv**2, 1 / 3), (bv @ A @ cv, 1 / 6)]
        if self.order >= 4:
            conds += [(bv @ cv**3, 1 / 4), (bv @ (cv * (A @ cv)), 1 / 8),
                      (bv @ A @ cv**2, 1 / 12), (bv @ A @ A @ cv, 1 / 24)]
        for k, (got, want) in enumerate(conds):
            if abs(got - want) > 1e-12:
                raise ValueError(f"{type(self).__name__}: classical order condition {k} fails "
                                 f"({got} != {want})")


class HochbruckOstermann4(ExponentialRK):
    """Five-stage exponential RK of stiff order 4 (default).

    M. Hochbruck, A. Ostermann, "Explicit exponential Runge-Kutta methods for semilinear parabolic
    problems", SIAM J. Numer. Anal. 43 (2005) 1069-1090, eq. (5.19); also Acta Numerica 19 (2010) 209-286.
    With phi_{k,i} = phi_k(c_i h L), phi_k = phi_k(h L), c = (0, 1/2, 1/2, 1, 1/2):

        a21 = phi_{1,2}/2
        a31 = phi_{1,3}/2 - phi_{2,3},   a32 = phi_{2,3}
        a41 = phi_1 - 2 phi_2,          a42 = a43 = phi_2
        a52 = a53 = phi_{2,5}/2 - phi_3 + phi_2/4 - phi_{3,5}/2,   a54 = phi_{2,5}/4 - a52,
        a51 = phi_{1,5}/2 - 2 a52 - a54
        b1 = phi_1 - 3 phi_2 + 4 phi_3,  b2 = b3 = 0,  b4 = -phi_2 + 4 phi_3,  b5 = 4 phi_2 - 8 phi_3
    """

    order = 4
    c = (0.0, 0.5, 0.5, 1.0, 0.5)
    n_phi = 3
    name = "hochbruck-ostermann4"

    def tableau(self, phi):
        _, p1, p2, p3 = phi[1.0]
        _, q1, q2, q3 = phi[0.5]
        a52 = 0.5 * q2 - p3 + 0.25 * p2 - 0.5 * q3
        a54 = 0.25 * q2 - a52
        a = [
            [],
            [0.5 * q1],
            [0.5 * q1 - q2, q2],
            [p1 - 2 * p2, p2, p2],
            [0.5 * q1 - 2 * a52 - a54, a52, a52, a54],
        ]
        b = [p1 - 3 * p2 + 4 * p3, None, None, -p2 + 4 * p3, 4 * p2 - 8 * p3]
        return a, b


class CoxMatthews4(ExponentialRK):
    """ETDRK4 of S. M. Cox and P. C. Matthews, "Exponential time differencing for stiff systems",
    J. Comput. Phys. 176 (2002) 430-455 (classical order 4; stiff order 2 in the worst case,
    Hochbruck-Ostermann 2005). With E2 = e^{hL/2}, q1 = phi_1(hL/2):

        a21 = a32 = q1/2,  a41 = q1 (E2 - I)/2,  a43 = q1
        b1 = phi_1 - 3 phi_2 + 4 phi_3,  b2 = b3 = 2 phi_2 - 4 phi_3,  b4 = 4 phi_3 - phi_2
    """

    order = 4
    c = (0.0, 0.5, 0.5, 1.0)
    n_phi = 3
    name = "cox-matthews4"

    def tableau(self, phi):
        _, p1, p2, p3 = phi[1.0]
        E2, q1 = phi[0.5][0], phi[0.5][1]
        eye = torch.eye(E2.shape[-1], dtype=E2.dtype, device=E2.device)
        a = [[], [0.5 * q1], [None, 0.5 * q1], [0.5 * q1 @ (E2 - eye), None, q1]]
        mid = 2 * p2 - 4 * p3
        b = [p1 - 3 * p2 + 4 * p3, mid, mid, 4 * p3 - p2]
        return a, b


class StepDoubling(FirstSameAsLast):
    """A :class:`flows.stepper.Stepper` from an exponential RK method by step doubling (Richardson).

    One step of size h (y_full) against two steps of size h/2 (y1, propagated). For a method of order p
    the local error of y1 is estimated by (y1 - y_full) / (2^p - 1): ``order`` = ``error_order`` = p
    (the estimate is O(h^(p+1)) per step). The first stage N(t, y) is shared by the full step and the
    first half step; the second half step's first stage N(t + h/2, y_mid) is the derivative at the
    midpoint used by the quintic Hermite dense output. phi-functions are computed once per attempt at the
    scales {c h} of the full step and {c h/2} of the half steps (one batched ``matrix_exp``) from the
    flow's current linear part.

    State: ``(N0,)``, N0 = N(t, y) (first same as last; recomputed where ``made_jump``).
    ``dense_info`` = (y0, y0', y_mid, y_mid', y1, y1') for :class:`flows.interpolation.QuinticHermite`.
    """

    interpolation = QuinticHermite()

    def __init__(self, solver: ExponentialRK | None = None) -> None:
        self.solver = solver if solver is not None else HochbruckOstermann4()
        self.order = self.solver.order
        self.error_order = self.solver.order
        self.name = f"doubling({self.solver.name})"
        full = self.solver.phi_scales
        self.scales = tuple(sorted(set(full) | {0.5 * s for s in full}, reverse=True))

    def phis(self, L: torch.Tensor, h: torch.Tensor) -> dict[float, list[torch.Tensor]]:
        """{scale: [e^{s h L}, phi_1(s h L), ...]} for every needed scale s, per lane."""
        B = L.shape[0]
        Z = torch.cat([s * h[:, None, None] * L for s in self.scales], dim=0)
        P = phi_functions(Z, self.solver.n_phi)
        return {s: [p[i * B:(i + 1) * B] for p in P] for i, s in enumerate(self.scales)}

    def step(self, flow, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, state: tuple,
             made_jump: torch.Tensor | None = None, t1: torch.Tensor | None = None) -> StepResult:
        N0, extra, L = self.start(flow, t, y, state, made_jump)
        phi = self.phis(L, h)
        full = {s: phi[s] for s in self.solver.phi_scales}
        half = {s: phi[0.5 * s] for s in self.solver.phi_scales}
        y_full, n1 = self.solver.step(flow, t, y, h, full, N0)
        hh = 0.5 * h
        y_mid, n2 = self.solver.step(flow, t, y, hh, half, N0)
        t_mid = t + hh
        N_mid = flow.nonlinear(t_mid, y_mid)
        y_new, n3 = self.solver.step(flow, t_mid, y_mid, hh, half, N_mid)
        err = (y_new - y_full) / (2.0 ** self.order - 1.0)
        N1 = flow.nonlinear(t + h if t1 is None else t1, y_new)
        f0 = apply_linear(L, y) + N0
        fm = apply_linear(L, y_mid) + N_mid
        f1 = apply_linear(L, y_new) + N1
        return StepResult(y=y_new, y_error=err, dense_info=(y, f0, y_mid, fm, y_new, f1), state=(N1,),
                          nfev=n1 + n2 + n3 + 1 + extra, nfev_fsal=1)


__all__ = ["ExponentialRK", "HochbruckOstermann4", "CoxMatthews4", "StepDoubling", "hermite5_weights",
           "hermite5_defect"]
