"""hill-flow (SPEC §3.4): the switched continuous model of Hill-ADAM, against independent references.

* :class:`HillReference`: the switched system integrated piecewise by scipy LSODA (rtol 1e-12, plain
  numpy right-hand side), toggles and forced entries as scipy terminal events refined by brentq on the
  dense output; every toggle, dead-end entry and their order and times agree to the integrator
  tolerance, and so do theta, m, v and the best-state record between them.
* the rules off (delta = 0, gamma = inf, gamma_low = -inf): adam-flow1 (same steps without events);
* reset semantics: after a toggle the flow is a fresh adam-flow1 on -f started at the toggle point
  (m = v = 0, bias clock restarted), after a dead-end entry a fresh adam-flow1 on f;
* a plateau band narrower than the integrator's steps is still found at its entry (the ``side`` rule);
* the dead-end and floor rules (forced sign, no plateau test inside the forced region, one reset per
  excursion); no NaN at a zero gradient (a toggle every hold); lanes independent bit for bit;
  the Jacobian against autograd; declarations, lane retirement.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import discrete
import landscapes
from adamflow.cli import main
from core.errors import ConfigError
from core.method import DELTA, GAMMA, GAMMA_LOW
from core.trajectory import Status
from flows import AdamFlow1
from flows.hill_flow import EVENT_NAMES, HOLD, SWITCH_COMPONENTS, HillFlow
from flows.semilinear import SemilinearFlow
from flows.simulate import simulate
from flows.solve import solve
from landscapes.base import Separable
from runner import registry
from runner.experiment import Numerics, run_lanes

F64 = torch.float64
INF = math.inf
LSODA = dict(method="LSODA", rtol=1e-12, atol=1e-14)
B1, B2, EPS_ = 0.9, 0.999, 1e-8
TOGGLE, DEAD_END, FLOOR, EXTREMUM = range(4)

pytestmark = pytest.mark.usefixtures("single_thread")


# -- plain numpy sextic (independent of landscapes/) -------------------------------------------------
def sextic(x):
    x = np.asarray(x, float)
    return float(np.sum(x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x))


def dsextic(x):
    x = np.asarray(x, float)
    return 6 * x ** 5 + 5 * x ** 4 + 9 * x ** 2 + 8 * x + 1


class NegSextic(Separable):
    """-sextic: ascending the sextic is descending this (the reference of an ascent phase)."""
    name = "negsextic"

    def phi(self, x):
        return -(x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x)

    def dphi(self, x):
        return -(6 * x ** 5 + 5 * x ** 4 + 9 * x ** 2 + 8 * x + 1)

    def d2phi(self, x):
        return -(30 * x ** 4 + 20 * x ** 3 + 18 * x + 8)


class HillReference:
    """The Hill flow (flows/hill_flow.py docstring) integrated piecewise by scipy LSODA.

    Each piece starts at a reset t_r with m = v = 0 and a sign sigma: first the hold [t_r, t_r + hold
    alpha] watching only the forced entries (f rising through gamma, falling through gamma_low); at its
    end a toggle if |p| <= D there (p = g . theta', D = delta/alpha); else integration watching |p| - D
    (falling), and the forced entries, as terminal scipy events, with max_step small enough that no
    band |p| < D is stepped over; each event is refined by brentq on the dense output. The cases used
    keep f inside [gamma_low, gamma] at every toggle (asserted)."""

    def __init__(self, f, g, *, alpha, delta, gamma=INF, gamma_low=-INF, hold=2.0, b1=B1, b2=B2,
                 eps=EPS_, max_step=1e-3):
        self.f, self.g = f, g
        self.alpha, self.b1, self.b2, self.eps = alpha, b1, b2, eps
        self.D, self.gamma, self.gamma_low, self.hold = delta / alpha, gamma, gamma_low, hold * alpha
        self.l1, self.l2 = (1 - b1) / alpha, (1 - b2) / alpha
        self.kw = dict(dense_output=True, max_step=max_step, **LSODA)

    def velocity(self, t, z, sigma, tr):
        n = len(z) // 3
        th, m, v = z[:n], z[n:2 * n], z[2 * n:]
        q = (t - tr) / self.alpha + 1
        c1, c2 = -math.expm1(q * math.log(self.b1)), -math.expm1(q * math.log(self.b2))
        A = math.sqrt(c2) / c1 * m / (np.sqrt(np.maximum(v, 0)) + self.eps * math.sqrt(c2))
        return self.g(th), -sigma * A

    def rhs(self, sigma, tr):
        def fn(t, z):
            g, vel = self.velocity(t, z, sigma, tr)
            n = len(g)
            return np.concatenate([vel, self.l1 * (g - z[n:2 * n]), self.l2 * (g * g - z[2 * n:])])
        return fn

    def run(self, theta0, T):
        """-> (events [(t, kind)], pieces [(t_a, t_b, dense, sigma)])."""
        th0 = np.atleast_1d(np.asarray(theta0, float))
        n = th0.size
        f0 = self.f(th0)
        sigma = -1.0 if (f0 < self.gamma_low and not f0 > self.gamma) else 1.0
        tr, z = 0.0, np.concatenate([th0, np.zeros(2 * n)])
        events, pieces = [], []

        def dead(t, y):
            return self.gamma - self.f(y[:n])

        def floor(t, y):
            return self.f(y[:n]) - self.gamma_low

        while tr < T and len(events) < 50:
            def band(t, y, sigma=sigma, tr=tr):
                g, vel = self.velocity(t, y, sigma, tr)
                return abs(float(g @ vel)) - self.D

            for e in (dead, floor, band):
                e.terminal, e.direction = True, -1
            t1 = min(tr + self.hold, T)
            s1 = solve_ivp(self.rhs(sigma, tr), (tr, t1), z, events=[dead, floor], **self.kw)
            segs, kind = [(tr, s1)], None
            hits = [(float(te[0]), k + 1) for k, te in enumerate(s1.t_events) if te.size]
            if hits:
                te, kind = min(hits)
            elif t1 < T:
                zh = s1.y[:, -1]
                if self.D > 0 and band(t1, zh) <= 0 and self.gamma_low <= self.f(zh[:n]) <= self.gamma:
                    te, kind = t1, TOGGLE
                else:
                    s2 = solve_ivp(self.rhs(sigma, tr), (t1, T), zh,
                                   events=[band, dead, floor] if self.D > 0 else [dead, floor],
                                   **self.kw)
                    segs.append((t1, s2))
                    fns = [band, dead, floor] if self.D > 0 else [dead, floor]
                    kinds = [TOGGLE, DEAD_END, FLOOR] if self.D > 0 else [DEAD_END, FLOOR]
                    hits = [(float(te_[0]), j) for j, te_ in enumerate(s2.t_events) if te_.size]
                    if hits:
                        te, j = min(hits)
                        kind, fn = kinds[j], fns[j]
                        lo, hi = (s2.t[-2] if s2.t.size > 1 else t1), min(te + 1e-12, T)
                        if fn(lo, s2.sol(lo)) > 0 > fn(hi, s2.sol(hi)):
                            te = brentq(lambda s, fn=fn, sol=s2.sol: fn(s, sol(s)), lo, hi,
                                        xtol=1e-15, rtol=1e-15)
                        if kind == TOGGLE:
                            assert self.gamma_low <= self.f(s2.sol(te)[:n]) <= self.gamma
            end = te if kind is not None else T
            for a, s in segs:
                if a <= end:
                    pieces.append((a, min(end, s.t[-1]), s.sol, sigma))
            if kind is None:
                break
            z = np.concatenate([pieces[-1][2](te)[:n], np.zeros(2 * n)])
            sigma = -sigma if kind == TOGGLE else (1.0 if kind == DEAD_END else -1.0)
            events.append((te, kind))
            tr = te
        return events, pieces

    @staticmethod
    def sample(pieces, ts):
        """(state, sigma) at the times ts (the left piece at an event: its left limit)."""
        out, sig = [], []
        for s in ts:
            for a, b, fn, sigma in pieces:
                if a <= s <= b:
                    out.append(fn(s))
                    sig.append(sigma)
                    break
        return np.array(out), np.array(sig)


def lanes_time(T, k, B):
    return torch.linspace(0.0, T, k, dtype=F64)[None].expand(B, -1).contiguous()


def event_list(tr, b):
    c = int(tr.events["count"][b])
    return list(zip(tr.events["t"][b, :c].tolist(), tr.events["index"][b, :c].tolist()))


# -- the reference case: toggles and dead-end entries on the sextic ---------------------------------
SEXTIC_ALPHA, SEXTIC_GAMMA, SEXTIC_T = 0.05, 5.0, 1.5
SEXTIC_LANES = [(0.2, 0.05), (0.2, 0.002), (-1.5, 0.3)]          # theta0, D = delta/alpha


@pytest.fixture(scope="module")
def sextic_run():
    """The flow on SEXTIC_LANES with the reference's pieces. Each lane's output grid is the regular
    one plus its first two reference event times and the first one + 1e-4 (for the reset test)."""
    land = landscapes.parse("sextic")
    B = len(SEXTIC_LANES)
    refs = []
    for x0, D in SEXTIC_LANES:
        ref = HillReference(sextic, dsextic, alpha=SEXTIC_ALPHA, delta=D * SEXTIC_ALPHA,
                            gamma=SEXTIC_GAMMA)
        refs.append(ref.run(x0, SEXTIC_T))
    grid = np.linspace(0.0, SEXTIC_T, 31)
    t = torch.tensor(np.stack([np.sort(np.concatenate([grid, [ev[0][0], ev[1][0], ev[0][0] + 1e-4]]))
                               for ev, _ in refs]), dtype=F64)
    flow = HillFlow(land, alpha=SEXTIC_ALPHA, delta=[D * SEXTIC_ALPHA for _, D in SEXTIC_LANES],
                    gamma=SEXTIC_GAMMA, n_lanes=B)
    th0 = torch.tensor([[x] for x, _ in SEXTIC_LANES], dtype=F64)
    tr = simulate(flow, th0, t, events=flow.events(), rtol=1e-9)
    return tr, refs


def test_toggle_and_dead_end_times_match_the_scipy_reference(sextic_run):
    # from 0.2: descend towards the local min -0.15, toggle on the plateau before it, ascend to the
    # right until f = gamma (dead end), descend; from -1.5 (D = 0.3): toggle before the global
    # minimum, ascend to the left into the dead end, descend
    tr, refs = sextic_run
    assert (tr.status == Status.OK).all()
    for b, (events, pieces) in enumerate(refs):
        t = tr.t[b].numpy()
        ours = event_list(tr, b)
        assert [k for _, k in ours] == [k for _, k in events], (ours, events)
        assert len(events) >= 2 and {k for _, k in events} == {TOGGLE, DEAD_END}
        dt = max(abs(a - c) for (a, _), (c, _) in zip(ours, events))
        assert dt <= 2e-9, (b, dt)
        ys, sig = HillReference.sample(pieces, t)
        assert np.abs(tr.theta[b, :, 0].numpy() - ys[:, 0]).max() <= 1e-8
        # m, v jump at a reset: compare them away from the events (the grid carries event times)
        far = np.min(np.abs(t[:, None] - np.array([te for te, _ in events])[None]), axis=1) > 1e-6
        for j, key in ((1, "m"), (2, "v")):
            err = np.abs(tr.extras[key][b, far, 0].numpy() - ys[far, j]).max()
            assert err <= 3e-9 * np.abs(ys[:, j]).max(), (key, err)
        assert (tr.extras["sigma"][b, far, 0].numpy() == sig[far]).all()
        # the reference's dead ends lie where f = gamma
        for te, k in events:
            if k == DEAD_END:
                x = next(fn(te)[0] for a, bb, fn, _ in pieces if a <= te <= bb)
                assert abs(sextic(x) - SEXTIC_GAMMA) <= 1e-9


def test_best_state_is_the_running_minimum_of_the_reference_path(sextic_run):
    # best_f(t) = min over [0, t] of f along the path, best_theta where it was taken; the reference
    # minimum over a fine grid of every piece (its ends and the output times included)
    tr, refs = sextic_run
    for b, (events, pieces) in enumerate(refs):
        t = tr.t[b].numpy()
        pts = []
        for a, bb, fn, _ in pieces:
            ss = np.concatenate([np.linspace(a, bb, 4001), t[(t >= a) & (t <= bb)]])
            pts += [(s, sextic(fn(s)[0]), fn(s)[0]) for s in ss]
        pts.sort()
        ts = np.array([p[0] for p in pts])
        fs = np.array([p[1] for p in pts])
        xs = np.array([p[2] for p in pts])
        for j, s in enumerate(t):
            sel = ts <= s
            i = int(np.argmin(fs[sel]))
            assert abs(float(tr.extras["best_f"][b, j, 0]) - fs[sel][i]) <= 1e-8
            assert abs(float(tr.extras["best_theta"][b, j, 0]) - xs[sel][i]) <= 1e-4
        # from 0.2 the best is taken at the toggle (the descent is cut there: a kink of f(t))
        if b < 2:
            first = events[0][0]
            x_t = next(fn(first)[0] for a, bb, fn, _ in pieces if a <= first <= bb)
            assert abs(float(tr.extras["best_theta"][b, -1, 0]) - x_t) <= 1e-8


class SignedSextic(Separable):
    """sign * sextic per lane (sign (B, 1)): -1 is the landscape an ascent of the sextic descends."""
    name = "signed_sextic"

    def __init__(self, sign):
        self.sign = torch.as_tensor(sign, dtype=F64)[:, None]

    def phi(self, x):
        return self.sign * (x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x)

    def dphi(self, x):
        return self.sign * (6 * x ** 5 + 5 * x ** 4 + 9 * x ** 2 + 8 * x + 1)

    def d2phi(self, x):
        return self.sign * (30 * x ** 4 + 20 * x ** 3 + 18 * x + 8)


def test_after_a_toggle_and_a_dead_end_the_flow_restarts_like_a_fresh_adam_flow1(sextic_run):
    # reset semantics: m = v = 0 and q = (t - t_r)/alpha + 1 after every reset. Between the first
    # toggle (ascent) and the dead end the lane is adam-flow1 on -f started at the toggle point with
    # its clock at 0 (its m is -m: the memory of -g), after the dead end adam-flow1 on f from the
    # entry point. The starts are the flow's own states at the reference's event times (within
    # ~1e-10 of its own).
    tr, refs = sextic_run
    b = 2
    (t1, k1), (t2, k2) = event_list(tr, b)[:2]
    assert (k1, k2) == (TOGGLE, DEAD_END)
    t = tr.t[b]
    (r1, _), (r2, _) = refs[b][0][:2]
    j1, j2 = int((t == r1).nonzero()), int((t == r2).nonzero())
    starts = torch.stack([tr.theta[b, j1], tr.theta[b, j2]])            # (2, 1)
    t3 = ([x for x, _ in event_list(tr, b)[2:]] + [SEXTIC_T])[0]
    windows = [(t1, t2, -1.0), (t2, t3, 1.0)]
    sels = [(t > ta + 1e-6) & (t < tb) for ta, tb, _ in windows]
    grids = torch.full((2, max(int(x.sum()) for x in sels) + 1), math.nan, dtype=F64)
    for i, ((ta, _, _), sel) in enumerate(zip(windows, sels)):
        grids[i, 0] = 0.0
        grids[i, 1:int(sel.sum()) + 1] = t[sel] - ta
    fresh = AdamFlow1(SignedSextic([-1.0, 1.0]), alpha=SEXTIC_ALPHA, n_lanes=2)
    ref = solve(fresh, fresh.initial_state(starts), grids, compact=False, rtol=1e-9)
    out = fresh.outputs(ref.ys)
    for i, ((_, _, sigma), sel) in enumerate(zip(windows, sels)):
        k = int(sel.sum())
        th, m, v = (out[key][i, 1:k + 1, 0] for key in ("theta", "m", "v"))
        assert (tr.theta[b, sel, 0] - th).abs().max() <= 1e-8
        assert (tr.extras["m"][b, sel, 0] - sigma * m).abs().max() <= 1e-8 * m.abs().max()
        assert (tr.extras["v"][b, sel, 0] - v).abs().max() <= 1e-8 * v.abs().max()
        assert (tr.extras["sigma"][b, sel] == sigma).all()
    # just after the toggle the moments restart from zero: m(t1 + tau) = g (1 - exp(-lam1 tau)),
    # v = g^2 (1 - exp(-lam2 tau)) to O(tau^1.5) (theta has barely moved)
    j = int((t == r1 + 1e-4).nonzero())
    tau = float(t[j]) - t1
    g1 = float(dsextic(float(tr.theta[b, j1, 0])))
    lam1, lam2 = (1 - B1) / SEXTIC_ALPHA, (1 - B2) / SEXTIC_ALPHA
    assert float(tr.extras["m"][b, j, 0]) == pytest.approx(g1 * -math.expm1(-lam1 * tau), rel=1e-4)
    assert float(tr.extras["v"][b, j, 0]) == pytest.approx(g1 * g1 * -math.expm1(-lam2 * tau),
                                                            rel=1e-4)


# -- the rules off --------------------------------------------------------------------------------
def test_disabled_rules_are_adam_flow1():
    land = landscapes.parse("rosenbrock1d(c=4)")
    alphas = [0.05, 0.03]
    th0 = torch.tensor([[-1.5], [0.3]], dtype=F64)
    t = torch.linspace(0.0, 0.4, 9, dtype=F64)
    adam = AdamFlow1(land, alpha=alphas, n_lanes=2)
    ra = solve(adam, adam.initial_state(th0), t, rtol=1e-9)
    scale = ra.ys.abs().amax(dim=1, keepdim=True)
    for with_events in (False, True):
        flow = HillFlow(land, alpha=alphas, delta=0.0, gamma=INF, gamma_low=-INF, n_lanes=2)
        rh = solve(flow, flow.initial_state(th0), t, events=flow.events() if with_events else None,
                   rtol=1e-9)
        rel = (rh.ys[..., :3] - ra.ys).abs() / scale
        if with_events:
            kinds = rh.event_index[rh.event_index >= 0]
            assert (kinds == EXTREMUM).all()                 # only the best-state bookkeeping
            assert rel.max() <= 1e-9
        else:
            for k in ("accepted", "rejected"):                # the same steps
                assert torch.equal(rh.stats[k], ra.stats[k])
            assert rel.max() <= 1e-11
        # the latched components are constant (their dense output to within rounding)
        assert ((rh.ys[..., flow.index("sigma")] - 1).abs() <= 1e-13).all()
        assert (rh.ys[..., flow.index("t_reset")].abs() <= 1e-13).all()


# -- the side rule: a band narrower than the steps ----------------------------------------------------
def test_a_plateau_band_narrower_than_the_steps_is_found_at_its_entry():
    # f = (x - 1)^2 from 0.7: adam-flow1 passes x = 1 near t = 0.384; with D = 1e-6 the band
    # |p| < D lasts ~1e-6 in t while the integrator's steps are ~1e-3: both ends of the step that
    # carries the flow through it see |p| > D, yet the toggle is located at the band's entry, the
    # first root of |p| = D on the adam-flow1 path (scipy, brentq on the dense output)
    land = landscapes.parse("quadratic(center=[1])")
    al, Ds, T, x0 = 0.05, [1e-2, 1e-6], 0.39, 0.7
    flow = HillFlow(land, alpha=al, delta=[D * al for D in Ds], gamma=INF, n_lanes=2)
    tr = simulate(flow, torch.full((2, 1), x0, dtype=F64), lanes_time(T, 3, 2), events=flow.events(),
                  rtol=1e-9)
    steps = int(tr.stats["accepted"][1])
    ref = HillReference(lambda x: float(np.sum((x - 1) ** 2)), lambda x: 2 * (x - 1), alpha=al,
                        delta=0.0)
    _, pieces = ref.run(x0, T)
    sol = pieces[-1][2]

    def p(s):
        z = sol(s)
        return 2 * (z[0] - 1) * ref.velocity(s, z, 1.0, 0.0)[1][0]

    s_zero = brentq(p, 0.3, T, xtol=1e-15)
    for b, D in enumerate(Ds):
        ours = event_list(tr, b)
        assert ours[0][1] == TOGGLE and len(ours) == 1
        te = brentq(lambda s, D=D: abs(p(s)) - D, 0.3, s_zero, xtol=1e-15)
        assert abs(ours[0][0] - te) <= 1e-9, (D, ours[0][0], te)
    assert s_zero - ours[0][0] < 1e-5 and T / steps > 2e-4              # the band is << a step


# -- forced excursions ----------------------------------------------------------------------------
def test_dead_end_and_floor_rules():
    # lane 0: gamma = -0.1 lies below the local minimum's level (-0.070): the whole descent from 0.5 is
    # one forced excursion (sigma = +1 from the start), the plateau test is off, no reset: adam-flow1.
    # lane 1: gamma_low = -0.05: the descent into the local minimum falls through the floor where
    # f = gamma_low: a reset, sigma = -1 (ascent); f rises above the floor again (no event there).
    # lane 2: starting below the floor (f(-0.15) = -0.070 < -0.05): sigma = -1 from the start; with
    # D = 1 the plateau holds from the hold's end on, but the test is off while f < gamma_low: the
    # toggle fires where f comes back up through gamma_low, and the descent it starts falls straight
    # back through the floor (a new excursion: a reset, sigma = -1).
    land = landscapes.parse("sextic")
    al, T = 0.05, 0.85
    kw = dict(alpha=al, delta=[0.05 * al, 0.05 * al, 1.0 * al], gamma=[-0.1, 200.0, 200.0],
              gamma_low=[-1e4, -0.05, -0.05])
    flow = HillFlow(land, n_lanes=3, **kw)
    th0 = torch.tensor([[0.5], [0.5], [-0.15]], dtype=F64)
    t = lanes_time(T, 18, 3).clone()
    t[2] = torch.linspace(0.0, 0.2, 18, dtype=F64)                 # lane 2: a shorter horizon
    tr = simulate(flow, th0, t, events=flow.events(), rtol=1e-8)
    assert (tr.status == Status.OK).all()
    adam = AdamFlow1(land, alpha=al, n_lanes=1)
    ra = solve(adam, adam.initial_state(th0[:1]), t[0], rtol=1e-8)
    # lane 0
    assert all(k == EXTREMUM for _, k in event_list(tr, 0))
    assert (tr.extras["sigma"][0] == 1).all()
    assert (tr.theta[0, :, 0] - ra.ys[0, :, 0, 0]).abs().max() <= 1e-7
    assert float(tr.f[0].min()) > -0.1
    # lane 1: the floor first, where f = gamma_low; adam-flow1 up to it
    ev = event_list(tr, 1)
    assert ev[0][1] == FLOOR
    tf = ev[0][0]
    before = t[1] <= tf
    assert (tr.theta[1, before, 0] - ra.ys[0, before, 0, 0]).abs().max() <= 1e-7
    # f = gamma_low there: the descent's lowest point, so the best record (kept by the handler)
    assert float(tr.extras["best_f"][1, -1, 0]) == pytest.approx(-0.05, abs=1e-9)
    after = t[1] > tf
    assert (tr.extras["sigma"][1, after] == -1).all() and (tr.extras["sigma"][1, before] == 1).all()
    assert float(tr.f[1, -1]) > -0.05                      # ascended out of the forced region
    assert sum(k == FLOOR for _, k in ev) == 1              # one reset per excursion
    # lane 2: forced ascent from the start; the toggle where f rises through gamma_low
    assert (tr.extras["sigma"][2, 0] == -1).all()
    ev = event_list(tr, 2)
    assert [k for _, k in ev] == [TOGGLE, FLOOR] and ev[0][0] > 2 * al
    assert 0 < ev[1][0] - ev[0][0] < 1e-9
    x_up = simulate(HillFlow(land, n_lanes=1, alpha=al, delta=al, gamma_low=-0.05), th0[2:],
                    torch.tensor([[0.0, ev[0][0]]], dtype=F64), rtol=1e-8)
    assert float(x_up.f[0, 1]) == pytest.approx(-0.05, abs=1e-8)
    assert float(tr.f[2, 1]) < -0.05                         # below the floor during the hold
    assert (tr.extras["sigma"][2] == -1).all()


# -- degenerate points, lanes, Jacobian -------------------------------------------------------------
def test_no_nan_at_a_zero_gradient_and_a_toggle_every_hold():
    # a flat landscape (g = 0 everywhere): A = 0, p = 0 < D, the lane toggles each time the hold ends
    # (t = k hold alpha) and does not move, as the discrete method toggles every second step there.
    # (At an isolated minimum the ascent branch is unstable: rounding noise of the dense output
    # grows under it, as any perturbation would.)
    land = landscapes.parse("quadratic(diag=[0,0],center=[1,2])")
    al, hold, T = 0.1, 2.0, 2.1
    flow = HillFlow(land, alpha=al, delta=1e-4, hold=hold, n_lanes=1)
    x = torch.tensor([[0.5, -3.0]], dtype=F64)
    y0 = flow.initial_state(x)
    assert torch.isfinite(flow(torch.zeros(1, dtype=F64), y0)).all()
    assert torch.isfinite(flow.jacobian(torch.zeros(1, dtype=F64), y0)[0]).all()
    tr = simulate(flow, x, lanes_time(T, 22, 1), events=flow.events())
    assert int(tr.status[0]) == Status.OK
    assert torch.isfinite(tr.theta).all() and torch.isfinite(tr.extras["m"]).all()
    assert (tr.theta[0] - x).abs().max() <= 1e-12                     # dense output of a constant
    ev = event_list(tr, 0)
    assert [k for _, k in ev] == [TOGGLE] * 10
    assert np.allclose([te for te, _ in ev], [hold * al * (j + 1) for j in range(10)], atol=1e-11)
    sig = tr.extras["sigma"][0, :, 0].numpy()
    want = np.where(np.floor(tr.t[0].numpy() / (hold * al) - 1e-9) % 2 == 0, 1.0, -1.0)
    assert (sig[1:] == want[1:]).all()


def test_lanes_are_independent():
    # lane 1 toggles in run A (D = 0.3) and never in run B (delta = 0); lanes 0 and 2 take the same
    # steps and events in both runs and agree to rounding. (Not bit for bit: the torch engine's
    # batched matrix functions couple the rounding of lanes -- adam-flow1 itself differs by ~2e-16
    # in a lane when a neighbour starts elsewhere.)
    land = landscapes.parse("sextic")
    al = 0.05
    th0 = torch.tensor([[0.5], [-1.5], [0.3]], dtype=F64)
    t = lanes_time(0.5, 6, 3)
    out = []
    for d1 in (0.3 * al, 0.0):
        flow = HillFlow(land, alpha=al, delta=[0.3 * al, d1, 0.3 * al], gamma=20.0, n_lanes=3)
        out.append(simulate(flow, th0, t, events=flow.events(), rtol=1e-8))
    a, b = out
    assert any(k == TOGGLE for _, k in event_list(a, 1))
    assert not any(k == TOGGLE for _, k in event_list(b, 1))
    for lane in (0, 2):
        assert (a.theta[lane] - b.theta[lane]).abs().max() <= 1e-13
        for key in ("m", "v", "best_f", "best_theta"):
            assert (a.extras[key][lane] - b.extras[key][lane]).abs().max() <= 1e-12, key
        assert torch.equal(a.extras["sigma"][lane], b.extras["sigma"][lane])
        ea, eb = event_list(a, lane), event_list(b, lane)
        assert [k for _, k in ea] == [k for _, k in eb]
        assert np.allclose([x for x, _ in ea], [x for x, _ in eb], rtol=0, atol=1e-12)
        for k in ("accepted", "rejected", "nfev"):
            assert int(a.stats[k][lane]) == int(b.stats[k][lane])


@pytest.mark.slow
def test_lane_retirement_with_events_matches_single_lanes():
    land = landscapes.parse("sextic")
    al = 0.05
    th0 = torch.tensor([[-1.5], [0.5], [0.3], [0.5]], dtype=F64)
    T = [0.6, 0.2, 0.3, 0.5]
    t = torch.stack([torch.linspace(0, Tb, 11, dtype=F64) for Tb in T])
    kw = dict(alpha=al, delta=0.3 * al, gamma=[20.0, 20.0, 20.0, 1.5])
    flow = HillFlow(land, n_lanes=4, **kw)
    tr = simulate(flow, th0, t, events=flow.events(), rtol=1e-8)
    assert (tr.status == Status.OK).all()
    for b in (0, 3):
        one = HillFlow(land, n_lanes=1, **{k: (v[b] if isinstance(v, list) else v)
                                          for k, v in kw.items()})
        ta = simulate(one, th0[b:b + 1], t[b:b + 1], events=one.events(), rtol=1e-8)
        assert torch.allclose(ta.theta[0], tr.theta[b], rtol=1e-9, atol=1e-11)
        ea, eb = event_list(ta, 0), event_list(tr, b)
        assert [k for _, k in ea] == [k for _, k in eb] and len(ea) >= (b == 0)
        assert np.allclose([x for x, _ in ea], [x for x, _ in eb], atol=1e-9)
    # lane 3 starts above its dead end (f(0.5) = 1.92 > 1.5): descends, forced
    assert (tr.extras["sigma"][3, 0] == 1).all()


@pytest.mark.parametrize("spec", ["rosenbrock(a=1,b=100)", "sextic"])
def test_closed_form_jacobian_matches_autograd(spec):
    land = landscapes.parse(spec)
    th0 = torch.tensor([[-1.2, 1.1], [1.5, 2.0], [0.9, 0.7]], dtype=F64)
    flow = HillFlow(land, alpha=[0.1, 0.05, 0.02], n_lanes=3)
    y = flow.initial_state(th0)
    gen = torch.Generator().manual_seed(0)
    y[..., 1] = torch.randn(th0.shape, generator=gen, dtype=F64)
    y[..., 2] = torch.rand(th0.shape, generator=gen, dtype=F64) + 0.5
    y[..., flow.index("sigma")] = torch.tensor([1.0, -1.0, -1.0], dtype=F64)[:, None]
    y[..., flow.index("t_reset")] = torch.tensor([0.1, 0.5, 0.0], dtype=F64)[:, None]
    t = torch.tensor([0.3, 1.0, 0.05], dtype=F64)
    J, Jt = flow.jacobian(t, y)
    Ja, Jta = SemilinearFlow.jacobian(flow, t, y)          # reverse-mode autograd of N
    assert (J - Ja).abs().max() <= 1e-13 * float(Ja.abs().max())
    assert (Jt - Jta).abs().max() <= 1e-13 * max(1.0, float(Jta.abs().max()))


def test_declarations_and_bad_input():
    land = landscapes.parse("sextic")
    flow = HillFlow(land, alpha=0.1, n_lanes=1)
    assert flow.components == ("theta", "m", "v") + SWITCH_COMPONENTS
    assert HillFlow.hyper[:4] == AdamFlow1.hyper                         # Adam's, imported
    assert HillFlow.hyper[4:7] == (DELTA, GAMMA, GAMMA_LOW)              # shared with hilladam
    assert HillFlow.hyper[7] is HOLD and HOLD.default == 2.0
    assert HillFlow.method == "hilladam" and flow.compiled_form() is None
    assert tuple(ev.name for ev in flow.events()) == EVENT_NAMES
    for bad in (dict(delta=-1.0), dict(gamma=math.nan), dict(hold=0.0), dict(gamma=1.0, gamma_low=1.0)):
        with pytest.raises(ConfigError):
            HillFlow(land, alpha=0.1, n_lanes=1, **bad)
    # without its events nothing switches: the initial sign, best = running minimum of the samples
    tr = simulate(flow, torch.tensor([[0.5]], dtype=F64), lanes_time(0.5, 6, 1))
    assert not tr.events and (tr.extras["sigma"] == 1).all()
    assert torch.equal(tr.extras["best_f"][0, :, 0], torch.cummin(tr.f[0], 0).values)


# -- the discrete method ------------------------------------------------------------------------------
def test_discrete_hill_adam_converges_to_the_hill_flow():
    # hilladam (variant "original") at delta = D alpha, alpha -> 0, on the sextic from -1.5 (D = 0.3,
    # gamma = 5): a plateau toggle before the global minimum, an ascent to the left into the dead end,
    # a descent. The resets (the discrete reset at sample k happens at theta_{k-1}, t = (k-1) alpha)
    # come in the same order and count as the flow's events, within 2 alpha of them, and the iterates
    # follow the flow to O(alpha): max_k |theta_k - theta(k alpha)| / alpha stays bounded and the error
    # shrinks between alpha = 0.04 and 0.005 (the plateau test samples a band crossing at whole steps,
    # so the error per alpha fluctuates: 0.9 - 2.8 over alpha = 0.04 ... 0.005, see README)
    land = landscapes.parse("sextic")
    x0, D, gamma, T = -1.5, 0.3, 5.0, 1.0
    alphas = [0.04, 0.02, 0.01, 0.005]
    B = len(alphas)
    al = torch.tensor(alphas, dtype=F64)
    K = [round(T / a) for a in alphas]
    th0 = torch.full((B, 1), x0, dtype=F64)
    dt = discrete.get("hilladam")(alpha=al, delta=al * D, gamma=gamma).run(land, th0, K)
    flow = HillFlow(land, alpha=al, delta=al * D, gamma=gamma, n_lanes=B)
    t = torch.full((B, max(K) + 1), math.nan, dtype=F64)
    for b, k in enumerate(K):
        t[b, :k + 1] = torch.arange(k + 1, dtype=F64) * alphas[b]
    ft = simulate(flow, th0, t, torch.tensor([k + 1 for k in K]), events=flow.events(), rtol=1e-8)
    assert (ft.status == Status.OK).all() and (dt.status == Status.OK).all()
    sup = []
    for b, a in enumerate(alphas):
        k = K[b]
        resets = torch.nonzero(dt.extras["reset"][b, :k + 1, 0] > 0).squeeze(1)
        d_times = [(int(i) - 1) * a for i in resets]
        d_kinds = [int(dt.extras["event"][b, int(i), 0]) for i in resets]
        ours = [(x, e) for x, e in event_list(ft, b) if e != EXTREMUM]
        assert [e for _, e in ours] == [TOGGLE, DEAD_END]
        assert d_kinds == [1, 3]                                       # plateau, dead end
        assert max(abs(x - y) for x, (y, _) in zip(d_times, ours)) <= 2 * a
        err = float((dt.theta[b, :k + 1, 0] - ft.theta[b, :k + 1, 0]).abs().max())
        assert err <= 3 * a, (a, err)
        sup.append(err)
    assert sup[-1] <= 0.5 * sup[0]


# -- registry, runner, CLI ------------------------------------------------------------------------------
def test_registry_pairs_the_flow_with_hilladam():
    reg = registry.registry()
    info = reg["hill-flow"]
    assert info.kind == "flow" and info.method == "hilladam" and info.schemes == ("exact",)
    assert [f.name for f in registry.methods()["hilladam"].flows] == ["hill-flow"]
    for p in (DELTA, GAMMA, GAMMA_LOW):                       # one declaration for both sides
        assert reg["hilladam"].param(p.name) is p and info.param(p.name) is p
    assert info.records == ("m", "v", "sigma", "best_f", "best_theta")
    flow = HillFlow(landscapes.parse("sextic"), alpha=0.05, n_lanes=1)
    assert Numerics().choose_engine(flow)[0] == "torch"        # events: the torch engine
    lanes = [{"theta0": [-1.5], "alpha": 0.05}]
    with pytest.raises(Exception, match="compiled engine"):
        run_lanes("hill-flow", "sextic", lanes, [10], numerics=Numerics(engine="compiled"))


def test_cli_runs_hill_adam_beside_its_flow(capsys):
    # the runner (every CLI command and study) hands the flow's events to the solve: the toggle is
    # located and recorded in the JSON lane
    code = main(["run", "--landscape", "sextic", "--model", "hilladam", "hill-flow", "--theta0", "-1.5",
                 "--alpha", "0.05", "--delta", "0.015", "--gamma", "5", "--hold", "2", "--steps", "8",
                 "--every", "4", "--rtol", "1e-8", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lanes = json.loads(out)["lanes"]
    assert [ln["model"] for ln in lanes] == ["hilladam", "hill-flow"]
    hf = lanes[1]
    assert hf["status"] == "ok" and hf["t"][-1] == pytest.approx(0.4)
    assert hf["delta"] == 0.015 and hf["gamma"] == 5.0 and hf["hold"] == 2.0
    assert {"sigma", "best_f", "best_theta", "m", "v"} <= set(hf)
    assert hf["events"]["index"][0] == TOGGLE and hf["sigma"][-1] == [-1.0]
    assert hf["best_f"][-1][0] <= min(hf["f"]) + 1e-12
    # bad input: one line, exit code 2
    for bad in (["--hold", "0"], ["--gamma", "1", "--gamma-low", "2"], ["--delta", "-1"]):
        assert main(["run", "--landscape", "sextic", "--model", "hill-flow", "--theta0", "-1.5",
                     "--alpha", "0.05", "--steps", "5"] + bad) == 2
        _, err = capsys.readouterr()
        assert err.startswith("error: ") and err.count("\n") == 1


def test_runs_on_the_device(device):
    # device-agnostic: the toggle from -1.5 located on the given device as by the scipy reference
    land = landscapes.parse("sextic")
    al, D, T = 0.05, 0.3, 0.45
    flow = HillFlow(land, alpha=al, delta=D * al, gamma=5.0, n_lanes=1, device=device)
    th0 = torch.tensor([[-1.5]], dtype=F64, device=device)
    tr = simulate(flow, th0, torch.linspace(0, T, 10, dtype=F64, device=device)[None],
                  events=flow.events(), rtol=1e-9)
    assert tr.theta.device.type == device.type and int(tr.status[0]) == Status.OK
    events, _ = HillReference(sextic, dsextic, alpha=al, delta=D * al, gamma=5.0).run(-1.5, T)
    ours = event_list(tr, 0)
    assert [k for _, k in ours] == [k for _, k in events] == [TOGGLE]
    assert abs(ours[0][0] - events[0][0]) <= 2e-9
    assert (tr.extras["sigma"][0, -1] == -1).all()
