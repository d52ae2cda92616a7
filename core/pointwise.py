"""Pointwise math written once for two engines: torch tensors and compiled (numba) scalars.

A model's scalar formulas (the Adam direction, a landscape's phi') are written as closures over a
math namespace ``xp`` that provides ``sqrt``, ``exp``, ``log``, ``expm1``,
``log1p``, ``abs``, ``where(c, a, b)`` (a select) and ``pos`` (max(x, 0)).
Arithmetic operators work on both tensors and floats, so the same source serves

* the reference torch engine: ``xp = TORCH`` (elementwise on broadcast tensors), and
* the compiled engine: ``xp = core.numba_math`` (numba-compiled scalar functions, inlined),

and the two engines evaluate the same expression in the same order. Example::

    def make_softsign(xp):
        def softsign(x):
            return x / (xp.sqrt(x * x) + 1.0)
        return softsign

    softsign_torch = make_softsign(TORCH)                  # tensors
    softsign_compiled = numba.njit(make_softsign(numba_math))  # floats, inside kernels
"""
from __future__ import annotations

import torch


class TORCH:
    """The torch math namespace (elementwise)."""

    sqrt = staticmethod(torch.sqrt)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    expm1 = staticmethod(torch.expm1)
    log1p = staticmethod(torch.log1p)
    abs = staticmethod(torch.abs)
    where = staticmethod(torch.where)

    @staticmethod
    def pos(x: torch.Tensor) -> torch.Tensor:
        """max(x, 0)."""
        return torch.clamp(x, min=0.0)
