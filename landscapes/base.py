"""Landscape contract: batched objectives with exact gradients.

A :class:`Landscape` evaluates f on a batch of lanes. ``theta`` is a (B, n) tensor (float32 or
float64, CPU or CUDA); results follow its dtype and device. Landscape parameters may be scalars
(shared by all lanes) or per-lane tensors with a leading lane dimension of size B (e.g. ``c`` of
shape (B,) for rosenbrock1d, ``diag`` of shape (B, n) for quadratic); parameters are converted to
theta's dtype/device at evaluation time (once per dtype/device: the converted copy is cached).

Subclasses implement ``value`` and ``grad`` (analytic where possible). ``hvp`` defaults to autograd
on ``grad`` (double backward is not needed: the gradient is differentiated once). ``hessian`` builds
the (B, n, n) Hessian from n HVPs. Analytic gradients are written with differentiable torch ops, so
autograd through ``grad`` (and through analytic ``hvp`` overrides) works.

Beyond evaluation a landscape knows its canonical spec string (``spec()``, parsed back by
:func:`landscapes.parse`), its dimension (``dim``, ``check_dim``) and, where known in closed form,
its minimum value (``minimum_value``) and its critical points (``critical_points``; None when not
known). ``subset(idx)`` restricts a landscape with per-lane parameters to some of its lanes and
``n_lanes()`` says how many lanes its parameters hold (None when all are shared).

Per-lane parameters are recognised from the class attribute ``LANE_DIMS`` (parameter attribute ->
number of NON-lane dimensions of its stored value: 0 for a lane scalar, 1 for a vector, 2 for a
matrix; the same number ``_lanes(..., lead=...)`` uses). A stored tensor with more dimensions
than that carries a leading lane dimension; a lane dimension of size 1 broadcasts over any number
of lanes and counts as shared. Parameters not in ``LANE_DIMS`` (Python numbers, integers, data
tensors) are shared by all lanes.

:class:`Separable` is the base of the coordinate-wise landscapes f(theta) = sum_i phi(theta_i).
"""
from __future__ import annotations

import abc
import copy
from typing import NamedTuple

import torch

from core.errors import ConfigError
from landscapes.params import Param, format_spec


class CriticalPoint(NamedTuple):
    """A real root of f': position, kind ('min', 'max' or 'inflection') and f there.

    For a 1-D landscape x is the critical point of f; for a separable landscape
    f = sum_i phi(theta_i) of any dimension it is a critical point of phi (one coordinate) and f is
    phi(x): the critical points of f are the points whose every coordinate is one of them.
    """
    x: float
    kind: str
    f: float


class Landscape(abc.ABC):
    #: registry name used by the spec language, e.g. ``rosenbrock1d``
    name: str = ""
    #: fixed dimension, or None when any n works
    dim: int | None = None
    #: one-line description shown by ``adamflow landscapes``
    description: str = ""
    #: parameter names accepted by the constructor (and by the spec language), in canonical order
    PARAMS: tuple[str, ...] = ()
    #: parameters that may be per lane: attribute -> number of non-lane dims of its stored value
    #: (0 lane scalar (B,), 1 vector (B, n), 2 matrix (B, n, n)); see the module doc
    LANE_DIMS: dict[str, int] = {}

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

    def hessian_diag(self, theta: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, n): the diagonal of the Hessian (default: from :meth:`hessian`)."""
        return torch.diagonal(self.hessian(theta), dim1=-2, dim2=-1)

    def third_contraction(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """T[v, v] (B, n): the third derivative of f contracted twice with ``vec``,
        T[v, v]_i = sum_jk d^3 f/dtheta_i dtheta_j dtheta_k v_j v_k = grad_theta (v^T H(theta) v)
        at fixed v. Default: automatic differentiation of ``grad`` (double backward), kept
        differentiable in theta (callers may differentiate it once more); zeros where ``grad`` is
        not twice differentiable by autograd (a quadratic: T = 0). :class:`Separable` landscapes
        give it in closed form, phi3(theta_i) v_i^2."""
        with torch.enable_grad():
            x = theta if theta.requires_grad else theta.detach().requires_grad_(True)
            v = vec.detach()
            g = self.grad(x)
            if not g.requires_grad:
                return torch.zeros_like(theta)
            (hv,) = torch.autograd.grad(g, x, grad_outputs=v, create_graph=True, allow_unused=True)
            if hv is None or not hv.requires_grad:
                return torch.zeros_like(theta)
            (t,) = torch.autograd.grad((hv * v).sum(), x, create_graph=theta.requires_grad,
                                       allow_unused=True)
        return torch.zeros_like(theta) if t is None else t

    # -- description -------------------------------------------------------------------------

    def params(self) -> dict[str, object]:
        """Canonical parameter values (numbers, lists or tensors; None = left out of the spec)."""
        return {}

    def spec(self) -> str:
        """Canonical spec string (``name(k=v,...)``) that :func:`landscapes.parse` maps back here."""
        return format_spec(self.name, self.params())

    def check_dim(self, n: int) -> int:
        """Return n if theta0 may have n components, else raise ConfigError."""
        if self.dim is not None and n != self.dim:
            raise ConfigError(f"landscape {self.spec()} has dimension {self.dim}, "
                              f"but theta0 has {n} components")
        if n < 1:
            raise ConfigError(f"theta0 must have at least one component, got {n}")
        return n

    def resolve_dim(self, n: int | None = None) -> int:
        """The dimension to use: n (checked) when given, else ``dim``; ConfigError if neither."""
        if n is not None:
            return self.check_dim(n)
        if self.dim is None:
            raise ConfigError(f"landscape {self.spec()} works in any dimension: give theta0")
        return self.dim

    def minimum_value(self, n: int | None = None) -> float | torch.Tensor | None:
        """f* = inf f where known in closed form, else None.

        A float when all lanes share it, a (B,) float64 tensor for per-lane parameters; -inf where f
        is unbounded below. ``n`` is theta's dimension (needed only where f* depends on it).
        """
        return None

    def critical_points(self, lane: int = 0) -> list[CriticalPoint] | None:
        """The critical points (roots of f'), sorted by x, where known in closed form.

        Returns None when they are not known (the default; e.g. n-D Rosenbrock, the learning
        problems) or not isolated (e.g. a flat quadratic). ``lane`` selects the lane of per-lane
        parameters (ignored when they are shared). See :class:`CriticalPoint` for what x means on
        a separable landscape of any dimension. Callers must test for None, not for the method.
        """
        return None

    # -- lanes -------------------------------------------------------------------------------

    def _lane_params(self) -> dict[str, torch.Tensor]:
        """The parameters stored with a lane dimension of size > 1: attribute -> tensor."""
        for pname in self.PARAMS:
            if pname not in self.LANE_DIMS and isinstance(getattr(self, pname, None), torch.Tensor):
                raise TypeError(f"{type(self).__name__}: tensor parameter '{pname}' has no entry "
                                f"in LANE_DIMS (declare its number of non-lane dimensions)")
        out = {}
        for pname, lead in self.LANE_DIMS.items():
            p = getattr(self, pname, None)
            if isinstance(p, torch.Tensor) and p.dim() > lead and p.shape[0] != 1:
                out[pname] = p
        return out

    def n_lanes(self) -> int | None:
        """Number of lanes the per-lane parameters hold; None when every parameter is shared
        (numbers, per-coordinate (n,) vectors, (n, n) matrices or a lane dimension of size 1):
        such a landscape works with any number of lanes. ConfigError if the counts disagree."""
        counts = {k: int(p.shape[0]) for k, p in self._lane_params().items()}
        if not counts:
            return None
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{k} has {b}" for k, b in counts.items())
            raise ConfigError(f"parameters of {self.name} have inconsistent lane counts: {detail}")
        return next(iter(counts.values()))

    def subset(self, idx: torch.Tensor) -> "Landscape":
        """The same landscape restricted to lanes ``idx`` (1-D long tensor of lane indices, or a
        boolean mask over the lanes; repeats allowed): per-lane parameters are indexed along
        their lane dimension, shared ones are kept. A landscape whose parameters are all shared
        (``n_lanes() is None``) returns itself. The result is a shallow copy: data and shared
        parameters are not copied."""
        lanes = self._lane_params()
        if not lanes:
            return self
        B = self.n_lanes()
        idx = torch.as_tensor(idx)
        if idx.dtype == torch.bool:
            if idx.shape != (B,):
                raise IndexError(f"boolean lane mask of shape {tuple(idx.shape)} for {B} lanes")
            idx = idx.nonzero().reshape(-1)
        if idx.dim() != 1 or idx.is_floating_point() or idx.is_complex():
            raise IndexError(f"lane indices must be a 1-D integer tensor, got dtype {idx.dtype} "
                             f"and shape {tuple(idx.shape)}")
        idx = idx.to(torch.long)
        if idx.numel() and (int(idx.max()) >= B or int(idx.min()) < -B):
            raise IndexError(f"lane index out of range for {self.spec()} with {B} lanes: "
                             f"{idx.tolist()}")
        idx = torch.where(idx < 0, idx + B, idx)
        new = copy.copy(self)
        new.__dict__.pop("_cast_cache", None)
        for pname, p in lanes.items():
            setattr(new, pname, p.index_select(0, idx.to(p.device)))
        return new

    def _lane_value(self, pname: str, lane: int) -> Param:
        """Parameter ``pname`` of lane ``lane`` (a shared parameter, or a size-1 lane dimension,
        is the same for every lane)."""
        p = getattr(self, pname)
        lead = self.LANE_DIMS.get(pname, 0)
        if isinstance(p, torch.Tensor) and p.dim() > lead:
            return p[lane] if p.shape[0] != 1 else p[0]
        return p

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.spec() == other.spec()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.spec()))

    def __repr__(self) -> str:
        return f"<Landscape {self.spec()}>"

    # -- helpers for subclasses -------------------------------------------------------------

    def _cast(self, p: Param, theta: torch.Tensor) -> Param:
        """A stored parameter on theta's dtype/device (Python numbers pass through; cached)."""
        if not isinstance(p, torch.Tensor):
            return p
        if p.dtype == theta.dtype and p.device == theta.device:
            return p
        cache = self.__dict__.setdefault("_cast_cache", {})
        key = (id(p), theta.dtype, theta.device)
        t = cache.get(key)
        if t is None:
            t = p.to(dtype=theta.dtype, device=theta.device)
            cache[key] = t
        return t

    def _lanes(self, p: Param, theta: torch.Tensor, pname: str, lead: int | None = None) -> Param:
        """Cast p and check that its leading lane dimension (when it has ``lead`` extra dims) is 1 or B.

        ``lead`` is the number of dimensions of a parameter that is NOT per lane (0 for a lane
        scalar, 1 for a vector, 2 for a matrix); by default ``LANE_DIMS[pname]`` (1 when the
        class does not declare it). A lane scalar (B,) is returned as (B, 1) so that it
        broadcasts against (B, n).
        """
        if lead is None:
            lead = self.LANE_DIMS.get(pname, 1)
        t = self._cast(p, theta)
        if not isinstance(t, torch.Tensor) or t.dim() <= lead:
            return t
        B = theta.shape[0]
        if t.shape[0] not in (1, B):
            raise ConfigError(f"parameter '{pname}' of {self.name} has {t.shape[0]} lane values "
                              f"but theta has {B} lanes")
        return t.reshape(-1, 1) if lead == 0 else t


class Separable(Landscape):
    """f(theta) = sum_i phi(theta_i): subclasses give phi, phi' and phi'' elementwise.

    phi' and phi'' are written once, as the static ``dphi_point(x, p)`` and ``d2phi_point(x, p)``
    over plain arithmetic (see :mod:`core.pointwise`), with ``p`` the values of :attr:`POINT_PARAMS`
    in order (``p[0]``, ...); :meth:`dphi` and :meth:`d2phi` evaluate them on tensors and the
    compiled engine compiles the same functions (:mod:`landscapes.compiled`: phi' for every flow,
    phi'' for the Newton flows of :mod:`flows.newton`). A point function may return a plain number
    where it does not depend on x (a constant phi''); :meth:`d2phi` broadcasts it to x's shape.
    """

    #: lane-scalar parameters that ``dphi_point`` and ``d2phi_point`` read, in the order of ``p``
    POINT_PARAMS: tuple[str, ...] = ()

    @abc.abstractmethod
    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise phi(x), x of shape (B, n)."""

    #: phi'(x, p) for one value (or elementwise on tensors), p the POINT_PARAMS values; a static
    #: method of the subclass. A subclass may instead override :meth:`dphi` (torch engine only).
    dphi_point = None

    def dphi(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise phi'(x)."""
        if self.dphi_point is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither dphi_point nor dphi")
        return self.dphi_point(x, self._point_params(x))

    #: phi''(x, p) for one value (or elementwise on tensors), same ``p`` as ``dphi_point``; a static
    #: method of the subclass. A subclass may instead override :meth:`d2phi` (torch engine only).
    d2phi_point = None

    def _point_params(self, x: torch.Tensor) -> tuple:
        return tuple(self._lanes(getattr(self, k), x, k, lead=0) for k in self.POINT_PARAMS)

    def d2phi(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise phi''(x)."""
        if self.d2phi_point is None:
            raise NotImplementedError(f"{type(self).__name__} defines neither d2phi_point nor d2phi")
        h = self.d2phi_point(x, self._point_params(x))
        if not isinstance(h, torch.Tensor):
            return torch.full_like(x, float(h))
        return h if h.shape == x.shape else h.expand(x.shape).contiguous()

    #: phi3(x, p) = phi'''(x), same ``p``; optional: where it is None, :meth:`d3phi`
    #: differentiates :meth:`d2phi` by autograd (the modified-equation flows read it)
    d3phi_point = None

    def d3phi(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise phi'''(x): ``d3phi_point`` where the landscape writes it, else autograd of
        :meth:`d2phi` (kept differentiable in x when x requires grad)."""
        if self.d3phi_point is not None:
            t = self.d3phi_point(x, self._point_params(x))
            if not isinstance(t, torch.Tensor):
                return torch.full_like(x, float(t))
            return t if t.shape == x.shape else t.expand(x.shape).contiguous()
        with torch.enable_grad():
            xx = x if x.requires_grad else x.detach().requires_grad_(True)
            h = self.d2phi(xx)
            if not h.requires_grad:
                return torch.zeros_like(x)
            (t,) = torch.autograd.grad(h.sum(), xx, create_graph=x.requires_grad, allow_unused=True)
        return torch.zeros_like(x) if t is None else t

    def third_contraction(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """T[v, v] = phi'''(theta_i) v_i^2 per coordinate (the third derivative is diagonal)."""
        return self.d3phi(theta) * vec * vec

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        return self.phi(theta).sum(dim=-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        return self.dphi(theta)

    def hessian_diag(self, theta: torch.Tensor) -> torch.Tensor:
        return self.d2phi(theta)

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        return self.d2phi(theta) * vec

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        return torch.diag_embed(self.d2phi(theta))


def collapse(values: list[float | None]) -> float | torch.Tensor | None:
    """Per-lane minimum values -> None if any unknown, a float if all equal, else a (B,) tensor."""
    if any(v is None for v in values):
        return None
    if all(v == values[0] for v in values):
        return float(values[0])  # type: ignore[arg-type]
    return torch.tensor(values, dtype=torch.float64)


def trajectory_values(landscape, theta: torch.Tensor) -> torch.Tensor:
    """f along a (B, T, n) trajectory -> (B, T); NaN rows stay NaN.

    One call on the flattened (B T, n) batch when the landscape's parameters are shared by all
    lanes; else one call per output column (per-lane parameters stay aligned with the lanes).
    """
    B, T, n = theta.shape
    params = landscape.params() if hasattr(landscape, "params") else None
    shared = params is not None and all(
        not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[0] == 1 for v in params.values())
    if shared:
        return landscape.value(theta.reshape(B * T, n)).reshape(B, T)
    cols = [landscape.value(theta[:, j]) for j in range(T)]
    return torch.stack(cols, dim=1) if cols else theta.new_zeros(B, 0)
