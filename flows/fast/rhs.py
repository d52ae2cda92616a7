"""Compiled right-hand sides, one per flow family (today: the Adam-family form of
:mod:`flows.compiled_form`).

``family_rhs(family, grad, s, y, out, mrow, lrow, n, d, g)`` writes F(s, y) of one lane into
``out``: y, out flattened (n d,) states (component c of coordinate i at i d + c), ``mrow`` the lane's
model row (:meth:`flows.compiled_form.AdamForm.rows`), ``lrow`` its landscape parameters, ``g`` an
(n,) scratch array, ``grad`` the landscape's compiled pointwise gradient
(:func:`landscapes.compiled.compiled_gradient`), passed as a first-class function so that one
compiled (and disk-cached) kernel serves every landscape. The direction is the shared code of
:mod:`flows.direction`, compiled.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from core import numba_math
from flows.direction import make_adam_math

#: family codes (the ``family`` argument)
ADAM_FORM = 0

bias_factors, direction = (njit(cache=True, inline="always")(f) for f in make_adam_math(numba_math))


@njit(cache=True)
def adam_form(grad, s, y, out, mrow, lrow, n, d, g):
    """z' = L z + e_r kA A(s) + bg g + bgg g^2 per coordinate (:mod:`flows.compiled_form`)."""
    o = d * d
    kA = mrow[o + 4 * d]
    alpha = mrow[o + 4 * d + 1]
    b1 = mrow[o + 4 * d + 2]
    b2 = mrow[o + 4 * d + 3]
    eps = mrow[o + 4 * d + 4]
    wg = mrow[o + 4 * d + 5]
    r = int(mrow[o + 4 * d + 6])
    if mrow[o + 4 * d + 7] != 0.0:
        eta, epsq = bias_factors(s / alpha + 1.0, b1, b2, eps)
    else:
        eta, epsq = 1.0, eps
    lp = lrow.ctypes
    for i in range(n):
        base = i * d
        gi = grad(y[base], lp)
        m = 0.0
        v = 0.0
        for j in range(d):
            m += mrow[o + j] * y[base + j]
            v += mrow[o + d + j] * y[base + j]
        if wg != 0.0:
            m += wg * gi
        A = direction(eta, epsq, m, v)
        for q in range(d):
            acc = 0.0
            for k in range(d):
                acc += mrow[q * d + k] * y[base + k]
            out[base + q] = acc + mrow[o + 2 * d + q] * gi + mrow[o + 3 * d + q] * (gi * gi)
        out[base + r] += kA * A


@njit(cache=True)
def family_rhs(family, grad, s, y, out, mrow, lrow, n, d, g):
    """Dispatch on the flow family code."""
    if family == ADAM_FORM:
        adam_form(grad, s, y, out, mrow, lrow, n, d, g)


@njit(cache=True)
def evaluate_lanes(family, grad, s, Y, M, LP, n, d, out):
    """F(s_b, Y_b) for every lane b into out (B, n d): the compiled right-hand side, for checks."""
    g = np.empty(n)
    for b in range(Y.shape[0]):
        family_rhs(family, grad, s[b], Y[b], out[b], M[b], LP[b], n, d, g)
