r"""The per-lane stiff integrator: Rodas5P with its own adaptive loop for one lane.

    lane(grad, hess, b, y, t, p, h, steps, M, LP, n, d, t_out, n_out, ew, rtol, atol, max_steps,
         h_max, bound, ys, status, div_at, t_fin, nfev, acc, rej)

integrates the Adam-family form (:func:`flows.fast.rhs.adam_form`) of lane ``b`` from the start or
from where the explicit stepper handed it over (:mod:`flows.fast.ensemble`), with the outputs and
statuses of the explicit lane (:func:`flows.fast.kernel.lane`); ``hess`` must be the landscape's
compiled phi'' (the Jacobian reads it) and ``ew`` (B, n d) holds per-lane error weights.

Why a second stepper: the second-order flows are stiff in their *linear* part (each of theta, m, v
is a damped oscillator with friction 2/alpha), and an explicit method, stable or not, pays for it
in accuracy: DOP853 on adam-flow2 at alpha = 5e-4 needs 14,000 steps over T = 4.5 at rtol 1e-10,
its step growing only as rtol^{-1/8} (the stiff modes' local errors), where the solution itself is
smooth on the slow time scale. A Rosenbrock method propagates the stiff modes stably and its
stiffly accurate stages damp them, so the step follows the slow solution.

* step: Rodas5P (:mod:`flows.fast.rodas5p`), W = I/(h gamma) - J with the closed-form Jacobian of the
  form (:func:`flows.fast.rhs.adam_form_jacobian`) and dF/dt, both at the start of the step and
  kept across rejected trials. The form decouples the coordinates (a separable landscape), so W is
  block diagonal: one d x d LU (partial pivoting) per coordinate and trial step;
* error: the embedded order-4 solution's difference k_8, RMS over all components of
  ew_k k_8 / (atol + rtol max(|y|, |y_new|)). The weights (:func:`flows.fast.solve.error_scales`)
  are 1 for a state and, for a fast derivative state that the flow leaves out of error control
  (u = theta', m', v' of the second-order model, relaxing at rate gamma = -L_kk), its relaxation
  time 1/gamma: its local error reaches the slow state through an integral over that time. (Leaving
  them out, as the torch engine does, loses up to 1e-7 at alpha = 5e-3, where they are not fast;
  weighting them fully costs 9x the steps at alpha = 5e-4.)
* control: Hairer & Wanner's RODAS controller with Gustafsson's predictive step (h_new / h in
  [0.2, 6], safety 0.9, no growth right after a rejection); first step from the Hairer-Wanner
  estimate in the same weighted norm; the last step lands on the lane's last output time; h <= h_max;
* output: from the order-4 dense output, on steps that hold an output time;
* statuses as the explicit kernel (diverged, step underflow, attempted-step budget).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from flows.fast import rodas5p as tab
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
from flows.fast.rhs import ADAM_FORM, adam_form_jacobian, family_rhs

NS = tab.N_STAGES
GAMMA = tab.GAMMA
RA, RC, RD, RNODES, RH = tab.A, tab.C, tab.D, tab.NODES, tab.H
inv_q = 1.0 / (tab.ERROR_ORDER + 1)
#: step-ratio bounds and safety factor of the controller (Hairer & Wanner's RODAS)
FAC_MIN, FAC_MAX, SAFETY = 0.2, 6.0, 0.9


@njit(cache=True, inline="always")
def _lu(W, piv, base, d):
    """In-place LU with partial pivoting of the d x d block W[base:base+d, :]."""
    for c in range(d):
        p = c
        big = abs(W[base + c, c])
        for r in range(c + 1, d):
            a = abs(W[base + r, c])
            if a > big:
                big = a
                p = r
        piv[base + c] = p
        if p != c:
            for k in range(d):
                tmp = W[base + c, k]
                W[base + c, k] = W[base + p, k]
                W[base + p, k] = tmp
        inv = 1.0 / W[base + c, c]
        for r in range(c + 1, d):
            f = W[base + r, c] * inv
            W[base + r, c] = f
            if f != 0.0:
                for k in range(c + 1, d):
                    W[base + r, k] -= f * W[base + c, k]


@njit(cache=True, inline="always")
def _solve(W, piv, base, d, x):
    """x[base:base+d] <- W_block^{-1} x[base:base+d] from the factors of :func:`_lu`."""
    for c in range(d):
        p = piv[base + c]
        if p != c:
            tmp = x[base + c]
            x[base + c] = x[base + p]
            x[base + p] = tmp
    for r in range(1, d):
        a = x[base + r]
        for k in range(r):
            a -= W[base + r, k] * x[base + k]
        x[base + r] = a
    for r in range(d - 1, -1, -1):
        a = x[base + r]
        for k in range(r + 1, d):
            a -= W[base + r, k] * x[base + k]
        x[base + r] = a / W[base + r, r]


@njit(cache=True, error_model="numpy")
def lane(grad, hess, b, y, t, p, h, steps, M, LP, n, d, t_out, n_out, ew, rtol, atol, max_steps,
         h_max, bound, ys, status, div_at, t_fin, nfev, acc, rej):
    """Lane ``b`` from state ``y`` (its own copy, the work array) at time ``t``: p < 0 a fresh
    start (t = 0, y = y0[b]); else the explicit stepper's hand-over (:mod:`flows.fast.ensemble`)
    with p the next output index, h > 0 the next step, ``steps`` the attempted steps so far and
    the counters nfev, acc, rej[b] so far."""
    N = y.shape[0]
    mrow = M[b]
    lrow = LP[b]
    w = ew[b]
    K = np.empty((NS, N))
    Q = np.empty((3, N))
    J = np.empty((N, d))
    Jt = np.empty(N)
    W = np.empty((N, d))
    piv = np.empty(N, dtype=np.int64)
    f0 = np.empty(N)
    u = np.empty(N)
    g = np.empty(n)
    yn = np.empty(N)
    nout = n_out[b]
    nf = nfev[b]
    na = acc[b]
    nr = rej[b]
    fresh = p < 0
    if fresh:
        p = start_lane(b, y, t_out, n_out, ys, n, d, bound, status, div_at)
    if p >= nout:
        t_fin[b] = t
        return
    t_end = t_out[b, nout - 1]
    family_rhs(ADAM_FORM, grad, hess, hess, t, y, f0, mrow, lrow, n, d, g)
    nf += 1
    for k in range(N):
        if not (abs(f0[k]) < math.inf):       # the flow is not defined at the start
            status[b] = DIVERGED
            div_at[b] = t
            t_fin[b] = t
            nfev[b] = nf
            return
    if not (h > 0.0):
        # starting step (Hairer, Norsett & Wanner, II.4), in the weighted norm
        h0, d1 = first_trial(y, f0, w, atol, rtol, t_end - t, h_max)
        for k in range(N):
            u[k] = y[k] + h0 * f0[k]
        family_rhs(ADAM_FORM, grad, hess, hess, t + h0, u, K[0], mrow, lrow, n, d, g)
        nf += 1
        h = first_step(y, f0, K[0], w, atol, rtol, h0, d1, 1.0 / 6.0)
    need_jac = True
    rejected_last = False
    nonfinite = False
    stalls = 0
    h_acc = 0.0
    err_acc = 1.0
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
        if need_jac:
            adam_form_jacobian(grad, hess, t, y, J, Jt, mrow, lrow, n, d)
            need_jac = False
        diag = 1.0 / (h * GAMMA)
        for k in range(N):
            for c in range(d):
                W[k, c] = -J[k, c]
        for i in range(n):
            base = i * d
            for c in range(d):
                W[base + c, c] += diag
            _lu(W, piv, base, d)
        inv_h = 1.0 / h
        for s in range(NS):
            if s == 0:
                for k in range(N):
                    K[0, k] = f0[k]
            else:
                if s < 6:
                    for k in range(N):
                        a = y[k]
                        for j in range(s):
                            a += RA[s, j] * K[j, k]
                        u[k] = a
                else:
                    for k in range(N):
                        u[k] += K[s - 1, k]
                family_rhs(ADAM_FORM, grad, hess, hess, t + RNODES[s] * h, u, K[s], mrow, lrow,
                           n, d, g)
            dh = RD[s] * h
            for k in range(N):
                a = K[s, k] + dh * Jt[k]
                for j in range(s):
                    a += RC[s, j] * inv_h * K[j, k]
                K[s, k] = a
            for i in range(n):
                _solve(W, piv, i * d, d, K[s])
        nf += NS - 1
        steps += 1
        e = 0.0
        for k in range(N):
            yn[k] = u[k] + K[NS - 1, k]
            sc = atol + rtol * max(abs(y[k]), abs(yn[k]))
            e += (w[k] * K[NS - 1, k] / sc) ** 2
        err = math.sqrt(e / N)
        if not (err <= 1.0):          # rejected (NaN included)
            nr += 1
            nonfinite = not (err < math.inf)
            if nonfinite:
                h *= 0.2
            else:
                h *= max(FAC_MIN, SAFETY * err ** (-inv_q))
            rejected_last = True
            continue
        na += 1
        stalls = count_stalls(y, yn, nonfinite, stalls)
        if stalls >= STALL_LIMIT:
            status[b] = DIVERGED
            div_at[b] = t
            break
        nonfinite = False
        t_new = t_end if last else t + h
        dense = False
        while p < nout and t_out[b, p] <= t_new:
            tp = t_out[b, p]
            if tp == t_new or (last and p == nout - 1):
                for k in range(N):
                    ys[b, p, k] = yn[k]
            else:
                if not dense:
                    for r in range(3):
                        for k in range(N):
                            a = 0.0
                            for j in range(NS):
                                a += RH[r, j] * K[j, k]
                            Q[r, k] = a
                    dense = True
                x = (tp - t) / h
                for k in range(N):
                    ys[b, p, k] = (1.0 - x) * y[k] + x * (
                        yn[k] + (1.0 - x) * (Q[0, k] + x * (Q[1, k] + x * Q[2, k])))
            p += 1
        t = t_new
        for k in range(N):
            y[k] = yn[k]
        if out_of_bounds(y, n, d, bound):
            status[b] = DIVERGED
            div_at[b] = t
            break
        if p >= nout:
            break
        family_rhs(ADAM_FORM, grad, hess, hess, t, y, f0, mrow, lrow, n, d, g)
        nf += 1
        need_jac = True
        # the step ratio: the standard one and Gustafsson's predictive one, the smaller step
        if err == 0.0:
            factor = FAC_MAX
        else:
            factor = min(FAC_MAX, max(FAC_MIN, SAFETY * err ** (-inv_q)))
            if h_acc > 0.0:
                gus = (h / h_acc) * (err_acc / (err * err)) ** inv_q * SAFETY
                factor = min(factor, max(FAC_MIN, min(FAC_MAX, gus)))
        h_acc = h
        err_acc = max(1e-2, err)
        if rejected_last:
            factor = min(1.0, factor)
        h *= factor
        rejected_last = False
    t_fin[b] = t
    nfev[b] = nf
    acc[b] = na
    rej[b] = nr
