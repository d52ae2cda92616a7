"""The Adam direction, written once for the torch and the compiled engine (:mod:`core.pointwise`).

With q = s/alpha + 1 (SPEC §3.1):

    eta(s)  = sqrt(1 - b2^q) / (1 - b1^q),     epsq(s) = eps * sqrt(1 - b2^q),
    A       = eta m / (sqrt(max(v, 0)) + epsq).

``1 - b^q`` is evaluated as ``-expm1(q log b)`` (no cancellation for b near 1; b = 0 gives exactly 1,
so eta = 1 and epsq = eps: the plain ``m / (sqrt(v) + eps)`` of RMSProp/AdaGrad).
"""
from __future__ import annotations

from core.pointwise import TORCH


def make_adam_math(xp):
    """(bias_factors, bias_factors_log, direction) over the math namespace ``xp``."""

    def bias_factors_log(q, log_beta1, log_beta2, eps):
        """(eta, epsq) at q = s/alpha + 1 from log b1, log b2 (constant per lane: taken once)."""
        c2 = -xp.expm1(q * log_beta2)
        c1 = -xp.expm1(q * log_beta1)
        sq = xp.sqrt(c2)
        return sq / c1, eps * sq

    def bias_factors(q, beta1, beta2, eps):
        """(eta, epsq) at q = s/alpha + 1."""
        return bias_factors_log(q, xp.log(beta1), xp.log(beta2), eps)

    def direction(eta, epsq, m, v):
        """A = eta m / (sqrt(max(v, 0)) + epsq)."""
        return eta * m / (xp.sqrt(xp.pos(v)) + epsq)

    return bias_factors, bias_factors_log, direction


#: the torch versions (elementwise on broadcast tensors)
bias_factors, bias_factors_log, direction = make_adam_math(TORCH)
