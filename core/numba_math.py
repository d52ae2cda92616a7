"""The compiled math namespace of :mod:`core.pointwise`: numba scalar functions, inlined.

Same names and meaning as :class:`core.pointwise.TORCH`; numba follows C semantics (``log(0)`` is
-inf, no exception), as torch does.
"""
from __future__ import annotations

import math

from numba import njit


@njit(cache=True, inline="always")
def sqrt(x):
    return math.sqrt(x)


@njit(cache=True, inline="always")
def exp(x):
    return math.exp(x)


@njit(cache=True, inline="always")
def log(x):
    return math.log(x)


@njit(cache=True, inline="always")
def expm1(x):
    return math.expm1(x)


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
