"""Compiled right-hand sides, one per flow family: the Adam-family form, the Newton form and the
modified-equation velocities of :mod:`flows.compiled_form`.

``family_rhs(family, grad, hess, third, s, y, out, mrow, lrow, n, d, g)`` writes F(s, y) of one lane
into ``out``: y, out flattened (n d,) states (component c of coordinate i at i d + c), ``mrow`` the
lane's model row (:func:`pack_adam_form` of a :class:`flows.compiled_form.AdamForm`, or
:meth:`flows.compiled_form.NewtonForm.rows`, :meth:`flows.compiled_form.ModifiedForm.rows`),
``lrow`` its landscape parameters, ``g`` an (n,) scratch array. ``grad``, ``hess`` and ``third``
are the landscape's compiled pointwise phi', phi'' and phi'''
(:func:`landscapes.compiled.compiled_gradient`, :func:`landscapes.compiled.compiled_curvature`,
:func:`landscapes.compiled.compiled_third`), three first-class functions of one type, so that one
compiled (and disk-cached) kernel serves every landscape and every family; a family that reads no
curvature (or no phi''') gets :func:`landscapes.compiled.no_curvature` there and never calls it.
The Adam direction (:mod:`flows.direction`) and the modified-equation velocities
(:mod:`flows.modified_math`) are the shared code of the torch flows, compiled.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from core import numba_math
from core.numba_pointers import data_pointer
from flows.compiled_form import (
    ADAM_MODIFIED,
    ADAM_SIGN,
    GD_PRINCIPAL,
    GD_SERIES,
    HEAVYBALL_REDUCED,
    AdamForm,
)
from flows.direction import make_adam_math
from flows.modified_math import make_modified_math

#: family codes (the ``family`` argument)
ADAM_FORM = 0
NEWTON_FORM = 1
MODIFIED_FORM = 2

_, bias_factors_log, direction, bias_rates_log, direction_partials, bias_from_expm1 = \
    make_adam_math(numba_math, njit(cache=True, inline="always"))

(gd_velocity, principal_factor, heavyball_reduced_velocity, sign_velocity, adam_leading,
 adam_correction) = (njit(cache=True, inline="always")(f) for f in make_modified_math(numba_math))

#: head of a packed Adam-form row (:func:`pack_adam_form`); the sparse blocks follow
HEAD = 9


def pack_adam_form(form: AdamForm) -> np.ndarray:
    """:class:`flows.compiled_form.AdamForm` (B lanes, d components) -> (B, P) packed float64 rows.

    Layout: kA, alpha, log b1, log b2, eps, wg, r, bias, (unused); then the entries of L that are
    nonzero in any lane as ``nL, (q, k, value) * nL`` and those of cm, cv, bg, bgg as
    ``n, (index, value) * n`` each. The kernel then touches only those (the block structure of L:
    8 of 36 entries for adam-flow2). The rows are written by one compiled pass over the lanes
    (:func:`_fill_packed`; at 1e6 lanes numpy's column stack took 1.4 s)."""
    f = lambda x: np.ascontiguousarray(x.detach().to("cpu", torch.float64).numpy())  # noqa: E731
    L = f(form.L)
    B, d, _ = L.shape
    vecs = [f(x) for x in (form.cm, form.cv, form.bg, form.bgg)]
    b1, b2 = f(form.beta1).reshape(B), f(form.beta2).reshape(B)
    if form.bias:
        with np.errstate(divide="ignore"):
            lb1, lb2 = np.log(b1), np.log(b2)
    else:
        lb1 = lb2 = np.zeros(B)
    head = np.stack([f(form.kA).reshape(B), f(form.alpha).reshape(B), lb1, lb2,
                     f(form.eps).reshape(B)])
    nzL = np.argwhere(_nonzero_columns(L.reshape(B, d * d)).reshape(d, d)).astype(np.int64)
    nzv = [np.flatnonzero(_nonzero_columns(v)).astype(np.int64) for v in vecs]
    P = HEAD + 1 + 3 * len(nzL) + sum(1 + 2 * len(i) for i in nzv)
    out = np.empty((B, P))
    consts = np.array([float(form.wg), float(form.row), 1.0 if form.bias else 0.0])
    _fill_packed(head, consts, L, nzL, *vecs, *nzv, out)
    return out


@njit(cache=True)
def _nonzero_columns(x):
    """(C,) bool: the columns of ``x`` (B, C) that are nonzero in some row, in one pass over the
    rows (numpy's (x != 0).any(axis=0) made a (B, C) temporary: 50 ms for L at 1e6 lanes)."""
    C = x.shape[1]
    found = np.zeros(C, dtype=np.bool_)
    for b in range(x.shape[0]):
        for c in range(C):
            found[c] |= x[b, c] != 0.0
    return found


@njit(cache=True, parallel=True)
def _fill_packed(head, consts, L, nzL, cm, cv, bg, bgg, icm, icv, ibg, ibgg, out):
    """Write the packed rows of :func:`pack_adam_form` into ``out`` (B, P): ``head`` (5, B) kA,
    alpha, log b1, log b2, eps; ``consts`` wg, r, bias; ``nzL`` (nL, 2) the (q, k) of L's entries;
    ``icm`` ... the indices of the vectors' entries."""
    for b in prange(out.shape[0]):
        for j in range(5):
            out[b, j] = head[j, b]
        out[b, 5] = consts[0]
        out[b, 6] = consts[1]
        out[b, 7] = consts[2]
        out[b, 8] = 0.0
        out[b, HEAD] = nzL.shape[0]
        p = HEAD + 1
        for j in range(nzL.shape[0]):
            out[b, p] = nzL[j, 0]
            out[b, p + 1] = nzL[j, 1]
            out[b, p + 2] = L[b, nzL[j, 0], nzL[j, 1]]
            p += 3
        for vec, idx in ((cm, icm), (cv, icv), (bg, ibg), (bgg, ibgg)):
            out[b, p] = idx.shape[0]
            p += 1
            for j in range(idx.shape[0]):
                out[b, p] = idx[j]
                out[b, p + 1] = vec[b, idx[j]]
                p += 2


@njit(cache=True, inline="always")
def row_layout(mrow):
    """Offsets of a packed row's sparse blocks (:func:`pack_adam_form`): nL, then (position, count)
    of cm, cv, bg and bgg."""
    nL = int(mrow[HEAD])
    pcm = HEAD + 1 + 3 * nL
    ncm = int(mrow[pcm])
    pcv = pcm + 1 + 2 * ncm
    ncv = int(mrow[pcv])
    pbg = pcv + 1 + 2 * ncv
    nbg = int(mrow[pbg])
    pbgg = pbg + 1 + 2 * nbg
    nbgg = int(mrow[pbgg])
    return nL, pcm, ncm, pcv, ncv, pbg, nbg, pbgg, nbgg


@njit(cache=True, inline="always")
def _memories(mrow, y, base, pcm, ncm, pcv, ncv, wg, gi):
    """The direction's arguments of the coordinate at ``base``: m = c_m . z + wg g, v = c_v . z."""
    m = 0.0
    for j in range(ncm):
        m += mrow[pcm + 2 + 2 * j] * y[base + int(mrow[pcm + 1 + 2 * j])]
    v = 0.0
    for j in range(ncv):
        v += mrow[pcv + 2 + 2 * j] * y[base + int(mrow[pcv + 1 + 2 * j])]
    if wg != 0.0:
        m += wg * gi
    return m, v


@njit(cache=True, inline="always")
def adam_form(grad, s, y, out, mrow, lrow, n, d, g):
    """z' = L z + e_r kA A(s) + bg g + bgg g^2 per coordinate (:mod:`flows.compiled_form`), on a
    packed row (:func:`pack_adam_form`)."""
    kA = mrow[0]
    wg = mrow[5]
    r = int(mrow[6])
    if mrow[7] != 0.0:
        eta, epsq = bias_factors_log(s / mrow[1] + 1.0, mrow[2], mrow[3], mrow[4])
    else:
        eta, epsq = 1.0, mrow[4]
    lp = data_pointer(lrow, 0)
    nL, pcm, ncm, pcv, ncv, pbg, nbg, pbgg, nbgg = row_layout(mrow)
    for i in range(n):
        base = i * d
        gi = grad(y[base], lp)
        m, v = _memories(mrow, y, base, pcm, ncm, pcv, ncv, wg, gi)
        A = direction(eta, epsq, m, v)
        for q in range(d):
            out[base + q] = 0.0
        for j in range(nL):
            p = HEAD + 1 + 3 * j
            out[base + int(mrow[p])] += mrow[p + 2] * y[base + int(mrow[p + 1])]
        for j in range(nbg):
            out[base + int(mrow[pbg + 1 + 2 * j])] += mrow[pbg + 2 + 2 * j] * gi
        g2 = gi * gi
        for j in range(nbgg):
            out[base + int(mrow[pbgg + 1 + 2 * j])] += mrow[pbgg + 2 + 2 * j] * g2
        out[base + r] += kA * A


@njit(cache=True, inline="always")
def adam_form_jacobian(grad, hess, s, y, J, Jt, mrow, lrow, n, d):
    """The Jacobian of :func:`adam_form` per coordinate (the form decouples the coordinates of a
    separable landscape): J (n d, d), row i d + q holding dF_q/dz_k of coordinate i's block, and
    Jt (n d,) = dF/ds,

        J  = L + e_r kA (dA/dm (c_m + wg h e_0) + dA/dv c_v)^T + (bg + 2 bgg g) h e_0^T,
        Jt = e_r kA dA/ds,        g = phi'(theta_i), h = phi''(theta_i),

    with the partials of the shared direction code (:func:`flows.direction.make_adam_math`)."""
    kA = mrow[0]
    alpha = mrow[1]
    wg = mrow[5]
    r = int(mrow[6])
    if mrow[7] != 0.0:
        eta, epsq, deta, depsq = bias_rates_log(s / alpha + 1.0, mrow[2], mrow[3], mrow[4], alpha)
    else:
        eta, epsq, deta, depsq = 1.0, mrow[4], 0.0, 0.0
    lp = data_pointer(lrow, 0)
    nL, pcm, ncm, pcv, ncv, pbg, nbg, pbgg, nbgg = row_layout(mrow)
    for i in range(n):
        base = i * d
        x = y[base]
        gi = grad(x, lp)
        hi = hess(x, lp)
        m, v = _memories(mrow, y, base, pcm, ncm, pcv, ncv, wg, gi)
        dA_dm, dA_dv, dA_ds = direction_partials(eta, epsq, deta, depsq, m, v)
        for q in range(d):
            Jt[base + q] = 0.0
            for k in range(d):
                J[base + q, k] = 0.0
        for j in range(nL):
            p = HEAD + 1 + 3 * j
            J[base + int(mrow[p]), int(mrow[p + 1])] += mrow[p + 2]
        for j in range(ncm):
            J[base + r, int(mrow[pcm + 1 + 2 * j])] += kA * dA_dm * mrow[pcm + 2 + 2 * j]
        for j in range(ncv):
            J[base + r, int(mrow[pcv + 1 + 2 * j])] += kA * dA_dv * mrow[pcv + 2 + 2 * j]
        if wg != 0.0:
            J[base + r, 0] += kA * dA_dm * wg * hi
        for j in range(nbg):
            J[base + int(mrow[pbg + 1 + 2 * j]), 0] += mrow[pbg + 2 + 2 * j] * hi
        for j in range(nbgg):
            J[base + int(mrow[pbgg + 1 + 2 * j]), 0] += mrow[pbgg + 2 + 2 * j] * 2.0 * gi * hi
        Jt[base + r] = kA * dA_ds


@njit(cache=True, inline="always")
def _invalidate(out, n, d):
    """The whole lane NaN: its velocity is not defined somewhere (the integrator rejects the trial
    state and ends the lane as DIVERGED)."""
    for k in range(n * d):
        out[k] = math.nan


@njit(cache=True, inline="always")
def newton_form(grad, hess, y, out, mrow, lrow, n, d):
    """theta_i' = -r phi'(theta_i)/phi''(theta_i) (:class:`flows.compiled_form.NewtonForm`, row: r);
    other components (none for the Newton flows) 0. Outside the domain (some phi'' <= 0, or phi',
    phi'' not finite) the whole lane is NaN, as the torch flows' guard: the integrator rejects such
    trial states and ends the lane as DIVERGED (:mod:`flows.fast.kernel`)."""
    r = mrow[0]
    lp = data_pointer(lrow, 0)
    ok = True
    for i in range(n):
        base = i * d
        x = y[base]
        gi = grad(x, lp)
        hi = hess(x, lp)
        if hi > 0.0 and hi < math.inf and abs(gi) < math.inf:
            out[base] = -r * gi / hi
        else:                   # no division there: numba raises on a float division by zero
            ok = False
        for q in range(1, d):
            out[base + q] = 0.0
    if not ok:
        _invalidate(out, n, d)


@njit(cache=True, inline="always")
def modified_form(grad, hess, third, y, out, mrow, lrow, n, d):
    """theta_i' = V(phi', phi'', phi''') per coordinate, V the velocity ``kind`` of
    :class:`flows.compiled_form.ModifiedForm` (row: kind, order, alpha, momentum, eps, beta1, beta2)
    from :mod:`flows.modified_math` with the separable actions Hg = h g, HHg = h^2 g,
    T[g, g] = t3 g^2, H F0 = h F0; other components (none for these flows) 0. phi'' and phi''' are
    called only where the formula reads them (they may be the NaN stand-in otherwise).

    Where the velocity is not defined the whole lane is NaN, as the torch flow's inf/NaN there: the
    integrator rejects such trial states and ends the lane as DIVERGED (:mod:`flows.fast.kernel`).
    That is the principal flow where alpha h >= 1 or is NaN (no real logarithm of the GD map),
    and a denominator that is 0 (the sign and Adam flows at g = 0 with eps = 0): no division there,
    numba raises on a float division by zero."""
    kind = int(mrow[0])
    order = int(mrow[1])
    alpha = mrow[2]
    mu = mrow[3]
    eps = mrow[4]
    lp = data_pointer(lrow, 0)
    ok = True
    for i in range(n):
        base = i * d
        x = y[base]
        gi = grad(x, lp)
        v = 0.0
        if kind == GD_SERIES:
            hi = hess(x, lp) if order >= 2 else 0.0
            ti = third(x, lp) if order >= 3 else 0.0
            hg = hi * gi
            v = gd_velocity(order, alpha, gi, hg, hi * hg, ti * gi * gi)   # HHg = H (Hg)
        elif kind == GD_PRINCIPAL:
            z = alpha * hess(x, lp)
            if z < 1.0:                          # False for NaN
                v = -principal_factor(z) * gi
            else:
                ok = False
        elif kind == HEAVYBALL_REDUCED:
            v = heavyball_reduced_velocity(alpha, mu, gi, hess(x, lp) * gi)
        elif kind == ADAM_SIGN:
            if gi * gi + eps > 0.0:
                v = sign_velocity(eps, gi)
            else:
                ok = False
        elif kind == ADAM_MODIFIED:
            if abs(gi) + eps > 0.0:
                F0 = adam_leading(eps, gi)
                c = adam_correction(mrow[5], mrow[6], eps, gi)
                v = F0 + alpha * c * (hess(x, lp) * F0)
            else:
                ok = False
        out[base] = v
        for q in range(1, d):
            out[base + q] = 0.0
    if not ok:
        _invalidate(out, n, d)


@njit(cache=True, inline="always")
def family_rhs(family, grad, hess, third, s, y, out, mrow, lrow, n, d, g):
    """Dispatch on the flow family code."""
    if family == ADAM_FORM:
        adam_form(grad, s, y, out, mrow, lrow, n, d, g)
    elif family == NEWTON_FORM:
        newton_form(grad, hess, y, out, mrow, lrow, n, d)
    elif family == MODIFIED_FORM:
        modified_form(grad, hess, third, y, out, mrow, lrow, n, d)


def stiffness(family: int, M: np.ndarray) -> np.ndarray:
    """(B,) a per-lane rate scale of the right-hand side (for the kernel's lane order): 1/alpha
    for the Adam form (its memory rates), r for the Newton form (the rate of the flow near a
    minimum, theta' ~ -r (theta - theta*)), 1 for the modified-equation velocities (their rates
    are the landscape's curvature, the same for every lane of a study up to O(alpha) terms)."""
    if family == NEWTON_FORM:
        return M[:, 0]
    if family == MODIFIED_FORM:
        return np.ones(M.shape[0])
    return 1.0 / M[:, 1]


@njit(cache=True, error_model="numpy")
def jacobian_lanes(grad, hess, s, Y, M, LP, n, d, J, Jt):
    """The Adam form's per-coordinate Jacobian blocks J (B, n d, d) and dF/ds Jt (B, n d) for
    every lane (:func:`adam_form_jacobian`), for checks."""
    for b in range(Y.shape[0]):
        adam_form_jacobian(grad, hess, s[b], Y[b], J[b], Jt[b], M[b], LP[b], n, d)


@njit(cache=True, error_model="numpy")
def evaluate_lanes(family, grad, hess, third, s, Y, M, LP, n, d, out):
    """F(s_b, Y_b) for every lane b into out (B, n d): the compiled right-hand side, for checks."""
    g = np.empty(n)
    for b in range(Y.shape[0]):
        family_rhs(family, grad, hess, third, s[b], Y[b], out[b], M[b], LP[b], n, d, g)
