"""The oracle a discrete step receives: loss, gradient and Hessian-vector products at any point.

Closure-style methods need more than the gradient at the current iterate: a Polyak step needs the
loss, Hill-ADAM the loss history, a secant jump or a line search the gradient or loss at other points,
a Newton-type step an HVP. :class:`Oracle` wraps any objective with the landscape contract
(``value``, ``grad``, ``value_and_grad``, ``hvp``; see :class:`landscapes.base.Landscape`) and counts
every evaluation per lane batch, so that methods that query more pay for it in the reported cost
(``stats["oracle_<kind>"]`` of a discrete run).

All arguments are (B, n) batches of points, one per lane; results follow theta's dtype/device.
"""
from __future__ import annotations

import torch


class Oracle:
    """Counted access to an objective (see the module docstring).

    Args:
        objective: anything with ``value``, ``grad`` and ``hvp`` (and optionally ``value_and_grad``)
            on (B, n) batches.
    """

    KINDS = ("value", "grad", "hvp")

    def __init__(self, objective) -> None:
        self.objective = objective
        self.counts = {k: 0 for k in self.KINDS}

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """f(theta): (B, n) -> (B,)."""
        self.counts["value"] += 1
        return self.objective.value(theta)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """grad f(theta): (B, n) -> (B, n)."""
        self.counts["grad"] += 1
        return self.objective.grad(theta)

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.counts["value"] += 1
        self.counts["grad"] += 1
        vg = getattr(self.objective, "value_and_grad", None)
        if vg is not None:
            return vg(theta)
        return self.objective.value(theta), self.objective.grad(theta)

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """H(theta) vec per lane: (B, n) x (B, n) -> (B, n)."""
        self.counts["hvp"] += 1
        return self.objective.hvp(theta, vec)

    def __repr__(self) -> str:
        return f"Oracle({self.objective!r}, counts={self.counts})"


__all__ = ["Oracle"]
