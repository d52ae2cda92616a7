"""The MSE example of the appendix of arXiv 2411.09734 (Heredia 2024, notebook ``Loss_Appendix``).

One-parameter least squares through the origin: f(theta) = (1/N) sum_k (y_k - theta x_k)^2.

The data are those of the notebook, regenerated with numpy's legacy Mersenne-Twister exactly as it
does (same generator, seed and call order, so bit-identical):

    np.random.seed(42); x = np.random.rand(N); y = slope * x + np.random.normal(0, noise, N)

with N = 1000, slope = 2, noise = 0.1 (a private ``np.random.RandomState(seed)`` gives the same
stream as seeding the global one). The notebook evaluates the loss as
``np.mean((y - theta * x) ** 2)`` and its gradient as ``-2 * np.mean((y - theta * x) * x)``; the
same expressions (residual r = y - theta x) are used here, batched over lanes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from core.errors import ConfigError
from landscapes import params as P
from landscapes.base import CriticalPoint, Landscape


def notebook_data(n_points: int = 1000, seed: int = 42, slope: float = 2.0,
                  noise: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float64 numpy arrays drawn as in the notebook (rand, then normal, one RandomState)."""
    rs = np.random.RandomState(seed)
    x = rs.rand(n_points)
    y = slope * x + rs.normal(0, noise, n_points)
    return x, y


class MSE2024(Landscape):
    """f(theta) = mean_k (y_k - theta x_k)^2 on the data of the 2411.09734 appendix (dim 1).

    grad = -2 mean_k (y_k - theta x_k) x_k; the Hessian is the constant 2 mean x^2. f* is the
    least-squares residual at theta* = mean(x y) / mean(x^2). Defaults reproduce the notebook:
    n_points = 1000, seed = 42, slope = 2, noise = 0.1 (see the module doc for the generation).
    """
    name = "mse2024"
    dim = 1
    description = "MSE of y = theta x on the 2411.09734 appendix data (numpy seed 42, y = 2x + noise)"
    PARAMS = ("n_points", "seed", "slope", "noise")

    def __init__(self, *, n_points: int = 1000, seed: int = 42, slope: float = 2.0,
                 noise: float = 0.1):
        self.n_points = P.integer(n_points, self.name, "n_points", minimum=1)
        self.seed = P.integer(seed, self.name, "seed", minimum=0)
        if not P._is_number(slope) or not math.isfinite(float(slope)):
            raise ConfigError(f"parameter 'slope' of {self.name} must be a finite number, got {slope!r}")
        self.slope = float(slope)
        self.noise = P.nonneg(noise, self.name, "noise")
        x, y = notebook_data(self.n_points, self.seed, self.slope, self.noise)
        self.x = torch.from_numpy(x)
        self.y = torch.from_numpy(y)

    def params(self) -> dict[str, object]:
        return {"n_points": self.n_points, "seed": self.seed, "slope": self.slope,
                "noise": self.noise}

    def _residual(self, theta: torch.Tensor):
        x, y = self._cast(self.x, theta), self._cast(self.y, theta)
        return x, y - theta[:, :1] * x  # (B, N)

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        return self._residual(theta)[1].pow(2).mean(dim=-1)

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        x, r = self._residual(theta)
        return (-2 * (r * x).mean(dim=-1)).unsqueeze(-1)

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, r = self._residual(theta)
        return r.pow(2).mean(dim=-1), (-2 * (r * x).mean(dim=-1)).unsqueeze(-1)

    def hvp(self, theta: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        x = self._cast(self.x, theta)
        return 2 * (x * x).mean() * vec

    def minimizer(self) -> float:
        """theta* = mean(x y) / mean(x^2)."""
        return float((self.x * self.y).mean() / (self.x * self.x).mean())

    def minimum_value(self, n: int | None = None) -> float:
        th = torch.tensor([[self.minimizer()]], dtype=torch.float64)
        return float(self.value(th)[0])

    def critical_points(self, lane: int = 0) -> list[CriticalPoint] | None:
        """[theta*] (the minimum; f'' = 2 mean x^2 > 0); None if every x_k is 0 (f constant)."""
        if not bool((self.x != 0).any()):
            return None
        return [CriticalPoint(self.minimizer(), "min", self.minimum_value())]
