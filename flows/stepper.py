"""The stepper contract of the exact-mode integrator (one step, error estimate, dense-output data).

A stepper advances every lane of a :class:`flows.semilinear.SemilinearFlow` by one attempted step of
its own size and says nothing about accepting it: the controller (:mod:`flows.controllers`) decides,
the loop (:func:`flows.solve.solve`) merges accepted lanes with ``torch.where``. What the loop relies on:

* class attributes ``name``; ``order`` p, the order of the propagated solution (global error
  O(h^p)); ``error_order`` q, the order of the method behind the error estimate (the estimate is
  O(h^(q+1)) per step: q = 3 for the embedded solution of exprb43, q = p for step doubling);
  ``interpolation``, the :class:`flows.interpolation.Interpolation` that ``dense_info`` feeds;
  ``init_nfev``, the evaluations of N that :meth:`Stepper.init` costs.
* ``init(flow, t0, y0) -> state``: the stepper state at the start, a tuple of per-lane tensors (lane
  first). The loop selects lanes of it with ``torch.where`` (the state of accepted steps replaces the
  old one) and indexes it when it retires lanes; nothing else.
* ``step(flow, t, y, h, state, made_jump, t1=None) -> StepResult`` for per-lane t, h (B,) and y
  (B, n, d). ``made_jump`` is a (B,) bool tensor or None (no lane jumped; the loop knows this on the host
  and passes None to avoid work): where True the state was changed by an event handler since
  ``state`` was made, so cached values (N(t, y) for first-same-as-last reuse) must be recomputed.
  ``t1`` is the end time as the loop records it (t + h up to rounding; the last step of a lane lands
  exactly on its final output time); N at the end of the step is evaluated there.
  The flow's linear part is queried with ``flow.linear_operator()`` on every step: it is constant
  between events, but a switching event may change it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch

from flows.interpolation import Interpolation


@dataclass
class StepResult:
    """One attempted step of every lane (tensors (B, n, d) unless stated).

    * ``y``          the propagated solution at t + h
    * ``y_error``    the local error estimate of ``y`` (signed; the controller takes its norm)
    * ``dense_info`` the data of ``stepper.interpolation`` on [t, t + h] (a tuple of per-lane tensors)
    * ``state``      the stepper state for the next step, valid where the step is accepted
    * ``nfev``       evaluations of N charged to every attempt (int, or (B,) long when it differs by lane)
    * ``nfev_fsal``  evaluations charged only when the step is accepted: N(t + h, y), which becomes the
      first stage of the next step (first same as last)
    """
    y: torch.Tensor
    y_error: torch.Tensor
    dense_info: tuple
    state: tuple
    nfev: Any
    nfev_fsal: int = 0


class Stepper(abc.ABC):
    """Base class of the steppers of :func:`flows.solve.solve` (contract in the module docstring)."""

    name: str = ""
    #: order p of the propagated solution
    order: int = 0
    #: order q of the method behind the error estimate (estimate ~ h^(q+1) per step)
    error_order: int = 0
    #: the interpolation ``dense_info`` feeds (set by every subclass)
    interpolation: Interpolation
    #: evaluations of N made by :meth:`init`
    init_nfev: int = 1

    @abc.abstractmethod
    def init(self, flow, t0: torch.Tensor, y0: torch.Tensor) -> tuple:
        """The stepper state at (t0, y0)."""

    @abc.abstractmethod
    def step(self, flow, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor, state: tuple,
             made_jump: torch.Tensor | None = None, t1: torch.Tensor | None = None) -> StepResult:
        """One attempted step of size h from (t, y)."""


class FirstSameAsLast(Stepper):
    """A stepper whose state is N(t, y) at the step's start: the end-of-step N of the last accepted
    step (first same as last), recomputed on the lanes an event made jump."""

    init_nfev = 1

    def init(self, flow, t0: torch.Tensor, y0: torch.Tensor) -> tuple:
        return (flow.nonlinear(t0, y0),)

    @staticmethod
    def start(flow, t: torch.Tensor, y: torch.Tensor, state: tuple,
              made_jump: torch.Tensor | None) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """(N(t, y), extra evaluations: 0 or a (B,) long tensor, the flow's linear part L).

        N is the cached ``state[0]``, recomputed where ``made_jump`` (with None nothing is
        evaluated; otherwise N is evaluated on all lanes and taken where a lane jumped). L is read
        from the flow on every step: a switching event may have changed it."""
        N0 = state[0]
        extra: Any = 0
        if made_jump is not None:
            fresh = flow.nonlinear(t, y)
            N0, extra = torch.where(made_jump[:, None, None], fresh, N0), made_jump.long()
        return N0, extra, flow.linear_operator().to(dtype=y.dtype, device=y.device)


__all__ = ["StepResult", "Stepper", "FirstSameAsLast"]
