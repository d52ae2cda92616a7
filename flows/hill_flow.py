"""Hill flow (SPEC §3.4): the switched continuous model of Hill-ADAM (SPEC §2, ``hilladam``).

The memory and the direction are those of ``adam-flow1`` (SPEC §3.1; this class extends
:class:`flows.adam.AdamFlow1`, whose linear part, kernel forcing and Jacobian it reuses), with a sign
sigma in {+1, -1} (+1 descend, -1 ascend) and a bias clock restarted at every reset:

    theta' = -sigma A(s),   m' = lam1 (g - m),   v' = lam2 (g^2 - v),   s = t - t_r,
    A(s)   = eta(s) m / (sqrt(max(v, 0)) + epsq(s)),  eta, epsq at q = (t - t_r)/alpha + 1,

    p = df/dt = g . theta' = -sigma g . A       (the rate of change of the loss along the path)

t_r is the time of the lane's last reset (0 at the start: then it is adam-flow1 exactly). Time
scaling t = k alpha (SPEC §0): a discrete step changes the loss by L_k - L_{k-1} ~ alpha p, so the
plateau test |L_k - L_{k-1}| < delta is |p| < D with D = delta/alpha, and the continuous limit
alpha -> 0 is taken at fixed D (delta = D alpha), as jump_lr = R alpha for Jump Adam.

Switches (the events of :meth:`HillFlow.events`, located by the exact integrator's root finder on
the step's dense output, not by sampling; index in the event records):

0. ``toggle`` (plateau): sigma -> -sigma and a reset, at the first time with
       |p| <= D,   t - t_r >= hold alpha,   gamma_low <= f <= gamma,
   i.e. the falling zero of  max(side p - D, hold alpha - (t - t_r), f - gamma, gamma_low - f),
   where ``side`` = sign(p) since its last zero (below). Never with delta = 0.
1. ``dead_end``: f rises through gamma (zero of gamma - f, falling): sigma = +1 (descend) and a reset.
2. ``floor``: f falls through gamma_low (zero of f - gamma_low, falling): sigma = -1 (ascend), reset.
3. ``extremum``: p crosses zero (either way): ``side`` flips and the best state is updated.

A reset sets m = v = 0 and t_r = t: the bias correction restarts, so A restarts from 0 and the
velocity builds up on the alpha time scale to about 1 per coordinate, as the discrete first step after
a reset has size lr per coordinate (SPEC §2).

Hold (the rule that keeps a restart on the surface from firing again): just after a reset A = 0, so
p = 0 and the plateau condition holds at once; the exact switched system would toggle again at the
same instant (a Zeno cascade). The discrete method cannot: a step on which a rule fired forgets L_k, so
its first plateau test after a reset compares the losses after the first and second step, and the
earliest re-toggle is two steps after the reset. The flow holds the plateau test for ``hold`` steps
(hold alpha in t, default 2, > 0) after every reset and at the start; a plateau that still holds when
the hold ends toggles there (the condition's max() reaches zero at t_r + hold alpha). So a lane
toggles at most T/(hold alpha) + 1 times in a time T; where the gradient vanishes (a stationary
point) it toggles exactly every hold alpha and does not move, as the discrete method does every second
step (|L_k - L_{k-1}| = 0 < delta).

Why ``side``. |p| - D is positive at both ends of a step that carries p straight through the band
|p| < D (a band of width ~ 2 D/|p'| around every extremum of f(t), narrower than an integrator step
when D is small), so a condition |p| - D would miss the toggle. ``side`` (a latched component, -sigma
after a reset, flipped by the ``extremum`` event) makes the condition signed: side p = |p| between
zeros of p, and side p - D < 0 at the end of a step that crossed p = 0, so the crossing is seen and
the root finder puts it where side p = D, the entry into the band (the toggle wins over the extremum,
which lies later in the same step).

Forced excursions (SPEC §2: a loss above gamma forces minimising, below gamma_low maximising; a
forced excursion resets m, v and the step counter on its first step only). In the flow the entry
into the forced region is the event (it resets, and sets sigma whatever it was); while f stays above
gamma (below gamma_low) the plateau test is off (the f - gamma, gamma_low - f terms of the max), so
the sign stays forced and no further reset happens; leaving the region is no event (nothing
changes there: the plateau test resumes, within the hold if one is running). After a dead-end reset
the flow descends at once (p < 0 just after the restart), so f leaves the region immediately unless
it started inside it (f(theta0) > gamma: sigma = +1 from the start, as the discrete first step);
likewise for the floor. The authors' code (and ``hilladam``'s "original" variant, which reproduces
it) resets on every step below gamma_low (its floor test re-arms itself); SPEC and this flow reset
on the first step of the excursion only. ``gamma_low < gamma`` per lane. The robust variant of
``hilladam`` (relative tests, crest-crossing march) is not modelled: the flow is the original rules'.

Best state (SPEC: "best state kept"). Components ``best_f`` and ``best_theta`` hold the lowest loss
among the candidate points so far and where it was; they are updated by the handlers of every event
(resets and extrema, before the state changes). Between two candidates f(t) has no interior local
minimum (an interior one is a rising zero of p, an ``extremum``; a reset is a kink of f(t), a
candidate itself), so the running minimum over [0, t] is min(best_f, f(theta(t))): the records
``best_f`` and ``best_theta`` report that at every output time, exact to the event location (|dt| <=
1e-13 max(1, t)) and the integrator tolerance. Two zeros of p inside one accepted step would escape
(as in every step-end detector, :mod:`flows.events`).

State per coordinate: (theta, m, v, sigma, side, t_reset, best_f, best_theta). sigma, side,
t_reset and best_f are lane quantities: the vector field reads them from coordinate 0 and every
coordinate carries a copy (for the per-coordinate records ``sigma`` and ``best_f``); all five extra
components have no dynamics (zero rows of L and N) and are left out of the error control.

Without events (a direct solve that was not given :meth:`HillFlow.events`, ``torchdiffeq``) nothing
switches: it is adam-flow1 with the initial sign, and ``best_f``/``best_theta`` are the running
minimum over the output samples only (accurate to the sampling).

eps = 0 makes the reset state singular (A = 0/0), as adam-flow1's start: the lane reports DIVERGED.
sigma and side enter N as latched signs (read back as exactly +-1: the dense output reproduces a
constant component only to ~1e-14), so their Jacobian columns are zero, like the jump flow's gates.

Measured (tests/test_hill_flow.py; sextic, alpha = 0.05, betas 0.9/0.999): every toggle and dead-end
entry of three lanes agrees with a piecewise scipy LSODA reference (rtol 1e-12, brentq on its dense
output) to 1.6e-10 at rtol 1e-9 (1.9e-11 at rtol 1e-10), theta to 1.8e-10; a plateau band 1e-6 wide
in t, crossed inside one ~1e-3 step, is located at its entry to 1e-9. Discrete ``hilladam`` at
delta = 0.3 alpha from -1.5 (a toggle before the global minimum, an ascent into the dead end
gamma = 5, a descent), alpha = 0.04 ... 0.00125: the same resets in the same order at every alpha,
within 1.5 alpha of the flow's events, max_k |theta_k - theta(k alpha)| / alpha = 0.9, 1.1, 2.7,
2.1, 2.0, 2.1 (first order; the plateau test samples the band entry at whole steps, so the
constant fluctuates before it settles near 2). Cost: the ascent branch is linearly unstable (Adam on
-f), so its steps are short: about 1800 exprb43 steps per 1.5 time units at alpha = 0.05, rtol 1e-9.

Model ``hill-flow`` (registry method ``hilladam``). References: SPEC §2 (Hill-ADAM), §3.1, §3.4;
seeds/hill_adam.md (arXiv 2510.03613).
"""
from __future__ import annotations

import math

import torch

from core.errors import ConfigError
from core.hyper import check_alpha, check_level, check_nonneg, lane_tensor
from core.method import ALPHA, BETA1, BETA2, DELTA, EPS, GAMMA, GAMMA_LOW, HyperParam
from flows.adam import AdamFlow1
from flows.events import Event
from landscapes.base import Landscape, trajectory_values

#: the plateau test's hold after a reset, in steps (module docstring)
HOLD = HyperParam("hold", 2.0, check_alpha,
                  "hill-flow: time after a reset (and the start) during which the plateau test is "
                  "off, in steps (units of alpha, > 0; the discrete method's first test after a "
                  "reset is after its second step)")

#: the components appended to adam-flow1's (theta, m, v)
SWITCH_COMPONENTS = ("sigma", "side", "t_reset", "best_f", "best_theta")
#: the events of :meth:`HillFlow.events`, in order (their index in the event records)
EVENT_NAMES = ("toggle", "dead_end", "floor", "extremum")

#: condition value of a rule that cannot fire (delta = 0)
_IDLE = 1.0
#: finite stand-in for infinite distances (gamma = inf): keeps the root finder's arithmetic finite
_BIG = 1e300


def _finite(x: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(x, posinf=_BIG, neginf=-_BIG)


class HillFlow(AdamFlow1):
    """Switched first-order Adam flow of Hill-ADAM (module docstring for the equations and events).

    Args:
        landscape: the objective.
        alpha, beta1, beta2, eps: as :class:`flows.adam.AdamFlow1` (t = k alpha).
        delta: plateau threshold; the flow toggles where |df/dt| <= delta/alpha (0: never).
        gamma: dead end, f > gamma forces descent (+inf: never).
        gamma_low: floor, f < gamma_low forces ascent (-inf: never); below gamma.
        hold: plateau test off for hold*alpha after every reset and at the start (> 0).
        n_lanes, dtype, device: batch layout.
    """

    name = "hill-flow"
    method = "hilladam"
    hyper = (ALPHA, BETA1, BETA2, EPS, DELTA, GAMMA, GAMMA_LOW, HOLD)
    schemes = ("exact",)
    records = ("m", "v", "sigma", "best_f", "best_theta")
    signed_records = ()
    uncontrolled = SWITCH_COMPONENTS
    description = ("Hill-ADAM flow: adam-flow1 with a descend/ascend sign toggled where |df/dt| < "
                   "delta/alpha, moments reset at toggles and forced excursions (events), best kept")

    def __init__(self, landscape: Landscape, *, alpha, beta1=0.9, beta2=0.999, eps=1e-8, delta=1e-4,
                 gamma=200.0, gamma_low=-1e4, hold=2.0, n_lanes: int,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        check_nonneg(delta, "delta")
        check_level(gamma, "gamma")
        check_level(gamma_low, "gamma_low")
        check_alpha(hold, "hold")
        super().__init__(landscape, alpha=alpha, beta1=beta1, beta2=beta2, eps=eps,
                         n_lanes=n_lanes, dtype=dtype, device=device)
        a = self.hp.alpha
        self.delta = lane_tensor(delta, n_lanes, dtype, device)
        self.gamma = lane_tensor(gamma, n_lanes, dtype, device)
        self.gamma_low = lane_tensor(gamma_low, n_lanes, dtype, device)
        self.hold = lane_tensor(hold, n_lanes, dtype, device)
        bad = ~(self.gamma_low < self.gamma)
        if bool(bad.any()):
            b = int(torch.nonzero(bad)[0])
            raise ConfigError(f"gamma_low must lie below gamma, got gamma_low={float(self.gamma_low[b])!r} "
                              f">= gamma={float(self.gamma[b])!r}")
        #: D = delta/alpha (the plateau speed) and the hold time hold*alpha, per lane
        self.rate = self.delta / a
        self.hold_time = self.hold * a
        self.latched = False
        self._cache = None
        base = self.components
        self.components = base + SWITCH_COMPONENTS
        (self._isg, self._isd, self._itr, self._ibf, self._ibt) = (len(base) + j for j in range(5))
        L = a.new_zeros(n_lanes, self.d, self.d)
        L[:, : len(base), : len(base)] = self._L
        self._L = L

    # -- pieces -------------------------------------------------------------------------------------
    def _lane(self, y: torch.Tensor, i: int) -> torch.Tensor:
        """A lane quantity (sigma, side, t_reset, best_f): coordinate 0's copy, (B,)."""
        return y[:, 0, i]

    @staticmethod
    def _sign(x: torch.Tensor) -> torch.Tensor:
        """A latched sign read back as exactly +-1 (dense output interpolates a constant component
        to within rounding of it)."""
        return torch.where(x > 0, 1.0, -1.0).to(x)

    def _velocity_parts(self, t: torch.Tensor, y: torch.Tensor):
        """g, A (B, n) at bias time s = t - t_r (B,), sigma (B,)."""
        g = self.landscape.grad(y[..., 0])
        m, v = self.memories(y)
        s = t - self._lane(y, self._itr)
        return g, self.direction(s, m, v), s, self._sign(self._lane(y, self._isg))

    def nonlinear(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g, A, _, sigma = self._velocity_parts(t, y)
        out = torch.zeros_like(y)
        out[..., 0] = -sigma[:, None] * A
        out[..., self._sl_m] = self._bm[:, None, :] * g[..., None]
        out[..., self._sl_v] = self._bv[:, None, :] * (g * g)[..., None]
        return out

    def jacobian(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """adam-flow1's closed-form Jacobian at the bias time s = t - t_r with the theta rows times
        sigma, plus the column of the lane's t_reset (coordinate 0's slot): d theta_i'/d t_r =
        sigma dA_i/ds (= -d theta_i'/dt). sigma enters as a latched sign (zero column, like the jump
        flow's gates: its switches are the events'); the other switch components do not enter N.
        All switch components have zero rows."""
        B, n, d = y.shape
        s = t - self._lane(y, self._itr)
        sigma = self._sign(self._lane(y, self._isg))
        J, Jt = super().jacobian(s, y)
        J4, Jt3 = J.reshape(B, n, d, n, d), Jt.reshape(B, n, d)
        J4[:, :, 0] = J4[:, :, 0] * sigma[:, None, None, None]
        Jt3[:, :, 0] = Jt3[:, :, 0] * sigma[:, None]                 # -sigma dA/ds
        J4[:, :, 0, 0, self._itr] = -Jt3[:, :, 0]
        return J4.reshape(B, n * d, n * d), Jt3.reshape(B, n * d)

    def compiled_form(self):
        """None: the compiled engine (:mod:`flows.fast`) runs the Adam-family form without events
        only, so the runner's engine choice falls back to the torch engine."""
        return None

    # -- state -------------------------------------------------------------------------------------
    def initial_state(self, theta0: torch.Tensor) -> torch.Tensor:
        """theta0, m = v = 0, t_r = 0; sigma = +1 (descend), -1 where f(theta0) < gamma_low and not
        f(theta0) > gamma (a forced excursion from the start); side = -sigma; best = (f0, theta0)."""
        y0 = super().initial_state(theta0)                 # (B, n, d), switch components 0
        f0 = self.landscape.value(theta0)
        g_, gl = self.gamma.to(f0), self.gamma_low.to(f0)
        sigma = torch.where((f0 < gl) & ~(f0 > g_), -torch.ones_like(f0), torch.ones_like(f0))
        y0[..., self._isg] = sigma[:, None]
        y0[..., self._isd] = -sigma[:, None]
        y0[..., self._itr] = 0.0
        y0[..., self._ibf] = f0[:, None]
        y0[..., self._ibt] = theta0
        return y0

    def outputs(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """theta, m, v (adam-flow1's), ``sigma`` (+1 descend, -1 ascend) and the running best:
        ``best_f`` = min(best_f, f(theta)) and its ``best_theta`` (module docstring; without events
        the running minimum over the samples, which must then be (B, T, n, d))."""
        out = super().outputs(y)
        theta = out["theta"]
        nan = torch.isnan(theta)
        out["sigma"] = torch.where(nan, math.nan, self._sign(y[..., self._isg]))
        B, n = theta.shape[0], theta.shape[-1]
        th = theta.reshape(B, -1, n)
        f = trajectory_values(self.landscape, th)                            # (B, T')
        if self.latched:
            bf = y[..., 0, self._ibf].reshape(B, -1)
            bt = y[..., self._ibt].reshape(B, -1, n)
            now = ~(f >= bf)                                   # f below the candidates (or NaN)
            best_f = torch.where(now, f, bf)
            best_t = torch.where(now[..., None], th, bt)
        else:
            fill = torch.where(torch.isnan(f), math.inf, f)
            best_f, arg = torch.cummin(fill, dim=1)
            best_t = th.gather(1, arg[..., None].expand_as(th))
            best_f = torch.where(torch.isnan(f), math.nan, best_f)
        out["best_f"] = torch.where(nan, math.nan, best_f.reshape(theta.shape[:-1])[..., None]
                                    .expand_as(theta))
        out["best_theta"] = torch.where(nan, math.nan, best_t.reshape(theta.shape))
        return out

    # -- events ------------------------------------------------------------------------------------
    def events(self) -> list[Event]:
        """[toggle, dead_end, floor, extremum] (indices 0-3 in the records); puts the flow in the
        latched mode (the best record comes from the state). Pass them to the solve."""
        self.latched = True
        return [Event(self._c_toggle, direction=-1, handler=self._h_toggle, name="toggle"),
                Event(self._c_dead_end, direction=-1, handler=self._h_dead_end, name="dead_end"),
                Event(self._c_floor, direction=-1, handler=self._h_floor, name="floor"),
                Event(self._c_extremum, direction=0, handler=self._h_extremum, name="extremum")]

    def _fields(self, t: torch.Tensor, y: torch.Tensor):
        """f, p = df/dt (B,) and the four conditions, computed once per (t, y): the solver asks the
        conditions one after the other at the same tensors (identity and in-place version)."""
        key = (t, y, t._version, y._version)
        if self._cache is not None:
            k = self._cache[0]
            if k[0] is t and k[1] is y and k[2:] == key[2:]:
                return self._cache[1]
        f = self.landscape.value(y[..., 0])
        g, A, s, sigma = self._velocity_parts(t, y)
        p = -sigma * (g * A).sum(-1)
        side = self._sign(self._lane(y, self._isd))
        plateau = torch.maximum(torch.maximum(side * p - self.rate, self.hold_time - s),
                                torch.maximum(f - self.gamma, self.gamma_low - f))
        c_toggle = torch.where(self.delta > 0, _finite(plateau), torch.full_like(p, _IDLE))
        out = (f, p, (c_toggle, _finite(self.gamma - f), _finite(f - self.gamma_low), p))
        self._cache = (key, out)
        return out

    def _c_toggle(self, t, y):
        return self._fields(t, y)[2][0]

    def _c_dead_end(self, t, y):
        return self._fields(t, y)[2][1]

    def _c_floor(self, t, y):
        return self._fields(t, y)[2][2]

    def _c_extremum(self, t, y):
        return self._fields(t, y)[2][3]

    def _set_lane(self, y: torch.Tensor, i: int, value: torch.Tensor, fired: torch.Tensor) -> None:
        y[..., i] = torch.where(fired[:, None], value.to(y)[:, None].expand_as(y[..., i]), y[..., i])

    def _keep_best(self, y: torch.Tensor, fired: torch.Tensor) -> torch.Tensor:
        """A copy of y with best_f, best_theta updated on the fired lanes (before the state changes)."""
        f = self.landscape.value(y[..., 0])
        better = fired & (f < self._lane(y, self._ibf))
        y = y.clone()
        self._set_lane(y, self._ibf, f, better)
        y[..., self._ibt] = torch.where(better[:, None], y[..., 0], y[..., self._ibt])
        return y

    def _reset(self, t, y, fired, sigma_new):
        y = self._keep_best(y, fired)
        sigma_new = sigma_new.to(y)
        self._set_lane(y, self._isg, sigma_new, fired)
        self._set_lane(y, self._isd, -sigma_new, fired)
        self._set_lane(y, self._itr, t, fired)
        for sl in (self._sl_m, self._sl_v):
            y[..., sl] = torch.where(fired[:, None, None], torch.zeros_like(y[..., sl]), y[..., sl])
        return y

    def _h_toggle(self, t, y, fired):
        sigma = self._sign(self._lane(y, self._isg))
        return self._reset(t, y, fired, -sigma)

    def _h_dead_end(self, t, y, fired):
        return self._reset(t, y, fired, torch.ones_like(t))

    def _h_floor(self, t, y, fired):
        return self._reset(t, y, fired, -torch.ones_like(t))

    def _h_extremum(self, t, y, fired):
        y = self._keep_best(y, fired)
        self._set_lane(y, self._isd, -self._sign(self._lane(y, self._isd)), fired)
        return y

    def subset(self, idx: torch.Tensor) -> HillFlow:
        p = self.hp.subset(idx)
        p.pop("u0", None)
        new = HillFlow(self.landscape_subset(idx), delta=self.delta[idx], gamma=self.gamma[idx],
                       gamma_low=self.gamma_low[idx], hold=self.hold[idx], n_lanes=int(idx.numel()),
                       dtype=self.hp.alpha.dtype, device=self.hp.alpha.device, **p)
        new.latched = self.latched
        return new


__all__ = ["EVENT_NAMES", "HOLD", "SWITCH_COMPONENTS", "HillFlow"]
