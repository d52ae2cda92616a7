"""Per-lane step-size controllers.

Contract (what :func:`flows.solve.solve` relies on; every tensor is per lane, (B,)):

* ``init(h0, error_order) -> (h, state)``: first step and the controller state, a tuple of (B,)
  tensors (the loop selects lanes of it with ``torch.where`` and indexes it when retiring lanes).
  ``error_order`` is q in err ~ h^q (q = p + 1 for a local error estimate of an order-p method).
* ``adapt(h, err, state) -> (accept, h_next, state)``: ``err`` is the scaled error norm (accept iff
  err <= 1; NaN/inf must be passed as inf: reject and shrink as much as allowed).
"""
from __future__ import annotations

import torch


class PIController:
    """Proportional-integral controller (Gustafsson 1991; Hairer & Wanner, Solving ODEs II, IV.2):

        h_next = h * clip(safety * err^(-beta1/q) * err_prev^(beta2/q), fmin, fmax)   (accepted step)
        h_next = h * clip(safety * err^(-1/q), fmin, 1)                               (rejected step)

    err_prev is the error of the last accepted step; after a rejection the next accepted step may not
    grow (fmax = 1). ``beta2 = 0`` gives the classical I controller (:class:`IController`).
    """

    def __init__(self, safety: float = 0.9, fmin: float = 0.2, fmax: float = 5.0,
                 beta1: float = 0.7, beta2: float = 0.4) -> None:
        self.safety, self.fmin, self.fmax = safety, fmin, fmax
        self.beta1, self.beta2 = beta1, beta2
        self.q = 5

    def init(self, h0: torch.Tensor, error_order: int):
        self.q = error_order
        return h0, (torch.ones_like(h0), torch.zeros_like(h0, dtype=torch.bool))

    def adapt(self, h: torch.Tensor, err: torch.Tensor, state):
        err_prev, rejected_last = state
        accept = err <= 1.0
        e = err.clamp(min=1e-10)
        q = float(self.q)
        fac_acc = self.safety * e.pow(-self.beta1 / q) * err_prev.pow(self.beta2 / q)
        fmax = torch.where(rejected_last, torch.ones_like(h), torch.full_like(h, self.fmax))
        fac_acc = torch.minimum(fac_acc.clamp(min=self.fmin), fmax)
        fac_rej = (self.safety * e.pow(-1.0 / q)).clamp(min=self.fmin, max=1.0)
        fac_rej = torch.where(torch.isfinite(err), fac_rej, torch.full_like(h, self.fmin))
        h_next = h * torch.where(accept, fac_acc, fac_rej)
        err_prev = torch.where(accept, e.clamp(min=1e-4), err_prev)
        return accept, h_next, (err_prev, ~accept)


class IController(PIController):
    """Integral (elementary) controller: h_next = h * clip(safety * err^(-1/q), fmin, fmax)."""

    def __init__(self, safety: float = 0.9, fmin: float = 0.2, fmax: float = 5.0) -> None:
        super().__init__(safety, fmin, fmax, beta1=1.0, beta2=0.0)


class ConstantStep:
    """Fixed step h for every lane: every step is accepted (for convergence studies).

    With :func:`flows.solve.solve` one step of size h is two half steps of the underlying method (the
    step-doubling pair), so the method's substep is h/2.
    """

    def __init__(self, h: float) -> None:
        if not h > 0:
            raise ValueError("ConstantStep: h must be > 0")
        self.h = float(h)

    def init(self, h0: torch.Tensor, error_order: int):
        return torch.full_like(h0, self.h), ()

    def adapt(self, h: torch.Tensor, err: torch.Tensor, state):
        return torch.ones_like(h, dtype=torch.bool), torch.full_like(h, self.h), state


__all__ = ["PIController", "IController", "ConstantStep"]
