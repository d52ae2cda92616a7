"""Per-lane powers equal to Python's ``float ** float`` (shared by both discrete engines)."""
from __future__ import annotations

import math

import torch

#: at most this many elements are raised with Python's own pow, one by one
_SCALAR_LIMIT = 64


def _pow(x: float, y: float) -> float:
    """x ** y by libm, with torch's answers where Python raises (nan, inf)."""
    try:
        return math.pow(x, y)
    except ValueError:
        return math.nan
    except (ZeroDivisionError, OverflowError):
        return math.inf


def lane_pow(base: torch.Tensor, expo: torch.Tensor) -> torch.Tensor:
    """Elementwise ``base ** expo`` for float64 tensors, equal to Python's ``float ** float``
    (libm ``pow``, what ``torch.optim`` uses for ``beta ** step``), whatever the lane count.

    On CPU the vectorised ``torch.pow`` kernel (SLEEF) may differ from libm ``pow`` in the last bit,
    and which elements take the vectorised path depends on the size and layout. So: one base and
    one exponent for all elements (the usual case: one beta, one step count) is one Python pow;
    up to 64 elements are raised one by one in Python; larger tensors go to torch as strided
    (non-contiguous) views, which makes its kernel use the scalar ``std::pow`` for every element
    (a 1-element or tiny tensor counts as contiguous whatever its strides, hence the two cases
    before). On other devices plain ``torch.pow`` is used.
    """
    base, expo = torch.broadcast_tensors(base, expo)
    if base.device.type != "cpu":
        return torch.pow(base, expo)
    b, e = base.reshape(-1), expo.reshape(-1)
    n = b.numel()
    if n == 0:
        return torch.empty_like(base)
    b0, e0 = float(b[0]), float(e[0])
    if bool((b == b0).all()) and bool((e == e0).all()):
        return torch.full_like(base, _pow(b0, e0))
    if n <= _SCALAR_LIMIT:
        vals = [_pow(x, y) for x, y in zip(b.tolist(), e.tolist())]
        return torch.tensor(vals, dtype=base.dtype).reshape(base.shape)
    pair = torch.stack([b, e], dim=1)
    return torch.pow(pair[:, 0], pair[:, 1]).reshape(base.shape)
