"""Compiled gradients and curvatures for the compiled engines (:mod:`flows.fast`,
:mod:`discrete.fast`).

A landscape takes part in the compiled engine when its gradient is written once over plain
arithmetic (:mod:`core.pointwise`): today every :class:`landscapes.base.Separable` landscape whose
``dphi_point`` is set (rosenbrock1d, shifted, doublewell, sextic). :func:`compiled_gradient` turns
it into

* ``grad(x, p)``: phi'(x) as a C-callable compiled function (:data:`POINT_SIGNATURE`), ``p``
  pointing to the lane's parameter values (the POINT_PARAMS, in order); a separable landscape's
  gradient is g_i = phi'(theta_i), and
* ``params``: a (B, P) float64 array of those values per lane.

:func:`compiled_curvature` does the same for phi'' (``d2phi_point``, the same POINT_PARAMS): the
curvature the Newton flows (:mod:`flows.newton`) divide by; a separable landscape's Hessian is
diag(phi''(theta_i)). It is a second C-callable function of the same :data:`POINT_SIGNATURE`, so a
kernel takes ``grad`` and ``hess`` as two first-class arguments of one function type (and stays
compiled and cached once for every landscape); flows that do not read curvature get
:func:`no_curvature` (NaN) in its place. :func:`compiled_third` adds phi''' (``d3phi_point``) as a
third function of the same type, for the modified-equation flows of :mod:`flows.modified` (T[g, g]
= phi''' g^2 per coordinate, in gd-flow3); the kernel takes it as a third argument, and
flows that do not read it get :func:`no_curvature` there too.

:func:`compiled_block_gradient` gives the same phi' over a whole block of values at once
(:data:`BLOCK_SIGNATURE`): one indirect call per block instead of one per value, and phi' is
inlined in the loop, which the compiler then vectorises (SIMD) across the block (the discrete
engine's lanes; 4-5x faster than a call per value).

Other landscapes (non-separable, user functions, data models; for curvature, separable ones without
``d2phi_point``; for phi''', those without ``d3phi_point``) raise :class:`Unsupported` with the
reason; callers then use the torch engine.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from numba import carray, cfunc, types
from numba.extending import register_jitable

from landscapes.base import Landscape, Separable


class Unsupported(Exception):
    """The compiled engine cannot run this (the message says why)."""


#: C signature of a compiled pointwise gradient: dphi(x, p) with p the lane's parameter values
POINT_SIGNATURE = types.float64(types.float64, types.CPointer(types.float64))


#: C signature of a compiled block gradient: dphi_block(x, p, out, count) writes
#: out[j] = phi'(x[j]; p) for j < count, one parameter row p for the whole block
BLOCK_SIGNATURE = types.void(types.CPointer(types.float64), types.CPointer(types.float64),
                             types.CPointer(types.float64), types.int64)


@functools.lru_cache(maxsize=None)
def _point_function(point):
    """The C-callable point function (dphi_point, d2phi_point or d3phi_point; compiled once, then
    loaded from numba's disk cache)."""
    return cfunc(POINT_SIGNATURE, cache=True)(point)


def _nan_point(x, p):
    return math.nan


def no_curvature():
    """The C-callable stand-in for phi'' or phi''' (NaN everywhere) that kernels get where the flow
    family reads no such derivative: the argument keeps its one function type."""
    return _point_function(_nan_point)


@functools.lru_cache(maxsize=None)
def _block_gradient(dphi_point):
    """The C-callable block loop over an inlined dphi_point (cached on disk per landscape: the
    cache key holds the inlined function).

    The loop closes over the plain Python function, registered as jitable, not over a numba
    dispatcher: numba keys its disk cache on the pickled closure, and a dispatcher pickles with a
    per-process id, so every process missed the cache (and recompiled for about 0.1-0.2 s)."""
    point = register_jitable(inline="always")(dphi_point)

    def dphi_block(x, p, out, count):
        xs = carray(x, (count,))
        ys = carray(out, (count,))
        for j in range(count):
            ys[j] = point(xs[j], p)

    return cfunc(BLOCK_SIGNATURE, cache=True)(dphi_block)


#: C signature of a compiled lanes gradient: dphi_lanes(x, P, stride, out, count) writes
#: out[j] = phi'(x[j]; P[j stride:]) for j < count, each value with its own parameter row
LANES_SIGNATURE = types.void(types.CPointer(types.float64), types.CPointer(types.float64),
                             types.int64, types.CPointer(types.float64), types.int64)


@functools.lru_cache(maxsize=None)
def _lanes_gradient(dphi_point):
    """The C-callable loop over an inlined dphi_point with one parameter row per value (the lane
    blocks of :mod:`flows.fast.block`: one call per block and coordinate); the same arithmetic as
    the point function, so a lane gets the same bits either way. Closes over the plain function,
    as :func:`_block_gradient` (numba's disk cache)."""
    point = register_jitable(inline="always")(dphi_point)

    def dphi_lanes(x, P, stride, out, count):
        xs = carray(x, (count,))
        ps = carray(P, (count, stride))
        ys = carray(out, (count,))
        for j in range(count):
            ys[j] = point(xs[j], ps[j])

    return cfunc(LANES_SIGNATURE, cache=True)(dphi_lanes)


def no_lanes_gradient():
    """The stand-in lanes gradient (NaN everywhere) for kernels that run no lane block: the
    argument keeps its one function type."""
    return _lanes_gradient(_nan_point)


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


def _check(land: Landscape) -> None:
    if not isinstance(land, Separable) or land.dphi_point is None \
            or type(land).dphi is not Separable.dphi:
        raise Unsupported(f"landscape {land.spec()} has no compiled gradient (only separable "
                          "landscapes with a pointwise phi' have one)")


def _check_curvature(land: Landscape) -> None:
    _check(land)
    if land.d2phi_point is None or any(getattr(type(land), k) is not getattr(Separable, k)
                                       for k in ("d2phi", "hessian_diag", "hessian", "hvp")):
        raise Unsupported(f"landscape {land.spec()} has no compiled curvature (only separable "
                          "landscapes with a pointwise phi'' (d2phi_point) have one)")


def _check_third(land: Landscape) -> None:
    _check_curvature(land)
    if land.d3phi_point is None or any(getattr(type(land), k) is not getattr(Separable, k)
                                       for k in ("d3phi", "third_contraction")):
        raise Unsupported(f"landscape {land.spec()} has no compiled third derivative (only "
                          "separable landscapes with a pointwise phi''' (d3phi_point) have one)")


def _params(land: Separable, B: int) -> np.ndarray:
    cols = [_lane_values(getattr(land, k), k, B) for k in land.POINT_PARAMS]
    return np.ascontiguousarray(np.stack(cols, axis=1) if cols else np.zeros((B, 1)))


def compiled_gradient(land: Landscape, B: int):
    """(grad, params (B, P)) for ``land`` over B lanes; :class:`Unsupported` when it has none.

    ``grad`` is a first-class compiled function of :data:`POINT_SIGNATURE` (kernels take it as an
    argument, so they are compiled and cached once for every landscape)."""
    _check(land)
    return _point_function(land.dphi_point), _params(land, B)


def compiled_curvature(land: Landscape, B: int):
    """(grad, hess, params (B, P)) for ``land`` over B lanes: :func:`compiled_gradient` and phi''
    (``d2phi_point``) as a second function of :data:`POINT_SIGNATURE` over the same parameter
    rows; :class:`Unsupported` when the landscape has no compiled gradient or curvature."""
    _check_curvature(land)
    return _point_function(land.dphi_point), _point_function(land.d2phi_point), _params(land, B)


def compiled_third(land: Landscape, B: int):
    """(grad, hess, third, params (B, P)) for ``land`` over B lanes: :func:`compiled_curvature` and
    phi''' (``d3phi_point``) as a third function of :data:`POINT_SIGNATURE` over the same parameter
    rows; :class:`Unsupported` when the landscape lacks any of the three."""
    _check_third(land)
    return (_point_function(land.dphi_point), _point_function(land.d2phi_point),
            _point_function(land.d3phi_point), _params(land, B))


def compiled_block_gradient(land: Landscape, B: int):
    """(grad_block, params (B, P)): as :func:`compiled_gradient`, with ``grad_block`` of
    :data:`BLOCK_SIGNATURE`."""
    _check(land)
    return _block_gradient(land.dphi_point), _params(land, B)


def compiled_lanes_gradient(land: Landscape, B: int):
    """(grad_lanes, params (B, P)): as :func:`compiled_gradient`, with ``grad_lanes`` of
    :data:`LANES_SIGNATURE`."""
    _check(land)
    return _lanes_gradient(land.dphi_point), _params(land, B)
