"""The classical updates (SPEC §2, "spec" arithmetic), written once for the torch and the compiled
engine (:mod:`core.pointwise`).

Each function maps (state, g_k, per-lane constants) to the new state, elementwise, evaluating the
SPEC formula left to right as written; :mod:`discrete.classic` calls them on tensors and
:mod:`discrete.fast` compiles them, so the two engines agree bit for bit, up to torch's CPU sqrt
(SLEEF), which is not correctly rounded in about 1.4% of arguments (the compiled one is).
"""
from __future__ import annotations

from core.pointwise import TORCH


def make_updates(xp):
    """(gd, heavyball, adam, rmsprop, adagrad) over the math namespace ``xp``."""

    def gd(theta, g, alpha):
        return theta - alpha * g

    def heavyball(theta, buf, alpha):
        """theta - alpha b with the buffer b already updated (b_1 = g_1, b_k = mu b_{k-1} + g_k)."""
        return theta - alpha * buf

    def adam(theta, m, v, g, alpha, b1, omb1, b2, omb2, eps, bc1, bc2):
        m = b1 * m + omb1 * g
        v = b2 * v + omb2 * (g * g)
        return theta - alpha * (m / bc1) / (xp.sqrt(v / bc2) + eps), m, v

    def rmsprop(theta, v, g, alpha, b, omb, eps):
        v = b * v + omb * (g * g)
        return theta - alpha * g / (xp.sqrt(v) + eps), v

    def adagrad(theta, G, g, alpha, eps):
        G = G + g * g
        return theta - alpha * g / (xp.sqrt(G) + eps), G

    return gd, heavyball, adam, rmsprop, adagrad


#: the torch versions
gd, heavyball, adam, rmsprop, adagrad = make_updates(TORCH)
