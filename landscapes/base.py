"""Landscape contract: batched objectives with exact gradients.

A :class:`Landscape` evaluates f on a batch of lanes. ``theta`` is a (B, n) tensor (float32 or
float64, CPU or CUDA); results follow its dtype and device. Landscape parameters may be scalars
(shared by all lanes) or per-lane tensors with a leading lane dimension of size B (e.g. ``c`` of
shape (B,) for rosenbrock1d, ``diag`` of shape (B, n) for quadratic); parameters are converted to
theta's dtype/device at evaluation time.

Subclasses implement ``value`` and ``grad`` (analytic where possible). ``hvp`` defaults to autograd
on ``grad`` (double backward is not needed: the gradient is differentiated once). ``hessian`` builds
the (B, n, n) Hessian from n HVPs.
"""
from __future__ import annotations

import abc

import torch


class Landscape(abc.ABC):
    #: registry name used by the spec language, e.g. ``rosenbrock1d``
    name: str = ""
    #: fixed dimension, or None when any n works
    dim: int | None = None
    #: one-line description shown by ``adamflow landscapes``
    description: str = ""

    @abc.abstractmethod
    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B,)"""

    @abc.abstractmethod
    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n), exact."""

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(theta), self.grad(theta)

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product H(theta) @ vec per lane, (B, n) x (B, n) -> (B, n)."""
        with torch.enable_grad():
            x = theta.detach().requires_grad_(True)
            g = self.grad(x)
            (hv,) = torch.autograd.grad(g, x, grad_outputs=vec, retain_graph=False)
        return hv.detach()

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n, n) by n Hessian-vector products."""
        B, n = theta.shape
        cols = []
        for i in range(n):
            e = torch.zeros_like(theta)
            e[:, i] = 1.0
            cols.append(self.hvp(theta, e))
        return torch.stack(cols, dim=-1)

    def spec(self) -> str:
        """Canonical spec string (``name(k=v,...)``) that :func:`landscapes.parse` maps back here."""
        return self.name

    def __repr__(self) -> str:
        return f"<Landscape {self.spec()}>"
