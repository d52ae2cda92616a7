"""A landscape from any differentiable torch function: value, gradient, HVP and Hessian by autograd.

    land = FunctionLandscape(lambda x: (1 - x[0]) ** 2 + 4 * (x[0] ** 2 - 1) ** 2, dim=1,
                             name="my-rosenbrock")
    land = landscapes.from_function(f, batched=True)        # f: (B, n) -> (B,)

``f`` maps one point theta of shape (n,) to a scalar tensor (or, with ``batched=True``, a batch
(B, n) to (B,); its lanes must be independent: lane b of the result may depend only on row b).
It must be written with differentiable torch operations; it receives theta in the caller's dtype
and device (float32/float64, CPU/CUDA) and should compute in them (constants as Python numbers or
created like theta). The derivatives are exact (automatic differentiation, no finite differences):

* per-point f: ``torch.func.vmap`` over ``torch.func.grad`` (gradient), ``jvp`` of the gradient
  (HVP, forward-over-reverse) and ``torch.func.hessian``; where a transform does not support f
  (``.item()``, data-dependent Python control flow, in-place writes into captured tensors, ops
  without forward-mode AD, ...) the next implementation is used (reverse-over-reverse, then a
  per-lane loop with ``torch.autograd``), and the one that worked is remembered per operation;
* batched f: ``torch.autograd`` on ``f(theta).sum()`` (one backward pass for all lanes; double
  backward for HVPs; the Hessian from n HVPs).

Everything runs under ``torch.enable_grad`` (calls from inside ``torch.no_grad`` work). When theta
itself requires grad, the gradient stays differentiable with respect to it.

The landscape has no per-lane parameters (``subset`` returns it, ``n_lanes()`` is None) and no
known critical points (None). Its ``spec()`` is ``function(<name>)``, a label for outputs and logs:
it is NOT in the spec-language registry and cannot be parsed back (:func:`landscapes.parse` raises
ConfigError on it); pass the object itself wherever a landscape is accepted.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.func import grad as func_grad
from torch.func import hessian as func_hessian
from torch.func import jacrev, jvp, vmap

from core.errors import ConfigError
from landscapes import params as P
from landscapes.base import Landscape


class FunctionLandscape(Landscape):
    """f(theta) from a torch function; derivatives by autograd (module doc).

    f: callable, (n,) -> scalar tensor, or (B, n) -> (B,) with ``batched=True``.
    dim: the dimension n when f needs a fixed one (None: any n).
    name: label used in ``spec()`` (``function(<name>)``) and messages.
    minimum: f* = inf f when known (``minimum_value``), else None.
    """
    name = "function"
    description = "any differentiable torch function, derivatives by autograd (Python API only)"

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor], *, dim: int | None = None,
                 name: str = "function", minimum: float | None = None, batched: bool = False):
        if not callable(f):
            raise ConfigError(f"FunctionLandscape needs a callable f(theta), got {type(f).__name__}")
        label = str(name).strip()
        if not label:
            raise ConfigError("FunctionLandscape name must not be empty")
        self.f = f
        self.label = label
        self.dim = None if dim is None else P.integer(dim, f"function({label})", "dim", minimum=1)
        if minimum is not None:
            if not P._is_number(minimum) or math.isnan(float(minimum)) or float(minimum) == math.inf:
                raise ConfigError(f"minimum of function({label}) must be a number or -inf, "
                                  f"got {minimum!r}")
            minimum = float(minimum)
        self.minimum = minimum
        self.batched = bool(batched)
        self.description = f"{label}: torch function, derivatives by autograd"
        self._choice: dict[str, int] = {}   # operation -> index of the implementation that worked

    # -- description ---------------------------------------------------------------------------

    def spec(self) -> str:
        """``function(<name>)``: a label only, not parsable by :func:`landscapes.parse`."""
        return f"function({self.label})"

    def minimum_value(self, n: int | None = None) -> float | None:
        return self.minimum

    def __eq__(self, other: object) -> bool:
        """The same function object (identity), name, dimension and batching."""
        if type(self) is not type(other):
            return False
        assert isinstance(other, FunctionLandscape)
        return self.f is other.f and (self.label, self.dim, self.batched) == (
            other.label, other.dim, other.batched)

    def __hash__(self) -> int:
        return hash((type(self).__name__, id(self.f), self.label, self.dim, self.batched))

    # -- evaluation -------------------------------------------------------------------------------

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        self._check(theta)
        if self.batched or theta.shape[0] == 0:
            return self._f_lanes(theta)
        return self._dispatch("value", (lambda th: vmap(self._f_point)(th), self._f_lanes),
                              theta).to(theta.dtype)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        self._check(theta)
        if self.batched or theta.shape[0] == 0:
            return self._ad_grad(theta)
        return self._dispatch("grad", (lambda th: vmap(func_grad(self._f_point))(th),
                                       self._ad_grad), theta).to(theta.dtype)

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(theta), self.grad(theta)

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        self._check(theta)
        if vec.shape != theta.shape:
            raise ConfigError(f"hvp of {self.spec()}: vec has shape {tuple(vec.shape)}, theta "
                              f"{tuple(theta.shape)}")
        if self.batched or theta.shape[0] == 0:
            return self._ad_hvp(theta, vec)
        g = func_grad(self._f_point)

        def fwd_rev(th, v):
            return vmap(lambda x, u: jvp(g, (x,), (u,))[1])(th, v)

        def rev_rev(th, v):
            return vmap(lambda x, u: func_grad(lambda y: (g(y) * u).sum())(x))(th, v)

        # (results cast: forward-mode AD of some ops returns float64 tangents for float32 input)
        return self._dispatch("hvp", (fwd_rev, rev_rev, self._ad_hvp), theta, vec).to(theta.dtype)

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        self._check(theta)
        if self.batched or theta.shape[0] == 0:
            return self._ad_hessian(theta)
        return self._dispatch("hessian", (lambda th: vmap(func_hessian(self._f_point))(th),
                                          lambda th: vmap(jacrev(jacrev(self._f_point)))(th),
                                          self._ad_hessian), theta).to(theta.dtype)

    # -- implementation ---------------------------------------------------------------------------

    def _check(self, theta: torch.Tensor) -> None:
        if not isinstance(theta, torch.Tensor) or theta.dim() != 2 or not theta.is_floating_point():
            raise ConfigError(f"{self.spec()} takes theta as a floating (B, n) tensor, got "
                              f"{getattr(theta, 'dtype', type(theta).__name__)} of shape "
                              f"{tuple(getattr(theta, 'shape', ()))}")
        self.check_dim(theta.shape[1])

    def _f_point(self, x: torch.Tensor) -> torch.Tensor:
        """f at one point (n,) -> () (a one-element result is accepted and reshaped)."""
        y = self.f(x)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{self.spec()}: f must return a torch tensor, got {type(y).__name__}")
        if y.numel() != 1:
            raise ValueError(f"{self.spec()}: f must return a scalar, got shape {tuple(y.shape)}")
        return y.reshape(())

    def _f_lanes(self, theta: torch.Tensor) -> torch.Tensor:
        """f on every lane, (B, n) -> (B,): one call of a batched f, else a loop over lanes."""
        B = theta.shape[0]
        if not self.batched:
            if B == 0:
                return theta.new_zeros(0)
            return torch.stack([self._f_point(x) for x in theta.unbind(0)]).to(theta.dtype)
        y = self.f(theta)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{self.spec()}: f must return a torch tensor, got {type(y).__name__}")
        if y.numel() != B or (y.dim() > 1 and y.shape[0] != B):
            raise ValueError(f"{self.spec()}: batched f must return shape ({B},) for theta of "
                             f"shape {tuple(theta.shape)}, got {tuple(y.shape)}")
        return y.reshape(B).to(theta.dtype)

    def _dispatch(self, op: str, impls: tuple, *args: torch.Tensor) -> torch.Tensor:
        """The first implementation of ``op`` that works on f (starting from the one that worked
        last time); the error of the last one if none does."""
        for i in range(self._choice.get(op, 0), len(impls)):
            try:
                out = impls[i](*args)
            except Exception:   # the transform does not support f: try the next implementation
                if i == len(impls) - 1:
                    raise
                continue
            self._choice[op] = i
            return out
        raise AssertionError("unreachable")

    def _ad_grad(self, theta: torch.Tensor) -> torch.Tensor:
        """Gradient by torch.autograd of sum_b f(theta_b) (lanes independent)."""
        create = theta.requires_grad
        with torch.enable_grad():
            x = theta if create else theta.detach().requires_grad_(True)
            y = self._f_lanes(x)
            if not y.requires_grad:          # f does not depend on theta
                return torch.zeros_like(theta)
            (g,) = torch.autograd.grad(y.sum(), x, create_graph=create, allow_unused=True)
        return torch.zeros_like(theta) if g is None else g

    def _ad_hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """H vec per lane by double backward (reverse over reverse)."""
        create = theta.requires_grad
        with torch.enable_grad():
            x = theta if create else theta.detach().requires_grad_(True)
            y = self._f_lanes(x)
            if not y.requires_grad:
                return torch.zeros_like(theta)
            (g,) = torch.autograd.grad(y.sum(), x, create_graph=True, allow_unused=True)
            if g is None or not g.requires_grad:   # f affine in theta
                return torch.zeros_like(theta)
            (hv,) = torch.autograd.grad(g, x, grad_outputs=vec, create_graph=create,
                                        allow_unused=True)
        return torch.zeros_like(theta) if hv is None else hv

    def _ad_hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n, n) from n HVPs with the unit vectors."""
        n = theta.shape[1]
        eye = torch.eye(n, dtype=theta.dtype, device=theta.device)
        cols = [self._ad_hvp(theta, eye[i].expand_as(theta)) for i in range(n)]
        return torch.stack(cols, dim=-1)


def from_function(f: Callable[[torch.Tensor], torch.Tensor], **kw) -> FunctionLandscape:
    """``FunctionLandscape(f, **kw)``: a landscape from a differentiable torch function
    (keywords dim, name, minimum, batched; see :class:`FunctionLandscape`)."""
    return FunctionLandscape(f, **kw)
