r"""The per-lane explicit integrator: DOP853 with its own adaptive loop for one lane.

    lane(family, grad, hess, third, b, y0, M, LP, n, d, t_out, n_out, ew, rtol, atol, max_steps,
         h_max, bound, detect, yh, ys, status, div_at, t_fin, nfev, acc, rej)

integrates lane ``b``; :func:`flows.fast.ensemble.solve_ensemble` runs the lanes ``order[j]`` in a
``prange`` loop. With ``detect`` (an Adam-family lane that auto lets switch) it applies a stiffness
test after every accepted step (h max_k |J_kk| from the form's closed-form Jacobian, see
STIFF_HLAMBDA) and hands the lane over to Rodas5P where the test fires. The lane runs the right-hand
side of flow family ``family`` with the landscape's pointwise phi', phi'' and phi''' ``grad``,
``hess``, ``third`` (:func:`flows.fast.rhs.family_rhs`; ``hess`` only read by the Newton form and
the modified-equation velocities and the stiffness test, ``third`` only by gd-flow3's). It is
compiled once and cached on disk by numba (all three are first-class function arguments of one type,
not specialisations). Each lane is an independent adaptive integration (the design of ensemble GPU
kernels: no lockstep, no host synchronisation, a finished lane costs nothing):

* step: Dormand-Prince 8(5,3), FSAL (:mod:`flows.fast.dop853`);
* error: the DOP853 combination of the 5th- and 3rd-order estimates, RMS over the components with
  ``ew[b] > 0``, scale atol + rtol max(|y|, |y_new|);
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
from numba import njit

from flows.fast import dop853 as tab
from flows.fast.lane_control import (
    DIVERGED,
    MAX_STEPS,
    STALL_LIMIT,
    below_floor,
    count_stalls,
    first_step,
    first_trial,
    floor_status,
    out_of_bounds,
    start_lane,
)
from flows.fast.rhs import adam_form_jacobian, family_rhs

#: the stiffness test of a switching lane (:mod:`flows.fast.ensemble`): an accepted step with
#: h max_k |J_kk| > STIFF_HLAMBDA (half the stability interval [-6.1, 0] on the negative axis,
#: where the order-7 dense output already loses digits: 8e-6 at rtol 1e-10 on rmsprop-flow at
#: alpha = 0.01 near its minimum, where the step ends are right to 2e-9) counts; STIFF_STEPS of
#: them, without CALM_STEPS calm steps in a row between them, make the lane stiff
STIFF_HLAMBDA, STIFF_STEPS, CALM_STEPS = 1.5, 2, 6

C, CX, Dm = tab.C, tab.C_EXTRA, tab.D
NS = tab.N_STAGES
inv_q = 1.0 / (tab.ERROR_ORDER + 1)
assert tab.ERROR_ORDER == 7        # step_power: err^(-1/8) from three square roots


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


@njit(cache=True, inline="always")
def combine(VAL, IDX, c0, c1, K, y, h, out):
    """out = y + h sum_j VAL[j] K[IDX[j]] over the CSR entries c0..c1 of one tableau row (a stage's
    input, the solution, a dense-output stage)."""
    for k in range(y.shape[0]):
        a = 0.0
        for jj in range(c0, c1):
            a += VAL[jj] * K[IDX[jj], k]
        out[k] = y[k] + h * a


@njit(cache=True, inline="always")
def start_steps(family, grad, hess, third, y, K, tmp, g, mrow, lrow, n, d, atol, rtol, t_end,
                h_max, one):
    """f(y0) into K[0] and the starting step (Hairer, Norsett & Wanner, II.4) of a lane that starts
    from ``y`` at t = 0 with its last output at ``t_end`` (after :func:`start_lane`); K[1] and
    ``tmp`` are scratch, ``one`` (n d,) ones, the starting step's weights. Returns (h, defined):
    ``defined`` False where f(y0) is not finite, a flow not defined at the start (the caller marks
    the lane DIVERGED, :func:`undefined_start`). Only the caller's own arrays pass in here: an
    array that every thread shares (the outputs, the statuses) must not live across the
    landscape's opaque calls, where numba keeps its reference counts (atomic operations on one
    cache line that every thread writes: 12% of the samples of a 1e6-lane run of one step each)."""
    N = y.shape[0]
    family_rhs(family, grad, hess, third, 0.0, y, K[0], mrow, lrow, n, d, g)
    for k in range(N):
        if not (abs(K[0, k]) < math.inf):
            return 0.0, False
    h0, d1 = first_trial(y, K[0], one, atol, rtol, t_end, h_max)
    for k in range(N):
        tmp[k] = y[k] + h0 * K[0, k]
    family_rhs(family, grad, hess, third, h0, tmp, K[1], mrow, lrow, n, d, g)
    return first_step(y, K[0], K[1], one, atol, rtol, h0, d1, inv_q), True


@njit(cache=True, inline="always")
def undefined_start(b, status, div_at, t_fin, nfev):
    """Lane ``b`` ends at t = 0 where its flow is not defined (:func:`start_steps`): DIVERGED at 0,
    after one evaluation."""
    status[b] = DIVERGED
    div_at[b] = 0.0
    t_fin[b] = 0.0
    nfev[b] = 1


@njit(cache=True, inline="always")
def error_norm(h, e5, e3, nc):
    """The DOP853 error of a step from the sums of squares of the scaled 5th- and 3rd-order
    estimates over ``nc`` controlled components."""
    if e5 == 0.0 and e3 == 0.0:
        return 0.0
    return h * e5 / math.sqrt((e5 + 0.01 * e3) * max(nc, 1))


@njit(cache=True, inline="always")
def stiffness_count(grad, hess, t_new, yn, J, Jt, mrow, lrow, n, d, h, stiff, calm):
    """The stiffness test after an accepted step (module docstring): (stiff, calm, switch)."""
    # h |lambda| from the Jacobian's diagonal at the new state (the Adam-family form's closed
    # form): Hairer's estimate from the last two stages misses a stiff theta whose deviation from
    # its equilibrium is far below the drift of the memories
    adam_form_jacobian(grad, hess, t_new, yn, J, Jt, mrow, lrow, n, d)
    rho = 0.0
    for k in range(yn.shape[0]):
        rho = max(rho, abs(J[k, k % d]))
    return stiffness_verdict(h, rho, stiff, calm)


@njit(cache=True, inline="always")
def stiffness_verdict(h, rho, stiff, calm):
    """(stiff, calm, switch) after an accepted step of size h where max_k |J_kk| = rho."""
    if h * rho > STIFF_HLAMBDA:
        return stiff + 1, 0, stiff + 1 >= STIFF_STEPS
    calm += 1
    if calm >= CALM_STEPS:
        stiff = 0
    return stiff, calm, False


@njit(cache=True, inline="always")
def step_outputs(family, grad, hess, third, b, t, h, t_new, last, y, yn, K, F, tmp, p, nout,
                 t_out, ys, mrow, lrow, n, d, g):
    """The outputs of lane ``b`` inside the accepted step (t, t_new]: from the step end where an
    output time is the step end, else from the order-7 dense output (its three extra stages into
    K[NS + 1:], computed once, only on a step that holds such an output). Returns (p, extra
    right-hand-side evaluations)."""
    N = y.shape[0]
    nf = 0
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
                    combine(AX_VAL, AX_IDX, AX_PTR[s], AX_PTR[s + 1], K, y, h, tmp)
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
    return p, nf


@njit(cache=True, inline="always")
def step_power(err):
    """err^(-1/8), the controller's power err^(-1/(q + 1)) of DOP853's q = 7, as
    1/sqrt(sqrt(sqrt(err))): three correctly rounded square roots and a division (within 2 ulp of
    libm's pow, tests/test_numba_math.py), free of calls, so that the lane blocks take it for
    every slot in one SIMD loop (libm's pow, called once per lane and step, was the largest
    single symbol under perf: 6% of a run at 1e6 lanes)."""
    return 1.0 / math.sqrt(math.sqrt(math.sqrt(err)))


@njit(cache=True, inline="always")
def accepted_factor(err, pw, rejected_last):
    """The step-size factor after an accepted step: min(10, 0.9 err^(-1/8)) (``pw`` =
    :func:`step_power` of err), no growth right after a rejection."""
    if err == 0.0:
        factor = 10.0
    else:
        factor = min(10.0, 0.9 * pw)
    if rejected_last:
        factor = min(1.0, factor)
    return factor


@njit(cache=True, inline="always")
def rejected_factor(err, pw):
    """(factor, nonfinite) after a rejected step (``pw`` = :func:`step_power` of err; NaN
    included: a non-finite trial shrinks 5x)."""
    nonfinite = not (err < math.inf)
    if nonfinite:
        return 0.2, True
    return max(0.2, 0.9 * pw), False


# error_model="numpy" (here, in the Rosenbrock lane and the ensemble): IEEE division, so a 0/0 in a
# right-hand side (an Adam direction with eps = 0 where m = v = 0) is a NaN that the lane loop marks
# DIVERGED, as the torch engine does; numba's default raises ZeroDivisionError inside the prange,
# which ended the whole run with a SystemError
@njit(cache=True, error_model="numpy")
def lane(family, grad, hess, third, b, y0, M, LP, n, d, t_out, n_out, ew, rtol, atol, max_steps,
         h_max, bound, detect, yh, ys, status, div_at, t_fin, nfev, acc, rej):
    """Lane ``b`` from y0[b] at t = 0. ``detect``: stop where the lane turns stiff (module
    docstring), leaving its state in ``yh`` and returning (True, t, h, p, steps): the time, the
    next step, the next output index and the attempted steps so far, for the stiff stepper to go on
    from (:mod:`flows.fast.ensemble`); (False, ...) when the lane ended here."""
    N = y0.shape[1]
    mrow = M[b]
    lrow = LP[b]
    w = ew[b]
    J = np.empty((N if detect else 0, d))
    Jt = np.empty(N if detect else 0)
    K = np.empty((NS + 4, N))
    F = np.empty((7, N))
    g = np.empty(n)
    y = y0[b].copy()
    yn = np.empty(N)
    tmp = np.empty(N)
    nout = n_out[b]
    p = start_lane(b, y, t_out, n_out, ys, n, d, bound, status, div_at)
    if p >= nout:
        t_fin[b] = 0.0
        return False, 0.0, 0.0, p, 0
    t_end = t_out[b, nout - 1]
    h, defined = start_steps(family, grad, hess, third, y, K, tmp, g, mrow, lrow, n, d, atol, rtol,
                             t_end, h_max, np.ones(N))
    if not defined:
        undefined_start(b, status, div_at, t_fin, nfev)
        return False, 0.0, 0.0, p, 0
    nf = 2
    t = 0.0
    na = 0
    nr = 0
    rejected_last = False
    nonfinite = False
    stalls = 0
    steps = 0
    stiff = 0
    calm = 0
    switch = False
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
        if below_floor(h, t, last):
            status[b] = floor_status(nonfinite)
            if nonfinite:                 # driven to the floor by non-finite trial states
                div_at[b] = t
            break
        # stages 1..11
        for s in range(1, NS):
            combine(A_VAL, A_IDX, A_PTR[s], A_PTR[s + 1], K, y, h, tmp)
            family_rhs(family, grad, hess, third, t + C[s] * h, tmp, K[s], mrow, lrow, n, d, g)
        combine(B_VAL, B_IDX, 0, B_IDX.shape[0], K, y, h, yn)
        t_new = t_end if last else t + h
        family_rhs(family, grad, hess, third, t_new, yn, K[NS], mrow, lrow, n, d, g)
        nf += NS
        steps += 1
        e5 = 0.0
        e3 = 0.0
        nc = 0
        for k in range(N):
            if w[k] > 0.0:
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
        err = error_norm(h, e5, e3, nc)
        pw = step_power(err)
        if not (err <= 1.0):          # rejected (NaN included)
            nr += 1
            factor, nonfinite = rejected_factor(err, pw)
            h *= factor
            rejected_last = True
            continue
        na += 1
        # accepted right after a non-finite trial, too short to move the state: the lane
        # stalls at the edge of a region where the right-hand side is not finite
        stalls = count_stalls(y, yn, nonfinite, stalls)
        if stalls >= STALL_LIMIT:
            status[b] = DIVERGED
            div_at[b] = t
            break
        nonfinite = False
        if detect:
            stiff, calm, switch = stiffness_count(grad, hess, t_new, yn, J, Jt, mrow, lrow, n, d,
                                                  h, stiff, calm)
        p, extra = step_outputs(family, grad, hess, third, b, t, h, t_new, last, y, yn, K, F, tmp,
                                p, nout, t_out, ys, mrow, lrow, n, d, g)
        nf += extra
        t = t_new
        for k in range(N):
            y[k] = yn[k]
            K[0, k] = K[NS, k]
        if out_of_bounds(y, n, d, bound):
            status[b] = DIVERGED
            div_at[b] = t
            break
        if p >= nout:
            break
        h *= accepted_factor(err, pw, rejected_last)
        rejected_last = False
        if switch:
            for k in range(N):
                yh[k] = y[k]
            nfev[b] = nf
            acc[b] = na
            rej[b] = nr
            return True, t, h, p, steps
    t_fin[b] = t
    nfev[b] = nf
    acc[b] = na
    rej[b] = nr
    return False, t, h, p, steps
