"""Small independent landscapes the optimizer tests share (not the library's own)."""
from __future__ import annotations

import torch

from landscapes.base import Landscape


class DiagQuad(Landscape):
    """f = sum_i d_i (x_i - c_i)^2, d and c of shape (B, n) or (n,)."""

    name = "test_diagquad"

    def __init__(self, d, c):
        self.d, self.c = torch.as_tensor(d), torch.as_tensor(c)

    def value(self, theta):
        return (self.d.to(theta) * (theta - self.c.to(theta)) ** 2).sum(-1)

    def grad(self, theta):
        return 2 * self.d.to(theta) * (theta - self.c.to(theta))

    def spec(self):
        return "test_diagquad"
