"""Dense output of the exact-mode integrator: interpolants built from one step's data.

Contract (what :func:`flows.solve.solve` relies on). A stepper (:class:`flows.stepper.Stepper`) names
the interpolation it feeds (``stepper.interpolation``) and returns, with every step, its
``dense_info``: a tuple of per-lane tensors, each with the lane as its leading dimension. The loop
never looks inside; it buffers the tuples of accepted steps, gathers the entries of the steps that
carry output times (every tensor of the tuple indexed alike along its leading dimensions) and asks:

* ``evaluate(dense_info, x, h) -> y``: the solution at t0 + x h, x in [0, 1]; ``x`` and ``h`` have the
  leading shape of the data (e.g. (B,) or (B, W) for W queries per lane), ``y`` the data's shape.
* ``defect(dense_info, h) -> (B, n, d)``: a non-negative interpolation-error indicator per component
  (the loop adds it, scaled like the local error, to the error norm of steps that carry output times).
* ``order``: the interpolant reproduces polynomials of degree ``order``; fed with exact data its local
  error is O(h^(order + 1)). Fed by a stepper of order p the dense output is of order min(p, order).

``h`` is the step length the data belongs to and is passed separately, not stored in ``dense_info``:
the loop places outputs by the step's end points (x = (t - t0)/(t1 - t0)), which may differ from the
stepper's h in the last bit; the defect is taken with the stepper's h.
"""
from __future__ import annotations

import abc

import numpy as np
import torch


def _hermite5_coefficients() -> np.ndarray:
    """C (6, 6): p(x) = sum_k x^k sum_j C[k, j] D_j for data D = (y(0), y'(0), y(1/2), y'(1/2), y(1), y'(1))
    (derivatives with respect to x in [0, 1])."""
    nodes = (0.0, 0.5, 1.0)
    rows = []
    for x in nodes:
        rows.append([x**k for k in range(6)])
        rows.append([k * x ** (k - 1) if k > 0 else 0.0 for k in range(6)])
    V = np.array(rows)          # V @ coeffs = data (ordered y0, y0', ym, ym', y1, y1')
    return np.linalg.inv(V)     # coeffs = inv(V) @ data


_HERMITE5 = _hermite5_coefficients()
#: max over [0, 1] of |x^2 (x - 1/2) (x - 1)^2| (p5 - p4 = c5 times this polynomial)
_Q5_MAX = float(np.abs([(x * x * (x - 0.5) * (x - 1) ** 2) for x in np.linspace(0, 1, 20001)]).max())


def hermite5_defect(data: list[torch.Tensor]) -> torch.Tensor:
    """Interpolation-error indicator of the quintic Hermite dense output (same shape as each datum).

    ``data`` = (y0, h y0', y_mid, h y_mid', y1, h y1'). The quintic p5 and the quartic p4 through the same
    data without y_mid' differ by c5 x^2 (x - 1/2) (x - 1)^2 (c5 = leading coefficient of p5); its maximum
    |c5| max|q| bounds the error of p4 and conservatively indicates that of p5. It is O(h^5) for smooth
    solutions and large where the step does not resolve the solution (e.g. an exactly integrated fast
    transient), so adding it to the error norm of steps that carry output times keeps the dense output
    within tolerance."""
    C = _HERMITE5[5]
    c5 = sum(float(C[j]) * data[j] for j in range(6))
    return c5.abs() * _Q5_MAX


def hermite5_weights(x: torch.Tensor) -> list[torch.Tensor]:
    """Weights w_j(x), x in [0, 1] (any shape), of the quintic Hermite interpolant

        p(x) = w0 y0 + w1 h y0' + w2 y_mid + w3 h y_mid' + w4 y1 + w5 h y1',   y(t0 + x h) ~ p(x)

    through values and derivatives at x = 0, 1/2, 1 (local error O(h^6))."""
    C = torch.as_tensor(_HERMITE5, dtype=x.dtype, device=x.device)
    powers = torch.stack([x**k for k in range(6)], dim=-1)      # (..., 6)
    w = powers @ C                                              # (..., 6)
    return [w[..., j] for j in range(6)]


class Interpolation(abc.ABC):
    """Base class of dense-output interpolants (contract in the module docstring)."""

    #: polynomial degree reproduced exactly (local error O(h^(order+1)) for exact data)
    order: int = 0
    name: str = ""

    @abc.abstractmethod
    def evaluate(self, dense_info: tuple, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The interpolant at t0 + x h (x in [0, 1])."""

    @abc.abstractmethod
    def defect(self, dense_info: tuple, h: torch.Tensor) -> torch.Tensor:
        """Non-negative interpolation-error indicator, shaped like the state."""


def _lead(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """x of shape like.shape[:k] -> broadcastable against ``like`` (trailing singleton dims)."""
    return x.reshape(tuple(x.shape) + (1,) * (like.dim() - x.dim()))


class QuinticHermite(Interpolation):
    """Quintic Hermite interpolant through values and time derivatives at the start, the midpoint and
    the end of a step,

        dense_info = (y0, f0, y_mid, f_mid, y1, f1),   f = dy/dt,
        y(t0 + x h) ~ w0(x) y0 + w1(x) h f0 + w2(x) y_mid + w3(x) h f_mid + w4(x) y1 + w5(x) h f1

    (weights :func:`hermite5_weights`; it reproduces quintics, so its local error for exact data is
    O(h^6)). The defect is :func:`hermite5_defect`, the distance to the quartic through the same data
    without f_mid (O(h^5) on smooth solutions, large over an unresolved fast transient).
    """

    order = 5
    name = "quintic-hermite"

    def evaluate(self, dense_info: tuple, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        Y0, F0, YM, FM, Y1, F1 = dense_info
        W_ = [_lead(q, Y0) for q in hermite5_weights(x)]
        hh = _lead(h, Y0)
        return (W_[0] * Y0 + W_[1] * hh * F0 + W_[2] * YM + W_[3] * hh * FM
                + W_[4] * Y1 + W_[5] * hh * F1)

    def defect(self, dense_info: tuple, h: torch.Tensor) -> torch.Tensor:
        y0, f0, ym, fm, y1, f1 = dense_info
        hh = _lead(h, y0)
        return hermite5_defect([y0, hh * f0, ym, hh * fm, y1, hh * f1])


__all__ = ["Interpolation", "QuinticHermite", "hermite5_defect", "hermite5_weights"]
