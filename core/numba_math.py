"""The compiled math namespace of :mod:`core.pointwise`: numba scalar functions, inlined.

Same names and meaning as :class:`core.pointwise.TORCH`; numba follows C semantics (``log(0)`` is
-inf, no exception), as torch does.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


@njit(cache=True, inline="always")
def sqrt(x):
    return math.sqrt(x)


@njit(cache=True, inline="always")
def exp(x):
    return math.exp(x)


@njit(cache=True, inline="always")
def log(x):
    return math.log(x)


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (an LLVM bitcast: vectorises)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


#: expm1's range reduction x = k ln2 + r: ln2 split in a high part with trailing zero bits (k LN2_HI
#: is exact for |k| < 2^11) and the rest (fdlibm's constants)
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00


@njit(cache=True, inline="always")
def expm1(x):
    """e^x - 1 without cancellation near 0, branch-free so that a loop over lanes vectorises (libm's
    expm1 is a call, which stops LLVM's loop vectoriser; the lane blocks of :mod:`flows.fast.block`
    would spend a large part of a right-hand side in it).

    x = k ln2 + r with k = trunc(x / ln2), so r has the sign of x and |r| < ln2 (Cody-Waite, ln2 in
    two parts); expm1(r) = r + r^2 P(r), P(r) = sum_j r^j/(j+2)! for j <= 15 (Taylor to degree 17:
    truncation below 2^-60 relative for |r| < ln2); and e^x - 1 = (2^k - 1) + 2^k expm1(r), two
    terms of one sign (no cancellation; for k = 0 just expm1(r)), exact up to one rounding each.
    2^k is built from its bits in two normal factors 2^(k//2) 2^(k - k//2), and taken as the last
    factor where it overflows (k = 1024). x is clamped to [-40, 710]: e^-40 - 1 rounds to -1 (so
    -inf gives -1), e^710 overflows to inf; NaN stays NaN. Measured against libm
    (tests/test_numba_math.py): within 1 ulp on [-40, 709.78], exact for |x| < 2^-54."""
    if x < -40.0:
        x = -40.0
    if x > 710.0:
        x = 710.0
    kf = math.trunc(x * INV_LN2)
    if not kf == kf:               # NaN: any k; the polynomial carries the NaN
        kf = 0.0
    r = (x - kf * LN2_HI) - kf * LN2_LO
    p = 1.0 / 355687428096000.0
    p = p * r + 1.0 / 20922789888000.0
    p = p * r + 1.0 / 1307674368000.0
    p = p * r + 1.0 / 87178291200.0
    p = p * r + 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    em = p * r * r + r
    k = np.int64(kf)
    half = k >> 1
    s1 = _float_from_bits((half + 1023) << 52)
    s2 = _float_from_bits((k - half + 1023) << 52)
    s = s1 * s2
    small = (s - 1.0) + s * em
    big = s1 * (s2 + s2 * em)          # 2^k overflows at k = 1024, e^x may not (r < 0 by rounding)
    return big if k > 1000 else small


@njit(cache=True, inline="always")
def log1p(x):
    return math.log1p(x)


@njit(cache=True, inline="always")
def abs(x):                                # noqa: A001 - the namespace's name for |x|
    return math.fabs(x)


@njit(cache=True, inline="always")
def where(c, a, b):
    return a if c else b


@njit(cache=True, inline="always")
def pos(x):
    return 0.0 if x < 0.0 else x          # NaN stays NaN, as torch.clamp
