"""Jump Adam: Adam with a gated per-coordinate secant jump (SPEC §2).

Sources: ``seeds/jump_adam.md`` (the diagonal secant estimator, the jump, the gate and the trust
clamp) and ``seeds/jump_adam_em_view.md`` (the jump as Aitken / Steffensen acceleration of the
fixed-point iteration; see :mod:`discrete.aitken`).

The update, per element, with g_k = grad f(theta_{k-1}) and theta_{-1} := theta_0, g_0 := 0 (so the
first step sees no motion and is always Adam's)::

    a_k     = Adam step (SPEC §2: theta_{k-1} + a_k is torch.optim.Adam's iterate)
    d_k     = theta_{k-1} - theta_{k-2}                          motion
    h_k     = (g_k - g_{k-1}) / d_k        where |d_k| > motion_floor     secant curvature
    j_k     = -jump_lr * g_k / h_k                               secant (diagonal Newton) jump
    open_k  = |d_k| > motion_floor  and  h_k > h_min  and  sign rule
    s_k     = clip(j_k, -T |a_k|, T |a_k|)  if open_k  else  a_k     T = trust_coefficient
    theta_k = theta_{k-1} + s_k

Sign rules (the seed's "consistency check"): ``"adam"`` -- the jump points the way the Adam step
does, sign(j_k) = sign(a_k) != 0; ``"gradient"`` -- the gradient kept its sign, sign(g_k) =
sign(g_{k-1}) != 0 (sliding down a wall, not oscillating across a valley); ``"both"``.

The moments m, v are Adam's and follow the gradients on every step, jump or not: they are running
statistics of g (the gradient does not depend on which step produced theta_{k-1}), so the fallback
Adam step is always the one Adam would take from the current point with the same gradient history.

Reported per step: the gate (1 where open) and the effective step multiplier
mu_k = |s_k| / |a_k| (mu_k = 1 where a_k = 0: the clamp then forces s_k = 0 = a_k), i.e. 1 where the
gate is closed and in [0, T] (to rounding) where it is open.

Defaults: ``jump_lr`` = 1 (full secant step: exact on a quadratic), ``trust_coefficient`` = 10 (the
seed's example), ``h_min`` = 1e-8 and ``motion_floor`` = 1e-12 (absolute; see
:data:`H_MIN_DEFAULT`, :data:`MOTION_FLOOR_DEFAULT`), ``sign_rule`` = "adam" (SPEC §2).

Nothing here divides by a vanishing quantity: the curvature is only formed where the motion exceeds
the floor, the jump only where h > h_min >= 0, and the multiplier only where a_k != 0 (zero
gradient, a repeated point and the first step give the Adam step, finite). A jump that overflows
(h tiny with h_min = 0) is clamped to T |a_k|.

This module holds the per-element math once (:func:`gated_step`, :func:`torch_adam_step`,
:func:`spec_adam_step`, :func:`step_multiplier`); the lane-batched model :class:`JumpAdamLanes`
(registered as ``jumpadam``) and the ``torch.optim`` class :class:`discrete.torch_optim.JumpAdam`
both call it.
"""
from __future__ import annotations

import torch

from core.hyper import LaneValue, check_choices, check_nonneg, choice_code
from core.method import (
    ALPHA,
    BETA1,
    BETA2,
    EPS,
    H_MIN,
    JUMP_LR,
    TRUST_COEFFICIENT,
    HyperParam,
)

from . import updates
from .base import DiscreteOptimizer, col, lane_pow

Scalar = float | torch.Tensor      # a Python number or a tensor broadcastable to the step
Flag = bool | torch.Tensor         # a Python bool or a bool tensor broadcastable to the step

#: default of ``h_min``: curvatures at or below it count as flat (the seed's "h ~ 0": fall back to
#: Adam). Absolute, in units of g / theta; 1e-8 is far below the curvatures of the test landscapes
#: and of typical network weights (1e-3 .. 1e3), so it only rejects secants that are zero to
#: rounding. Raise it (e.g. to 1e-6) in float32.
H_MIN_DEFAULT = 1e-8
#: default of ``motion_floor``: no secant is formed from a motion |d_k| <= 1e-12. Absolute, in units
#: of theta: in float64 the gradient difference of O(1) gradients is then still ~1e-4 accurate
#: relative to an O(1) curvature (rounding 1e-16 / 1e-12); float32 motions near |theta| ~ 1 are
#: >= 6e-8 anyway (raise the floor to ~1e-6 there). The trust clamp bounds whatever slips through.
MOTION_FLOOR_DEFAULT = 1e-12

#: the sign rules, in the order of their numeric codes (0, 1, 2) used per lane
SIGN_RULES = ("adam", "gradient", "both")


def check_sign_rule(x: LaneValue, name: str = "sign_rule") -> None:
    """ConfigError unless every value is a sign-rule name or its code 0, 1, 2."""
    check_choices(x, SIGN_RULES, name)


def sign_rule_code(rule: str | float, name: str = "sign_rule") -> int:
    """The code of a sign rule: "adam" -> 0, "gradient" -> 1, "both" -> 2 (codes pass through)."""
    return choice_code(rule, SIGN_RULES, name)


def sign_rule_flags(code: int | torch.Tensor) -> tuple[Flag, Flag]:
    """(check the Adam-step sign, check the gradient sign) of a code or a tensor of codes."""
    return code != 1, code != 0


# jump_lr, trust_coefficient and h_min are shared with the jump flows: declared once in core.method.
MOTION_FLOOR = HyperParam("motion_floor", MOTION_FLOOR_DEFAULT, check_nonneg,
                          "secant measured only where |theta_{k-1} - theta_{k-2}| > motion_floor")
SIGN_RULE = HyperParam("sign_rule", 0.0, check_sign_rule,
                       "jump gate sign rule: 0 adam (jump agrees with the Adam step), "
                       "1 gradient (sign g_k = sign g_{k-1}), 2 both", choices=SIGN_RULES)


# ----------------------------------------------------------------------------- per-element math
def secant_curvature(g: torch.Tensor, g_prev: torch.Tensor, motion: torch.Tensor,
                     motion_floor: Scalar) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, measured): h = (g - g_prev) / motion where |motion| > motion_floor, else 0."""
    measured = motion.abs() > motion_floor
    h = (g - g_prev) / torch.where(measured, motion, torch.ones_like(motion))
    return torch.where(measured, h, torch.zeros_like(h)), measured


def secant_jump(g: torch.Tensor, h: torch.Tensor, jump_lr: Scalar) -> torch.Tensor:
    """The secant (diagonal Newton) jump -jump_lr * g / h (h must be nonzero where it is used)."""
    return -jump_lr * g / h


def same_sign(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sign(x) == sign(y) != 0, elementwise."""
    return (torch.sign(x) == torch.sign(y)) & (x != 0)


def _unless(cond: torch.Tensor, need: Flag) -> torch.Tensor:
    """``cond`` where ``need``, True elsewhere."""
    if isinstance(need, torch.Tensor):
        return cond | ~need
    return cond if need else torch.ones_like(cond)


def gated_step(a: torch.Tensor, g: torch.Tensor, g_prev: torch.Tensor, motion: torch.Tensor, *,
               jump_lr: Scalar, trust: Scalar, h_min: Scalar, motion_floor: Scalar,
               check_adam: Flag, check_grad: Flag) -> tuple[torch.Tensor, torch.Tensor]:
    """(s_k, open_k) of the module docstring: the executed step and the gate.

    ``a`` is the Adam step a_k, ``g`` = g_k, ``g_prev`` = g_{k-1}, ``motion`` = theta_{k-1} -
    theta_{k-2}; the hyper-parameters are Python numbers or tensors broadcastable to ``a`` (per
    lane: (B, 1)); ``check_adam`` / ``check_grad`` select the sign rule (:func:`sign_rule_flags`).
    """
    h, measured = secant_curvature(g, g_prev, motion, motion_floor)
    curved = measured & (h > h_min)
    j = secant_jump(g, torch.where(curved, h, torch.ones_like(h)), jump_lr)
    gate = curved & _unless(same_sign(j, a), check_adam) & _unless(same_sign(g, g_prev), check_grad)
    bound = trust * a.abs()
    return torch.where(gate, torch.clamp(j, -bound, bound), a), gate


def step_multiplier(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """|s| / |a| elementwise, 1 where a = 0 (the executed step is then 0 as well)."""
    nz = a != 0
    return torch.where(nz, s.abs() / torch.where(nz, a.abs(), torch.ones_like(a)),
                       torch.ones_like(a))


def torch_adam_step(m: torch.Tensor, v: torch.Tensor, g: torch.Tensor, omb1: Scalar, b2: Scalar,
                    omb2: Scalar, neg_step: Scalar, bc2_sqrt: Scalar, eps: Scalar
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a_k, m_k, v_k) in torch.optim.Adam's kernel order (single-tensor CPU path)::

        m_k = lerp(m, g, 1-b1);  v_k = v b2 + ((1-b2) g) g
        a_k = (neg_step * m_k) / (sqrt(v_k) / bc2_sqrt + eps)

    with neg_step = -alpha / (1 - b1^k) and bc2_sqrt = (1 - b2^k)^0.5 computed in float64, so that
    ``theta + a_k`` equals torch's ``theta.addcdiv_(m_k, denom, value=neg_step)`` bit for bit.
    """
    m = torch.lerp(m, g, omb1)
    v = torch.addcmul(v * b2, omb2 * g, g)
    denom = torch.sqrt(v) / bc2_sqrt + eps
    return (neg_step * m) / denom, m, v


def spec_adam_step(m, v, g, alpha, b1, omb1, b2, omb2, eps, bc1, bc2):
    """(a_k, m_k, v_k) with the SPEC §2 formula of :func:`discrete.updates.adam` (its update applied
    at the origin: ``theta + a_k`` equals ``updates.adam(theta, ...)`` bit for bit)."""
    a, m, v = updates.adam(0.0, m, v, g, alpha, b1, omb1, b2, omb2, eps, bc1, bc2)
    return a, m, v


# ----------------------------------------------------------------------------- lane-batched model
class JumpAdamLanes(DiscreteOptimizer):
    """Jump Adam batched over lanes (registered as ``jumpadam``); the update is the module's.

    Hyper-parameters (per lane): ``alpha``, ``beta1``, ``beta2``, ``eps`` (Adam's, declared as
    :class:`discrete.classic.Adam` does), ``jump_lr`` = 1, ``trust_coefficient`` = 10, ``h_min`` =
    1e-8, ``motion_floor`` = 1e-12 and ``sign_rule`` (a name or its code: 0 "adam", 1 "gradient",
    2 "both"; per lane, so one batch can compare the rules; the CLI takes the codes).

    Records ``m``, ``v`` (Adam's moments), ``gate`` (1.0 where the jump replaced the Adam step in
    the update that produced the sample, else 0.0) and ``multiplier`` (|s_k| / |a_k|); the sample at
    k = 0 has gate 0 and multiplier 1. :func:`gate_fraction` and :func:`mean_multiplier` turn them
    into one number per lane and sample. ``arithmetic="spec"`` takes the Adam step from the SPEC
    formula (a lane whose gate never opens equals :class:`discrete.classic.Adam` bit for bit),
    ``"torch"`` from torch.optim.Adam's kernels (equal to ``torch.optim.Adam`` bit for bit on CPU).
    The extra state ``prev_theta`` (theta_{k-2}) and ``prev_grad`` (g_{k-1}) is frozen with the
    lane like every (B, ...) entry.
    """

    name = "jumpadam"
    description = ("Jump Adam: Adam step, or where the gate opens the clamped secant jump "
                   "-jump_lr g/h (seeds/jump_adam.md)")
    hyper = (ALPHA, BETA1, BETA2, EPS, JUMP_LR, TRUST_COEFFICIENT, H_MIN, MOTION_FLOOR, SIGN_RULE)
    moment_names = ("m", "v", "gate", "multiplier")

    def __init__(self, arithmetic: str = "spec", **hyper: LaneValue) -> None:
        rule = hyper.get("sign_rule")
        if isinstance(rule, str) or (isinstance(rule, (list, tuple))
                                     and any(isinstance(r, str) for r in rule)):
            rules = [rule] if isinstance(rule, str) else list(rule)
            hyper["sign_rule"] = [float(sign_rule_code(r)) for r in rules]
        super().__init__(arithmetic, **hyper)

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        for key, val in (("b1", h64["beta1"]), ("omb1", 1 - h64["beta1"]), ("b2", h64["beta2"]),
                         ("omb2", 1 - h64["beta2"]), ("eps", h64["eps"]),
                         ("jump_lr", h64["jump_lr"]), ("trust", h64["trust_coefficient"]),
                         ("h_min", h64["h_min"]), ("motion_floor", h64["motion_floor"])):
            h[key] = col(val, dtype)
        h["half"] = torch.full_like(h64["beta2"], 0.5)
        h["check_adam"], h["check_grad"] = sign_rule_flags(h64["sign_rule"].unsqueeze(-1))
        return h

    def _init_moments(self, theta0):
        zeros = torch.zeros_like(theta0)
        return {"m": zeros, "v": zeros.clone(), "gate": zeros.clone(),
                "multiplier": torch.ones_like(theta0), "prev_theta": theta0.clone(),
                "prev_grad": zeros.clone()}

    def adam_step(self, state, grad, count):
        """(a_k, m_k, v_k) in this optimizer's arithmetic; ``count`` = k per lane (B,)."""
        h = state["hyper"]
        h64, dtype = h["h64"], h["dtype"]
        if self.arithmetic == "spec":
            bc1 = col(1 - lane_pow(h64["beta1"], count), dtype)
            bc2 = col(1 - lane_pow(h64["beta2"], count), dtype)
            return spec_adam_step(state["m"], state["v"], grad, h["alpha"], h["b1"], h["omb1"],
                                  h["b2"], h["omb2"], h["eps"], bc1, bc2)
        bc1 = 1 - lane_pow(h64["beta1"], count)
        bc2 = 1 - lane_pow(h64["beta2"], count)
        neg_step = col(-(h64["alpha"] / bc1), dtype)
        bc2_sqrt = col(lane_pow(bc2, h["half"]), dtype)
        return torch_adam_step(state["m"], state["v"], grad, h["omb1"], h["b2"], h["omb2"],
                               neg_step, bc2_sqrt, h["eps"])

    def step(self, state, k, grad, value=None, oracle=None):
        h = state["hyper"]
        count = state["count"] + 1
        a, m, v = self.adam_step(state, grad, count)
        theta = state["theta"]
        s, gate = gated_step(a, grad, state["prev_grad"], theta - state["prev_theta"],
                             jump_lr=h["jump_lr"], trust=h["trust"], h_min=h["h_min"],
                             motion_floor=h["motion_floor"], check_adam=h["check_adam"],
                             check_grad=h["check_grad"])
        new = dict(state)
        new.update(theta=theta + s, m=m, v=v, count=count, gate=gate.to(theta.dtype),
                   multiplier=step_multiplier(s, a), prev_theta=theta, prev_grad=grad)
        return new


def gate_fraction(traj) -> torch.Tensor:
    """(B, T): the fraction of coordinates whose gate was open in the update producing each sample
    of a ``jumpadam`` (or ``aitkengd``) trajectory (NaN past a lane's last sample)."""
    return traj.extras["gate"].mean(dim=-1)


def mean_multiplier(traj) -> torch.Tensor:
    """(B, T): the mean effective step multiplier |s_k| / |a_k| over coordinates per sample."""
    return traj.extras["multiplier"].mean(dim=-1)


__all__ = ["JumpAdamLanes", "gated_step", "secant_curvature", "secant_jump", "same_sign",
           "step_multiplier", "torch_adam_step", "spec_adam_step", "sign_rule_code",
           "sign_rule_flags", "check_sign_rule", "gate_fraction", "mean_multiplier", "SIGN_RULES",
           "JUMP_LR", "TRUST_COEFFICIENT", "H_MIN", "MOTION_FLOOR", "SIGN_RULE", "H_MIN_DEFAULT",
           "MOTION_FLOOR_DEFAULT"]
