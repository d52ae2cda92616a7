"""The Adam direction, written once for the torch and the compiled engine (:mod:`core.pointwise`).

With q = s/alpha + 1 (SPEC §3.1):

    eta(s)  = sqrt(1 - b2^q) / (1 - b1^q),     epsq(s) = eps * sqrt(1 - b2^q),
    A       = eta m / (sqrt(max(v, 0)) + epsq).

``1 - b^q`` is evaluated as ``-expm1(q log b)`` (no cancellation for b near 1; b = 0 gives exactly 1,
so eta = 1 and epsq = eps: the plain ``m / (sqrt(v) + eps)`` of RMSProp/AdaGrad).

The partial derivatives of A (the Jacobian of the Adam-family flows: the torch flows'
``jacobian`` and the compiled Rosenbrock stepper, :mod:`flows.fast.rosenbrock`) are written here
once as well: with d(1 - b^q)/ds = -b^q log(b) / alpha (0 for b = 0),

    dA/dm = eta / S,   dA/dv = -eta m / (2 sqrt(v) S^2) (0 where v <= 0, as for the clamped sqrt),
    dA/ds = (d eta/ds) m / S - eta m (d epsq/ds) / S^2,        S = sqrt(max(v, 0)) + epsq.
"""
from __future__ import annotations

from core.pointwise import TORCH


def make_adam_math(xp, jit=None):
    """(bias_factors, bias_factors_log, direction, bias_rates_log, direction_partials,
    bias_from_expm1) over the math namespace ``xp``, each passed through ``jit`` as it is defined
    (the compiled engine's njit: a function that calls another calls its compiled version)."""
    jit = jit or (lambda f: f)

    @jit
    def bias_from_expm1(x2, x1, eps):
        """(eta, epsq) from x2 = expm1(q log b2), x1 = expm1(q log b1): the arithmetic of
        :func:`bias_factors_log` after its two expm1 (the lane blocks take those in a loop of
        their own, :func:`flows.fast.block.adam_form_block`)."""
        sq = xp.sqrt(-x2)
        return sq / -x1, eps * sq

    @jit
    def bias_factors_log(q, log_beta1, log_beta2, eps):
        """(eta, epsq) at q = s/alpha + 1 from log b1, log b2 (constant per lane: taken once)."""
        return bias_from_expm1(xp.expm1(q * log_beta2), xp.expm1(q * log_beta1), eps)

    @jit
    def bias_factors(q, beta1, beta2, eps):
        """(eta, epsq) at q = s/alpha + 1."""
        return bias_factors_log(q, xp.log(beta1), xp.log(beta2), eps)

    @jit
    def direction(eta, epsq, m, v):
        """A = eta m / (sqrt(max(v, 0)) + epsq)."""
        return eta * m / (xp.sqrt(xp.pos(v)) + epsq)

    @jit
    def bias_rates_log(q, log_beta1, log_beta2, eps, alpha):
        """(eta, epsq, d eta/ds, d epsq/ds) at q = s/alpha + 1; d(1 - b^q)/ds = -b^q log b / alpha,
        0 where b^q = 0 (b = 0: log b = -inf)."""
        c2 = -xp.expm1(q * log_beta2)
        c1 = -xp.expm1(q * log_beta1)
        p2 = xp.exp(q * log_beta2)
        p1 = xp.exp(q * log_beta1)
        dc2 = xp.where(p2 > 0.0, -p2 * log_beta2, 0.0 * p2) / alpha
        dc1 = xp.where(p1 > 0.0, -p1 * log_beta1, 0.0 * p1) / alpha
        sq = xp.sqrt(c2)
        eta = sq / c1
        deta = dc2 / (2.0 * sq * c1) - sq * dc1 / (c1 * c1)
        return eta, eps * sq, deta, eps * dc2 / (2.0 * sq)

    @jit
    def direction_partials(eta, epsq, deta, depsq, m, v):
        """(dA/dm, dA/dv, dA/ds) from the bias factors and their time derivatives."""
        pos = v > 0.0
        rv = xp.sqrt(xp.pos(v))
        S = rv + epsq
        dA_dm = eta / S
        dA_dv = xp.where(pos, -eta * m / (2.0 * xp.where(pos, rv, 1.0 + 0.0 * rv) * S * S),
                         0.0 * S)
        dA_ds = deta * m / S - eta * m * depsq / (S * S)
        return dA_dm, dA_dv, dA_ds

    return (bias_factors, bias_factors_log, direction, bias_rates_log, direction_partials,
            bias_from_expm1)


#: the torch versions (elementwise on broadcast tensors)
(bias_factors, bias_factors_log, direction, bias_rates_log, direction_partials,
 bias_from_expm1) = make_adam_math(TORCH)


def bias_rates(q, beta1, beta2, eps, alpha):
    """(eta, epsq, d eta/ds, d epsq/ds) at q = s/alpha + 1 (torch)."""
    return bias_rates_log(q, TORCH.log(beta1), TORCH.log(beta2), eps, alpha)
