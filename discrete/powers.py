"""Per-lane powers equal to Python's ``float ** float`` (shared by both discrete engines)."""
from __future__ import annotations

import torch


def lane_pow(base: torch.Tensor, expo: torch.Tensor) -> torch.Tensor:
    """Elementwise ``base ** expo`` for (B,) float64 tensors, equal to Python's ``float ** float``.

    On CPU the vectorised ``torch.pow`` kernel (SLEEF) may differ from libm ``pow`` in the last bit,
    and which lanes take the vectorised path depends on B. Feeding strided (non-contiguous) views
    makes the kernel use its scalar ``std::pow`` path for every element, which is what Python (and
    hence ``torch.optim``) uses for ``beta ** step``. On other devices plain ``torch.pow`` is used.
    """
    base, expo = torch.broadcast_tensors(base, expo)
    if base.device.type != "cpu":
        return torch.pow(base, expo)
    pair = torch.stack([base.reshape(-1), expo.reshape(-1)], dim=1)
    return torch.pow(pair[:, 0], pair[:, 1]).reshape(base.shape)
