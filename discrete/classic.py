"""Classical discrete optimizers (SPEC §2), batched over lanes.

Notation: g_k = grad f(theta_{k-1}), k = 1, 2, ...; all moments start at 0; every operation is
elementwise with per-lane hyper-parameters.

Two floating-point evaluation orders (constructor argument ``arithmetic``):

* ``"spec"`` (default): the SPEC §2 formulas evaluated literally, left to right as written, e.g.
  ``theta - alpha * (m/(1-b1^k)) / (sqrt(v/(1-b2^k)) + eps)`` — what an independent plain
  implementation of the equations computes, bit for bit.
* ``"torch"``: replays ``torch.optim``'s single-tensor CPU kernels in the same order (lerp /
  addcmul / addcdiv), so a lane equals a ``torch.optim`` run bit for bit on CPU.

The two agree to a few ulps per step; on chaotic trajectories (large alpha near a minimum) the
rounding differences grow, so pick the order that matches the code you compare against.
"""
from __future__ import annotations

import torch

from core.method import ALPHA, BETA, BETA1, BETA2, EPS, MOMENTUM

from . import fast, updates
from .base import DiscreteOptimizer, col, lane_pow


class GD(DiscreteOptimizer):
    """Gradient descent: ``theta_k = theta_{k-1} - alpha g_k`` (torch.optim.SGD, momentum 0)."""

    name = "gd"
    description = "gradient descent theta <- theta - alpha g"
    hyper = (ALPHA,)
    moment_names = ()
    compiled_code = fast.GD

    @staticmethod
    def compiled_row(h):
        """Per-lane constants of the compiled update (:mod:`discrete.fast`), float64 (B,) each."""
        return [h["alpha"]]

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["neg_alpha"] = col(-h64["alpha"], dtype)
        return h

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        new = dict(state)
        if self.arithmetic == "spec":
            new["theta"] = updates.gd(state["theta"], grad, h["alpha"])
        else:
            new["theta"] = torch.addcmul(state["theta"], h["neg_alpha"], grad)
        new["count"] = state["count"] + 1
        return new


class HeavyBall(DiscreteOptimizer):
    """Heavy ball in PyTorch SGD-momentum form (dampening 0, no Nesterov)::

        b_1 = g_1,   b_k = mu b_{k-1} + g_k,   theta_k = theta_{k-1} - alpha b_k

    The buffer b is reported as moment ``m``. Hyper-parameters: ``alpha``, ``momentum`` (mu).
    """

    name = "heavyball"
    description = "heavy ball (torch SGD momentum) b <- mu b + g, theta <- theta - alpha b"
    hyper = (ALPHA, MOMENTUM)
    moment_names = ("m",)
    compiled_code = fast.HEAVYBALL

    @staticmethod
    def compiled_row(h):
        """Per-lane constants of the compiled update (:mod:`discrete.fast`), float64 (B,) each."""
        return [h["alpha"], h["momentum"]]

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["neg_alpha"] = col(-h64["alpha"], dtype)
        h["mu"] = col(h64["momentum"], dtype)
        return h

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        first = (state["count"] == 0).unsqueeze(-1)
        buf = torch.where(first, grad, state["m"] * h["mu"] + grad)
        new = dict(state)
        new["m"] = buf
        if self.arithmetic == "spec":
            new["theta"] = updates.heavyball(state["theta"], buf, h["alpha"])
        else:
            new["theta"] = torch.addcmul(state["theta"], h["neg_alpha"], buf)
        new["count"] = state["count"] + 1
        return new


class Adam(DiscreteOptimizer):
    """Adam with bias correction (torch.optim.Adam, no weight decay, no amsgrad)::

        m_k = b1 m_{k-1} + (1-b1) g_k
        v_k = b2 v_{k-1} + (1-b2) g_k^2
        theta_k = theta_{k-1} - alpha (m_k / (1-b1^k)) / (sqrt(v_k / (1-b2^k)) + eps)

    evaluated as torch does: ``denom = sqrt(v_k) / sqrt(1-b2^k) + eps``,
    ``theta_k = theta_{k-1} + (-alpha/(1-b1^k)) * m_k / denom``; k is the per-lane counter
    ``state["count"]``. Hyper-parameters: ``alpha``, ``beta1`` = 0.9, ``beta2`` = 0.999,
    ``eps`` = 1e-8.
    """

    name = "adam"
    description = "Adam with bias correction (SPEC formula; torch.optim.Adam-exact with arithmetic=\"torch\")"
    hyper = (ALPHA, BETA1, BETA2, EPS)
    moment_names = ("m", "v")
    compiled_code = fast.ADAM

    @staticmethod
    def compiled_row(h):
        """Per-lane constants of the compiled update (:mod:`discrete.fast`), float64 (B,) each."""
        return [h["alpha"], h["beta1"], 1 - h["beta1"], h["beta2"], 1 - h["beta2"], h["eps"]]

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["b1"] = col(h64["beta1"], dtype)
        h["omb1"] = col(1 - h64["beta1"], dtype)
        h["b2"] = col(h64["beta2"], dtype)
        h["omb2"] = col(1 - h64["beta2"], dtype)
        h["eps"] = col(h64["eps"], dtype)
        h["half"] = torch.full_like(h64["beta2"], 0.5)
        return h

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        h64, dtype = h["h64"], h["dtype"]
        count = state["count"] + 1
        if self.arithmetic == "spec":
            bc1 = col(1 - lane_pow(h64["beta1"], count), dtype)
            bc2 = col(1 - lane_pow(h64["beta2"], count), dtype)
            theta, m, v = updates.adam(state["theta"], state["m"], state["v"], grad, h["alpha"],
                                       h["b1"], h["omb1"], h["b2"], h["omb2"], h["eps"], bc1, bc2)
            new = dict(state)
            new.update(m=m, v=v, count=count, theta=theta)
            return new
        m = torch.lerp(state["m"], grad, h["omb1"])
        v = torch.addcmul(state["v"] * h["b2"], h["omb2"] * grad, grad)
        bc1 = 1 - lane_pow(h64["beta1"], count)
        bc2 = 1 - lane_pow(h64["beta2"], count)
        neg_step = col(-(h64["alpha"] / bc1), dtype)
        bc2_sqrt = col(lane_pow(bc2, h["half"]), dtype)
        denom = torch.sqrt(v) / bc2_sqrt + h["eps"]
        new = dict(state)
        new.update(m=m, v=v, count=count, theta=torch.addcdiv(state["theta"], neg_step * m, denom))
        return new


class RMSProp(DiscreteOptimizer):
    """RMSProp in PyTorch form (torch.optim.RMSprop, not centered, no momentum)::

        v_k = b v_{k-1} + (1-b) g_k^2
        theta_k = theta_{k-1} - alpha g_k / (sqrt(v_k) + eps)

    ``alpha`` is torch's ``lr`` and ``beta`` (= 0.99) torch's ``alpha``; ``eps`` = 1e-8.
    """

    name = "rmsprop"
    description = "RMSProp v <- b v + (1-b) g^2, theta <- theta - alpha g/(sqrt v + eps)"
    hyper = (ALPHA, BETA, EPS)
    moment_names = ("v",)
    compiled_code = fast.RMSPROP

    @staticmethod
    def compiled_row(h):
        """Per-lane constants of the compiled update (:mod:`discrete.fast`), float64 (B,) each."""
        return [h["alpha"], h["beta"], 1 - h["beta"], h["eps"]]

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["neg_alpha"] = col(-h64["alpha"], dtype)
        h["b"] = col(h64["beta"], dtype)
        h["omb"] = col(1 - h64["beta"], dtype)
        h["eps"] = col(h64["eps"], dtype)
        return h

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        if self.arithmetic == "spec":
            theta, v = updates.rmsprop(state["theta"], state["v"], grad, h["alpha"], h["b"],
                                       h["omb"], h["eps"])
            new = dict(state)
            new.update(v=v, count=state["count"] + 1, theta=theta)
            return new
        v = torch.addcmul(state["v"] * h["b"], h["omb"] * grad, grad)
        avg = torch.sqrt(v) + h["eps"]
        new = dict(state)
        new.update(v=v, count=state["count"] + 1,
                   theta=torch.addcdiv(state["theta"], h["neg_alpha"] * grad, avg))
        return new


class AdaGrad(DiscreteOptimizer):
    """AdaGrad in PyTorch form (torch.optim.Adagrad with lr_decay = 0, initial accumulator 0)::

        G_k = G_{k-1} + g_k^2
        theta_k = theta_{k-1} - alpha g_k / (sqrt(G_k) + eps)

    The accumulator G is reported as moment ``v``. ``eps`` defaults to 1e-8 (SPEC §0), not
    torch's 1e-10: pass ``eps`` explicitly to reproduce torch's default.
    """

    name = "adagrad"
    description = "AdaGrad G <- G + g^2, theta <- theta - alpha g/(sqrt G + eps)"
    hyper = (ALPHA, EPS)
    moment_names = ("v",)
    compiled_code = fast.ADAGRAD

    @staticmethod
    def compiled_row(h):
        """Per-lane constants of the compiled update (:mod:`discrete.fast`), float64 (B,) each."""
        return [h["alpha"], h["eps"]]

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        h["neg_alpha"] = col(-h64["alpha"], dtype)
        h["eps"] = col(h64["eps"], dtype)
        return h

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        if self.arithmetic == "spec":
            theta, G = updates.adagrad(state["theta"], state["v"], grad, h["alpha"], h["eps"])
            new = dict(state)
            new.update(v=G, count=state["count"] + 1, theta=theta)
            return new
        G = torch.addcmul(state["v"], grad, grad)
        std = torch.sqrt(G) + h["eps"]
        new = dict(state)
        new.update(v=G, count=state["count"] + 1,
                   theta=torch.addcdiv(state["theta"], h["neg_alpha"] * grad, std))
        return new


CLASSIC: tuple[type[DiscreteOptimizer], ...] = (GD, HeavyBall, Adam, RMSProp, AdaGrad)

__all__ = ["GD", "HeavyBall", "Adam", "RMSProp", "AdaGrad", "CLASSIC"]
