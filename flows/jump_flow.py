"""Gated jump flow (SPEC §3.4): the first-order Adam flow whose coordinates switch to the secant jump.

The memory is that of ``adam-flow1`` (SPEC §3.1; this class extends :class:`flows.adam.AdamFlow1`,
whose states, linear part, kernel forcing and Jacobian it reuses): m' = lam1 (g - m),
v' = lam2 (g^2 - v), m(0) = v(0) = 0, and the Adam direction A(s) of SPEC §3. Per coordinate i the
velocity is switched by a gate:

    closed:  theta_i' = -A_i                                                      (adam-flow1)
    open:    theta_i' = -sign(g_i) min( r |g_i| / H_ii , c |A_i| )                (secant jump)

    r = jump_lr / alpha,  c = trust_coefficient,  H_ii = diag of the Hessian of f,
    open  <=>  H_ii > h_min  (curvature gate)  and  g_i A_i > 0  (agreement gate).

Time scaling. t = k alpha as for Adam (SPEC §0): a discrete Jump Adam step of length alpha in t
moves by the Adam step -alpha A_k or by the jump -jump_lr g_k/h_k, clamped to c |alpha A_k|. Per
unit of t the jump is the velocity -r g/H_ii and the clamp is c |A_i|: ``jump_lr`` enters only
through r. In the jump time tau = r t = k jump_lr the unclamped open branch is the diagonal Newton
flow d theta/d tau = -g/diag H (:class:`flows.newton.DiagNewtonFlow` with the same jump_lr/alpha).
Where the gates hold (h_min >= 0) the open direction -sign(g_i) is the secant direction
-g_i/H_ii and agrees with the Adam direction -A_i (the agreement gate), so the open branch is "the
secant jump clamped to c |A_i|" of the spec. Where a gate is held open past its surface by the
dwell rule below, the same formula stays bounded and NaN free (H_ii <= 0 counts as clamped).

Switches. The open/closed switch is a discontinuity of the vector field; the clamp is a continuous
(Lipschitz) kink. All three are located as zero crossings of gate functions by the event machinery
of :func:`flows.solve.solve` (:mod:`flows.events`), per coordinate:

    curvature   c_H = H_ii - h_min
    agreement   c_s = g_i A_i                       (watched only where the curvature gate is open)
    clamp       c_c = r |g_i| - c |A_i| H_ii        (> 0: clamped; watched only where open)

The gate is *latched*: its state is part of the flow state y, components ``curvature``,
``agreement``, ``clamped`` (0/1, no dynamics) and ``t_switch`` (the time of the coordinate's last
gate switch), so the vector field of a step never changes inside it, the step that crosses a surface
is cut at the located root (its interpolant is that of the old branch), and the state is restarted
on the new branch by the event handler (``made_jump``). Each of :meth:`JumpFlow.events` is one
switching event per gate kind whose condition is the smallest signed distance to a switch over the
coordinates (positive while nothing switches), so one event serves any dimension; the handler flips
the coordinates whose distance reached zero. The gate is recorded over time as the trajectory
extras ``gate`` (open), ``clamped`` (open and clamped) and ``curvature`` (0/1 per coordinate and
sample) and the switch times as the event records (index 0 curvature, 1 agreement, 2 clamp).

Initial gate (t = 0: m = v = 0, A = 0). The gate takes its right limit: A(0+) has the sign of g(0)
(m ~ lam1 g0 s, v ~ lam2 g0^2 s), so ``agreement`` = g0 != 0, ``curvature`` = H_ii > h_min, and the
clamp is active (c |A| = 0 < r |g|), where the open velocity -c |A| sign(g) -> 0 continuously.

Chattering rule: a dwell time (temporal regularisation). After a coordinate's gate switches it is held
for dwell*alpha before it may switch again (``dwell``, in steps, default 1: the discrete optimizer
re-decides its gate once per step, so it cannot switch faster). A gate function that crosses during
the dwell switches the gate when the dwell ends (the event condition max(distance,
dwell*alpha - (t - t_switch)) reaches zero there). Isolated switches further apart than dwell*alpha are
located exactly; near a sliding surface (both vector fields pointing into it, where the exact switched
system has Filippov's sliding solution) the gate chatters with period >= dwell*alpha instead of a
Zeno cascade, so a coordinate switches at most T/(dwell alpha) + 1 times in a time T. As
dwell -> 0 such chattering solutions approach the sliding solution (A. F. Filippov, "Differential
Equations with Discontinuous Righthand Sides", Kluwer 1988; regularisation by delay or hysteresis:
V. I. Utkin, "Sliding Modes in Control and Optimization", Springer 1992); the tests measure this
convergence against a Filippov reference. dwell = 0 is the exact switched system, up to a hold of
1000 rounding units of the time after each switch (without it a restart on the root would lose the
next crossing); on a sliding surface it chatters on that time scale, a Zeno cascade in which the
lane runs out of steps (``MAX_STEPS``). The clamp is continuous, cannot chatter in the Filippov
sense, and its events are exempt from the dwell (they only cut steps at the kink and keep the
``clamped`` record exact); the velocity takes the clamp as the min() of the formula above.

Latched and instant gates. :meth:`JumpFlow.events` returns the three events and puts the flow in the
latched mode: pass the list to :func:`flows.solve.solve` / :func:`flows.simulate.simulate` (the
runner, and so every CLI command and study, does: :meth:`flows.semilinear.SemilinearFlow.events`). A
flow whose ``events()`` was never asked for (a direct solve without events, ``torchdiffeq``) evaluates the gate from the gate functions at every evaluation of N (the instant
mode: the exact switched system without event location, the chattering rule or the clamp record; the
adaptive step size resolves the switches to about the tolerance by rejected steps, and a sliding
surface makes such a lane stall with a ``MAX_STEPS``/``STEP_UNDERFLOW`` status).

No NaN where g or H vanish: the secant speed r |g|/H_ii is only formed where H_ii > 0 and not clamped
(r |g| <= c |A| H_ii), the gate functions have no division, and g = 0 gives velocity 0 on both
branches (A -> 0 too).

Model ``jump-flow`` (registry method ``jumpadam``). References: SPEC §2 (Jump Adam), §3.1, §3.4;
Filippov (1988); Utkin (1992).
"""
from __future__ import annotations

import math

import torch

from core.hyper import check_alpha, check_floor, check_nonneg, lane_tensor
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
from flows.adam import AdamFlow1
from flows.events import Event
from flows.newton import hessian_diag_gradient
from landscapes.base import Landscape

#: the chattering rule of the jump flow: least time between two gate switches of a coordinate
DWELL = HyperParam("dwell", 1.0, check_nonneg,
                   "jump-flow: least time between two gate switches of a coordinate, in steps "
                   "(units of alpha)")

#: the gate components appended to adam-flow1's (theta, m, v)
GATE_COMPONENTS = ("curvature", "agreement", "clamped", "t_switch")
#: the events of :meth:`JumpFlow.events`, in order (their index in the event records)
EVENT_NAMES = ("curvature", "agreement", "clamp")

#: distance reported by a coordinate whose gate kind is not watched (any positive constant)
_IDLE = 1.0
#: least hold after a gate switch, in rounding units of the switch time (module docstring, dwell = 0)
_HOLD_FLOOR = 1000.0
#: finite stand-in for an infinite gate distance (h_min = inf): keeps the root finder's arithmetic finite
_BIG = 1e300


class JumpFlow(AdamFlow1):
    """Gated secant-jump flow on the first-order Adam memory (module docstring for the equations).

    Args:
        landscape: the objective.
        alpha, beta1, beta2, eps: as :class:`flows.adam.AdamFlow1` (t = k alpha).
        jump_lr: the jump scale; the secant velocity is -(jump_lr/alpha) g/H_ii.
        trust_coefficient: the clamp, |theta_i'| <= trust_coefficient |A_i| on the open branch.
        h_min: curvature gate H_ii > h_min (>= 0; +inf closes the gate everywhere).
        dwell: least time between two gate switches of a coordinate, in units of alpha (0: none).
        n_lanes, dtype, device: batch layout.

    State per coordinate: (theta, m, v, curvature, agreement, clamped, t_switch).
    """

    name = "jump-flow"
    method = "jumpadam"
    hyper = (ALPHA, BETA1, BETA2, EPS, JUMP_LR, TRUST_COEFFICIENT, H_MIN, DWELL)
    schemes = ("exact",)
    records = ("m", "v", "gate", "clamped")
    signed_records = ()
    uncontrolled = GATE_COMPONENTS
    description = ("gated jump flow: adam-flow1 whose coordinates switch to the clamped secant "
                   "velocity -(jump_lr/alpha) g/H_ii (events locate the gate switches)")

    def __init__(self, landscape: Landscape, *, alpha, beta1=0.9, beta2=0.999, eps=1e-8,
                 jump_lr=1.0, trust_coefficient=10.0, h_min=1e-8, dwell=1.0, n_lanes: int,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        check_alpha(jump_lr, "jump_lr")
        check_alpha(trust_coefficient, "trust_coefficient")
        check_floor(h_min, "h_min")
        check_nonneg(dwell, "dwell")
        super().__init__(landscape, alpha=alpha, beta1=beta1, beta2=beta2, eps=eps,
                         n_lanes=n_lanes, dtype=dtype, device=device)
        a = self.hp.alpha
        self.jump_lr = lane_tensor(jump_lr, n_lanes, dtype, device)
        self.trust = lane_tensor(trust_coefficient, n_lanes, dtype, device)
        self.h_min = lane_tensor(h_min, n_lanes, dtype, device)
        self.dwell = lane_tensor(dwell, n_lanes, dtype, device)
        #: r = jump_lr/alpha and the dwell time dwell*alpha, per lane
        self.rate = self.jump_lr / a
        self.dwell_time = self.dwell * a
        self.latched = False
        self._dist_cache = None
        base = self.components
        self.components = base + GATE_COMPONENTS
        self._gate0 = len(base)
        self._ic, self._ia, self._ik, self._its = (self._gate0 + j for j in range(4))
        L = a.new_zeros(n_lanes, self.d, self.d)
        L[:, : len(base), : len(base)] = self._L
        self._L = L

    # -- pieces -------------------------------------------------------------------------------------
    def _fields(self, t: torch.Tensor, y: torch.Tensor):
        """g, H_ii, A and the three gate functions at (t, y), each (B, n)."""
        theta = y[..., 0]
        g = self.landscape.grad(theta)
        hd = self.landscape.hessian_diag(theta)
        m, v = self.memories(y)
        A = self.direction(t, m, v)
        c_h = torch.nan_to_num(hd - self.h_min[:, None], posinf=_BIG, neginf=-_BIG)
        c_s = g * A
        c_c = self.rate[:, None] * g.abs() - self.trust[:, None] * A.abs() * hd
        return g, hd, A, c_h, c_s, c_c

    def _gates(self, y: torch.Tensor, c_h, c_s):
        """(curvature, agreement) gate states (B, n) bool: latched from y, or instant."""
        if self.latched:
            return y[..., self._ic] > 0.5, y[..., self._ia] > 0.5
        return c_h > 0, c_s > 0

    def _open_velocity(self, g, hd, A, c_c):
        """-sign(g) min(r |g|/H_ii, c |A|), NaN free (clamped where c_c > 0, which covers H_ii <= 0)."""
        clamped = c_c > 0
        hs = torch.where(hd > 0, hd, torch.ones_like(hd))
        free = -self.rate[:, None] * g / hs
        return torch.where(clamped, -self.trust[:, None] * torch.sign(g) * A.abs(), free), clamped

    def nonlinear(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g, hd, A, c_h, c_s, c_c = self._fields(t, y)
        curv, agree = self._gates(y, c_h, c_s)
        v_open, _ = self._open_velocity(g, hd, A, c_c)
        vel = torch.where(curv & agree, v_open, -A)
        out = torch.zeros_like(y)
        out[..., 0] = vel
        out[..., self._sl_m] = self._bm[:, None, :] * g[..., None]
        out[..., self._sl_v] = self._bv[:, None, :] * (g * g)[..., None]
        return out

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """adam-flow1's closed-form Jacobian, with the theta rows of open coordinates replaced: clamped
        rows are trust sign(g A) times Adam's row (v = -c sign(g) |A|), free rows the diagonal Newton
        row -r (H_ij/H_ii - g_i dH_ii/dtheta_j / H_ii^2) (third derivatives by autograd); the gate
        components have zero rows and columns (the gate's own switches are the events')."""
        B, n, d = y.shape
        J, Jt = super().jacobian(t, y)
        J4, Jt3 = J.reshape(B, n, d, n, d), Jt.reshape(B, n, d)
        g, hd, A, c_h, c_s, c_c = self._fields(t, y)
        curv, agree = self._gates(y, c_h, c_s)
        op = curv & agree
        clamped = op & (c_c > 0)
        free = op & ~clamped
        scale = torch.where(clamped, self.trust[:, None] * torch.sign(g) * torch.sign(A),
                            torch.ones_like(g))
        J4[:, :, 0] = J4[:, :, 0] * scale[..., None, None]
        Jt3[:, :, 0] = Jt3[:, :, 0] * scale
        if bool(free.any()):
            theta = y[..., 0]
            H = self.landscape.hessian(theta)
            dH = hessian_diag_gradient(self.landscape, theta)
            hs = torch.where(hd > 0, hd, torch.ones_like(hd))
            row = -self.rate[:, None, None] * (H / hs[..., None] - (g / (hs * hs))[..., None] * dH)
            newton = torch.zeros_like(J4[:, :, 0])
            newton[..., 0] = row
            J4[:, :, 0] = torch.where(free[..., None, None], newton, J4[:, :, 0])
            Jt3[:, :, 0] = torch.where(free, torch.zeros_like(g), Jt3[:, :, 0])
        return J4.reshape(B, n * d, n * d), Jt3.reshape(B, n * d)

    def compiled_form(self):
        """None: the compiled engine (:mod:`flows.fast`) has no events (the gate switches), so the
        runner's engine choice falls back to the torch engine."""
        return None

    # -- state -------------------------------------------------------------------------------------
    def initial_state(self, theta0: torch.Tensor) -> torch.Tensor:
        """theta0, m = v = 0 and the right-limit gate at t = 0 (module docstring); t_switch lies one
        dwell time and one time unit in the past (no dwell at the start)."""
        y0 = super().initial_state(theta0)
        g = self.landscape.grad(theta0)
        hd = self.landscape.hessian_diag(theta0)
        y0[..., self._ic] = (hd > self.h_min[:, None]).to(y0)
        y0[..., self._ia] = (g != 0).to(y0)
        y0[..., self._ik] = (g != 0).to(y0)
        y0[..., self._its] = (-1.0 - self.dwell_time)[:, None].to(y0)
        return y0

    def outputs(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """theta, m, v (adam-flow1's) and the gate record: ``gate`` 1 where open, ``curvature`` 1
        where the curvature gate is open and, with latched gates, ``clamped`` 1 where open and
        clamped (the instant mode has no clamp record: the clamp needs the time)."""
        out = super().outputs(y)
        theta = out["theta"]
        nan = torch.isnan(theta)
        if self.latched:
            curv = y[..., self._ic] > 0.5
            gate = curv & (y[..., self._ia] > 0.5)
            out["clamped"] = torch.where(nan, math.nan, (gate & (y[..., self._ik] > 0.5)).to(theta))
        else:
            curv, gate = self._instant_record(theta, out["m"])
        out["gate"] = torch.where(nan, math.nan, gate.to(theta))
        out["curvature"] = torch.where(nan, math.nan, curv.to(theta))
        return out

    def _instant_record(self, theta: torch.Tensor, m: torch.Tensor):
        """The instant gate along samples (B, ..., n): curvature H_ii > h_min and agreement g m > 0
        (sign(A) = sign(m)); one landscape call per sample column (per-lane parameters stay aligned)."""
        B, n = theta.shape[0], theta.shape[-1]
        th = theta.reshape(B, -1, n)
        mm = m.reshape(B, -1, n)
        curv, gate = [], []
        for j in range(th.shape[1]):
            x = torch.nan_to_num(th[:, j])
            c = self.landscape.hessian_diag(x) > self.h_min[:, None]
            curv.append(c)
            gate.append(c & (self.landscape.grad(x) * mm[:, j] > 0))
        shape = theta.shape
        if not curv:
            z = torch.zeros(shape, dtype=torch.bool, device=theta.device)
            return z, z
        return torch.stack(curv, 1).reshape(shape), torch.stack(gate, 1).reshape(shape)

    # -- events ------------------------------------------------------------------------------------
    def events(self) -> list[Event]:
        """The gate's switching events [curvature, agreement, clamp] (indices 0, 1, 2 in the records);
        puts the flow in the latched mode (module docstring). Pass them to the solve."""
        self.latched = True
        return [Event(self._distance_curvature, direction=-1, handler=self._switch_curvature,
                      name="curvature"),
                Event(self._distance_agreement, direction=-1, handler=self._switch_agreement,
                      name="agreement"),
                Event(self._distance_clamp, direction=-1, handler=self._switch_clamp, name="clamp")]

    def _distances(self, t: torch.Tensor, y: torch.Tensor):
        """Per coordinate (B, n): the signed distance of each gate kind to its next switch (> 0 while
        it holds; dwell included for curvature and agreement), the gate functions and the gates.

        The solver asks the three conditions at the same (t, y) one after the other: the last result
        is kept with the tensors it came from (identity and in-place version), so it is computed once."""
        key = self._dist_cache[0] if self._dist_cache is not None else None
        if key is not None and key[0] is t and key[1] is y and key[2] == (t._version, y._version):
            return self._dist_cache[1]
        out = self._compute_distances(t, y)
        self._dist_cache = ((t, y, (t._version, y._version)), out)
        return out

    def _compute_distances(self, t: torch.Tensor, y: torch.Tensor):
        g, hd, A, c_h, c_s, c_c = self._fields(t, y)
        curv = y[..., self._ic] > 0.5
        agree = y[..., self._ia] > 0.5
        clamped = y[..., self._ik] > 0.5
        idle = torch.full_like(g, _IDLE)
        t_sw = y[..., self._its]
        # the hold after a switch: dwell*alpha, at least a few hundred rounding units of the time (so
        # that the distance restarts strictly positive and the next crossing is seen, even at dwell 0)
        floor = _HOLD_FLOOR * torch.finfo(y.dtype).eps * torch.clamp(t_sw.abs(), min=1.0)
        held = torch.maximum(self.dwell_time[:, None], floor) - (t[:, None] - t_sw)
        d_h = torch.maximum(torch.where(curv, c_h, -c_h), held)
        d_s = torch.where(curv, torch.maximum(torch.where(agree, c_s, -c_s), held), idle)
        d_c = torch.where(curv & agree, torch.where(clamped, c_c, -c_c), idle)
        return (d_h, d_s, d_c), (c_h, c_s, c_c), (curv, agree, clamped)

    def _distance_curvature(self, t, y):
        return self._distances(t, y)[0][0].amin(dim=-1)

    def _distance_agreement(self, t, y):
        return self._distances(t, y)[0][1].amin(dim=-1)

    def _distance_clamp(self, t, y):
        return self._distances(t, y)[0][2].amin(dim=-1)

    @staticmethod
    def _flipping(dist: torch.Tensor, fired: torch.Tensor) -> torch.Tensor:
        """Coordinates to switch on the fired lanes: distance <= 0, and at least the nearest one (the
        root finder stops on the far side of the root, so that is the one whose distance crossed)."""
        nearest = torch.zeros_like(dist, dtype=torch.bool).scatter_(
            1, dist.argmin(dim=-1, keepdim=True), True)
        return fired[:, None] & ((dist <= 0) | nearest)

    def _switch_curvature(self, t, y, fired):
        (d_h, _, _), (_, c_s, c_c), (curv, _, _) = self._distances(t, y)
        flip = self._flipping(d_h, fired)
        opening = flip & ~curv
        y = y.clone()
        y[..., self._ic] = torch.where(flip, (~curv).to(y), y[..., self._ic])
        # a coordinate whose curvature gate opens takes the current agreement and clamp
        y[..., self._ia] = torch.where(opening, (c_s > 0).to(y), y[..., self._ia])
        y[..., self._ik] = torch.where(opening, (c_c > 0).to(y), y[..., self._ik])
        y[..., self._its] = torch.where(flip, t[:, None].to(y).expand_as(c_s), y[..., self._its])
        return y

    def _switch_agreement(self, t, y, fired):
        (_, d_s, _), (_, _, c_c), (curv, agree, _) = self._distances(t, y)
        flip = self._flipping(d_s, fired) & curv
        opening = flip & ~agree
        y = y.clone()
        y[..., self._ia] = torch.where(flip, (~agree).to(y), y[..., self._ia])
        y[..., self._ik] = torch.where(opening, (c_c > 0).to(y), y[..., self._ik])
        y[..., self._its] = torch.where(flip, t[:, None].to(y).expand_as(c_c), y[..., self._its])
        return y

    def _switch_clamp(self, t, y, fired):
        (_, _, d_c), _, (curv, agree, clamped) = self._distances(t, y)
        flip = self._flipping(d_c, fired) & curv & agree
        y = y.clone()
        y[..., self._ik] = torch.where(flip, (~clamped).to(y), y[..., self._ik])
        return y

    def subset(self, idx: torch.Tensor) -> "JumpFlow":
        p = self.hp.subset(idx)
        p.pop("u0", None)
        new = JumpFlow(self.landscape_subset(idx), jump_lr=self.jump_lr[idx],
                       trust_coefficient=self.trust[idx], h_min=self.h_min[idx],
                       dwell=self.dwell[idx], n_lanes=int(idx.numel()), dtype=self.hp.alpha.dtype,
                       device=self.hp.alpha.device, **p)
        new.latched = self.latched
        return new


__all__ = ["DWELL", "EVENT_NAMES", "GATE_COMPONENTS", "JumpFlow"]
