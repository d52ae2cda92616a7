"""Compiled gradients for the compiled engine (:mod:`flows.fast`, :mod:`discrete.fast`).

A landscape takes part in the compiled engine when its gradient is written once over plain
arithmetic (:mod:`core.pointwise`): today every :class:`landscapes.base.Separable` landscape whose
``dphi_point`` is set (rosenbrock1d, shifted, doublewell, sextic). :func:`compiled_gradient` turns
it into

* ``grad(x, p)``: phi'(x) as a C-callable compiled function (:data:`POINT_SIGNATURE`), ``p``
  pointing to the lane's parameter values (the POINT_PARAMS, in order); a separable landscape's
  gradient is g_i = phi'(theta_i), and
* ``params``: a (B, P) float64 array of those values per lane.

Other landscapes (non-separable, user functions, data models) raise :class:`Unsupported` with the
reason; callers then use the torch engine.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from numba import cfunc, types

from landscapes.base import Landscape, Separable


class Unsupported(Exception):
    """The compiled engine cannot run this (the message says why)."""


#: C signature of a compiled pointwise gradient: dphi(x, p) with p the lane's parameter values
POINT_SIGNATURE = types.float64(types.float64, types.CPointer(types.float64))


@functools.lru_cache(maxsize=None)
def _point_gradient(dphi_point):
    """The C-callable dphi_point (compiled once, then loaded from numba's disk cache)."""
    return cfunc(POINT_SIGNATURE, cache=True)(dphi_point)


def _lane_values(value, name: str, B: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        v = value.detach().to("cpu", torch.float64).reshape(-1).numpy()
    else:
        v = np.asarray([float(value)], dtype=np.float64)
    if v.size == 1:
        return np.full(B, v[0])
    if v.size != B:
        raise Unsupported(f"parameter {name!r} has {v.size} lane values for {B} lanes")
    return v


def compiled_gradient(land: Landscape, B: int):
    """(grad, params (B, P)) for ``land`` over B lanes; :class:`Unsupported` when it has none.

    ``grad`` is a first-class compiled function of :data:`POINT_SIGNATURE` (kernels take it as an
    argument, so they are compiled and cached once for every landscape)."""
    if not isinstance(land, Separable) or land.dphi_point is None \
            or type(land).dphi is not Separable.dphi:
        raise Unsupported(f"landscape {land.spec()} has no compiled gradient (only separable "
                          "landscapes with a pointwise phi' have one)")
    cols = [_lane_values(getattr(land, k), k, B) for k in land.POINT_PARAMS]
    params = np.stack(cols, axis=1) if cols else np.zeros((B, 1))
    return _point_gradient(land.dphi_point), np.ascontiguousarray(params)
