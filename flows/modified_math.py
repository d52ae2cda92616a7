"""The velocities of the modified-equation flows (:mod:`flows.modified`), written once.

Every formula is a closure over a math namespace ``xp`` (:mod:`core.pointwise`): the torch flows
evaluate it on tensors (elementwise over lanes and coordinates) and the compiled engine compiles the
same source for one coordinate (:mod:`flows.fast.rhs`). Arguments are per coordinate: the gradient
g, the Hessian actions Hg = H g, HHg = H (H g), HF0 = H F0, the third-derivative contraction
Tgg = T[g, g] (see :meth:`landscapes.base.Landscape.third_contraction`) and the lane's constants.
On a separable landscape Hg = phi'' g, HHg = phi''^2 g and Tgg = phi''' g^2 coordinate by
coordinate, which is how the compiled engine calls them.

``xp.where(c, a, b)`` (a branch-free select) is used where a formula has a removable singularity:
both branches are finite, so reverse-mode autograd through the torch version stays finite too.
"""
from __future__ import annotations

#: below this |z| the principal factor uses its series 1 + z/2 + z^2/3 (error z^3/4 < 3e-19)
PRINCIPAL_SERIES_BELOW = 1e-6


def make_modified_math(xp):
    """(gd_velocity, principal_factor, heavyball_reduced_velocity, sign_velocity,
    adam_leading, adam_correction) over the namespace ``xp``."""

    def gd_velocity(order, alpha, g, Hg, HHg, Tgg):
        """Backward-error-analysis flow of GD truncated after alpha^(order-1):
        -g - (alpha/2) Hg - alpha^2 (HHg/3 + Tgg/12)."""
        v = -g
        if order >= 2:
            v = v - 0.5 * alpha * Hg
        if order >= 3:
            v = v - alpha * alpha * (HHg / 3.0 + Tgg / 12.0)
        return v

    def principal_factor(z):
        """phi(z) = -log(1 - z)/z = 1 + z/2 + z^2/3 + ...: the GD map's principal logarithm is
        log(I - alpha H) = -alpha H phi(alpha H). Finite for z < 1 (z >= 1: inf/NaN, the flow
        does not exist there)."""
        small = xp.abs(z) < PRINCIPAL_SERIES_BELOW
        zs = xp.where(small, 0.5, z)
        return xp.where(small, 1.0 + z * (0.5 + z / 3.0), -xp.log1p(-zs) / zs)

    def heavyball_reduced_velocity(alpha, mu, g, Hg):
        """Slow-manifold flow of heavy ball (torch form) to O(alpha):
        -g/(1-mu) - alpha (1+mu)/(2 (1-mu)^3) Hg."""
        omm = 1.0 - mu
        return -g / omm - alpha * (1.0 + mu) / (2.0 * omm * omm * omm) * Hg

    def sign_velocity(eps, g):
        """The sign-like flow -g/sqrt(g^2 + eps) (SPEC §3.5)."""
        return -g / xp.sqrt(g * g + eps)

    def adam_leading(eps, g):
        """F0 = -g/(|g| + eps): Adam's alpha -> 0 limit at fixed betas (m -> g, v -> g^2)."""
        return -g / (xp.abs(g) + eps)

    def adam_correction(beta1, beta2, eps, g):
        """c(g) of the O(alpha) term alpha c(g) (H F0) of Adam's modified equation:
        beta1/((1-beta1)(|g|+eps)) - beta2 |g|/((1-beta2)(|g|+eps)^2) + eps/(2 (|g|+eps)^2)
        (memory lag of m, of v, and the Euler term; :mod:`flows.modified`)."""
        a = xp.abs(g)
        den = a + eps
        return (beta1 / ((1.0 - beta1) * den) - beta2 * a / ((1.0 - beta2) * den * den)
                + eps / (2.0 * den * den))

    return (gd_velocity, principal_factor, heavyball_reduced_velocity, sign_velocity,
            adam_leading, adam_correction)
