"""Small learning problems on fixed synthetic data (seed experiments 4 and 5 of polyak_root_step).

* :class:`LinReg`  -- MSE of y = w x + b, theta = (w, b).
* :class:`TinyMLP` -- MSE of a one-hidden-layer network with x^2 activation, parameters flattened.

The data are drawn once, at construction, in float64 on the CPU from ``torch.Generator`` seeded with
``seed`` (so they are identical on every machine), and cast to theta's dtype/device at evaluation.
"""
from __future__ import annotations

import torch

from core.validation import check_memory
from landscapes import params as P
from landscapes.base import Landscape


def _check_data_size(name: str, n_points: int, width: int = 1) -> None:
    """Refuse data that would not fit in memory, before drawing it (x, y, noise and one batched
    evaluation's residuals and activations, float64)."""
    check_memory(8.0 * n_points * (4 + 6 * (width + 2)), f"{name}(n_points={n_points})",
                 hint="use fewer n_points" + (" or a smaller width" if width > 1 else ""))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


class LinReg(Landscape):
    """f(w, b) = (1/N) sum_k (w x_k + b - y_k)^2 on fixed data (dim 2, theta = (w, b)).

    Data: x_k ~ U[-1, 1] (k = 1..n_points), then y_k = 2 x_k - 1 + noise * z_k with z_k ~ N(0, 1),
    both drawn in that order from ``torch.Generator().manual_seed(seed)``. Defaults: n_points = 64,
    seed = 0, noise = 0.1. grad = (2/N) sum r_k (x_k, 1) with r = w x + b - y; the Hessian is the
    constant 2 [[mean x^2, mean x], [mean x, 1]]. f* is the least-squares residual (closed form).
    """
    name = "linreg"
    dim = 2
    description = "MSE of y = w x + b on fixed synthetic data (y = 2x - 1 + noise), theta = (w, b)"
    PARAMS = ("n_points", "seed", "noise")

    def __init__(self, *, n_points: int = 64, seed: int = 0, noise: float = 0.1):
        self.n_points = P.integer(n_points, self.name, "n_points", minimum=2)
        _check_data_size(self.name, self.n_points)
        self.seed = P.integer(seed, self.name, "seed", minimum=0)
        self.noise = P.nonneg(noise, self.name, "noise")
        gen = _generator(self.seed)
        x = torch.rand(self.n_points, generator=gen, dtype=torch.float64) * 2 - 1
        z = torch.randn(self.n_points, generator=gen, dtype=torch.float64)
        self.x, self.y = x, 2 * x - 1 + self.noise * z

    def params(self) -> dict[str, object]:
        return {"n_points": self.n_points, "seed": self.seed, "noise": self.noise}

    def partition(self) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
        """The parameter tensors of the model and the layers they form, in theta order: one layer
        ``linear`` of the tensors ``w`` (1 element) and ``b`` (1). Read by the Polyak scopes
        (:mod:`discrete.polyak`: tensor, layer)."""
        return (("linear", (("w", 1), ("b", 1))),)

    def _residual(self, theta: torch.Tensor):
        x, y = self._cast(self.x, theta), self._cast(self.y, theta)
        r = theta[:, :1] * x + theta[:, 1:2] - y  # (B, N)
        return x, r

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        return self._residual(theta)[1].pow(2).mean(dim=-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        x, r = self._residual(theta)
        return torch.stack([2 * (r * x).mean(dim=-1), 2 * r.mean(dim=-1)], dim=-1)

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, r = self._residual(theta)
        g = torch.stack([2 * (r * x).mean(dim=-1), 2 * r.mean(dim=-1)], dim=-1)
        return r.pow(2).mean(dim=-1), g

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        x = self._cast(self.x, theta)
        sx, sxx = x.mean(), (x * x).mean()
        return 2 * torch.stack([sxx * vec[:, 0] + sx * vec[:, 1], sx * vec[:, 0] + vec[:, 1]], dim=-1)

    def minimum_value(self, n: int | None = None) -> float:
        """The least-squares residual (1/N) |y - X w*|^2 with X = [x, 1]."""
        X = torch.stack([self.x, torch.ones_like(self.x)], dim=-1)
        sol = torch.linalg.lstsq(X, self.y.unsqueeze(-1)).solution
        return float(self.value(sol.T)[0])


class TinyMLP(Landscape):
    """MSE of a 1 -> width -> 1 network with x^2 activation on fixed teacher data.

    Model: yhat(x) = sum_j v_j (w_j x + b_j)^2 + c; theta = (w_1..w_W, b_1..b_W, v_1..v_W, c), so
    dim = 3 width + 1. Loss f = (1/N) sum_k (yhat(x_k) - y_k)^2. Data, drawn in this order from
    ``torch.Generator().manual_seed(seed)``: x_k ~ U[-1, 1] (k = 1..n_points), a teacher theta ~ N(0, 1)
    of the same architecture, noise z_k ~ N(0, 1); y_k = teacher(x_k) + noise * z_k. With noise = 0
    the teacher attains f* = 0. Defaults: width = 4, n_points = 32, seed = 0, noise = 0.
    Gradient analytic, batched over lanes with einsum (r = yhat - y, s = 2 r / N, z = w x + b):
    df/dv_j = sum_k s_k z_jk^2, df/dc = sum_k s_k, df/dw_j = sum_k 2 s_k v_j z_jk x_k,
    df/db_j = sum_k 2 s_k v_j z_jk. HVPs by autograd through the gradient.
    """
    name = "mlp"
    description = "tiny 1-width-1 MLP with x^2 activation, MSE on fixed teacher data (f* = 0)"
    PARAMS = ("width", "n_points", "seed", "noise")

    def __init__(self, *, width: int = 4, n_points: int = 32, seed: int = 0, noise: float = 0.0):
        self.width = P.integer(width, self.name, "width", minimum=1)
        self.n_points = P.integer(n_points, self.name, "n_points", minimum=1)
        _check_data_size(self.name, self.n_points, self.width)
        self.seed = P.integer(seed, self.name, "seed", minimum=0)
        self.noise = P.nonneg(noise, self.name, "noise")
        self.dim = 3 * self.width + 1
        gen = _generator(self.seed)
        self.x = torch.rand(self.n_points, generator=gen, dtype=torch.float64) * 2 - 1
        self.teacher_theta = torch.randn(1, self.dim, generator=gen, dtype=torch.float64)
        z = torch.randn(self.n_points, generator=gen, dtype=torch.float64)
        self.y = self._predict(self.teacher_theta, self.x)[1][0] + self.noise * z

    def params(self) -> dict[str, object]:
        return {"width": self.width, "n_points": self.n_points, "seed": self.seed, "noise": self.noise}

    def partition(self) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
        """The parameter tensors and the layers they form, in theta order (:meth:`unflatten`): layer
        ``hidden`` = tensors ``w``, ``b`` (width elements each), layer ``output`` = ``v`` (width)
        and ``c`` (1). Read by the Polyak scopes (:mod:`discrete.polyak`: tensor, layer)."""
        W = self.width
        return (("hidden", (("w", W), ("b", W))), ("output", (("v", W), ("c", 1))))

    def unflatten(self, theta: torch.Tensor):
        """(B, dim) -> w (B, W), b (B, W), v (B, W), c (B, 1)."""
        W = self.width
        return theta[:, :W], theta[:, W:2 * W], theta[:, 2 * W:3 * W], theta[:, 3 * W:]

    def _predict(self, theta: torch.Tensor, x: torch.Tensor):
        w, b, v, c = self.unflatten(theta)
        z = w.unsqueeze(-1) * x + b.unsqueeze(-1)  # (B, W, N)
        yhat = torch.einsum("bj,bjn->bn", v, z * z) + c
        return z, yhat

    def _forward(self, theta: torch.Tensor):
        x, y = self._cast(self.x, theta), self._cast(self.y, theta)
        z, yhat = self._predict(theta, x)
        return x, z, yhat - y

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        return self._forward(theta)[2].pow(2).mean(dim=-1)

    def _grad(self, theta, x, z, r):
        v = self.unflatten(theta)[2]
        s = 2 * r / r.shape[-1]  # (B, N)
        t = 2 * v.unsqueeze(-1) * z * s.unsqueeze(1)  # (B, W, N)
        gw, gb = (t * x).sum(dim=-1), t.sum(dim=-1)
        gv = torch.einsum("bjn,bn->bj", z * z, s)
        gc = s.sum(dim=-1, keepdim=True)
        return torch.cat([gw, gb, gv, gc], dim=-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        return self._grad(theta, *self._forward(theta))

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, z, r = self._forward(theta)
        return r.pow(2).mean(dim=-1), self._grad(theta, x, z, r)

    def minimum_value(self, n: int | None = None) -> float | None:
        """0 without noise (the teacher is representable), else unknown."""
        return 0.0 if self.noise == 0 else None
