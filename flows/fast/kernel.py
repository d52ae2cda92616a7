r"""The per-lane compiled integrator: DOP853 with its own adaptive loop for every lane.

The kernel

    solve_lanes(family, grad, hess, third, y0, M, LP, n, d, t_out, n_out, ew, rtol, atol, max_steps,
                h_max, bound, order, ys, status, div_at, t_fin, nfev, acc, rej)

runs lanes ``order[j]`` in a ``prange`` loop over the right-hand side of flow family ``family``
with the landscape's pointwise phi', phi'' and phi''' ``grad``, ``hess``, ``third``
(:func:`flows.fast.rhs.family_rhs`; ``hess`` only read by the Newton form and the
modified-equation velocities, ``third`` only by gd-flow3's). It is compiled once and cached on disk
by numba (all three are first-class function arguments of one type, not specialisations). Each lane
is an independent adaptive integration (the design of ensemble GPU kernels: no lockstep, no host
synchronisation, a finished lane costs nothing):

* step: Dormand-Prince 8(5,3), FSAL (:mod:`flows.fast.dop853`);
* error: the DOP853 combination of the 5th- and 3rd-order estimates, RMS over the components with
  ``ew > 0`` (the flow's :meth:`error_weights`), scale atol + rtol max(|y|, |y_new|);
* control: h_new = h min(10, max(0.2, 0.9 err^{-1/8})), no growth right after a rejection; the first
  step from the Hairer-Wanner starting-step estimate; the last step lands exactly on the lane's last
  output time; h <= h_max;
* output: every output time inside a step from the order-7 dense output (three extra stages, only on
  steps that hold one), output times equal to a step end from the step itself;
* statuses (:class:`core.trajectory.Status` codes): 1 diverged (theta non-finite or beyond
  ``bound`` at the start or after an accepted step; a non-finite right-hand side at the start, where
  the flow is not defined, e.g. a Newton flow's phi'' <= 0: what the torch engine reaches by
  shrinking the step to its floor; or h driven below 16 ulp of t by non-finite trial states; or
  ``STALL_LIMIT`` stalls in a row, a stall being a step accepted after a non-finite trial that
  leaves the state unchanged: the lane is pinned to the edge of a region where the right-hand side
  is not finite, which the floor misses near t = 0, where 16 ulp of t lie far below the state's
  resolution (a Newton flow running into phi'' = 0 at t ~ 1e-23; a lane that starts there and
  moves away escapes within a few stalls); ``div_at`` its time), 2 step underflow (h below 16 ulp
  of t otherwise; a last step, which may be short, is exempt), 3 the attempted-step budget
  ``max_steps`` spent. Outputs after a failure stay NaN.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from flows.fast import dop853 as tab
from flows.fast.rhs import family_rhs

OK, DIVERGED, STEP_UNDERFLOW, MAX_STEPS = 0, 1, 2, 3

#: the step floor: FLOOR_ULPS ulp of t (module docstring)
FLOOR_ULPS = 16.0
EPS = 2.220446049250313e-16

#: stalls in a row (module docstring) that end a lane as diverged (lanes that escape a stall
#: were seen to need fewer than 10)
STALL_LIMIT = 100


C, CX, Dm = tab.C, tab.C_EXTRA, tab.D
NS = tab.N_STAGES
inv_q = 1.0 / (tab.ERROR_ORDER + 1)


def _sparse_rows(M: np.ndarray):
    """CSR of a coefficient matrix: (ptr, idx, val); the kernel skips the tableau's zeros
    (A: 50 of 66 entries below the diagonal, b: 8 of 12, the error weights: 8 of 13)."""
    ptr, idx, val = [0], [], []
    for row in M:
        nz = np.flatnonzero(row)
        idx += nz.tolist()
        val += row[nz].tolist()
        ptr.append(len(idx))
    return np.array(ptr, dtype=np.int64), np.array(idx, dtype=np.int64), np.array(val)


A_PTR, A_IDX, A_VAL = _sparse_rows(tab.A)
AX_PTR, AX_IDX, AX_VAL = _sparse_rows(tab.A_EXTRA)
_, B_IDX, B_VAL = _sparse_rows(tab.B[None, :])
E_IDX = np.flatnonzero((tab.E5 != 0) | (tab.E3 != 0)).astype(np.int64)
E5_VAL = tab.E5[E_IDX].copy()
E3_VAL = tab.E3[E_IDX].copy()


@njit(cache=True)
def lane(family, grad, hess, third, b, y0, M, LP, n, d, t_out, n_out, ew, rtol, atol, max_steps,
         h_max, bound, ys, status, div_at, t_fin, nfev, acc, rej):
    N = y0.shape[1]
    mrow = M[b]
    lrow = LP[b]
    K = np.empty((NS + 4, N))
    F = np.empty((7, N))
    g = np.empty(n)
    y = y0[b].copy()
    yn = np.empty(N)
    tmp = np.empty(N)
    nout = n_out[b]
    t = 0.0
    nf = 0
    na = 0
    nr = 0
    p = 0
    while p < nout and t_out[b, p] <= t:
        ys[b, p, :] = y
        p += 1
    for i in range(n):
        th = y[i * d]
        if not (abs(th) <= bound):
            status[b] = DIVERGED
            div_at[b] = t
            p = nout
    if p >= nout:
        t_fin[b] = t
        return
    t_end = t_out[b, nout - 1]
    family_rhs(family, grad, hess, third, t, y, K[0], mrow, lrow, n, d, g)
    nf += 1
    for k in range(N):
        if not (abs(K[0, k]) < math.inf):     # the flow is not defined at the start
            status[b] = DIVERGED
            div_at[b] = t
            t_fin[b] = t
            nfev[b] = nf
            return
    # starting step (Hairer, Norsett & Wanner, II.4)
    span = t_end - t
    d0 = 0.0
    d1 = 0.0
    for k in range(N):
        sc = atol + rtol * abs(y[k])
        d0 += (y[k] / sc) ** 2
        d1 += (K[0, k] / sc) ** 2
    d0 = math.sqrt(d0 / N)
    d1 = math.sqrt(d1 / N)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, span, h_max)
    for k in range(N):
        tmp[k] = y[k] + h0 * K[0, k]
    family_rhs(family, grad, hess, third, t + h0, tmp, K[1], mrow, lrow, n, d, g)
    nf += 1
    d2 = 0.0
    for k in range(N):
        sc = atol + rtol * abs(y[k])
        d2 += ((K[1, k] - K[0, k]) / sc) ** 2
    d2 = math.sqrt(d2 / N) / h0
    dm = max(d1, d2)
    if dm <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / dm) ** inv_q
    h = min(100.0 * h0, h1)
    if not (h > 0.0):                          # a non-finite trial rhs in the estimate
        h = h0
    rejected_last = False
    nonfinite = False
    stalls = 0
    steps = 0
    while True:
        if steps >= max_steps:
            status[b] = MAX_STEPS
            break
        if h > h_max:
            h = h_max
        span = t_end - t
        last = h >= span
        if last:
            h = span
        if not last and h <= FLOOR_ULPS * EPS * max(abs(t), 1e-300):
            if nonfinite:                 # driven to the floor by non-finite trial states
                status[b] = DIVERGED
                div_at[b] = t
            else:
                status[b] = STEP_UNDERFLOW
            break
        # stages 1..11
        for s in range(1, NS):
            c0, c1 = A_PTR[s], A_PTR[s + 1]
            for k in range(N):
                a = 0.0
                for jj in range(c0, c1):
                    a += A_VAL[jj] * K[A_IDX[jj], k]
                tmp[k] = y[k] + h * a
            family_rhs(family, grad, hess, third, t + C[s] * h, tmp, K[s], mrow, lrow, n, d, g)
        for k in range(N):
            a = 0.0
            for jj in range(B_IDX.shape[0]):
                a += B_VAL[jj] * K[B_IDX[jj], k]
            yn[k] = y[k] + h * a
        t_new = t_end if last else t + h
        family_rhs(family, grad, hess, third, t_new, yn, K[NS], mrow, lrow, n, d, g)
        nf += NS
        steps += 1
        e5 = 0.0
        e3 = 0.0
        nc = 0
        for k in range(N):
            if ew[k] > 0.0:
                sc = atol + rtol * max(abs(y[k]), abs(yn[k]))
                a5 = 0.0
                a3 = 0.0
                for jj in range(E_IDX.shape[0]):
                    kr = K[E_IDX[jj], k]
                    a5 += E5_VAL[jj] * kr
                    a3 += E3_VAL[jj] * kr
                e5 += (a5 / sc) ** 2
                e3 += (a3 / sc) ** 2
                nc += 1
        if e5 == 0.0 and e3 == 0.0:
            err = 0.0
        else:
            err = h * e5 / math.sqrt((e5 + 0.01 * e3) * max(nc, 1))
        if not (err <= 1.0):          # rejected (NaN included)
            nr += 1
            nonfinite = not (err < math.inf)
            if nonfinite:
                h *= 0.2
            else:
                h *= max(0.2, 0.9 * err ** (-inv_q))
            rejected_last = True
            continue
        na += 1
        moved = False
        for k in range(N):
            if yn[k] != y[k]:
                moved = True
        if moved:
            stalls = 0
        elif nonfinite:
            # accepted right after a non-finite trial, too short to move the state: the lane
            # stalls at the edge of a region where the right-hand side is not finite
            stalls += 1
            if stalls >= STALL_LIMIT:
                status[b] = DIVERGED
                div_at[b] = t
                break
        nonfinite = False
        dense = False
        while p < nout and t_out[b, p] <= t_new:
            tp = t_out[b, p]
            if tp == t_new or (last and p == nout - 1):
                for k in range(N):
                    ys[b, p, k] = yn[k]
            else:
                if not dense:
                    for s in range(3):
                        idx = NS + 1 + s
                        c0, c1 = AX_PTR[s], AX_PTR[s + 1]
                        for k in range(N):
                            a = 0.0
                            for jj in range(c0, c1):
                                a += AX_VAL[jj] * K[AX_IDX[jj], k]
                            tmp[k] = y[k] + h * a
                        family_rhs(family, grad, hess, third, t + CX[s] * h, tmp, K[idx], mrow,
                                   lrow, n, d, g)
                    nf += 3
                    for k in range(N):
                        dy = yn[k] - y[k]
                        F[0, k] = dy
                        F[1, k] = h * K[0, k] - dy
                        F[2, k] = 2.0 * dy - h * (K[NS, k] + K[0, k])
                        for q in range(4):
                            a = 0.0
                            for r in range(NS + 4):
                                a += Dm[q, r] * K[r, k]
                            F[3 + q, k] = h * a
                    dense = True
                x = (tp - t) / h
                for k in range(N):
                    val = 0.0
                    for i in range(7):
                        val += F[6 - i, k]
                        if i % 2 == 0:
                            val *= x
                        else:
                            val *= 1.0 - x
                    ys[b, p, k] = val + y[k]
            p += 1
        t = t_new
        for k in range(N):
            y[k] = yn[k]
            K[0, k] = K[NS, k]
        bad = False
        for i in range(n):
            if not (abs(y[i * d]) <= bound):
                bad = True
        if bad:
            status[b] = DIVERGED
            div_at[b] = t
            break
        if p >= nout:
            break
        if err == 0.0:
            factor = 10.0
        else:
            factor = min(10.0, 0.9 * err ** (-inv_q))
        if rejected_last:
            factor = min(1.0, factor)
        h *= factor
        rejected_last = False
    t_fin[b] = t
    nfev[b] = nf
    acc[b] = na
    rej[b] = nr


@njit(cache=True, parallel=True)
def solve_lanes(family, grad, hess, third, y0, M, LP, n, d, t_out, n_out, ew, rtol, atol,
                max_steps, h_max, bound, order, ys, status, div_at, t_fin, nfev, acc, rej):
    for j in prange(order.shape[0]):
        lane(family, grad, hess, third, order[j], y0, M, LP, n, d, t_out, n_out, ew, rtol, atol,
             max_steps, h_max, bound, ys, status, div_at, t_fin, nfev, acc, rej)
