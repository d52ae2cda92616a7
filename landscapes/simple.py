"""Closed-form test functions: quadratic bowls, the shifted parabola, the double well, the sextic.

* :class:`Quadratic`  f = (x - x*)^T A (x - x*), A = diag(diag) or a full symmetric matrix.
* :class:`Shifted`    f = sum_i (x_i - center)^2 (convex test of arXiv 2411.09734, center 4).
* :class:`DoubleWell` f = sum_i (x_i^2 - 1)^2 / 4 (nonconvex test of arXiv 2411.09734).
* :class:`Sextic`     f = sum_i x_i^6 + x_i^5 + 3 x_i^3 + 4 x_i^2 + x_i (Hill-ADAM test).
"""
from __future__ import annotations

import functools
import math

import torch

from core.errors import ConfigError
from landscapes import params as P
from landscapes.base import CriticalPoint, Landscape, Separable, collapse


class Quadratic(Landscape):
    """f(x) = (x - x*)^T A (x - x*);  grad = 2 A (x - x*),  Hessian = 2 A.

    Give either ``diag`` (A = diag(diag): a number, an (n,) list or per-lane (B, n)) or a full
    symmetric ``A`` ((n, n) or per-lane (B, n, n); Python API and spec language). ``center`` = x*
    (a number, (n,) or (B, n)). Defaults: diag = 1, center = 0. The dimension is the length of the
    lists (None when all are numbers). Examples: ``quadratic(center=[3])`` is (x-3)^2,
    ``quadratic(diag=[1,100],center=[1,2])`` is (x-1)^2 + 100 (y-2)^2.
    """
    name = "quadratic"
    description = "(x-x*)^T A (x-x*) with A = diag(diag) or a symmetric matrix A"
    PARAMS = ("diag", "center", "A")
    LANE_DIMS = {"diag": 1, "center": 1, "A": 2}

    def __init__(self, *, diag: object = None, center: object = 0.0, A: object = None):
        if diag is not None and A is not None:
            raise ConfigError("quadratic takes either 'diag' or 'A', not both")
        self.A = None if A is None else P.matrix(A, self.name, "A")
        self.diag = None if self.A is not None else P.vector(1.0 if diag is None else diag, self.name, "diag")
        self.center = P.vector(center, self.name, "center")
        if self.A is not None:
            asym = (self.A - self.A.transpose(-1, -2)).abs().max().item()
            if asym > 1e-12 * (1.0 + self.A.abs().max().item()):
                raise ConfigError(f"parameter 'A' of quadratic must be symmetric (max |A - A^T| = {asym:g})")
        self.dim = self._consistent_dim()

    def _consistent_dim(self) -> int | None:
        shapes = {k: v.shape for k, v in (("diag", self.diag), ("center", self.center), ("A", self.A))
                  if isinstance(v, torch.Tensor)}
        ns = {k: s[-1] for k, s in shapes.items()}
        if len(set(ns.values())) > 1:
            detail = ", ".join(f"{k} has {n}" for k, n in ns.items())
            raise ConfigError(f"quadratic parameters have inconsistent dimensions: {detail}")
        lanes = {k: s[0] for k, s in shapes.items() if len(s) == (3 if k == "A" else 2) and s[0] != 1}
        if len(set(lanes.values())) > 1:
            detail = ", ".join(f"{k} has {b}" for k, b in lanes.items())
            raise ConfigError(f"quadratic parameters have inconsistent lane counts: {detail}")
        return next(iter(ns.values()), None)

    def params(self) -> dict[str, object]:
        return {"diag": self.diag, "center": self.center, "A": self.A}

    def _Av(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """A v per lane."""
        if self.A is None:
            return self._lanes(self.diag, theta, "diag") * v
        A = self._lanes(self.A, theta, "A", lead=2)
        if A.dim() == 2:
            return v @ A  # A symmetric
        return torch.einsum("bij,bj->bi", A, v)

    def _d(self, theta: torch.Tensor) -> torch.Tensor:
        return theta - self._lanes(self.center, theta, "center")

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        d = self._d(theta)
        return (self._Av(theta, d) * d).sum(dim=-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        return 2 * self._Av(theta, self._d(theta))

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        return 2 * self._Av(theta, vec)

    def hessian_diag(self, theta: torch.Tensor) -> torch.Tensor:
        if self.A is None:
            return (2 * self._lanes(self.diag, theta, "diag")) * torch.ones_like(theta)
        A = self._lanes(self.A, theta, "A", lead=2)
        return (2 * torch.diagonal(A, dim1=-2, dim2=-1)) * torch.ones_like(theta)

    def minimum_value(self, n: int | None = None) -> float | torch.Tensor | None:
        """0 where A is positive semidefinite, -inf where it is not (per lane)."""
        if self.A is None:
            d = self.diag if isinstance(self.diag, torch.Tensor) else torch.tensor([self.diag])
            low = d.min(dim=-1).values.reshape(-1)
        else:
            low = torch.linalg.eigvalsh(self.A).min(dim=-1).values.reshape(-1)
        return collapse([0.0 if v >= 0 else -math.inf for v in low.tolist()])

    def critical_points(self, lane: int = 0) -> list[CriticalPoint] | None:
        """[x*] for a 1-D quadratic a (x - x*)^2 (also per coordinate when diag and center are
        numbers, any dimension): a minimum for a > 0, a maximum for a < 0, f = 0 there; None in
        more than one dimension and where a = 0 (every point is critical)."""
        if self.dim not in (None, 1):
            return None
        a, c = (float(torch.as_tensor(self._lane_value(k, lane)).reshape(-1)[0])
                for k in ("A" if self.A is not None else "diag", "center"))
        if a == 0.0:
            return None
        return [CriticalPoint(c, "min" if a > 0 else "max", 0.0)]


class Shifted(Separable):
    """f(x) = sum_i (x_i - center)^2 (any dimension; center a number or one per lane, default 4)."""
    name = "shifted"
    description = "(x - center)^2 summed over coordinates, the convex test of arXiv 2411.09734"
    PARAMS = ("center",)
    LANE_DIMS = {"center": 0}

    def __init__(self, *, center: object = 4.0):
        self.center = P.lane_scalar(center, self.name, "center")

    def params(self) -> dict[str, object]:
        return {"center": self.center}

    def phi(self, x):
        return (x - self._lanes(self.center, x, "center", lead=0)) ** 2

    POINT_PARAMS = ("center",)

    @staticmethod
    def dphi_point(x, p):
        return 2 * (x - p[0])

    @staticmethod
    def d2phi_point(x, p):
        return 2.0

    @staticmethod
    def d3phi_point(x, p):
        return 0.0

    def critical_points(self, lane: int = 0) -> list[CriticalPoint]:
        """Per coordinate: the minimum x = center (of lane ``lane``), f = 0."""
        return [CriticalPoint(float(self._lane_value("center", lane)), "min", 0.0)]

    def minimum_value(self, n: int | None = None) -> float:
        return 0.0


class DoubleWell(Separable):
    """f(x) = sum_i (x_i^2 - 1)^2 / 4;  f' = x (x^2 - 1),  f'' = 3 x^2 - 1. Minima x = +-1, max x = 0."""
    name = "doublewell"
    description = "(x^2-1)^2/4 summed over coordinates, the nonconvex test of arXiv 2411.09734"

    def phi(self, x):
        return (x * x - 1) ** 2 / 4

    @staticmethod
    def dphi_point(x, p):
        return x * (x * x - 1)

    @staticmethod
    def d2phi_point(x, p):
        return 3 * x * x - 1

    @staticmethod
    def d3phi_point(x, p):
        return 6 * x

    def critical_points(self, lane: int = 0) -> list[CriticalPoint]:
        """Per coordinate: minima x = -1, 1 (f = 0) and the maximum x = 0 (f = 1/4)."""
        return [CriticalPoint(-1.0, "min", 0.0), CriticalPoint(0.0, "max", 0.25),
                CriticalPoint(1.0, "min", 0.0)]

    def minimum_value(self, n: int | None = None) -> float:
        return 0.0


def _sextic(x: float) -> float:
    return x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x


def _dsextic(x: float) -> float:
    return 6 * x ** 5 + 5 * x ** 4 + 9 * x ** 2 + 8 * x + 1


def _d2sextic(x: float) -> float:
    return Sextic.d2phi_point(x, ())


@functools.lru_cache(maxsize=1)
def sextic_critical_points() -> tuple[CriticalPoint, ...]:
    """Real roots of f'(x) = 6x^5 + 5x^4 + 9x^2 + 8x + 1, by bisection to machine precision.

    All real roots lie in |x| <= 1 + 9/6 (Cauchy bound); sign changes are bracketed on a fine grid.
    Result: global min -1.184795, hill (max) -0.699511, local min -0.150873.
    """
    grid = [-2.5 + 5.0 * i / 5000 for i in range(5001)]
    out = []
    for lo, hi in zip(grid[:-1], grid[1:]):
        flo, fhi = _dsextic(lo), _dsextic(hi)
        if flo == 0.0:
            root = lo
        elif flo * fhi >= 0:
            continue
        else:
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mid in (lo, hi):
                    break
                if (_dsextic(mid) < 0) == (flo < 0):
                    lo = mid
                else:
                    hi = mid
            root = 0.5 * (lo + hi)
        out.append(CriticalPoint(root, "min" if _d2sextic(root) > 0 else "max", _sextic(root)))
    return tuple(out)


class Sextic(Separable):
    """f(x) = sum_i x_i^6 + x_i^5 + 3 x_i^3 + 4 x_i^2 + x_i (Hill-ADAM test).

    f' = 6x^5 + 5x^4 + 9x^2 + 8x + 1,  f'' = 30x^4 + 20x^3 + 18x + 8. Per coordinate: global min
    -1.184795, hill -0.699511, local min -0.150873 (:func:`sextic_critical_points`).
    """
    name = "sextic"
    description = "x^6 + x^5 + 3x^3 + 4x^2 + x (Hill-ADAM test: two minima, hill at -0.6995)"

    def phi(self, x):
        x2 = x * x
        return x2 * x2 * x2 + x2 * x2 * x + 3 * x2 * x + 4 * x2 + x

    @staticmethod
    def dphi_point(x, p):
        x2 = x * x
        return 6 * x2 * x2 * x + 5 * x2 * x2 + 9 * x2 + 8 * x + 1

    @staticmethod
    def d2phi_point(x, p):
        x2 = x * x
        return 30 * x2 * x2 + 20 * x2 * x + 18 * x + 8

    @staticmethod
    def d3phi_point(x, p):
        x2 = x * x
        return 120 * x2 * x + 60 * x2 + 18

    def critical_points(self, lane: int = 0) -> list[CriticalPoint]:
        """Per coordinate (no parameters: the same for every lane)."""
        return list(sextic_critical_points())

    def minimum_value(self, n: int | None = None) -> float:
        """n * f(x_min) with x_min = -1.184795... (n defaults to 1)."""
        fmin = min(p.f for p in sextic_critical_points() if p.kind == "min")
        return (1 if n is None else n) * fmin
