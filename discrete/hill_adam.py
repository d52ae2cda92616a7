"""Hill-ADAM: Adam that toggles between minimising and maximising the loss (SPEC §2).

Sources: ``seeds/hill_adam.md`` (arXiv 2510.03613) and the authors' optimizer
(``2manikan/Hill-ADAM``, ``updated_optimizer.py``), whose bookkeeping ``variant="original"``
reproduces. Written here from the semantics; no code is copied.

Notation: step k evaluates L_k = f(theta_{k-1}) and g_k = grad f(theta_{k-1}) at the current,
pre-update parameters; sigma in {+1, -1} is the direction (+1 descend, -1 ascend); a_k is the Adam
descent step (theta_{k-1} + a_k is torch.optim.Adam's iterate with this lane's moments and step
counter); ``best`` is the lowest recorded loss and ``best_theta`` the parameters at which it was
evaluated (pre-update: theta_{k-1}, not theta_k).

Variant 0, ``"original"`` (the authors' code; ``delta``, ``gamma``, ``gamma_low`` absolute)
--------------------------------------------------------------------------------------------
Three tests, in this order, each skipped once an earlier one fired on the same step:

1. plateau: L_{k-1} was kept (see 4.) and |L_k - L_{k-1}| < delta  ->  sigma = -sigma, reset;
2. dead end: L_k > gamma  ->  sigma = +1; reset only if the flag ``armed`` is set; armed = False.
   Otherwise armed = True;
3. floor: L_k < gamma_low  ->  sigma = -1; reset if armed (always true here: step 2's "otherwise"
   has just re-armed it, so in the authors' code *every* step below the floor resets, not only the
   first; reproduced as such); armed = False. Otherwise armed = True.
4. a step on which any test fired *forgets* L_k: it records no best loss, and the next step skips
   the plateau test (L_{k-1} is "None" in the authors' code). Otherwise L_k is kept and recorded
   into ``best`` when lower.

A reset sets m = v = 0 and the step counter to 0 *before* this step's update, so the update after
a reset is a fresh Adam step (size alpha per coordinate, along sign(sigma g_k) up to eps). The
direction set by the tests applies to the same step's update: theta_k = theta_{k-1} + sigma a_k.
The authors' weight-decay line (``grad.add(param, alpha=wd)``, not in place) has no effect; no
weight decay is reproduced. Their ``maximize`` start is not offered.

Variant 1, ``"robust"`` (ours; ``delta`` relative, ``gamma`` relative to the best loss)
------------------------------------------------------------------------------------
Measured failure modes of the original (README "Hill-ADAM"): (i) after a descent from a steep
region, Adam's second moment remembers the large gradients, its steps shrink and
|L_k - L_{k-1}| < delta fires far from any minimum (on the sextic from x0 = 2, at |g| = 0.5);
(ii) an Adam ascent slows down near a crest (the gradient vanishes there), the plateau test fires
*before* the crest and the next descent returns to the same minimum; (iii) the ascent direction is
whatever sign g has at the converged point, so an ascent that ran into a dead end is repeated the
same way after the next descent, forever; (iv) the absolute gamma = 200 means nothing for a loss
that lives above 200 (every step is a dead end: nothing is ever recorded) or far below it; (v) a
forgotten loss was a real evaluation, so forgetting it can lose the best point. The robust rules:

* scale thr_k = delta * max(1, |L_k|): relative to the loss above 1, absolute below (a loss near 0
  does not make the test impossible). Not offset-invariant: f + 1e6 gets a larger threshold;
* descent (sigma = +1) ends at a plateau when, on a step on which neither rule below fired,
  all three hold: |L_k - L_{k-1}| < thr_k; the loss change is not growing,
  |L_k - L_{k-1}| <= |L_{k-1} - L_{k-2}| (both within this phase: never on the first two steps
  after a phase change, so a descent that starts on a crest, where the change grows, is not a
  plateau); and the point is stationary to first order, alpha * ||g_k||_1 < thr_k (a fresh,
  undamped Adam step of size alpha per coordinate would not change the loss by thr_k either: a
  slow, damped Adam step far from a minimum is not a plateau). Then the lane starts an ascent;
* ascent = a *march*: theta_k = theta_{k-1} + alpha d with a direction d in {-1, 0, 1}^n fixed
  when the ascent starts: d_i = sign(g_i) (uphill), where g_i = 0 the reversed sign of the last
  executed step (back where the descent came from), where that is 0 too +1 (guard: a zero gradient
  still moves). After an ascent that ended in a dead end the next ascent goes the other way,
  d = -d_previous. The march keeps a constant step, so it does not stall below a crest; it ends
  when the loss stops rising, L_k <= L_{k-1} (the crest is behind): reset, descend. m, v and the
  step counter are not advanced during a march (they were reset when it started);
* dead end: L_k > best + gamma * max(1, |best|) (best before this step; never before the first
  recorded loss) -> sigma = +1, reset on the first step of the excursion only; an ascent that ends
  this way makes the next one reverse its direction;
* floor: L_k < gamma_low (absolute, as the original) -> an ascent (a march uphill, d as above) with
  the reset on the first step of the excursion only;
* while the dead-end or floor rule fires, the plateau and crest tests are not applied;
* every finite loss is recorded (L_k < best -> best = L_k, best_theta = theta_{k-1}).

Lanes and ``torch.optim``
-------------------------
The decision logic is written once, :func:`decide`, over (B,) float64 tensors (decisions are made
in float64 whatever the working dtype). The lane model :class:`HillAdamLanes` (``hilladam``) calls
it with B lanes, :class:`HillAdam` (``torch.optim``, closure-based) with one "lane" whose loss is
the closure's value; the Adam arithmetic is :func:`discrete.jump_adam.torch_adam_step` in both, so
a ``hilladam`` lane with ``arithmetic="torch"`` equals :class:`HillAdam` on one parameter bit for
bit on CPU (``tests/test_hill_adam.py``). :class:`HillAdam` makes no host synchronisation: the
decisions are tensor operations on the loss's device.

Recorded per sample (the update that produced theta_k): ``sigma`` (+1 descent, -1 ascent),
``reset`` (1 where m, v and the counter were reset), ``event`` (:data:`EVENTS` code of the test
that fired: 0 none, 1 plateau, 2 crest, 3 dead end, 4 floor), ``best_f`` (lowest recorded loss so
far, inf before any) and ``best_theta`` (its parameters, theta0 before any); the per-lane values are
repeated over the n coordinates. The sample at k = 0 has sigma = +1, no reset, no event.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from core.errors import ConfigError
from core.hyper import (
    LaneValue,
    check_alpha,
    check_beta,
    check_choices,
    check_eps,
    choice_code,
)
from core.method import ALPHA, BETA1, BETA2, DELTA, EPS, GAMMA, GAMMA_LOW, HyperParam

from .base import DiscreteOptimizer, col, lane_pow
from .jump_adam import spec_adam_step, torch_adam_step

#: the variants, in the order of their numeric codes (0, 1) used per lane
VARIANTS = ("original", "robust")
#: event codes recorded per step (``event``): the test that fired on that step
EVENTS = {0: "none", 1: "plateau", 2: "crest", 3: "dead end", 4: "floor"}
PLATEAU, CREST, DEAD_END, FLOOR = 1, 2, 3, 4

F64 = torch.float64


def variant_code(variant: str | float, name: str = "variant") -> int:
    """The code of a variant: "original" -> 0, "robust" -> 1 (the codes pass through)."""
    return choice_code(variant, VARIANTS, name)


def check_variant(x: LaneValue, name: str = "variant") -> None:
    """ConfigError unless every value is a variant name or its code 0, 1."""
    check_choices(x, VARIANTS, name)


VARIANT = HyperParam("variant", 0.0, check_variant,
                     "Hill-ADAM rules: 0 original (the authors' code), 1 robust (relative plateau "
                     "test, crest-crossing ascent, gamma relative to the best loss)", choices=VARIANTS)


# ----------------------------------------------------------------------------- decision logic
def init_decision(B: int, device) -> dict[str, torch.Tensor]:
    """The decision state of B lanes: direction +1, nothing kept, armed, no bounce, best = inf."""
    nan = torch.full((B,), math.nan, dtype=F64, device=device)
    return {"sigma": torch.ones(B, dtype=F64, device=device), "prev": nan,
            "prev_diff": nan.clone(), "armed": torch.ones(B, dtype=torch.bool, device=device),
            "bounced": torch.zeros(B, dtype=torch.bool, device=device),
            "best": torch.full((B,), math.inf, dtype=F64, device=device)}


def decide(st: dict[str, torch.Tensor], L: torch.Tensor, step_l1: torch.Tensor,
           delta: torch.Tensor, gamma: torch.Tensor, gamma_low: torch.Tensor,
           robust: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One step of the switching rules of both variants (module docstring), per lane.

    Args (all (B,), float64 unless noted): ``st`` the decision state (:func:`init_decision`),
    ``L`` = L_k, ``step_l1`` = alpha * ||g_k||_1 (the first-order loss change of a fresh Adam step;
    read by the robust variant only), ``delta``, ``gamma``, ``gamma_low``, ``robust`` (bool).

    Returns (new state, flags): ``reset`` (bool: zero m, v and the counter before the update),
    ``record`` (bool: L_k is a new best), ``march`` (bool: the update is a robust march, not an
    Adam step), ``enter`` (bool: a march starts on this step: choose its direction), ``flip``
    (bool: that direction is the reversed previous one), ``event`` (float code, :data:`EVENTS`).
    """
    sigma, prev, prev_diff, armed = st["sigma"], st["prev"], st["prev_diff"], st["armed"]
    bounced, best = st["bounced"], st["best"]
    diff = (L - prev).abs()                          # NaN where L_{k-1} was not kept
    nan = torch.full_like(L, math.nan)
    plus, minus = torch.ones_like(sigma), -torch.ones_like(sigma)

    # -- original: plateau, then dead end, then floor; a firing test forgets L_k
    o_plat = diff < delta
    o_dead = ~o_plat & (L > gamma)
    o_floor = ~o_plat & ~o_dead & (L < gamma_low)
    o_forget = o_plat | o_dead | o_floor
    o_reset = o_plat | (o_dead & armed) | o_floor     # the floor always finds the flag re-armed
    o_sigma = torch.where(o_plat, -sigma, sigma)
    o_sigma = torch.where(o_dead, plus, torch.where(o_floor, minus, o_sigma))
    o_armed = torch.where(o_dead | o_floor, torch.zeros_like(armed),
                          torch.where(o_plat, armed, torch.ones_like(armed)))

    # -- robust: dead end and floor first; plateau (descent) or crest (ascent) on free steps
    scale = torch.clamp(L.abs(), min=1.0)
    thr = delta * scale
    limit = best + gamma * torch.clamp(best.abs(), min=1.0)
    r_dead = L > limit                               # best = inf: inf (or NaN): never
    r_floor = ~r_dead & (L < gamma_low)
    free = ~r_dead & ~r_floor
    descending = sigma > 0
    r_plat = free & descending & (diff < thr) & (diff <= prev_diff) & (step_l1 < thr)
    r_crest = free & ~descending & (L <= prev)
    r_reset = r_plat | r_crest | ((r_dead | r_floor) & armed)
    r_sigma = torch.where(r_plat | r_floor, minus, torch.where(r_crest | r_dead, plus, sigma))
    r_enter = r_plat | (r_floor & armed)
    r_flip = r_plat & bounced
    r_bounced = torch.where(r_dead & ~descending, torch.ones_like(bounced),
                            torch.where(r_plat, torch.zeros_like(bounced), bounced))
    r_armed = free
    r_changed = r_reset | (r_sigma != sigma)

    finite = torch.isfinite(L)
    o_event = torch.where(o_plat, PLATEAU, torch.where(o_dead, DEAD_END,
                                                       torch.where(o_floor, FLOOR, 0)))
    r_event = torch.where(r_dead, DEAD_END, torch.where(r_floor, FLOOR, torch.where(
        r_plat, PLATEAU, torch.where(r_crest, CREST, 0))))
    new_sigma = torch.where(robust, r_sigma, o_sigma)
    new = {
        "sigma": new_sigma,
        "prev": torch.where(robust, torch.where(finite, L, nan), torch.where(o_forget, nan, L)),
        "prev_diff": torch.where(robust & ~r_changed, diff, nan),
        "armed": torch.where(robust, r_armed, o_armed),
        "bounced": torch.where(robust, r_bounced, bounced),
    }
    record = finite & (L < best) & (robust | ~o_forget)
    new["best"] = torch.where(record, L, best)
    flags = {"reset": torch.where(robust, r_reset, o_reset), "record": record,
             "march": robust & (new_sigma < 0), "enter": robust & r_enter, "flip": robust & r_flip,
             "event": torch.where(robust, r_event, o_event).to(F64)}
    return new, flags


def march_direction(g: torch.Tensor, last_sign: torch.Tensor) -> torch.Tensor:
    """d = sign(g) where g != 0, else -sign(last executed step) where that is nonzero, else +1."""
    back = torch.where(last_sign != 0, -last_sign, torch.ones_like(last_sign))
    return torch.where(g != 0, torch.sign(g), back)


# ----------------------------------------------------------------------------- lane-batched model
class HillAdamLanes(DiscreteOptimizer):
    """Hill-ADAM batched over lanes (registered as ``hilladam``); the rules are the module's.

    Hyper-parameters (per lane): ``alpha``, ``beta1``, ``beta2``, ``eps`` (Adam's), ``delta`` =
    1e-4, ``gamma`` = 200, ``gamma_low`` = -1e4 (declared in :mod:`core.method`, shared with
    ``hill-flow``) and ``variant`` (a name or its code: 0 "original", 1 "robust"; per lane, so one
    batch compares them; the CLI takes the codes). Records ``m``, ``v``, ``sigma``, ``reset``,
    ``event``, ``best_f``, ``best_theta`` (module docstring). ``arithmetic="spec"`` takes the Adam
    step from the SPEC formula, ``"torch"`` from torch.optim.Adam's kernels (then a lane equals
    :class:`HillAdam` on one parameter bit for bit on CPU). Extra state (frozen with the lane):
    the decision state of :func:`init_decision` and ``march`` (the march direction d), ``last_sign``
    (sign of the last executed step). :meth:`step` needs the loss ``value``.
    """

    name = "hilladam"
    description = ("Hill-ADAM: Adam that ascends after a loss plateau and descends after a crest "
                   "or dead end, keeping the best point (seeds/hill_adam.md)")
    hyper = (ALPHA, BETA1, BETA2, EPS, DELTA, GAMMA, GAMMA_LOW, VARIANT)
    moment_names = ("m", "v", "sigma", "reset", "event", "best_f", "best_theta")

    def __init__(self, arithmetic: str = "spec", **hyper: LaneValue) -> None:
        var = hyper.get("variant")
        if isinstance(var, str) or (isinstance(var, (list, tuple))
                                    and any(isinstance(r, str) for r in var)):
            vals = [var] if isinstance(var, str) else list(var)
            hyper["variant"] = [float(variant_code(r)) for r in vals]
        super().__init__(arithmetic, **hyper)

    def _prepare_hyper(self, h64, dtype):
        h = super()._prepare_hyper(h64, dtype)
        for key, val in (("b1", h64["beta1"]), ("omb1", 1 - h64["beta1"]), ("b2", h64["beta2"]),
                         ("omb2", 1 - h64["beta2"]), ("eps", h64["eps"])):
            h[key] = col(val, dtype)
        h["half"] = torch.full_like(h64["beta2"], 0.5)
        h["robust"] = h64["variant"] == 1
        return h

    def _init_moments(self, theta0):
        B = theta0.shape[0]
        zeros = torch.zeros_like(theta0)
        out = {"m": zeros, "v": zeros.clone(), "sigma": torch.ones_like(theta0),
               "reset": zeros.clone(), "event": zeros.clone(),
               "best_f": torch.full_like(theta0, math.inf), "best_theta": theta0.clone(),
               "march": zeros.clone(), "last_sign": zeros.clone()}
        out.update({"d_" + k: v for k, v in init_decision(B, theta0.device).items()})
        return out

    def adam_step(self, h, m, v, grad, count):
        """(a_k, m_k, v_k) in this optimizer's arithmetic; ``count`` = k per lane (B,)."""
        h64, dtype = h["h64"], h["dtype"]
        if self.arithmetic == "spec":
            bc1 = col(1 - lane_pow(h64["beta1"], count), dtype)
            bc2 = col(1 - lane_pow(h64["beta2"], count), dtype)
            return spec_adam_step(m, v, grad, h["alpha"], h["b1"], h["omb1"], h["b2"], h["omb2"],
                                  h["eps"], bc1, bc2)
        bc1 = 1 - lane_pow(h64["beta1"], count)
        bc2 = 1 - lane_pow(h64["beta2"], count)
        return torch_adam_step(m, v, grad, h["omb1"], h["b2"], h["omb2"],
                               col(-(h64["alpha"] / bc1), dtype),
                               col(lane_pow(bc2, h["half"]), dtype), h["eps"])

    def step(self, state, k, grad, value=None, oracle=None):
        if value is None:
            raise ConfigError("hilladam needs the loss value at theta_{k-1}")
        h = state["hyper"]
        h64 = h["h64"]
        theta = state["theta"]
        L = value.detach().to(F64)
        step_l1 = h64["alpha"] * grad.abs().to(F64).sum(dim=-1)
        dec = {k_[2:]: v for k_, v in state.items() if k_.startswith("d_")}
        new_dec, fl = decide(dec, L, step_l1, h64["delta"], h64["gamma"], h64["gamma_low"],
                             h["robust"])
        reset = fl["reset"]
        r2 = reset.unsqueeze(-1)
        zeros = torch.zeros_like(theta)
        m0 = torch.where(r2, zeros, state["m"])
        v0 = torch.where(r2, zeros, state["v"])
        count0 = torch.where(reset, torch.zeros_like(state["count"]), state["count"])
        count = count0 + 1
        a, m, v = self.adam_step(h, m0, v0, grad, count)
        march = fl["march"].unsqueeze(-1)
        d_new = torch.where(fl["flip"].unsqueeze(-1), -state["march"],
                            march_direction(grad, state["last_sign"]))
        d = torch.where(fl["enter"].unsqueeze(-1), d_new, state["march"])
        sig = col(new_dec["sigma"], theta.dtype)
        s = torch.where(march, h["alpha"] * d, sig * a)
        rec = fl["record"]
        new = dict(state)
        new.update(
            theta=theta + s, m=torch.where(march, m0, m), v=torch.where(march, v0, v),
            count=torch.where(fl["march"], count0, count), march=d,
            last_sign=torch.where(s != 0, torch.sign(s), state["last_sign"]),
            sigma=sig.expand_as(theta).clone(), reset=r2.to(theta.dtype).expand_as(theta).clone(),
            event=col(fl["event"], theta.dtype).expand_as(theta).clone(),
            best_f=col(new_dec["best"], theta.dtype).expand_as(theta).clone(),
            best_theta=torch.where(rec.unsqueeze(-1), theta, state["best_theta"]))
        new.update({"d_" + k_: v_ for k_, v_ in new_dec.items()})
        return new


def best_state(traj) -> tuple[torch.Tensor, torch.Tensor]:
    """((B,) best loss, (B, n) its parameters) at the last sample of each lane of a ``hilladam``
    trajectory (inf and theta0 for a lane that recorded nothing)."""
    idx = (traj.n_out - 1).clamp(min=0)
    ar = torch.arange(traj.n_lanes)
    return traj.extras["best_f"][ar, idx, 0], traj.extras["best_theta"][ar, idx]


# ----------------------------------------------------------------------------- torch.optim
def _grad(p: torch.Tensor) -> torch.Tensor:
    if p.grad.is_sparse:
        raise RuntimeError("HillAdam does not support sparse gradients")
    if torch.is_complex(p):
        raise RuntimeError("HillAdam does not support complex parameters")
    return p.grad


#: the switching hyper-parameters: one loss drives one decision, so they are the same for every
#: param group
_SHARED = ("delta", "gamma", "gamma_low", "variant")


class HillAdam(torch.optim.Optimizer):
    """Hill-ADAM (SPEC §2; seeds/hill_adam.md; the authors' ``2manikan/Hill-ADAM``) for any
    ``nn.Module``, closure-based: ``loss = opt.step(closure)``.

    The closure must zero the gradients, evaluate the loss at the current parameters, call
    ``backward()`` and return the loss (a scalar tensor): the switching rules need the loss value
    (module docstring for the rules of ``variant="original"``, the authors' code, and
    ``variant="robust"``, ours). Per element the update is Adam's (torch.optim.Adam's kernels, bit
    for bit on CPU) times the direction sigma, or in the robust variant's ascent the march
    ``p + lr * d``. The authors' weight-decay line has no effect in their code (a non in-place
    add), so there is no weight decay here.

    Args:
        params: parameters or param groups; ``lr``, ``betas`` and ``eps`` may be set per group.
        lr, betas, eps: Adam's. delta: plateau threshold (>= 0; relative above |L| = 1 in the
            robust variant). gamma: dead end (original: absolute level; robust: above the best
            loss by gamma * max(1, |best|)). gamma_low: floor (absolute; -inf: never).
        variant: "original" or "robust" (or the codes 0, 1). delta, gamma, gamma_low and
            variant are the same for every group (one loss, one decision).

    After each step: :attr:`best_loss` (lowest recorded loss, inf before any), :meth:`best_params`
    (the parameters at which it was evaluated, pre-update; None before any), :meth:`load_best`,
    :attr:`direction` (+1 descending, -1 ascending), :attr:`last_event` (:data:`EVENTS` name) and
    :attr:`resets` / :attr:`events` (counts). No host synchronisation in :meth:`step`; the
    properties synchronise when read.

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` (as torch.optim.Adam), ``best``
    (the parameter at the best loss), ``march`` (the robust march direction), ``last_sign``; the
    decision state is saved under ``"hill"`` in :meth:`state_dict` (round trips continue bit for
    bit).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, delta: float = 1e-4, gamma: float = 200.0,
                 gamma_low: float = -1e4, variant: str = "original") -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, delta=delta, gamma=gamma,
                        gamma_low=gamma_low, variant=variant)
        self._validate(defaults)
        super().__init__(params, defaults)
        self._hill: dict[str, torch.Tensor] | None = None
        self._counts: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _validate(group: dict[str, Any]) -> None:
        try:
            check_alpha(group["lr"], "lr")
            betas = group["betas"]
            if not isinstance(betas, (tuple, list)) or len(betas) != 2:
                raise ConfigError(f"betas must be a pair (beta1, beta2), got {betas!r}")
            check_beta(betas[0], "beta1 (betas[0])")
            check_beta(betas[1], "beta2 (betas[1])")
            check_eps(group["eps"], "eps")
            for hp in (DELTA, GAMMA, GAMMA_LOW):
                hp.validate(group[hp.name])
            variant_code(group["variant"])
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        merged = {**self.defaults, **param_group}
        self._validate(merged)                              # before the group is added
        for key in _SHARED:
            if key in param_group and self.param_groups and \
                    _canon(key, param_group[key]) != _canon(key, self.param_groups[0][key]):
                raise ValueError(f"{key} must be the same for every param group (one loss drives "
                                 f"one decision)")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group["variant"] = VARIANTS[variant_code(group["variant"])]

    # -- the decision state ----------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.param_groups[0]["params"][0].device

    def _decision(self) -> dict[str, torch.Tensor]:
        if self._hill is None:
            self._hill = init_decision(1, self._device())
            z = torch.zeros(1, dtype=torch.long, device=self._device())
            self._counts = {"resets": z, "plateau": z.clone(), "crest": z.clone(),
                            "dead end": z.clone(), "floor": z.clone(), "event": z.clone()}
        return self._hill

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        """Evaluate ``closure`` (loss and gradients at the current parameters), apply the switching
        rules and one update; returns the closure's loss."""
        if closure is None:
            raise RuntimeError("HillAdam needs a closure that evaluates the loss (with gradients) "
                               "and returns it: opt.step(closure)")
        with torch.enable_grad():
            loss = closure()
        if not isinstance(loss, torch.Tensor):
            loss = torch.as_tensor(float(loss), dtype=F64)
        st = self._decision()
        dev = st["best"].device
        L = loss.detach().to(device=dev, dtype=F64).reshape(1)
        g0 = self.param_groups[0]
        step_l1 = torch.zeros(1, dtype=F64, device=dev)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    step_l1 = step_l1 + group["lr"] * _grad(p).abs().sum(dtype=F64).to(dev)
        one = torch.ones(1, dtype=F64, device=dev)
        new, fl = decide(st, L, step_l1, one * g0["delta"], one * g0["gamma"],
                         one * g0["gamma_low"],
                         torch.full((1,), variant_code(g0["variant"]) == 1, device=dev))
        reset, record, march = fl["reset"], fl["record"], fl["march"]
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                state = self.state[p]
                if "best" not in state:
                    state["best"] = p.detach().clone()
                state["best"].copy_(torch.where(record.to(p.device), p, state["best"]))
                if p.grad is None:
                    continue
                grad = _grad(p)
                if "step" not in state:
                    state["step"] = torch.zeros((), dtype=F64, device=dev)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p,
                                                           memory_format=torch.preserve_format)
                    state["march"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["last_sign"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                rp = reset.to(p.device).reshape(())
                zeros = torch.zeros_like(p)
                m0 = torch.where(rp, zeros, state["exp_avg"])
                v0 = torch.where(rp, zeros, state["exp_avg_sq"])
                count0 = torch.where(reset, torch.zeros_like(state["step"]), state["step"]).reshape(1)
                count = count0 + 1
                bc1 = 1 - lane_pow(one * beta1, count)
                bc2 = 1 - lane_pow(one * beta2, count)
                a, m, v = torch_adam_step(m0, v0, grad, 1 - beta1, beta2, 1 - beta2,
                                          (-((one * lr) / bc1)).to(p.dtype).to(p.device).reshape(()),
                                          lane_pow(bc2, one * 0.5).to(p.dtype).to(p.device)
                                          .reshape(()), eps)
                mp = march.to(p.device).reshape(())
                d_new = torch.where(fl["flip"].to(p.device).reshape(()), -state["march"],
                                    march_direction(grad, state["last_sign"]))
                d = torch.where(fl["enter"].to(p.device).reshape(()), d_new, state["march"])
                sig = new["sigma"].to(dtype=p.dtype, device=p.device).reshape(())
                s = torch.where(mp, lr * d, sig * a)
                state["exp_avg"].copy_(torch.where(mp, m0, m))
                state["exp_avg_sq"].copy_(torch.where(mp, v0, v))
                state["step"] = torch.where(march, count0, count).reshape(())
                state["march"].copy_(d)
                state["last_sign"].copy_(torch.where(s != 0, torch.sign(s), state["last_sign"]))
                p.add_(s)
        self._hill = new
        c = self._counts
        c["resets"] = c["resets"] + reset.long()
        ev = fl["event"].long()
        for code, label in EVENTS.items():
            if code:
                c[label] = c[label] + (ev == code).long()
        c["event"] = ev
        return loss

    # -- results -----------------------------------------------------------------------------
    @property
    def best_loss(self) -> float:
        """The lowest recorded loss (inf before any)."""
        return math.inf if self._hill is None else float(self._hill["best"][0])

    def best_params(self) -> list[torch.Tensor] | None:
        """Copies of the parameters (every group, in order) at which :attr:`best_loss` was
        evaluated; None before any loss was recorded."""
        if not math.isfinite(self.best_loss):
            return None
        return [self.state[p]["best"].clone() for p in self._params()]

    @torch.no_grad()
    def load_best(self) -> None:
        """Copy the best parameters into the model (no-op before any loss was recorded)."""
        best = self.best_params()
        if best is not None:
            for p, b in zip(self._params(), best):
                p.copy_(b)

    @property
    def direction(self) -> int:
        """+1 while descending, -1 while ascending (the direction of the last update)."""
        return 1 if self._hill is None else int(self._hill["sigma"][0])

    @property
    def last_event(self) -> str:
        """The test that fired on the last step (:data:`EVENTS`)."""
        return "none" if self._counts is None else EVENTS[int(self._counts["event"][0])]

    @property
    def resets(self) -> int:
        """How many steps reset m, v and the step counter."""
        return 0 if self._counts is None else int(self._counts["resets"][0])

    @property
    def events(self) -> dict[str, int]:
        """How many steps each test fired on (``"plateau"``, ``"crest"``, ``"dead end"``,
        ``"floor"``)."""
        c = self._counts
        return {label: (0 if c is None else int(c[label][0])) for code, label in EVENTS.items()
                if code}

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        if self._hill is not None:
            sd["hill"] = {k: v.clone() for k, v in {**self._hill, **{
                "count_" + k: v for k, v in self._counts.items()}}.items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        sd = dict(state_dict)
        hill = sd.pop("hill", None)
        super().load_state_dict(sd)
        if hill is None:
            self._hill = self._counts = None
            return
        dev = self._device()
        self._hill = {k: v.clone().to(dev) for k, v in hill.items() if not k.startswith("count_")}
        self._counts = {k[6:]: v.clone().to(dev) for k, v in hill.items() if k.startswith("count_")}


def _canon(key: str, val: Any) -> Any:
    return variant_code(val) if key == "variant" else float(val)


__all__ = ["HillAdamLanes", "HillAdam", "decide", "init_decision", "march_direction",
           "variant_code", "check_variant", "best_state", "VARIANT", "VARIANTS", "EVENTS"]
