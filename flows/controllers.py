"""Per-lane step-size controllers: tolerances, error norm, accept/reject and the next step size.

Contract (what :func:`flows.solve.solve` relies on; every tensor is per lane, (B,)):

* ``init(h0, error_order, weights=None) -> (h, state)``: binds the controller to one solve. ``h0`` is
  the proposed first step, ``error_order`` is q in err ~ h^q (q = stepper.error_order + 1: a local
  error estimate of an order-(q-1) method), ``weights`` the (d,) component weights of the flow
  (:meth:`flows.semilinear.SemilinearFlow.error_weights`). Returns the first step and the controller
  state, a tuple of (B,) tensors (the loop selects lanes of it with ``torch.where`` and indexes it when
  retiring lanes).
* ``error_norm(y0, y1, y_error, weights=None) -> (B,)``: the scaled error norm of a step from y0 to y1
  with the error (or error indicator) ``y_error``, all (B, n, d):

      r = w |y_error| / (atol + rtol max(|y0|, |y1|)),   err = norm(r)   (default: max over (n, d)),

  NaN -> inf. ``w`` = ``weights`` or those given at ``init`` (none: all 1); atol is a float or a (d,)
  tensor; rtol is raised to at least 100 machine epsilons of the dtype.
* ``adapt(h, err, state) -> (accept, h_next, state)``: accept iff err <= 1; err = inf (NaN/inf error)
  rejects and shrinks as much as allowed.

The loop asks nothing else: it never sees the tolerances.
"""
from __future__ import annotations

import abc
import copy

import torch


def max_norm(r: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the max norm over everything but the lane (0 for an empty state)."""
    if r.shape[1:].numel() == 0:
        return r.new_zeros(r.shape[0])
    return r.amax(dim=tuple(range(1, r.dim())))


class Controller(abc.ABC):
    """Base class: owns the tolerances, the norm and the component weights (see the module docstring).

    Args:
        rtol: relative tolerance (floored at 100 machine epsilons of the solve's dtype).
        atol: absolute tolerance, a float or a (d,) tensor (per component).
        norm: callable (B, n, d) -> (B,) on the scaled errors r; default :func:`max_norm`.
    """

    def __init__(self, *, rtol: float = 1e-10, atol: float | torch.Tensor = 1e-12, norm=None) -> None:
        if not rtol >= 0:
            raise ValueError(f"{type(self).__name__}: rtol must be >= 0, got {rtol}")
        self.rtol = float(rtol)
        self.atol = atol
        self.norm = norm if norm is not None else max_norm
        self.weights: torch.Tensor | None = None
        self._cache: tuple | None = None

    def with_tolerances(self, rtol: float | None = None, atol=None) -> Controller:
        """A copy with the given tolerances (None keeps the controller's)."""
        new = copy.copy(self)
        if rtol is not None:
            new.rtol = float(rtol)
        if atol is not None:
            new.atol = atol
        new._cache = None
        return new

    def tolerances(self, dtype: torch.dtype, device) -> tuple[float, torch.Tensor]:
        """(rtol with its floor, atol as a tensor) for ``dtype``/``device``."""
        key = (dtype, str(device))
        if self._cache is None or self._cache[0] != key:
            rtol = max(self.rtol, 100.0 * torch.finfo(dtype).eps)
            self._cache = (key, rtol, torch.as_tensor(self.atol, dtype=dtype, device=device))
        return self._cache[1], self._cache[2]

    def init(self, h0: torch.Tensor, error_order: int, weights: torch.Tensor | None = None):
        self.weights = None if weights is None else weights.to(dtype=h0.dtype, device=h0.device)
        self.tolerances(h0.dtype, h0.device)
        return self._init(h0, error_order)

    def error_norm(self, y0: torch.Tensor, y1: torch.Tensor, y_error: torch.Tensor,
                   weights: torch.Tensor | None = None) -> torch.Tensor:
        rtol, atol = self.tolerances(y0.dtype, y0.device)
        w = weights if weights is not None else self.weights
        scale = atol + rtol * torch.maximum(y0.abs(), y1.abs())
        r = (y_error.abs() * w if w is not None else y_error.abs()) / scale
        en = self.norm(r)
        return torch.where(torch.isnan(en), torch.full_like(en, float("inf")), en)

    @abc.abstractmethod
    def _init(self, h0: torch.Tensor, error_order: int):
        """(h, state) of :meth:`init`."""

    @abc.abstractmethod
    def adapt(self, h: torch.Tensor, err: torch.Tensor, state):
        """(accept, h_next, state)."""


class PIController(Controller):
    """Proportional-integral controller (Gustafsson 1991; Hairer & Wanner, Solving ODEs II, IV.2):

        h_next = h * clip(safety * err^(-beta1/q) * err_prev^(beta2/q), fmin, fmax)   (accepted step)
        h_next = h * clip(safety * err^(-1/q), fmin, 1)                               (rejected step)

    err_prev is the error of the last accepted step; after a rejection the next accepted step may not
    grow (fmax = 1). ``beta2 = 0`` gives the classical I controller (:class:`IController`). The
    tolerances and the norm are those of :class:`Controller`.
    """

    def __init__(self, *, rtol: float = 1e-10, atol: float | torch.Tensor = 1e-12, norm=None,
                 safety: float = 0.9, fmin: float = 0.2, fmax: float = 5.0,
                 beta1: float = 0.7, beta2: float = 0.4) -> None:
        super().__init__(rtol=rtol, atol=atol, norm=norm)
        self.safety, self.fmin, self.fmax = safety, fmin, fmax
        self.beta1, self.beta2 = beta1, beta2
        self.q = 5

    def _init(self, h0: torch.Tensor, error_order: int):
        self.q = error_order
        return h0, (torch.ones_like(h0), torch.zeros_like(h0, dtype=torch.bool))

    def adapt(self, h: torch.Tensor, err: torch.Tensor, state):
        err_prev, rejected_last = state
        accept = err <= 1.0
        e = err.clamp(min=1e-10)
        q = float(self.q)
        # powers as exp(c log x): torch's pow with a fractional exponent rounds differently in its
        # vectorised body and its scalar tail, which would tie a lane's step sizes to its position
        # in the batch (exp and log agree in both)
        fac_acc = self.safety * torch.exp((-self.beta1 / q) * torch.log(e)
                                          + (self.beta2 / q) * torch.log(err_prev))
        fmax = torch.where(rejected_last, torch.ones_like(h), torch.full_like(h, self.fmax))
        fac_acc = torch.minimum(fac_acc.clamp(min=self.fmin), fmax)
        fac_rej = (self.safety * torch.exp((-1.0 / q) * torch.log(e))).clamp(min=self.fmin, max=1.0)
        fac_rej = torch.where(torch.isfinite(err), fac_rej, torch.full_like(h, self.fmin))
        h_next = h * torch.where(accept, fac_acc, fac_rej)
        err_prev = torch.where(accept, e.clamp(min=1e-4), err_prev)
        return accept, h_next, (err_prev, ~accept)


class IController(PIController):
    """Integral (elementary) controller: h_next = h * clip(safety * err^(-1/q), fmin, fmax)."""

    def __init__(self, *, rtol: float = 1e-10, atol: float | torch.Tensor = 1e-12, norm=None,
                 safety: float = 0.9, fmin: float = 0.2, fmax: float = 5.0) -> None:
        super().__init__(rtol=rtol, atol=atol, norm=norm, safety=safety, fmin=fmin, fmax=fmax,
                         beta1=1.0, beta2=0.0)


class ConstantStep(Controller):
    """Fixed step h for every lane: every step is accepted (for convergence studies).

    The step is the stepper's step: for :class:`flows.solvers.StepDoubling` one step of size h is two
    half steps of the underlying method. The tolerances only scale :meth:`error_norm` (reported, never
    used to reject).
    """

    def __init__(self, h: float, *, rtol: float = 1e-10, atol: float | torch.Tensor = 1e-12,
                 norm=None) -> None:
        super().__init__(rtol=rtol, atol=atol, norm=norm)
        if not h > 0:
            raise ValueError("ConstantStep: h must be > 0")
        self.h = float(h)

    def _init(self, h0: torch.Tensor, error_order: int):
        return torch.full_like(h0, self.h), ()

    def adapt(self, h: torch.Tensor, err: torch.Tensor, state):
        return torch.ones_like(h, dtype=torch.bool), torch.full_like(h, self.h), state


__all__ = ["ConstantStep", "Controller", "IController", "PIController", "max_norm"]
