"""``torch.optim`` versions of Jump Adam and Aitken / Steffensen GD, for any ``nn.Module``.

Both are :class:`torch.optim.Optimizer` subclasses (param groups, ``state_dict`` /
``load_state_dict``, closures) whose per-element update is the one of the lane-batched models
(:func:`discrete.jump_adam.gated_step`, :func:`discrete.aitken.steffensen_step`): a parameter tensor
behaves like a lane of ``jumpadam`` / ``aitkengd`` with torch arithmetic. Hyper-parameters are
validated for every param group (ValueError, one line). Per-step statistics are kept as tensors (no
host synchronisation in :meth:`step`) and turned into Python floats when read.
"""
from __future__ import annotations

from typing import Any

import torch

from core.hyper import check_alpha, check_beta, check_eps, check_floor, check_nonneg

from .aitken import AITKEN_GUARD_DEFAULT, steffensen_step
from .jump_adam import (
    H_MIN_DEFAULT,
    MOTION_FLOOR_DEFAULT,
    SIGN_RULES,
    gated_step,
    sign_rule_code,
    sign_rule_flags,
    step_multiplier,
    torch_adam_step,
)


def _grad(p: torch.Tensor, who: str) -> torch.Tensor:
    if p.grad.is_sparse:
        raise RuntimeError(f"{who} does not support sparse gradients")
    if torch.is_complex(p):
        raise RuntimeError(f"{who} does not support complex parameters")
    return p.grad


class _StatsMixin:
    """Per-group sums (gate count, multiplier sum, element count) of the last step, read lazily."""

    _last: list[tuple[list[torch.Tensor], list[torch.Tensor], int]] | None = None

    def _group_totals(self, i: int) -> tuple[float, float, int]:
        gates, mults, n = self._last[i]
        return float(sum(float(x) for x in gates)), float(sum(float(x) for x in mults)), n

    def group_stats(self) -> list[dict[str, float] | None]:
        """Per param group, for the last :meth:`step`: ``{"gate_fraction", "multiplier", "numel"}``
        over the elements that had a gradient (None for a group without any; [] before a step)."""
        out: list[dict[str, float] | None] = []
        for i in range(len(self._last or ())):
            g, mu, n = self._group_totals(i)
            out.append({"gate_fraction": g / n, "multiplier": mu / n, "numel": n} if n else None)
        return out

    def _overall(self, which: int) -> float | None:
        if not self._last:
            return None
        tot = [self._group_totals(i) for i in range(len(self._last))]
        n = sum(t[2] for t in tot)
        return sum(t[which] for t in tot) / n if n else None

    @property
    def last_gate_fraction(self) -> float | None:
        """Fraction of all elements (with a gradient) whose gate was open in the last step; None
        before the first step."""
        return self._overall(0)

    @property
    def last_multiplier(self) -> float | None:
        """Mean effective step multiplier |executed step| / |base step| over all elements in the
        last step (1 where the base step is 0, see :func:`discrete.jump_adam.step_multiplier`);
        None before the first step."""
        return self._overall(1)


def _closure_loss(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class JumpAdam(_StatsMixin, torch.optim.Optimizer):
    """Jump Adam (SPEC §2; seeds/jump_adam.md, seeds/jump_adam_em_view.md) for any ``nn.Module``.

    Per element, with g_k the gradient at theta_{k-1} and a_k the Adam step (torch.optim.Adam's,
    bit for bit on CPU)::

        h_k = (g_k - g_{k-1}) / (theta_{k-1} - theta_{k-2})  where |motion| > motion_floor
        j_k = -jump_lr g_k / h_k
        theta_k = theta_{k-1} + (clip(j_k, -T|a_k|, T|a_k|) if gate open else a_k)

    The gate is open where the motion exceeds ``motion_floor``, h_k > ``h_min`` and the
    ``sign_rule`` holds ("adam": sign j_k = sign a_k; "gradient": sign g_k = sign g_{k-1}; "both").
    The first step (no previous point) and steps where the gate stays closed everywhere are exactly
    Adam's. The moments follow the gradients on every step, jumps included. See
    :mod:`discrete.jump_adam` for the defaults (h_min = 1e-8, motion_floor = 1e-12: absolute; raise
    them in float32) and the zero-motion / zero-curvature guards.

    Args:
        params: parameters or param groups (every key below may be set per group).
        lr: Adam step size alpha. betas: (beta1, beta2). eps: Adam's epsilon.
        jump_lr: jump scale (1 = full secant step). trust_coefficient: clamp factor T.
        h_min: curvature threshold (>= 0). motion_floor: motion threshold (>= 0).
        sign_rule: "adam", "gradient" or "both" (or their codes 0, 1, 2).

    After each :meth:`step`: :attr:`last_gate_fraction` (fraction of elements whose gate was open),
    :attr:`last_multiplier` (mean |executed step| / |Adam step|, 1 where the Adam step is 0) and
    :meth:`group_stats` (the same per param group).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` (as torch.optim.Adam), ``prev_param``
    (theta_{k-2}) and ``prev_grad`` (g_{k-1}); ``state_dict`` round trips continue bit for bit.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, jump_lr: float = 1.0, trust_coefficient: float = 10.0,
                 h_min: float = H_MIN_DEFAULT, motion_floor: float = MOTION_FLOOR_DEFAULT,
                 sign_rule: str = "adam") -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, jump_lr=jump_lr,
                        trust_coefficient=trust_coefficient, h_min=h_min,
                        motion_floor=motion_floor, sign_rule=sign_rule)
        self._validate(defaults)
        super().__init__(params, defaults)

    @staticmethod
    def _validate(group: dict[str, Any]) -> None:
        check_alpha(group["lr"], "lr")
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        check_beta(betas[0], "beta1 (betas[0])")
        check_beta(betas[1], "beta2 (betas[1])")
        check_eps(group["eps"], "eps")
        check_alpha(group["jump_lr"], "jump_lr")
        check_alpha(group["trust_coefficient"], "trust_coefficient")
        check_floor(group["h_min"], "h_min")
        check_nonneg(group["motion_floor"], "motion_floor")
        sign_rule_code(group["sign_rule"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._validate({**self.defaults, **param_group})      # before the group is added
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["sign_rule"] = SIGN_RULES[sign_rule_code(group["sign_rule"])]

    @staticmethod
    def _init_state(state: dict[str, Any], p: torch.Tensor) -> None:
        state["step"] = torch.tensor(0.0, dtype=torch.float64)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["prev_param"] = p.detach().clone()     # theta_{-1} := theta_0: no motion at k = 1
        state["prev_grad"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss (if any)."""
        loss = _closure_loss(closure)
        self._last = []
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            check_adam, check_grad = sign_rule_flags(sign_rule_code(group["sign_rule"]))
            gates, mults, n = [], [], 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = _grad(p, "JumpAdam")
                state = self.state[p]
                if not state:
                    self._init_state(state, p)
                state["step"] += 1
                k = state["step"].item()
                bc1 = 1 - beta1 ** k
                bc2 = 1 - beta2 ** k
                a, m, v = torch_adam_step(state["exp_avg"], state["exp_avg_sq"], grad, 1 - beta1,
                                          beta2, 1 - beta2, -(lr / bc1), bc2 ** 0.5, eps)
                s, gate = gated_step(a, grad, state["prev_grad"], p - state["prev_param"],
                                     jump_lr=group["jump_lr"], trust=group["trust_coefficient"],
                                     h_min=group["h_min"], motion_floor=group["motion_floor"],
                                     check_adam=check_adam, check_grad=check_grad)
                state["exp_avg"].copy_(m)
                state["exp_avg_sq"].copy_(v)
                state["prev_param"].copy_(p)
                state["prev_grad"].copy_(grad)
                p.add_(s)
                gates.append(gate.sum())
                mults.append(step_multiplier(s, a).sum(dtype=torch.float64))
                n += p.numel()
            self._last.append((gates, mults, n))
        return loss


class AitkenGD(_StatsMixin, torch.optim.Optimizer):
    """Steffensen-accelerated gradient descent (SPEC §2; Aitken 1926, Steffensen 1933) for any
    ``nn.Module``.

    Odd steps are plain GD, theta <- theta - lr g (torch.optim.SGD's update, bit for bit); even
    steps replace the GD point by Aitken's delta-squared extrapolation of the triple
    (x0, x1, x2 = x1 - lr g1) per element, x1 - g1 (x1 - x0) / (g1 - g0), where
    lr |(g1 - g0) / (x1 - x0)| > ``guard`` and x1 != x0, else keep x2 (see :mod:`discrete.aitken`).

    Args:
        params: parameters or param groups. lr: GD step size alpha (> 0). guard: tiny-denominator
            guard on |1 - contraction ratio| (>= 0; the lane model calls it ``aitken_guard``).

    After each :meth:`step`: :attr:`last_gate_fraction` (fraction of elements that took Aitken's
    point: 0 on GD steps), :attr:`last_multiplier` (mean |executed step| / |GD step|) and
    :meth:`group_stats`.
    """

    def __init__(self, params, lr: float = 1e-3, guard: float = AITKEN_GUARD_DEFAULT) -> None:
        defaults = dict(lr=lr, guard=guard)
        self._validate(defaults)
        super().__init__(params, defaults)

    @staticmethod
    def _validate(group: dict[str, Any]) -> None:
        check_alpha(group["lr"], "lr")
        check_nonneg(group["guard"], "guard")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._validate({**self.defaults, **param_group})      # before the group is added
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient; returns the closure's loss (if any)."""
        loss = _closure_loss(closure)
        self._last = []
        for group in self.param_groups:
            lr, guard = group["lr"], group["guard"]
            gates, mults, n = [], [], 0
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = _grad(p, "AitkenGD")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float64)
                    state["prev_param"] = p.detach().clone()
                    state["prev_grad"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                closes = int(state["step"].item()) % 2 == 1
                s, ok = steffensen_step(grad, state["prev_grad"], p - state["prev_param"], lr, guard,
                                        closes)
                state["step"] += 1
                state["prev_param"].copy_(p)
                state["prev_grad"].copy_(grad)
                p.add_(s)
                gates.append(ok.sum())
                mults.append(step_multiplier(s, -(lr * grad)).sum(dtype=torch.float64))
                n += p.numel()
            self._last.append((gates, mults, n))
        return loss


__all__ = ["JumpAdam", "AitkenGD"]
