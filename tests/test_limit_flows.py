"""The limit flows of the secant jump (SPEC §3.4) against independent references.

* newton-flow: the invariant g(t) = exp(-r t) g(0) (r = jump_lr/alpha) on classic Rosenbrock, a
  non-diagonal quadratic, rosenbrock1d and the double well, and scipy Radau (rtol 1e-12, plain numpy
  right-hand sides); the closed form on quadratics; lanes with a singular or indefinite Hessian get a
  per-lane status and leave the other lanes untouched.
* diag-newton-flow: scipy Radau on classic Rosenbrock (non-separable); the per-coordinate invariant
  g_i(t) = exp(-r t) g_i(0) on separable landscapes; equal to newton-flow there; its guard.
* jump-flow: every gate switch (curvature, agreement, clamp) located to the integrator tolerance
  against a piecewise scipy LSODA reference whose switch times are brentq roots of the gate functions
  on its dense output; forced closed (h_min = inf) it is adam-flow1; open everywhere on a separable
  quadratic it is diag-newton-flow; the dwell rule bounds the events per unit time on a sliding
  surface and converges to Filippov's sliding solution as dwell -> 0; no NaN where g or H vanish; the
  gate record; lane retirement with events.
* all three: Jacobians against autograd, the registry declarations, ``adamflow run`` with the default
  engine (compiled for the Newton flows on rosenbrock1d, torch for jump-flow), ``--engine compiled`` refused.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import landscapes
from adamflow.cli import main
from core.method import H_MIN, JUMP_LR, TRUST_COEFFICIENT
from core.trajectory import Status
from flows import AdamFlow1, DiagNewtonFlow, JumpFlow, NewtonFlow
from flows.jump_flow import DWELL, EVENT_NAMES
from flows.semilinear import SemilinearFlow
from flows.simulate import simulate
from flows.solve import solve
from landscapes.base import Landscape, Separable
from runner import registry
from runner.experiment import Numerics, run_lanes

F64 = torch.float64
RADAU = dict(method="Radau", rtol=1e-12, atol=1e-14)
LSODA = dict(method="LSODA", rtol=1e-12, atol=1e-14)

pytestmark = pytest.mark.usefixtures("single_thread")


# -- plain numpy landscapes (independent of landscapes/) ---------------------------------------------
def rosen_g(x, a=1.0, b=100.0):
    return np.array([-4 * b * x[0] * (x[1] - x[0] ** 2) - 2 * (a - x[0]), 2 * b * (x[1] - x[0] ** 2)])


def rosen_H(x, a=1.0, b=100.0):
    return np.array([[12 * b * x[0] ** 2 - 4 * b * x[1] + 2, -4 * b * x[0]], [-4 * b * x[0], 2 * b]])


def rb1d_g(x, c):
    return -2 * (1 - x) + 4 * c * x * (x * x - 1)


def rb1d_h(x, c):
    return 2 + 4 * c * (3 * x * x - 1)


QA = np.array([[3.0, 1.2], [1.2, 1.0]])          # quadratic(A=QA, center=QC): g = 2 QA (x - QC)
QC = np.array([1.0, -2.0])

NUMPY = {  # spec -> (grad, Hessian) in numpy
    "rosenbrock(a=1,b=100)": (rosen_g, rosen_H),
    "quadratic(A=[[3,1.2],[1.2,1]],center=[1,-2])": (lambda x: 2 * QA @ (x - QC), lambda x: 2 * QA),
    "rosenbrock1d(c=4)": (lambda x: rb1d_g(x, 4.0), lambda x: np.diag(rb1d_h(x, 4.0))),
    "doublewell": (lambda x: x ** 3 - x, lambda x: np.diag(3 * x * x - 1)),
}


def newton_rhs(spec, r, diag=False):
    grad, hess = NUMPY[spec]

    def f(t, x):
        g, H = grad(x), hess(x)
        return -r * (g / np.diag(H) if diag else np.linalg.solve(H, g))

    return f


def grid(T, k=41):
    return torch.linspace(0.0, T, k, dtype=F64)


# -- newton-flow -------------------------------------------------------------------------------------
NEWTON_CASES = [  # spec, theta0 (one per lane), T
    ("rosenbrock(a=1,b=100)", [[-1.2, 1.0], [2.0, 2.0]], 6.0),
    ("quadratic(A=[[3,1.2],[1.2,1]],center=[1,-2])", [[4.0, 3.0], [-1.0, 0.5]], 6.0),
    ("rosenbrock1d(c=4)", [[-1.5, 2.0], [0.9, -0.7]], 6.0),
    ("doublewell", [[0.7, -3.0], [1.6, 2.5]], 6.0),
]


@pytest.mark.parametrize("spec,theta0,T", NEWTON_CASES, ids=[c[0].split("(")[0] for c in NEWTON_CASES])
def test_newton_flow_gradient_decays_exponentially_and_matches_radau(spec, theta0, T):
    # r = jump_lr/alpha = 0.5 and 2: g(t) = exp(-r t) g(0) along the solution (SPEC §3.4, any f)
    land = landscapes.parse(spec)
    alpha, jump_lr = [0.1, 0.05], [0.05, 0.1]
    flow = NewtonFlow(land, alpha=alpha, jump_lr=jump_lr, n_lanes=2)
    th0 = torch.tensor(theta0, dtype=F64)
    t = grid(T)
    sol = solve(flow, flow.initial_state(th0), t)
    assert (sol.status == Status.OK).all()
    theta = sol.ys[..., 0]                                                   # (B, T, n)
    r = torch.tensor(jump_lr, dtype=F64) / torch.tensor(alpha, dtype=F64)
    for b in range(2):
        g = land.grad(theta[b])
        g0 = land.grad(th0[b:b + 1])
        want = torch.exp(-r[b] * t)[:, None] * g0
        assert (g - want).abs().max() <= 1e-10 * g0.abs().max()
        ref = solve_ivp(newton_rhs(spec, float(r[b])), (0.0, T), theta0[b], t_eval=t.numpy(), **RADAU)
        assert ref.status == 0
        assert np.abs(theta[b].numpy() - ref.y.T).max() <= 2e-9 * max(1.0, np.abs(ref.y).max())


def test_newton_flow_is_exact_on_quadratics():
    # theta(t) = x* + exp(-r t) (theta0 - x*) for a non-diagonal A
    land = landscapes.parse("quadratic(A=[[3,1.2],[1.2,1]],center=[1,-2])")
    flow = NewtonFlow(land, alpha=0.2, jump_lr=0.3, n_lanes=1)
    th0 = torch.tensor([[5.0, -7.0]], dtype=F64)
    t = grid(8.0)
    sol = solve(flow, flow.initial_state(th0), t)
    c = torch.tensor(QC, dtype=F64)
    exact = c + torch.exp(-1.5 * t)[:, None] * (th0[0] - c)
    assert (sol.ys[0, :, :, 0] - exact).abs().max() <= 1e-10


def test_singular_and_indefinite_lanes_stop_with_a_status_and_spare_the_others():
    # rosenbrock1d H = 2 + 4c(3x^2 - 1): lane 1 starts where H < 0 (indefinite), lane 2 where H = 0
    # exactly (c = 1/2, x = 0); lanes 0 and 3 are healthy and equal to their runs alone
    land = landscapes.parse("rosenbrock1d(c=[4, 4, 0.5, 1.5])")
    th0 = torch.tensor([[-1.0], [-0.1], [0.0], [2.0]], dtype=F64)
    t = grid(5.0, 11)
    for cls in (NewtonFlow, DiagNewtonFlow):
        flow = cls(land, alpha=0.1, jump_lr=0.1, n_lanes=4)
        assert flow.in_domain(th0).tolist() == [True, False, False, True]
        tr = simulate(flow, th0, t[None].expand(4, -1).contiguous())
        assert tr.status.tolist() == [Status.OK, Status.DIVERGED, Status.DIVERGED, Status.OK]
        assert tr.diverged_at[1:3].tolist() == [0.0, 0.0]
        assert tr.n_out.tolist() == [11, 1, 1, 11]                  # only the start was reached
        assert torch.isfinite(tr.theta[[0, 3]]).all()
        for b in (0, 3):
            alone = cls(land.subset(torch.tensor([b])), alpha=0.1, jump_lr=0.1, n_lanes=1)
            ta = simulate(alone, th0[b:b + 1], t[None])
            assert torch.allclose(ta.theta[0], tr.theta[b], rtol=1e-12, atol=1e-14)


def test_diag_newton_flow_reaching_zero_curvature_mid_run_stops_there():
    # classic Rosenbrock, H_11 = 1200 x^2 - 400 y + 2: from (-0.1, 0.03) the diagonal flow carries x
    # to 0 faster than y relaxes (y' = -(y - x^2)), H_11 reaches 0 and the speed |g_x|/H_11 blows up
    # in finite time; the lane stops there with a status (scipy Radau fails at the same time), the
    # healthy lane beside it runs to the horizon
    land = landscapes.parse("rosenbrock(a=1,b=100)")
    flow = DiagNewtonFlow(land, alpha=0.1, jump_lr=0.1, n_lanes=2)
    th0 = torch.tensor([[-0.1, 0.03], [-1.2, 1.0]], dtype=F64)
    sol = solve(flow, flow.initial_state(th0), grid(2.0, 21))
    assert int(sol.status[1]) == Status.OK and float(sol.t_final[1]) == 2.0
    assert int(sol.status[0]) in (Status.DIVERGED, Status.STEP_UNDERFLOW)
    ref = solve_ivp(newton_rhs("rosenbrock(a=1,b=100)", 1.0, diag=True), (0.0, 1.0), [-0.1, 0.03],
                    **RADAU)
    assert ref.status == -1                                      # Radau: "step size too small"
    assert abs(float(sol.t_final[0]) - ref.t[-1]) <= 1e-6 and 0.006 < ref.t[-1] < 0.007


# -- diag-newton-flow --------------------------------------------------------------------------------
def test_diag_newton_flow_matches_radau_on_classic_rosenbrock():
    spec = "rosenbrock(a=1,b=100)"
    land = landscapes.parse(spec)
    flow = DiagNewtonFlow(land, alpha=0.1, jump_lr=0.1, n_lanes=2)
    theta0 = [[-1.2, 1.0], [1.5, 1.0]]
    t = grid(8.0)
    sol = solve(flow, flow.initial_state(torch.tensor(theta0, dtype=F64)), t)
    assert (sol.status == Status.OK).all()
    for b in range(2):
        ref = solve_ivp(newton_rhs(spec, 1.0, diag=True), (0.0, 8.0), theta0[b], t_eval=t.numpy(),
                        **RADAU)
        assert np.abs(sol.ys[b, :, :, 0].numpy() - ref.y.T).max() <= 1e-10


@pytest.mark.parametrize("spec,theta0", [("rosenbrock1d(c=4)", [2.0, -1.0, 0.8]),
                                         ("doublewell", [0.7, -3.0, 1.2]),
                                         ("sextic", [0.5, -1.5, 1.0])])
def test_diag_newton_flow_per_coordinate_invariant_on_separable_landscapes(spec, theta0):
    land = landscapes.parse(spec)
    th0 = torch.tensor([theta0], dtype=F64)
    flow = DiagNewtonFlow(land, alpha=0.05, jump_lr=0.1, n_lanes=1)
    assert bool(flow.in_domain(th0)[0])
    t = grid(6.0)
    sol = solve(flow, flow.initial_state(th0), t)
    assert int(sol.status[0]) == Status.OK
    g = land.grad(sol.ys[0, :, :, 0])
    g0 = land.grad(th0)
    want = torch.exp(-2.0 * t)[:, None] * g0
    assert ((g - want).abs() / g0.abs()).max() <= 1e-10           # per coordinate, relative
    # on a separable landscape the full Newton flow is the same flow
    full = NewtonFlow(land, alpha=0.05, jump_lr=0.1, n_lanes=1)
    sf = solve(full, full.initial_state(th0), t)
    assert (sf.ys - sol.ys).abs().max() <= 1e-9


# -- jump-flow: a piecewise scipy reference of the switched system ------------------------------------
class ExpLinear(Separable):
    """phi(x) = exp(x) - 2 x: minimum ln 2, curvature exp(x) increasing (the curvature gate H > h_min
    opens right of ln(h_min))."""
    name = "explinear"

    def phi(self, x):
        return torch.exp(x) - 2 * x

    def dphi(self, x):
        return torch.exp(x) - 2

    def d2phi(self, x):
        return torch.exp(x)


def bias(s, alpha, b1, b2, eps):
    q = s / alpha + 1.0
    c1, c2 = -math.expm1(q * math.log(b1)), -math.expm1(q * math.log(b2))
    return math.sqrt(c2) / c1, eps * math.sqrt(c2)


class JumpReference:
    """The 1-D gated jump flow integrated piecewise by scipy LSODA (rtol 1e-12): between switches the
    branch is smooth (closed: -A; open and clamped: -c sign(g) |A|; open and free: -r g/H); a piece
    ends at the first zero of the watched gate functions (scipy's terminal events), refined by brentq
    on the dense output of the step that crossed; the state restarts there with the sub-gate
    flipped (no dwell: the switches of the test case lie far apart)."""

    def __init__(self, grad, hess, *, alpha, b1, b2, eps, r, trust, h_min):
        self.grad, self.hess = grad, hess
        self.alpha, self.b1, self.b2, self.eps = alpha, b1, b2, eps
        self.r, self.trust, self.h_min = r, trust, h_min
        self.l1, self.l2 = (1 - b1) / alpha, (1 - b2) / alpha

    def fields(self, s, z):
        th, m, v = z
        eta, epsq = bias(s, self.alpha, self.b1, self.b2, self.eps)
        A = eta * m / (math.sqrt(max(v, 0.0)) + epsq)
        g, H = self.grad(th), self.hess(th)
        return g, H, A, (H - self.h_min, g * A, self.r * abs(g) - self.trust * abs(A) * H)

    def rhs(self, gates):
        curv, agree, clamped = gates

        def f(s, z):
            g, H, A, _ = self.fields(s, z)
            if curv and agree:
                vel = -self.trust * math.copysign(abs(A), g) if clamped else -self.r * g / H
            else:
                vel = -A
            return [vel, self.l1 * (g - z[1]), self.l2 * (g * g - z[2])]

        return f

    def watched(self, gates):
        """[(kind, signed function > 0 while the sub-gate holds)]."""
        curv, agree, clamped = gates
        sgn = lambda on: 1.0 if on else -1.0  # noqa: E731
        out = [(0, lambda s, z: sgn(curv) * self.fields(s, z)[3][0])]
        if curv:
            out.append((1, lambda s, z: sgn(agree) * self.fields(s, z)[3][1]))
        if curv and agree:
            out.append((2, lambda s, z: sgn(clamped) * self.fields(s, z)[3][2]))
        return out

    def run(self, theta0, T, t_eval):
        z = [theta0, 0.0, 0.0]
        g0, H0 = self.grad(theta0), self.hess(theta0)
        gates = [H0 > self.h_min, g0 != 0, g0 != 0]        # the right limit at t = 0
        s0, switches, pieces = 0.0, [], []
        while s0 < T and len(switches) < 50:
            watched = self.watched(tuple(gates))
            events = []
            for _, fn in watched:
                ev = (lambda fn: lambda s, y: fn(s, y))(fn)
                ev.terminal, ev.direction = True, -1
                events.append(ev)
            sol = solve_ivp(self.rhs(tuple(gates)), (s0, T), z, dense_output=True, events=events,
                            **LSODA)
            assert sol.status in (0, 1)
            hits = [(float(te[0]), watched[i][0]) for i, te in enumerate(sol.t_events) if te.size]
            if not hits:
                pieces.append((s0, T, sol.sol))
                break
            root, kind = min(hits)
            # the root again by brentq on the dense output, bracketed by the step that crossed
            fn = dict(watched)[kind]
            lo = sol.t[-2] if sol.t.size > 1 else s0
            if fn(lo, sol.sol(lo)) > 0 > fn(root + 1e-13, sol.sol(root + 1e-13)):
                root = brentq(lambda s: fn(s, sol.sol(s)), lo, root + 1e-13, xtol=1e-15, rtol=1e-15)
            pieces.append((s0, root, sol.sol))
            z = list(sol.sol(root))
            _, _, _, (c_h, c_s, c_c) = self.fields(root, z)
            if kind == 0:
                gates[0] = not gates[0]
                if gates[0]:
                    gates[1], gates[2] = c_s > 0, c_c > 0
            elif kind == 1:
                gates[1] = not gates[1]
                if gates[1]:
                    gates[2] = c_c > 0
            else:
                gates[2] = not gates[2]
            switches.append((root, kind))
            s0 = root
        ys = []
        for s in t_eval:
            for a, b, fn in pieces:
                if a <= s <= b:
                    ys.append(fn(s))
                    break
        return switches, np.array(ys)


def test_jump_flow_locates_every_gate_switch_to_the_tolerance():
    # phi = exp(x) - 2x from x0 = -1 with beta1 = 0.99: Adam (curvature gate closed, H = e^x < 2.2)
    # overshoots the minimum ln 2; right of ln 2.2 the curvature gate opens while m < 0 (agreement
    # closed), m turns (agreement opens: the clamped jump), the clamp lets go, and the jump pulls x back
    # left of ln 2.2 (curvature closes); all switches far apart compared with dwell*alpha = 0.01
    alpha, b1, b2, eps, jump_lr, trust, h_min = 0.01, 0.99, 0.999, 1e-8, 0.02, 3.0, 2.2
    T = 4.0
    flow = JumpFlow(ExpLinear(), alpha=alpha, beta1=b1, beta2=b2, eps=eps, jump_lr=jump_lr,
                    trust_coefficient=trust, h_min=h_min, n_lanes=1)
    t = grid(T, 81)
    tr = simulate(flow, torch.tensor([[-1.0]], dtype=F64), t[None], events=flow.events(), rtol=1e-11,
                  atol=1e-13)
    assert int(tr.status[0]) == Status.OK
    c = int(tr.events["count"][0])
    ours = list(zip(tr.events["t"][0, :c].tolist(), tr.events["index"][0, :c].tolist()))
    ref = JumpReference(lambda x: math.exp(x) - 2, math.exp, alpha=alpha, b1=b1, b2=b2, eps=eps,
                        r=jump_lr / alpha, trust=trust, h_min=h_min)
    switches, ys = ref.run(-1.0, T, t.numpy())
    assert [k for _, k in ours] == [k for _, k in switches] == [0, 1, 2, 0]
    dt = max(abs(a - b) for (a, _), (b, _) in zip(ours, switches))
    assert dt <= 1e-9, dt
    assert np.abs(tr.theta[0, :, 0].numpy() - ys[:, 0]).max() <= 1e-9
    assert np.abs(tr.extras["m"][0, :, 0].numpy() - ys[:, 1]).max() <= 1e-9
    # the gate record follows the switches: closed, then open after the agreement switch, closed
    # again after the curvature gate closes; clamped between the agreement and the clamp switch
    gate, clamped = tr.extras["gate"][0, :, 0], tr.extras["clamped"][0, :, 0]
    t1, t2, t3 = switches[1][0], switches[2][0], switches[3][0]
    tt = t.numpy()
    assert (gate.numpy() == ((tt > t1) & (tt <= t3))).all()
    assert (clamped.numpy() == ((tt > t1) & (tt <= t2))).all()
    assert (tr.extras["curvature"][0, :, 0].numpy() == ((tt > switches[0][0]) & (tt <= t3))).all()


def test_instant_gate_without_events_is_the_same_switched_system():
    # without events (a direct solve, torchdiffeq) the gate is evaluated in N:
    # the adaptive steps resolve the switches by rejection, to about the tolerance
    kw = dict(alpha=0.01, beta1=0.99, jump_lr=0.02, trust_coefficient=3.0, h_min=2.2, n_lanes=1)
    t = grid(4.0, 81)
    th0 = torch.tensor([[-1.0]], dtype=F64)
    latched = JumpFlow(ExpLinear(), **kw)
    a = simulate(latched, th0, t[None], events=latched.events(), rtol=1e-11, atol=1e-13)
    instant = JumpFlow(ExpLinear(), **kw)
    b = simulate(instant, th0, t[None], rtol=1e-11, atol=1e-13)
    assert not instant.latched and int(b.status[0]) == Status.OK
    assert (a.theta - b.theta).abs().max() <= 1e-7
    assert torch.equal(a.extras["gate"][:, 1:], b.extras["gate"][:, 1:])
    assert "clamped" not in b.extras


def test_forced_closed_gate_is_adam_flow1():
    land = landscapes.parse("rosenbrock1d(c=4)")
    alphas = [0.05, 0.01, 0.002]
    th0 = torch.tensor([[-1.5], [0.3], [2.0]], dtype=F64)
    t = grid(1.0, 21)
    adam = AdamFlow1(land, alpha=alphas, n_lanes=3)
    ra = solve(adam, adam.initial_state(th0), t)
    for with_events in (False, True):
        flow = JumpFlow(land, alpha=alphas, h_min=math.inf, n_lanes=3)
        rj = solve(flow, flow.initial_state(th0), t, events=flow.events() if with_events else None)
        assert int(rj.event_count.sum()) == 0
        for k in ("accepted", "rejected"):                    # the same steps
            assert torch.equal(rj.stats[k], ra.stats[k])
        rel = (rj.ys[..., :3] - ra.ys).abs() / ra.ys.abs().amax(dim=1, keepdim=True)
        assert rel.max() <= 1e-11
        assert (rj.ys[..., flow.index("curvature")] == 0).all()    # closed throughout


def test_open_gate_on_a_separable_quadratic_is_the_diagonal_newton_flow():
    # h_min = 0, a clamp that lets go after ~1e-16 (trust 1e8), jump_lr = alpha (r = 1): theta(t) =
    # x* + exp(-t) (theta0 - x*) per coordinate, the diag-newton-flow solution
    land = landscapes.parse("quadratic(diag=[1,100],center=[1,2])")
    al = torch.tensor([0.01, 0.05], dtype=F64)
    th0 = torch.tensor([[-2.0, 0.5], [3.0, 3.0]], dtype=F64)
    t = grid(3.0, 31)
    tt = t[None].expand(2, -1).contiguous()
    flow = JumpFlow(land, alpha=al, jump_lr=al, trust_coefficient=1e8, h_min=0.0, n_lanes=2)
    tr = simulate(flow, th0, tt, events=flow.events())
    dn = DiagNewtonFlow(land, alpha=al, jump_lr=al, n_lanes=2)
    td = simulate(dn, th0, tt)
    x_star = torch.tensor([1.0, 2.0], dtype=F64)
    exact = x_star + torch.exp(-t)[None, :, None] * (th0[:, None, :] - x_star)
    assert (td.theta - exact).abs().max() <= 1e-11
    assert (tr.theta - td.theta).abs().max() <= 1e-10
    assert (tr.extras["gate"] == 1).all()
    assert (tr.extras["clamped"][:, 1:] == 0).all()                    # clamped only at t = 0
    assert set(tr.events["index"][tr.events["index"] >= 0].tolist()) == {2}
    assert float(tr.events["t"].nan_to_num().max()) < 1e-12


# -- chattering: a sliding surface ------------------------------------------------------------------
class Slide(Landscape):
    """f = x^3/6 + x^2 y - k y: H_xx = x + 2 y, H_yy = 0 (y's gate stays closed, y' = -A_y ~ +1).

    With h_min = 1 the surface x + 2 y = 1 attracts from both sides: open (clamped jump, x' ~ -10
    |A_x|) it decreases at ~ -10 |A_x| + 2, closed (Adam, x' = -A_x) it increases at ~ -|A_x| + 2:
    Filippov sliding, x' = 2 A_y on the surface, until the open field turns tangent."""
    name = "slide"

    def __init__(self, k=5.0):
        self.k = k

    def value(self, th):
        x, y = th[:, 0], th[:, 1]
        return x ** 3 / 6 + x * x * y - self.k * y

    def grad(self, th):
        x, y = th[:, 0], th[:, 1]
        return torch.stack([x * x / 2 + 2 * x * y, x * x - self.k], -1)

    def hessian(self, th):
        x, y = th[:, 0], th[:, 1]
        return torch.stack([torch.stack([x + 2 * y, 2 * x], -1),
                            torch.stack([2 * x, torch.zeros_like(x)], -1)], -2)

    def hvp(self, th, vec):
        return torch.einsum("bij,bj->bi", self.hessian(th), vec)


SLIDE = dict(alpha=0.01, b1=0.9, b2=0.999, eps=1e-8, r=100.0, trust=10.0, h_min=1.0, k=5.0)


def filippov_slide(T, t_eval):
    """Filippov solution on Slide from (1.5, 0): open until x + 2y = 1, then sliding (x' = 2 A_y:
    the convex combination of the two x-velocities that keeps x + 2y = 1) while the weight of the open
    field lies in [0, 1], then open. scipy LSODA, rtol 1e-12, event times by its root finder."""
    p = SLIDE
    l1, l2 = (1 - p["b1"]) / p["alpha"], (1 - p["b2"]) / p["alpha"]

    def parts(s, z):
        x, y, mx, my, vx, vy = z
        eta, eq = bias(s, p["alpha"], p["b1"], p["b2"], p["eps"])
        Ax = eta * mx / (math.sqrt(max(vx, 0)) + eq)
        Ay = eta * my / (math.sqrt(max(vy, 0)) + eq)
        gx, gy, H = x * x / 2 + 2 * x * y, x * x - p["k"], x + 2 * y
        vo = -math.copysign(min(p["r"] * abs(gx) / H, p["trust"] * abs(Ax)), gx)
        return gx, gy, Ax, Ay, vo

    def rhs(mode):
        def f(s, z):
            gx, gy, Ax, Ay, vo = parts(s, z)
            xd = vo if mode == "open" else 2 * Ay
            return [xd, -Ay, l1 * (gx - z[2]), l1 * (gy - z[3]), l2 * (gx * gx - z[4]),
                    l2 * (gy * gy - z[5])]
        return f

    def surface(s, z):
        return z[0] + 2 * z[1] - p["h_min"]

    def weight_one(s, z):
        gx, gy, Ax, Ay, vo = parts(s, z)
        return (2 * Ay + Ax) / (vo + Ax) - 1.0

    surface.terminal, surface.direction = True, -1
    weight_one.terminal = True
    kw = dict(dense_output=True, **LSODA)
    s1 = solve_ivp(rhs("open"), (0, T), [1.5, 0, 0, 0, 0, 0], events=[surface], **kw)
    t_hit = s1.t_events[0][0]
    s2 = solve_ivp(rhs("slide"), (t_hit, T), s1.y_events[0][0], events=[weight_one], **kw)
    t_exit = s2.t_events[0][0] if s2.status == 1 else T
    out = np.array([s1.sol(s) if s <= t_hit else s2.sol(s) for s in t_eval])
    assert max(t_eval) <= t_exit
    return t_hit, t_exit, out


def test_dwell_rule_bounds_the_chattering_and_converges_to_the_sliding_solution():
    p = SLIDE
    T = 0.3
    t = torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    t_hit, t_exit, ref = filippov_slide(0.6, t.numpy())
    assert 0.07 < t_hit < 0.08 and t_exit > 0.45
    err_y = {}
    for dwell in (1.0, 0.25):
        flow = JumpFlow(Slide(p["k"]), alpha=p["alpha"], jump_lr=p["r"] * p["alpha"],
                        trust_coefficient=p["trust"], h_min=p["h_min"], dwell=dwell, n_lanes=1)
        tr = simulate(flow, torch.tensor([[1.5, 0.0]], dtype=F64), t[None], events=flow.events(),
                      rtol=1e-9)
        assert int(tr.status[0]) == Status.OK and int(tr.n_out[0]) == 3
        c = int(tr.events["count"][0])
        times, kinds = tr.events["t"][0, :c], tr.events["index"][0, :c]
        gate_switches = int((kinds <= 1).sum())
        # the first switch is the arrival on the surface, located like the reference's
        assert abs(float(times[0]) - t_hit) <= 1e-9 and int(kinds[0]) == 0
        # at most one gate switch of x per dwell time (y's curvature gate never opens)
        assert gate_switches <= (T - t_hit) / (dwell * p["alpha"]) + 1
        assert gate_switches >= 4                                         # it does chatter
        gaps = torch.diff(times[kinds <= 1])
        assert float(gaps.min()) >= dwell * p["alpha"] * (1 - 1e-9)
        # the chattering stays in a band around the surface and tracks the sliding motion
        th = tr.theta[0]
        assert (th[:, 0] + 2 * th[:, 1] - 1).abs().max() <= 0.05 * dwell + 0.005
        err_y[dwell] = float(np.abs(th[:, 1].numpy() - ref[:, 1]).max())
    assert err_y[1.0] <= 5e-4
    assert err_y[0.25] <= 0.5 * err_y[1.0]                   # -> Filippov as dwell -> 0 (~ linear)


def test_no_nan_where_g_or_h_vanish():
    # lane 0: at the global minimum (g = 0, H = 34); lane 1: H = 0 exactly (c = 1/2, x = 0), g = -2;
    # lane 2: a flat coordinate (quadratic diag 0: g = H = 0) beside a curved one
    t = grid(0.3, 7)
    land = landscapes.parse("rosenbrock1d(c=[4, 0.5])")
    th0 = torch.tensor([[1.0], [0.0]], dtype=F64)
    flat = landscapes.parse("quadratic(diag=[0,1],center=[0,2])")
    for lat in (False, True):
        for lnd, x0 in ((land, th0), (flat, torch.tensor([[0.3, -1.0]], dtype=F64))):
            B = x0.shape[0]
            flow = JumpFlow(lnd, alpha=0.01, h_min=0.0, n_lanes=B)
            y0 = flow.initial_state(x0)
            assert torch.isfinite(flow(torch.zeros(B, dtype=F64), y0)).all()
            assert torch.isfinite(flow.jacobian(torch.zeros(B, dtype=F64), y0)[0]).all()
            tr = simulate(flow, x0, t[None].expand(B, -1).contiguous(),
                          events=flow.events() if lat else None)
            assert (tr.status == Status.OK).all()
            assert torch.isfinite(tr.theta).all() and torch.isfinite(tr.extras["m"]).all()
    # the minimum stays put; the flat coordinate does not move
    flow = JumpFlow(land, alpha=0.01, h_min=0.0, n_lanes=2)
    tr = simulate(flow, th0, t[None].expand(2, -1).contiguous(), events=flow.events())
    assert (tr.theta[0] - 1.0).abs().max() <= 1e-12


def test_lane_retirement_with_events_matches_single_lanes():
    # lanes with different horizons: the batch is compacted while handlers switch gates
    kw = dict(alpha=0.01, beta1=0.99, jump_lr=0.02, trust_coefficient=3.0, h_min=[2.2, 2.2, 1.5, 2.5])
    th0 = torch.tensor([[-1.0], [-0.5], [-1.0], [-1.5]], dtype=F64)
    T = [4.0, 0.5, 1.0, 3.5]
    t = torch.full((4, 41), math.nan, dtype=F64)
    for b, Tb in enumerate(T):
        t[b] = torch.linspace(0, Tb, 41, dtype=F64)
    flow = JumpFlow(ExpLinear(), n_lanes=4, **kw)
    tr = simulate(flow, th0, t, events=flow.events(), rtol=1e-9)
    assert (tr.status == Status.OK).all()
    for b in range(4):
        one = JumpFlow(ExpLinear(), n_lanes=1, **{k: (v[b] if isinstance(v, list) else v)
                                                  for k, v in kw.items()})
        ta = simulate(one, th0[b:b + 1], t[b:b + 1], events=one.events(), rtol=1e-9)
        # the batch and the single lane take different steps after the gate switches (lane 0: 894
        # vs 903 accepted), so they agree to the solve's tolerance, not to the bit (measured on
        # one machine: 1.04e-10 relative on theta, 6.9e-11 on the third event time)
        assert torch.allclose(ta.theta[0], tr.theta[b], rtol=1e-9, atol=1e-12)
        c = int(ta.events["count"][0])
        assert int(tr.events["count"][b]) == c
        assert torch.allclose(ta.events["t"][0, :c], tr.events["t"][b, :c], rtol=0, atol=1e-9)


# -- all three ---------------------------------------------------------------------------------------
def _state(flow, th0, seed=0):
    y = flow.initial_state(th0)
    if isinstance(flow, JumpFlow):
        gen = torch.Generator().manual_seed(seed)
        y[..., 1] = torch.randn(th0.shape, generator=gen, dtype=F64)
        y[..., 2] = torch.rand(th0.shape, generator=gen, dtype=F64) + 0.5
    return y


@pytest.mark.parametrize("spec", ["rosenbrock(a=1,b=100)", "rosenbrock1d(c=4)"])
def test_closed_form_jacobians_match_autograd(spec):
    land = landscapes.parse(spec)
    th0 = torch.tensor([[-1.2, 1.1], [1.5, 2.0], [0.9, 0.7]], dtype=F64)
    t = torch.tensor([0.3, 1.0, 0.05], dtype=F64)
    flows = [NewtonFlow(land, alpha=0.1, jump_lr=0.05, n_lanes=3),
             DiagNewtonFlow(land, alpha=0.1, jump_lr=0.05, n_lanes=3),
             # lanes: free secant, clamped secant, closed gate
             JumpFlow(land, alpha=0.1, jump_lr=[1e-4, 1.0, 1.0], trust_coefficient=[1e3, 2.0, 2.0],
                      h_min=[0.0, 0.0, 1e6], n_lanes=3)]
    for flow in flows:
        y = _state(flow, th0)
        if isinstance(flow, JumpFlow):
            flow.events()                        # latched gates: the gate read from the state
            y[..., flow.index("agreement")] = 1.0
        J, Jt = flow.jacobian(t, y)
        Ja, Jta = SemilinearFlow.jacobian(flow, t, y)     # reverse-mode autograd of N
        assert (J - Ja).abs().max() <= 1e-12 * max(1.0, float(Ja.abs().max())), flow.name
        assert (Jt - Jta).abs().max() <= 1e-12 * max(1.0, float(Jta.abs().max())), flow.name


def test_registry_declarations():
    reg = registry.registry()
    for name in ("newton-flow", "diag-newton-flow", "jump-flow"):
        info = reg[name]
        assert info.kind == "flow" and info.method == "jumpadam" and info.schemes == ("exact",)
    assert [p.name for p in reg["newton-flow"].hyper] == ["alpha", "jump_lr"]
    assert reg["jump-flow"].hyper[:4] == reg["adam-flow1"].hyper              # Adam's, imported
    # one declaration of the shared jump parameters, for the discrete method and its flows
    for p in (JUMP_LR, TRUST_COEFFICIENT, H_MIN):
        assert reg["jumpadam"].param(p.name) is p and reg["jump-flow"].param(p.name) is p
    assert reg["newton-flow"].param("jump_lr") is JUMP_LR
    assert [p.name for p in (JUMP_LR, TRUST_COEFFICIENT, H_MIN, DWELL)] == [
        "jump_lr", "trust_coefficient", "h_min", "dwell"]
    assert reg["jump-flow"].records == ("m", "v", "gate", "clamped")
    m = registry.methods()["jumpadam"]
    assert [f.name for f in m.flows] == ["newton-flow", "diag-newton-flow", "jump-flow"]
    assert EVENT_NAMES == tuple(ev.name for ev in JumpFlow(ExpLinear(), alpha=0.1, n_lanes=1).events())


def test_runner_uses_the_torch_engine_and_refuses_the_compiled_one():
    # the Newton flows run on the compiled engine on a separable landscape with a compiled phi''
    # (tests/test_fast_newton.py); the gated jump flow runs on the torch engine only
    lanes = [{"theta0": [-1.5], "alpha": 0.05}]
    for name in ("newton-flow", "diag-newton-flow"):
        tr = run_lanes(name, "rosenbrock1d(c=4)", lanes, [40], numerics=Numerics())
        assert tr.meta["engine"] == "compiled" and tr.meta["integrator"] == "dop853"
        assert int(tr.status[0]) == Status.OK
    tr = run_lanes("jump-flow", "rosenbrock1d(c=4)", lanes, [40], numerics=Numerics())
    assert tr.meta["engine"] == "torch" and tr.meta["integrator"] == "exprb43"
    assert int(tr.status[0]) == Status.OK
    with pytest.raises(Exception, match="compiled engine"):
        run_lanes("jump-flow", "rosenbrock1d(c=4)", lanes, [10], numerics=Numerics(engine="compiled"))


def test_cli_runs_the_limit_flows(capsys):
    code = main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "newton-flow",
                 "diag-newton-flow", "jump-flow", "--theta0", "-1.5", "--alpha", "0.05",
                 "--jump-lr", "0.05", "--trust-coefficient", "3", "--h-min", "1", "--dwell", "1",
                 "--steps", "40", "--every", "5", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lanes = json.loads(out)["lanes"]
    assert [ln["model"] for ln in lanes] == ["newton-flow", "diag-newton-flow", "jump-flow"]
    for ln in lanes:
        assert ln["status"] == "ok" and ln["t"][-1] == pytest.approx(2.0)
        assert ln["jump_lr"] == 0.05
    jf = lanes[2]
    assert jf["trust_coefficient"] == 3.0 and jf["h_min"] == 1.0 and "gate" in jf and "m" in jf
    # newton and diagonal newton agree on a 1-D landscape; g decays like exp(-t)
    assert lanes[0]["final_theta"][0] == pytest.approx(lanes[1]["final_theta"][0], abs=1e-9)
    g0 = float(landscapes.parse("rosenbrock1d(c=4)").grad(torch.tensor([[-1.5]], dtype=F64)))
    gT = float(landscapes.parse("rosenbrock1d(c=4)").grad(torch.tensor([lanes[0]["final_theta"]],
                                                                        dtype=F64)))
    assert gT == pytest.approx(math.exp(-2.0) * g0, rel=1e-8)
    assert main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "jump-flow", "--theta0", "-1.5",
                 "--alpha", "0.05", "--steps", "10", "--engine", "compiled"]) == 2
    assert main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "jump-flow", "--theta0", "-1.5",
                 "--alpha", "0.05", "--steps", "10", "--h-min", "-1"]) == 2
    capsys.readouterr()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in ("newton-flow", "diag-newton-flow", "jump-flow"))


def test_runner_passes_the_gate_events():
    # run_lanes (every CLI command and study) hands the flow's own events to the solve: latched
    # gates, located switches and the clamp record, the same as a direct solve with events
    land = landscapes.parse("rosenbrock1d(c=4)")
    kw = dict(alpha=0.05, jump_lr=0.05, trust_coefficient=3.0, h_min=1.0)
    tr = run_lanes("jump-flow", land, [{"theta0": [-1.5], **kw}], [40], numerics=Numerics())
    assert int(tr.status[0]) == Status.OK and int(tr.events["count"][0]) > 0
    assert "clamped" in tr.extras
    flow = JumpFlow(land, n_lanes=1, **kw)
    t = torch.arange(41, dtype=F64)[None] * 0.05
    ref = simulate(flow, torch.tensor([[-1.5]], dtype=F64), t, events=flow.events())
    assert torch.equal(tr.theta, ref.theta)
    assert torch.equal(tr.events["t"], ref.events["t"])
    assert torch.equal(tr.events["index"], ref.events["index"])
    # flows without events of their own solve as before
    assert AdamFlow1(land, alpha=0.05, n_lanes=1).events() == []

