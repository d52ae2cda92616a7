r"""Lane blocks: the DOP853 lanes of an Adam-family flow advanced a block of slots at a time.

    run_queue(width, grad, grad_lanes, hess, lanes, y0, M, LP, n, d, t_out, n_out, ew, mode, rtol,
              atol, max_steps, h_max, bound, ys, status, div_at, t_fin, nfev, acc, rej)

runs the lanes ``lanes`` (EXPLICIT or SWITCHING lanes of :mod:`flows.fast.ensemble`, the
Adam-family form :func:`flows.fast.rhs.adam_form`) through ``width`` slots (:data:`WIDTHS`). The
slots take their stages together: each stage combination and each right-hand side is one loop over
the slots (the model's sparse structure is the same in every lane of a flow,
:func:`flows.fast.rhs.pack_adam_form`; phi' is one call of the landscape's lanes gradient per
coordinate, :func:`landscapes.compiled.compiled_lanes_gradient`), so the CPU overlaps ``width``
independent dependency chains where one lane's loop waits on each of its own, and the slot loops
run as SIMD. Everything else is per slot: each lane keeps its own time, step, error test,
accept/reject, outputs, statuses and stiffness test (its Jacobian diagonal from the step's last
right-hand side, :func:`jacobian_rho`), written with the same pieces as the one-lane loop
(:func:`flows.fast.kernel.lane`: :func:`~flows.fast.kernel.start_steps`,
:func:`~flows.fast.kernel.step_outputs`, ...). A slot whose lane ends takes the next lane of the
queue (lane retirement: a finished lane costs nothing); a lane that the stiffness test hands to
Rodas5P finishes there (:func:`flows.fast.rosenbrock.lane`) and frees its slot.

Every floating-point operation of a lane is the one-lane loop's, in the same order (the same
branch-free expm1 of :mod:`core.numba_math`, no contraction into FMAs, IEEE division): a lane gets
the same bits in a block as alone, whatever its neighbours, and the one-lane loop stays the
reference (tests/test_fast_block.py holds the two to each other bit for bit).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core.numba_math import expm1_array, select
from core.numba_pointers import row_pointer
from flows.fast import rosenbrock
from flows.fast.kernel import (
    A_IDX,
    A_PTR,
    A_VAL,
    B_IDX,
    B_VAL,
    E3_VAL,
    E5_VAL,
    E_IDX,
    NS,
    C,
    accepted_factor,
    error_norm,
    rejected_factor,
    start_steps,
    step_outputs,
    step_power,
    stiffness_verdict,
    undefined_start,
)
from flows.fast.lane_control import (
    DIVERGED,
    MAX_STEPS,
    STALL_LIMIT,
    SWITCHING,
    below_floor,
    count_stalls,
    floor_status,
    out_of_bounds,
    start_lane,
)
from flows.fast.rhs import (
    ADAM_FORM,
    HEAD,
    bias_from_expm1,
    direction,
    direction_partials,
    row_layout,
)

#: slots per block, the widest first (:func:`flows.fast.solve._lane_queues` takes the widest that
#: the batch fills): a runtime width, so LLVM vectorises the slot loops (with run-time alias
#: checks; a constant width is unrolled first and stays scalar). Measured, adam-flow2 at 1e5 lanes
#: (dop853, 2 threads): 3.05 M lane-steps/s at a constant 8, 2.8 M at a runtime 8, 4.5 M at 32,
#: 4.7 M at 64; after the memory-order queues, at 1e6 lanes (auto, T = 0.1): kernel 3.90-3.99 s
#: at 32, 3.69-3.86 s at 64; the 4096-lane grid 0.82 s either way
WIDTHS = (64, 32, 8)


@njit(cache=True, inline="always")
def adam_form_block(layout, ts, Y, out, Mb, n, d, G, E1, E2, Mm, Vv, X1, X2, XK, XR, XP, bias):
    """:func:`flows.fast.rhs.adam_form` of every slot: Y, out (n d, W), slot l's time ts[l] and
    packed row Mb[:, l], phi' in G (n, W) (the landscape's lanes gradient, called by
    :func:`run_queue` on raw row pointers); ``layout`` a packed row of the flow (its sparse
    structure); E1, E2, Mm, Vv, X1, X2, XK, XR, XP (W,) scratch. ``bias`` False: E1, E2 already
    hold the bias factors at these times (the step's last stage and its end share a time).

    No call of a compiled landscape function inside: across such an opaque call numba keeps the
    reference counts of an inlined function's array arguments (two atomic operations per array
    and call, 14% of a run when the gradient call was in here; perf, adam-flow2 at 1e5 lanes)."""
    W = ts.shape[0]
    nL, pcm, ncm, pcv, ncv, pbg, nbg, pbgg, nbgg = row_layout(layout)
    r = int(layout[6])
    if bias:
        # flows.direction's bias_factors_log with its two expm1 taken over all W slots at once
        # (core.numba_math.expm1_array, the same bits): slot by slot, the two Horner chains
        # of each slot (70 dependent operations) were 39% of a run's samples under perf
        # (adam-flow2, 1e5 lanes, one thread), the CPU waiting on them in turn
        # (every loop indexes its arrays at l only: numba's wraparound of X[W + l] had kept the
        # loop of the products scalar)
        for l in range(W):
            XK[l] = ts[l] / Mb[1, l] + 1.0
        for l in range(W):
            X2[l] = XK[l] * Mb[3, l]
            X1[l] = XK[l] * Mb[2, l]
        expm1_array(X2, XK, XR, XP)
        expm1_array(X1, XK, XR, XP)
        for l in range(W):      # every slot evaluates, then picks (no bias: 1, eps); SIMD
            e1, e2 = bias_from_expm1(X2[l], X1[l], Mb[4, l])
            on = Mb[7, l] != 0.0
            E1[l] = select(on, e1, 1.0)
            E2[l] = select(on, e2, Mb[4, l])
    for i in range(n):
        base = i * d
        for l in range(W):
            Mm[l] = 0.0
            Vv[l] = 0.0
        for j in range(ncm):
            k = base + int(layout[pcm + 1 + 2 * j])
            for l in range(W):
                Mm[l] += Mb[pcm + 2 + 2 * j, l] * Y[k, l]
        for j in range(ncv):
            k = base + int(layout[pcv + 1 + 2 * j])
            for l in range(W):
                Vv[l] += Mb[pcv + 2 + 2 * j, l] * Y[k, l]
        for l in range(W):
            Mm[l] = select(Mb[5, l] != 0.0, Mm[l] + Mb[5, l] * G[i, l], Mm[l])
        for q in range(d):
            for l in range(W):
                out[base + q, l] = 0.0
        for j in range(nL):
            pp = HEAD + 1 + 3 * j
            q = base + int(layout[pp])
            k = base + int(layout[pp + 1])
            for l in range(W):
                out[q, l] += Mb[pp + 2, l] * Y[k, l]
        for j in range(nbg):
            q = base + int(layout[pbg + 1 + 2 * j])
            for l in range(W):
                out[q, l] += Mb[pbg + 2 + 2 * j, l] * G[i, l]
        for j in range(nbgg):
            q = base + int(layout[pbgg + 1 + 2 * j])
            for l in range(W):
                out[q, l] += Mb[pbgg + 2 + 2 * j, l] * (G[i, l] * G[i, l])
        for l in range(W):
            out[base + r, l] += Mb[0, l] * direction(E1[l], E2[l], Mm[l], Vv[l])


@njit(cache=True, inline="always")
def combine_slots(VAL, IDX, c0, c1, K, Y, h, acc, out):
    """:func:`flows.fast.kernel.combine` for every slot: out[k, l] = Y[k, l] + h[l] sum_j VAL[j]
    K[IDX[j], k, l], the same additions in the same order; ``acc`` (W,) scratch. Four terms are
    added per pass over the slots, left to right as in the one-lane sum (a quarter of the
    accumulator's loads and stores)."""
    W = h.shape[0]
    for k in range(Y.shape[0]):
        for l in range(W):
            acc[l] = 0.0
        jj = c0
        while jj + 4 <= c1:
            v0, v1, v2, v3 = VAL[jj], VAL[jj + 1], VAL[jj + 2], VAL[jj + 3]
            i0, i1, i2, i3 = IDX[jj], IDX[jj + 1], IDX[jj + 2], IDX[jj + 3]
            for l in range(W):
                acc[l] = ((((acc[l] + v0 * K[i0, k, l]) + v1 * K[i1, k, l]) + v2 * K[i2, k, l])
                          + v3 * K[i3, k, l])
            jj += 4
        while jj < c1:
            av = VAL[jj]
            kk = IDX[jj]
            for l in range(W):
                acc[l] += av * K[kk, k, l]
            jj += 1
        for l in range(W):
            out[k, l] = Y[k, l] + h[l] * acc[l]


@njit(cache=True, inline="always")
def error_sums_slots(K, Y, Yn, Wt, atol, rtol, A1, A3, e5, e3):
    """The error sums of :func:`flows.fast.kernel.lane` for every slot: e5[l], e3[l] = the sums of
    ((E5 . K)_k / sc_k)^2, ((E3 . K)_k / sc_k)^2 over the slot's controlled components (``Wt``),
    each dot product added left to right as in the one-lane loop, four terms per pass; A1, A3
    (W,) scratch."""
    W = e5.shape[0]
    nE = E_IDX.shape[0]
    for l in range(W):
        e5[l] = 0.0
        e3[l] = 0.0
    for k in range(Y.shape[0]):
        for l in range(W):
            A1[l] = 0.0
            A3[l] = 0.0
        jj = 0
        while jj + 4 <= nE:
            i0, i1, i2, i3 = E_IDX[jj], E_IDX[jj + 1], E_IDX[jj + 2], E_IDX[jj + 3]
            p0, p1, p2, p3 = E5_VAL[jj], E5_VAL[jj + 1], E5_VAL[jj + 2], E5_VAL[jj + 3]
            q0, q1, q2, q3 = E3_VAL[jj], E3_VAL[jj + 1], E3_VAL[jj + 2], E3_VAL[jj + 3]
            for l in range(W):
                k0, k1, k2, k3 = K[i0, k, l], K[i1, k, l], K[i2, k, l], K[i3, k, l]
                A1[l] = (((A1[l] + p0 * k0) + p1 * k1) + p2 * k2) + p3 * k3
                A3[l] = (((A3[l] + q0 * k0) + q1 * k1) + q2 * k2) + q3 * k3
            jj += 4
        while jj < nE:
            kk = E_IDX[jj]
            p0 = E5_VAL[jj]
            q0 = E3_VAL[jj]
            for l in range(W):
                A1[l] += p0 * K[kk, k, l]
                A3[l] += q0 * K[kk, k, l]
            jj += 1
        for l in range(W):                  # a slot's uncontrolled components add nothing
            sc = atol + rtol * max(abs(Y[k, l]), abs(Yn[k, l]))
            e5[l] = select(Wt[k, l], e5[l] + (A1[l] / sc) ** 2, e5[l])
            e3[l] = select(Wt[k, l], e3[l] + (A3[l] / sc) ** 2, e3[l])


@njit(cache=True, inline="always")
def diagonal_entries(layout, d):
    """(D (d, 5), needs_h, needs_partials): where the diagonal J_qq of
    :func:`flows.fast.rhs.adam_form_jacobian` takes its terms from in a packed row: the positions
    (-1: none) of L_qq, of the c_m and c_v entries of column q (row r = q only), of the bg and bgg
    entries of row q (column 0 only); whether it reads phi'' and the direction's partials. Each
    term is at most one entry (the packed blocks hold each index once)."""
    nL, pcm, ncm, pcv, ncv, pbg, nbg, pbgg, nbgg = row_layout(layout)
    r = int(layout[6])
    D = np.full((d, 5), -1, dtype=np.int64)
    for j in range(nL):
        pp = HEAD + 1 + 3 * j
        if int(layout[pp]) == int(layout[pp + 1]):
            D[int(layout[pp]), 0] = pp + 2
    for j in range(ncm):
        if int(layout[pcm + 1 + 2 * j]) == r:
            D[r, 1] = pcm + 2 + 2 * j
    for j in range(ncv):
        if int(layout[pcv + 1 + 2 * j]) == r:
            D[r, 2] = pcv + 2 + 2 * j
    for j in range(nbg):
        if int(layout[pbg + 1 + 2 * j]) == 0:
            D[0, 3] = pbg + 2 + 2 * j
    for j in range(nbgg):
        if int(layout[pbgg + 1 + 2 * j]) == 0:
            D[0, 4] = pbgg + 2 + 2 * j
    needs_h = D[0, 3] >= 0 or D[0, 4] >= 0 or r == 0
    needs_partials = D[r, 1] >= 0 or D[r, 2] >= 0 or r == 0
    return D, needs_h, needs_partials


@njit(cache=True, inline="always")
def jacobian_rho(hess, layout, D, needs_h, needs_partials, Yn, G, E1, E2, Mb, LPb, l, n, d):
    """max_k |J_kk| of slot l at its new state Yn[:, l] (the stiffness test of
    :func:`flows.fast.kernel.stiffness_count`): the diagonal of
    :func:`flows.fast.rhs.adam_form_jacobian` (positions ``D``, :func:`diagonal_entries`), each
    entry with the same additions in the same order, from what the step's last right-hand side
    left: phi' in G, eta and epsq in E1, E2 (the diagonal needs no time derivative)."""
    nL, pcm, ncm, pcv, ncv, pbg, nbg, pbgg, nbgg = row_layout(layout)
    r = int(layout[6])
    kA = Mb[0, l]
    wg = Mb[5, l]
    rho = 0.0
    for i in range(n):
        base = i * d
        gi = G[i, l]
        hi = hess(Yn[base, l], row_pointer(LPb, l)) if needs_h else 0.0
        dA_dm = 0.0
        dA_dv = 0.0
        if needs_partials:
            m = 0.0
            for j in range(ncm):
                m += Mb[pcm + 2 + 2 * j, l] * Yn[base + int(layout[pcm + 1 + 2 * j]), l]
            v = 0.0
            for j in range(ncv):
                v += Mb[pcv + 2 + 2 * j, l] * Yn[base + int(layout[pcv + 1 + 2 * j]), l]
            if wg != 0.0:
                m += wg * gi
            dA_dm, dA_dv, _ = direction_partials(E1[l], E2[l], 0.0, 0.0, m, v)
        for q in range(d):
            a = 0.0
            if D[q, 0] >= 0:
                a += Mb[D[q, 0], l]
            if D[q, 1] >= 0:
                a += kA * dA_dm * Mb[D[q, 1], l]
            if D[q, 2] >= 0:
                a += kA * dA_dv * Mb[D[q, 2], l]
            if q == 0:
                if r == 0 and wg != 0.0:
                    a += kA * dA_dm * wg * hi
                if D[0, 3] >= 0:
                    a += Mb[D[0, 3], l] * hi
                if D[0, 4] >= 0:
                    a += Mb[D[0, 4], l] * 2.0 * gi * hi
            rho = max(rho, abs(a))
    return rho


@njit(cache=True, error_model="numpy")
def run_queue(width, grad, grad_lanes, hess, lanes, y0, M, LP, n, d, t_out, n_out, ew, mode, rtol,
              atol, max_steps, h_max, bound, ys, status, div_at, t_fin, nfev, acc, rej):
    """The lanes ``lanes`` (in order) through ``width`` slots (module docstring); outputs and
    statuses as :func:`flows.fast.kernel.lane` (and :func:`flows.fast.rosenbrock.lane` for a lane
    that turns stiff)."""
    W = width
    N = y0.shape[1]
    PM = M.shape[1]
    PL = LP.shape[1]
    nq = lanes.shape[0]
    if nq == 0:
        return
    layout = M[lanes[0]].copy()
    D, needs_h, needs_partials = diagonal_entries(layout, d)
    # a diagonal of constants (the linear part only: adam-flow2's) is the same every step: its
    # max_k |J_kk| is computed once per lane, with the same operations
    constant_diagonal = not (needs_h or needs_partials)
    rho_const = np.zeros(W)
    # the block: state, stages, rows (an idle slot keeps a real row, so its arithmetic is finite)
    Y = np.zeros((N, W))
    Yn = np.zeros((N, W))
    Tmp = np.zeros((N, W))
    K = np.zeros((NS + 1, N, W))
    Mb = np.empty((PM, W))
    LPb = np.empty((W, PL))
    for l in range(W):
        Mb[:, l] = layout
        LPb[l, :] = LP[lanes[0]]
    Wt = np.zeros((N, W), dtype=np.bool_)
    G = np.zeros((n, W))
    E1 = np.zeros(W)
    E2 = np.zeros(W)
    Mm = np.zeros(W)
    Vv = np.zeros(W)
    X1 = np.zeros(W)
    X2 = np.zeros(W)
    XK = np.zeros(W)
    XR = np.zeros(W)
    XP = np.zeros(W)
    A1 = np.zeros(W)
    A3 = np.zeros(W)
    e5 = np.zeros(W)
    e3 = np.zeros(W)
    ts = np.zeros(W)
    # per slot
    lane = np.full(W, -1, dtype=np.int64)
    t = np.zeros(W)
    h = np.zeros(W)
    t_new = np.zeros(W)
    t_end = np.zeros(W)
    last = np.zeros(W, dtype=np.bool_)
    rejected_last = np.zeros(W, dtype=np.bool_)
    nonfinite = np.zeros(W, dtype=np.bool_)
    p = np.zeros(W, dtype=np.int64)
    nf = np.zeros(W, dtype=np.int64)
    na = np.zeros(W, dtype=np.int64)
    nr = np.zeros(W, dtype=np.int64)
    nc = np.zeros(W, dtype=np.int64)
    steps = np.zeros(W, dtype=np.int64)
    stalls = np.zeros(W, dtype=np.int64)
    stiff = np.zeros(W, dtype=np.int64)
    calm = np.zeros(W, dtype=np.int64)
    # one lane's contiguous copies, for the per-lane pieces
    y = np.empty(N)
    yn = np.empty(N)
    Kl = np.empty((NS + 4, N))
    F = np.empty((7, N))
    tmp = np.empty(N)
    g = np.empty(n)
    one = np.ones(N)
    # the lane's rows, copied: a view M[b] would count references on M's one meminfo, an atomic
    # operation on a cache line that every thread writes (0.3 us a lane at 1e6 lanes, 2 threads)
    mrow = np.empty(PM)
    lrow = np.empty(PL)
    nxt = 0
    while True:
        # fill the idle slots and take each lane through the checks before its next step
        n_active = 0
        for l in range(W):
            while True:
                if lane[l] < 0:
                    if nxt >= nq:
                        break
                    b = lanes[nxt]
                    nxt += 1
                    for k in range(N):
                        y[k] = y0[b, k]
                    for k in range(PM):
                        mrow[k] = M[b, k]
                    for k in range(PL):
                        lrow[k] = LP[b, k]
                    p0 = start_lane(b, y, t_out, n_out, ys, n, d, bound, status, div_at)
                    if p0 >= n_out[b]:
                        t_fin[b] = 0.0
                        continue
                    te = t_out[b, n_out[b] - 1]
                    # the Adam form reads no third derivative: hess stands in for it (its type)
                    h0, defined = start_steps(ADAM_FORM, grad, hess, hess, y, Kl, tmp, g, mrow,
                                              lrow, n, d, atol, rtol, te, h_max, one)
                    if not defined:
                        undefined_start(b, status, div_at, t_fin, nfev)
                        continue
                    nf0 = 2
                    lane[l] = b
                    p[l] = p0
                    t_end[l] = te
                    h[l] = h0
                    nf[l] = nf0
                    t[l] = 0.0
                    na[l] = 0
                    nr[l] = 0
                    steps[l] = 0
                    stalls[l] = 0
                    stiff[l] = 0
                    calm[l] = 0
                    rejected_last[l] = False
                    nonfinite[l] = False
                    c = 0
                    for k in range(N):
                        Y[k, l] = y[k]
                        K[0, k, l] = Kl[0, k]
                        Wt[k, l] = ew[b, k] > 0.0
                        c += Wt[k, l]
                    nc[l] = c
                    for k in range(PM):
                        Mb[k, l] = mrow[k]
                    if constant_diagonal and mode[b] == SWITCHING:
                        rho_const[l] = jacobian_rho(hess, layout, D, needs_h, needs_partials, Y,
                                                    G, E1, E2, Mb, LPb, l, n, d)
                    for k in range(PL):
                        LPb[l, k] = lrow[k]
                b = lane[l]
                ended = False
                if steps[l] >= max_steps:
                    status[b] = MAX_STEPS
                    ended = True
                else:
                    if h[l] > h_max:
                        h[l] = h_max
                    span = t_end[l] - t[l]
                    last[l] = h[l] >= span
                    if last[l]:
                        h[l] = span
                    if below_floor(h[l], t[l], last[l]):
                        status[b] = floor_status(nonfinite[l])
                        if nonfinite[l]:
                            div_at[b] = t[l]
                        ended = True
                if ended:
                    t_fin[b] = t[l]
                    nfev[b] = nf[l]
                    acc[b] = na[l]
                    rej[b] = nr[l]
                    lane[l] = -1
                    continue
                t_new[l] = t_end[l] if last[l] else t[l] + h[l]
                n_active += 1
                break
        if n_active == 0:
            break
        # the step, every slot at once: stages 1..11, the solution, its right-hand side
        for s in range(1, NS):
            combine_slots(A_VAL, A_IDX, A_PTR[s], A_PTR[s + 1], K, Y, h, A1, Tmp)
            for l in range(W):
                ts[l] = t[l] + C[s] * h[l]
            for i in range(n):           # pointers, not arrays: no reference count around it
                grad_lanes(row_pointer(Tmp, i * d), row_pointer(LPb, 0), PL, row_pointer(G, i),
                           W)
            adam_form_block(layout, ts, Tmp, K[s], Mb, n, d, G, E1, E2, Mm, Vv, X1, X2, XK, XR, XP,
                            True)
        combine_slots(B_VAL, B_IDX, 0, B_IDX.shape[0], K, Y, h, A1, Yn)
        for i in range(n):
            grad_lanes(row_pointer(Yn, i * d), row_pointer(LPb, 0), PL, row_pointer(G, i), W)
        # the last stage (c = 1) ran at t + h, the step's end unless it is a lane's last step: then
        # its bias factors are those of the end, the same numbers (one evaluation in 12 saved)
        shared = C[NS - 1] == 1.0
        for l in range(W):
            if lane[l] >= 0 and t_new[l] != ts[l]:
                shared = False
        adam_form_block(layout, t_new, Yn, K[NS], Mb, n, d, G, E1, E2, Mm, Vv, X1, X2, XK, XR, XP,
                        not shared)
        error_sums_slots(K, Y, Yn, Wt, atol, rtol, A1, A3, e5, e3)
        for l in range(W):               # every slot's error and power: one SIMD loop
            e5[l] = error_norm(h[l], e5[l], e3[l], nc[l])
            e3[l] = step_power(e5[l])
        # each lane's verdict (its error in e5, the power in e3)
        for l in range(W):
            b = lane[l]
            if b < 0:
                continue
            nf[l] += NS
            steps[l] += 1
            err = e5[l]
            if not (err <= 1.0):          # rejected (NaN included)
                nr[l] += 1
                factor, nonfinite[l] = rejected_factor(err, e3[l])
                h[l] *= factor
                rejected_last[l] = True
                continue
            na[l] += 1
            for k in range(N):
                y[k] = Y[k, l]
                yn[k] = Yn[k, l]
            stalls[l] = count_stalls(y, yn, nonfinite[l], stalls[l])
            ended = False
            switch = False
            if stalls[l] >= STALL_LIMIT:
                status[b] = DIVERGED
                div_at[b] = t[l]
                ended = True
            else:
                nonfinite[l] = False
                if mode[b] == SWITCHING:
                    if constant_diagonal:
                        rho = rho_const[l]
                    else:
                        rho = jacobian_rho(hess, layout, D, needs_h, needs_partials, Yn, G, E1,
                                           E2, Mb, LPb, l, n, d)
                    stiff[l], calm[l], switch = stiffness_verdict(h[l], rho, stiff[l], calm[l])
                if p[l] < n_out[b] and t_out[b, p[l]] <= t_new[l]:
                    for r in range(NS + 1):
                        for k in range(N):
                            Kl[r, k] = K[r, k, l]
                    for k in range(PM):
                        mrow[k] = Mb[k, l]
                    for k in range(PL):
                        lrow[k] = LPb[l, k]
                    p[l], extra = step_outputs(ADAM_FORM, grad, hess, hess, b, t[l], h[l],
                                               t_new[l], last[l], y, yn, Kl, F, tmp, p[l],
                                               n_out[b], t_out, ys, mrow, lrow, n, d, g)
                    nf[l] += extra
                t[l] = t_new[l]
                for k in range(N):
                    Y[k, l] = Yn[k, l]
                    K[0, k, l] = K[NS, k, l]
                if out_of_bounds(yn, n, d, bound):
                    status[b] = DIVERGED
                    div_at[b] = t[l]
                    ended = True
                elif p[l] >= n_out[b]:
                    ended = True
                else:
                    h[l] *= accepted_factor(err, e3[l], rejected_last[l])
                    rejected_last[l] = False
            switch = switch and not ended         # a lane that ends here ends, stiff or not
            if ended or switch:
                nfev[b] = nf[l]
                acc[b] = na[l]
                rej[b] = nr[l]
                lane[l] = -1
                if switch:
                    rosenbrock.lane(grad, hess, b, yn.copy(), t[l], p[l], h[l], steps[l], M, LP,
                                    n, d, t_out, n_out, ew, rtol, atol, max_steps, h_max, bound,
                                    ys, status, div_at, t_fin, nfev, acc, rej)
                else:
                    t_fin[b] = t[l]
