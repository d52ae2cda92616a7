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


@intrinsic
def _bits_from_float(typingctx, x):
    """The int64 of the IEEE bits of the float64 ``x`` (an LLVM bitcast: vectorises)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def select(typingctx, c, a, b):
    """``a if c else b`` for a boolean c and float64 a, b as one LLVM select: no branch, so that a
    loop over lanes that picks per lane stores unconditionally and vectorises with blends (a
    conditional store becomes a masked store, microcoded on AMD's Zen: a trivial pick loop was 3%
    of a lane-block run there)."""
    sig = types.float64(types.boolean, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])

    return sig, codegen


#: 1.5 2^52: for an integer-valued |k| < 2^51, k + ROUND_BITS holds k in its low mantissa bits
#: (the float-to-int64 conversion without cvttsd2si, which AVX2 has no packed form of)
ROUND_BITS = 6755399441055744.0


#: expm1's range reduction x = k ln2 + r: ln2 split in a high part with trailing zero bits (k LN2_HI
#: is exact for |k| < 2^11) and the rest (fdlibm's constants)
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00


#: expm1's polynomial P(r) = sum_j r^j/(j+2)!: Horner's coefficients 1/(j+2)!, j = 15 down to 0
#: (correctly rounded quotients)
EXPM1_P = np.array([1.0 / math.factorial(j + 2) for j in range(15, -1, -1)])


@njit(cache=True, inline="always")
def expm1_reduce(x):
    """(kf, r) of :func:`expm1`'s range reduction x = kf ln2 + r (x clamped, kf = 0 for NaN)."""
    if x < -40.0:
        x = -40.0
    if x > 710.0:
        x = 710.0
    kf = np.trunc(x * INV_LN2)
    if not kf == kf:               # NaN: any k; the polynomial carries the NaN
        kf = 0.0
    return kf, (x - kf * LN2_HI) - kf * LN2_LO


@njit(cache=True, inline="always")
def expm1_finish(kf, r, p):
    """e^x - 1 from :func:`expm1_reduce`'s (kf, r) and p = P(r) (:data:`EXPM1_P`)."""
    em = p * r * r + r
    k = _bits_from_float(kf + ROUND_BITS) - _bits_from_float(ROUND_BITS)     # kf, exactly
    half = k >> 1
    s1 = _float_from_bits((half + 1023) << 52)
    s2 = _float_from_bits((k - half + 1023) << 52)
    s = s1 * s2
    small = (s - 1.0) + s * em
    big = s1 * (s2 + s2 * em)          # 2^k overflows at k = 1024, e^x may not (r < 0 by rounding)
    return big if k > 1000 else small


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
    kf, r = expm1_reduce(x)
    p = EXPM1_P[0]
    for j in range(1, EXPM1_P.shape[0]):
        p = p * r + EXPM1_P[j]
    return expm1_finish(kf, r, p)


@njit(cache=True, inline="always")
def expm1_array(x, kf, r, p):
    """x[j] = :func:`expm1` (x[j]) for every entry, with the same operations (the same bits), the
    polynomial as one Horner pass across the array per coefficient: every pass is a loop of
    independent SIMD iterations, where entry by entry each expm1 is a chain of 35 dependent
    operations that the CPU cannot overlap past a few entries (the lane blocks' bias factors,
    :func:`flows.fast.block.adam_form_block`). ``kf``, ``r``, ``p``: scratch of x's length."""
    n = x.shape[0]
    for j in range(n):
        kf[j], r[j] = expm1_reduce(x[j])
        p[j] = EXPM1_P[0]
    for c in range(1, EXPM1_P.shape[0]):
        cc = EXPM1_P[c]
        for j in range(n):
            p[j] = p[j] * r[j] + cc
    for j in range(n):
        x[j] = expm1_finish(kf[j], r[j], p[j])


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
