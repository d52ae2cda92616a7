"""Rosenbrock landscapes: the paper's 1-D family and the classic n-D valley.

* :class:`Rosenbrock1D` -- f(x) = (1 - x)^2 + c (x^2 - 1)^2 (arXiv 2602.09101, "Rosenbrock-type").
  c = 0 convex (PL), c = 1.5 nonconvex with one minimum, c = 4 bistable.
* :class:`Rosenbrock` -- f(x) = sum_{i=1}^{n-1} b (x_{i+1} - x_i^2)^2 + (a - x_i)^2.
"""
from __future__ import annotations

import math

import torch

from landscapes import params as P
from landscapes.base import CriticalPoint, Landscape, Separable, collapse


def rosenbrock1d_f(x: float, c: float) -> float:
    return (1.0 - x) ** 2 + c * (x * x - 1.0) ** 2


def rosenbrock1d_d2f(x: float, c: float) -> float:
    """f''(x) for one value: :meth:`Rosenbrock1D.d2phi_point` (the one definition)."""
    return Rosenbrock1D.d2phi_point(x, (c,))


def rosenbrock1d_critical_points(c: float) -> list[CriticalPoint]:
    """Critical points of f(x) = (1-x)^2 + c (x^2-1)^2 in closed form, sorted by x.

    f'(x) = -2 (1 - x) + 4 c x (x^2 - 1) = 4c x^3 + (2 - 4c) x - 2 = (x - 1)(4c x^2 + 4c x + 2),
    so x = 1 is always critical (f = 0) and the other two are the roots of x^2 + x + 1/(2c) = 0:
    x = -(1 +- s)/2 with s = sqrt(1 - 2/c), real for c < 0 or c >= 2. They are computed without
    cancellation: x1 = -(1 + s)/2 and x2 = 1/(2c x1) (product of the roots). For c = 4:
    x = -(2 + sqrt2)/4 (local min, f = 3.7303932) and -(2 - sqrt2)/4 (barrier). The kind follows
    f''(x) = 2 + 4c (3x^2 - 1) ('inflection' where it vanishes, e.g. the double root -1/2 at c = 2).
    """
    c = float(c)
    roots = [1.0]
    if c != 0.0:
        disc = 1.0 - 2.0 / c
        if disc >= 0.0:
            x1 = -(1.0 + math.sqrt(disc)) / 2.0
            x2 = 1.0 / (2.0 * c * x1)
            roots += [x1, x2]
    roots.sort()
    unique: list[float] = []
    for r in roots:
        if not unique or abs(r - unique[-1]) > 1e-12 * max(1.0, abs(r)):
            unique.append(r)
    out = []
    for x in unique:
        h = rosenbrock1d_d2f(x, c)
        scale = 2.0 + 4.0 * abs(c) * (3.0 * x * x + 1.0)
        kind = "inflection" if abs(h) <= 1e-9 * scale else ("min" if h > 0 else "max")
        out.append(CriticalPoint(x, kind, rosenbrock1d_f(x, c)))
    return out


class Rosenbrock1D(Separable):
    """f(x) = (1 - x)^2 + c (x^2 - 1)^2 (dim 1; c a number or one per lane, default 1.5).

    f'(x) = -2 (1 - x) + 4 c x (x^2 - 1),  f''(x) = 2 + 4 c (3 x^2 - 1).
    Global minimum x = 1, f = 0 for c >= 0; for c >= 2 also a local minimum and a barrier
    (:meth:`critical_points`). Reference values: f(-1.5; c=1.5) = 8.59375, f(-1.5; c=4) = 12.5.
    """
    name = "rosenbrock1d"
    dim = 1
    description = "(1-x)^2 + c (x^2-1)^2, the paper's 1-D Rosenbrock-type family (c=4 bistable)"
    PARAMS = ("c",)
    LANE_DIMS = {"c": 0}

    def __init__(self, *, c: P.Param | list[float] = 1.5):
        self.c = P.lane_scalar(c, self.name, "c")

    def params(self) -> dict[str, object]:
        return {"c": self.c}

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        c = self._lanes(self.c, x, "c", lead=0)
        return (1 - x) ** 2 + c * (x * x - 1) ** 2

    POINT_PARAMS = ("c",)

    @staticmethod
    def dphi_point(x, p):
        c = p[0]
        return -2 * (1 - x) + 4 * c * x * (x * x - 1)

    @staticmethod
    def d2phi_point(x, p):
        c = p[0]
        return 2 + 4 * c * (3 * x * x - 1)

    @staticmethod
    def d3phi_point(x, p):
        c = p[0]
        return 24 * c * x

    def _c_list(self) -> list[float]:
        return self.c.tolist() if isinstance(self.c, torch.Tensor) else [self.c]

    def critical_points(self, lane: int = 0) -> list[CriticalPoint]:
        """Closed-form critical points for ``c`` (of lane ``lane`` when c is per lane)."""
        return rosenbrock1d_critical_points(float(self._lane_value("c", lane)))

    def minimum_value(self, n: int | None = None) -> float | torch.Tensor | None:
        """min over the local minima (0 at x = 1 for c >= 0); -inf for c < 0 (unbounded below)."""
        vals: list[float | None] = []
        for c in self._c_list():
            if c < 0:
                vals.append(-math.inf)
            else:
                vals.append(min(p.f for p in rosenbrock1d_critical_points(c) if p.kind == "min"))
        return collapse(vals)


class Rosenbrock(Landscape):
    """f(x) = sum_{i=1}^{n-1} b (x_{i+1} - x_i^2)^2 + (a - x_i)^2, x in R^n (n >= 2).

    a, b: numbers or one per lane (defaults 1, 100); n: the dimension (default 2).
    grad_i = -4 b x_i (x_{i+1} - x_i^2) - 2 (a - x_i)  [i < n]  +  2 b (x_i - x_{i-1}^2)  [i > 1];
    the Hessian is tridiagonal: H_ii = [i<n] (12 b x_i^2 - 4 b x_{i+1} + 2) + [i>1] 2b,
    H_{i,i+1} = -4 b x_i. Minimum 0 at (a, a^2) for n = 2 and at (1, ..., 1) for a = 1.
    """
    name = "rosenbrock"
    description = "classic n-D Rosenbrock valley sum b (x_{i+1}-x_i^2)^2 + (a-x_i)^2"
    PARAMS = ("a", "b", "n")
    LANE_DIMS = {"a": 0, "b": 0}

    def __init__(self, *, a: P.Param | list[float] = 1.0, b: P.Param | list[float] = 100.0, n: int = 2):
        self.a = P.lane_scalar(a, self.name, "a")
        self.b = P.lane_scalar(b, self.name, "b")
        self.n = P.integer(n, self.name, "n", minimum=2)
        self.dim = self.n

    def params(self) -> dict[str, object]:
        return {"a": self.a, "b": self.b, "n": self.n}

    def _ab(self, theta: torch.Tensor):
        return self._lanes(self.a, theta, "a", lead=0), self._lanes(self.b, theta, "b", lead=0)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        a, b = self._ab(theta)
        x0, x1 = theta[:, :-1], theta[:, 1:]
        return (b * (x1 - x0 * x0) ** 2 + (a - x0) ** 2).sum(dim=-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        a, b = self._ab(theta)
        x0, x1 = theta[:, :-1], theta[:, 1:]
        d = x1 - x0 * x0
        zero = torch.zeros_like(theta[:, :1])
        lo = -4 * b * x0 * d - 2 * (a - x0)
        hi = 2 * b * d
        return torch.cat([lo, zero], dim=-1) + torch.cat([zero, hi], dim=-1)

    def _tridiag(self, theta: torch.Tensor):
        _, b = self._ab(theta)
        x0, x1 = theta[:, :-1], theta[:, 1:]
        zero = torch.zeros_like(theta[:, :1])
        diag = (torch.cat([12 * b * x0 * x0 - 4 * b * x1 + 2, zero], dim=-1)
                + torch.cat([zero, 2 * b * torch.ones_like(x1)], dim=-1))
        off = -4 * b * x0
        return diag, off

    def hessian_diag(self, theta: torch.Tensor) -> torch.Tensor:
        return self._tridiag(theta)[0]

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        diag, off = self._tridiag(theta)
        zero = torch.zeros_like(theta[:, :1])
        return (diag * vec + torch.cat([off * vec[:, 1:], zero], dim=-1)
                + torch.cat([zero, off * vec[:, :-1]], dim=-1))

    def hessian(self, theta: torch.Tensor) -> torch.Tensor:
        diag, off = self._tridiag(theta)
        return torch.diag_embed(diag) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)

    def minimum_value(self, n: int | None = None) -> float | torch.Tensor | None:
        """0 where attained in closed form (b >= 0 and: n = 2, a in {0, 1} or b = 0); -inf for b < 0."""
        B = max(t.numel() if isinstance(t, torch.Tensor) else 1 for t in (self.a, self.b))
        a = self.a.tolist() if isinstance(self.a, torch.Tensor) else [self.a] * B
        b = self.b.tolist() if isinstance(self.b, torch.Tensor) else [self.b] * B
        if len(a) == 1:
            a = a * B
        if len(b) == 1:
            b = b * B
        vals: list[float | None] = []
        for ai, bi in zip(a, b):
            if bi < 0:
                vals.append(-math.inf)
            elif self.n == 2 or ai in (0.0, 1.0) or bi == 0:
                vals.append(0.0)
            else:
                vals.append(None)
        return collapse(vals)
