"""Events of the exact-mode integrator against closed forms: a switched linear system (switching time
ln 2), a bouncing ball (state jumps, closed-form bounce times), terminal events, direction filtering,
several events in one step, state jumps through a nonlinear right-hand side (``made_jump``), and the
records in :class:`flows.solve.Solution` and :class:`core.trajectory.Trajectory`.
"""
from __future__ import annotations

import math

import pytest
import torch

import landscapes
from core.trajectory import Status, Trajectory
from flows.adam import AdamFlow1
from flows.controllers import ConstantStep
from flows.events import Event, EventLog, find_root
from flows.semilinear import SemilinearFlow
from flows.simulate import output_grid, simulate
from flows.solve import solve
from flows.solvers import HochbruckOstermann4
from tests.test_integrator import memory_problem

F64 = torch.float64
LN2 = math.log(2.0)

STEPPER_KW = {"exprb43": {}, "ho4-doubling": {"solver": HochbruckOstermann4()}}


pytestmark = pytest.mark.usefixtures("single_thread")


class Switched(SemilinearFlow):
    """x' = -k x on branch 0, x' = -c on branch 1; the branch is a per-lane flag on the flow."""

    def __init__(self, k, c, branch=None):
        super().__init__()
        self.k = torch.as_tensor(k, dtype=F64)
        self.c = torch.as_tensor(c, dtype=F64)
        self.branch = torch.zeros_like(self.k, dtype=torch.bool) if branch is None else branch

    @property
    def n_lanes(self):
        return self.k.shape[0]

    def linear_operator(self):
        return torch.where(self.branch, 0.0, -self.k)[:, None, None]

    def nonlinear(self, t, y):
        return torch.where(self.branch, -self.c, 0.0)[:, None, None].expand_as(y).clone()

    def jacobian(self, t, y):
        return self.linear_operator().clone(), torch.zeros(y.shape[0], 1, dtype=F64)

    def initial_state(self, theta0):
        return theta0[..., None]

    def subset(self, idx):
        return Switched(self.k[idx], self.c[idx], self.branch[idx])

    def switch_event(self, level=0.5):
        def flip(t, y, fired):
            self.branch = self.branch | fired
            return y
        return Event(lambda t, y: y[:, 0, 0] - level, direction=-1, handler=flip, name="switch")

    def exact(self, t):
        """(B, T) closed form from x0 = 1 with the switch at x = 1/2."""
        ts = LN2 / self.k[:, None]
        return torch.where(t < ts, torch.exp(-self.k[:, None] * t), 0.5 - self.c[:, None] * (t - ts))


@pytest.mark.parametrize("kw", list(STEPPER_KW), ids=list(STEPPER_KW))
def test_switched_linear_system(kw):
    # lanes switch at ln2/k = ln 2, ln 2 / 2, ln 2 / 1.5; the last lane never reaches x = 1/2
    flow = Switched([1.0, 2.0, 1.5, 0.1], [2.0, 1.0, 0.5, 1.0])
    y0 = torch.ones(4, 1, 1, dtype=F64)
    t = torch.linspace(0, 0.9, 91, dtype=F64)
    sol = solve(flow, y0, t, events=[flow.switch_event()], **STEPPER_KW[kw])
    assert (sol.status == Status.OK).all()
    assert sol.event_count.tolist() == [1, 1, 1, 0]
    assert sol.event_index[:, 0].tolist() == [0, 0, 0, -1]
    assert sol.event_direction[:, 0].tolist() == [-1, -1, -1, 0]
    t_star = LN2 / flow.k[:3]
    assert (sol.event_t[:3, 0] - t_star).abs().max() <= 1e-10
    assert math.isnan(float(sol.event_t[3, 0]))
    assert flow.branch.tolist() == [True, True, True, False]
    # after the switch the solution is the line 1/2 - c (t - t*): the new linear part was used
    exact = flow.exact(t)[:3]
    assert (sol.ys[:3, :, 0, 0] - exact).abs().max() <= 1e-9
    # a lane without events is bit-identical to a solve without events
    ref = solve(Switched([1.0, 2.0, 1.5, 0.1], [2.0, 1.0, 0.5, 1.0]), y0, t, **STEPPER_KW[kw])
    assert torch.equal(sol.ys[3], ref.ys[3])
    for k in ("nfev", "accepted", "rejected"):
        assert torch.equal(sol.stats[k][3], ref.stats[k][3])


class Ball(SemilinearFlow):
    """y'' = -g: state (y, v), L = [[0, 1], [0, 0]], N = (0, -g)."""

    components = ("theta", "v")

    def __init__(self, e, g=9.81):
        super().__init__()
        self.e = torch.as_tensor(e, dtype=F64)
        self.g = g

    @property
    def n_lanes(self):
        return self.e.shape[0]

    def linear_operator(self):
        L = torch.zeros(self.e.shape[0], 2, 2, dtype=F64)
        L[:, 0, 1] = 1.0
        return L

    def nonlinear(self, t, y):
        out = torch.zeros_like(y)
        out[..., 1] = -self.g
        return out

    def jacobian(self, t, y):
        return self.linear_operator(), torch.zeros(y.shape[0], 2, dtype=F64)

    def initial_state(self, theta0):
        return torch.stack([theta0, torch.zeros_like(theta0)], -1)

    def subset(self, idx):
        return Ball(self.e[idx], self.g)


def bounce_times(h0: float, e: float, g: float, T: float) -> tuple[list[float], list[float]]:
    """Closed form: impact times t_k and upward speeds after each impact."""
    t1 = math.sqrt(2 * h0 / g)
    times, speeds = [t1], [e * g * t1]
    while times[-1] + 2 * speeds[-1] / g <= T:
        times.append(times[-1] + 2 * speeds[-1] / g)
        speeds.append(e * speeds[-1])
    return times, speeds


@pytest.mark.parametrize("kw", list(STEPPER_KW), ids=list(STEPPER_KW))
def test_bouncing_ball(kw):
    ball = Ball([0.8, 0.7, 0.9])
    h0 = [1.0, 2.0, 0.5]

    def bounce(t, y, fired):
        out = y.clone()
        out[..., 0] = 0.0
        out[..., 1] = -ball.e[:, None] * y[..., 1]
        return out

    floor = Event(lambda t, y: y[:, 0, 0], direction=-1, handler=bounce, name="floor")
    T = 2.5
    t = torch.linspace(0, T, 251, dtype=F64)
    sol = solve(ball, ball.initial_state(torch.tensor(h0, dtype=F64)[:, None]), t, events=[floor],
                max_step=0.05, **STEPPER_KW[kw])
    assert (sol.status == Status.OK).all()
    for b in range(3):
        times, speeds = bounce_times(h0[b], float(ball.e[b]), ball.g, T)
        k = int(sol.event_count[b])
        assert k == len(times) and k >= 3
        assert (sol.event_t[b, :k] - torch.tensor(times, dtype=F64)).abs().max() <= 1e-9
        assert (sol.event_direction[b, :k] == -1).all() and (sol.event_index[b, :k] == 0).all()
        # the height between impacts: a parabola restarted at each impact with the reduced speed
        tt = torch.tensor(times, dtype=F64)
        j = torch.searchsorted(tt, t, right=True) - 1
        s = t - tt[j.clamp(min=0)]
        v = torch.tensor(speeds, dtype=F64)[j.clamp(min=0)]
        exact = torch.where(j < 0, h0[b] - ball.g / 2 * t**2, v * s - ball.g / 2 * s**2)
        assert (sol.ys[b, :, 0, 0] - exact).abs().max() <= 1e-9


def test_terminal_event_stops_only_its_lane():
    flow, y0 = memory_problem(B_pairs=3)        # 6 lanes with their own grids; finished lanes retire
    B, T = 6, 40
    ends = [0.3, 0.5, 1.5, 1.0, 0.2, 0.7]
    n_out = torch.tensor([10, 25, 40, 12, 3, 33])
    t_out = torch.full((B, T), math.nan, dtype=F64)
    for b in range(B):
        t_out[b, : n_out[b]] = torch.linspace(0, ends[b], int(n_out[b]), dtype=F64)
    lane = torch.arange(B)
    stop = Event(lambda t, y: torch.where(lane == 2, y[:, 0, 0] - 0.7, torch.ones_like(t)),
                 terminal=True, direction=-1, name="stop")
    sol = solve(flow, y0, t_out, n_out, sync_every=4, events=[stop])
    assert flow.subset_calls >= 1                 # lanes were retired while the event was watched
    ref = solve(flow, y0, t_out, n_out, sync_every=4)
    assert sol.status.tolist() == [Status.OK, Status.OK, Status.EVENT, Status.OK, Status.OK, Status.OK]
    t_ev = float(sol.event_t[2, 0])
    assert sol.event_count.tolist() == [0, 0, 1, 0, 0, 0]
    assert float(sol.t_final[2]) == t_ev and 0 < t_ev < 1.5
    # the lane stopped at theta = 0.7 (to interpolation accuracy); outputs after the event stay NaN
    after = t_out[2] > t_ev
    assert after.any() and torch.isnan(sol.ys[2, after]).all()
    before = t_out[2] <= t_ev
    assert torch.equal(sol.ys[2, before], ref.ys[2, before])
    i = int(before.sum()) - 1
    assert float(ref.ys[2, i, 0, 0]) > 0.7 > float(ref.ys[2, i + 1, 0, 0])
    # every other lane is bit-identical to the run without the event and to a batch without the lane
    others = lane != 2
    sub = solve(flow.subset(torch.nonzero(others).squeeze(1)), y0[others], t_out[others], n_out[others],
                sync_every=4)
    for other in (ref, sub):
        rows = slice(None) if other is sub else others
        assert torch.equal(sol.ys[others].nan_to_num(7.0), other.ys[rows].nan_to_num(7.0))
        for k in ("nfev", "accepted", "rejected"):
            assert torch.equal(sol.stats[k][others], other.stats[k][rows])
    assert torch.equal(sol.t_final[others], ref.t_final[others])


class Oscillator(SemilinearFlow):
    """x'' = -w^2 x (x = cos(w t) from (1, 0))."""

    components = ("theta", "v")

    def __init__(self, w):
        super().__init__()
        self.w = torch.as_tensor(w, dtype=F64)

    @property
    def n_lanes(self):
        return self.w.shape[0]

    def linear_operator(self):
        L = torch.zeros(self.w.shape[0], 2, 2, dtype=F64)
        L[:, 0, 1] = 1.0
        L[:, 1, 0] = -self.w**2
        return L

    def nonlinear(self, t, y):
        return torch.zeros_like(y)

    def jacobian(self, t, y):
        return self.linear_operator(), torch.zeros(y.shape[0], 2, dtype=F64)

    def initial_state(self, theta0):
        return torch.stack([theta0, torch.zeros_like(theta0)], -1)


def test_direction_filtering_and_recording_events():
    flow = Oscillator([1.0, 1.3])
    y0 = flow.initial_state(torch.ones(2, 1, dtype=F64))
    t = torch.linspace(0, 10, 41, dtype=F64)
    x = lambda t, y: y[:, 0, 0]  # noqa: E731
    evs = [Event(x, direction=1, name="up"), Event(x, direction=-1, name="down"), Event(x, name="any")]
    sol = solve(flow, y0, t, events=evs)
    ref = solve(flow, y0, t)
    # recording events leave the solution bit-identical
    assert torch.equal(sol.ys, ref.ys) and all(torch.equal(sol.stats[k], ref.stats[k]) for k in ref.stats)
    for b, w in enumerate((1.0, 1.3)):
        zeros = [(k + 0.5) * math.pi / w for k in range(10) if (k + 0.5) * math.pi / w <= 10]
        k = int(sol.event_count[b])
        assert k == 2 * len(zeros)                         # "any" and one of "up"/"down" at each zero
        got_t = sol.event_t[b, :k]
        assert (got_t[1:] >= got_t[:-1]).all()             # in time order
        idx = sol.event_index[b, :k].tolist()
        dirs = sol.event_direction[b, :k].tolist()
        for j, z in enumerate(zeros):
            falling = j % 2 == 0                           # cos falls through its first zero
            pair = sorted(zip(idx[2 * j:2 * j + 2], dirs[2 * j:2 * j + 2]))
            assert pair == sorted([(1 if falling else 0, -1 if falling else 1), (2, -1 if falling else 1)])
            assert (got_t[2 * j:2 * j + 2] - z).abs().max() <= 1e-9
    # a terminal event that only sees rising crossings stops at the second zero, 3 pi / 2
    up = Event(x, terminal=True, direction=1)
    sol = solve(Oscillator([1.0]), y0[:1], t, events=[up])
    assert int(sol.status[0]) == Status.EVENT
    assert abs(float(sol.t_final[0]) - 1.5 * math.pi) <= 1e-9


def test_earliest_event_in_a_step_wins():
    # one fixed step [0, 1] crosses x = 1/2 (switch, t = ln 2) and x = 0.45 (terminal, t = 0.799 on the
    # old branch); the switch comes first, and on the new branch x = 0.45 is reached at ln 2 + 0.025
    flow = Switched([1.0], [2.0])
    stop = Event(lambda t, y: y[:, 0, 0] - 0.45, terminal=True, direction=-1, name="stop")
    sol = solve(flow, torch.ones(1, 1, 1, dtype=F64), torch.tensor([0.0, 2.0], dtype=F64),
                events=[stop, flow.switch_event()], controller=ConstantStep(1.0))
    assert int(sol.status[0]) == Status.EVENT
    assert sol.event_index[0].tolist() == [1, 0]
    assert abs(float(sol.event_t[0, 0]) - LN2) <= 1e-5          # the interpolant of one long step
    assert abs(float(sol.event_t[0, 1]) - (LN2 + 0.025)) <= 1e-5
    assert float(sol.t_final[0]) == float(sol.event_t[0, 1])


class Logistic(SemilinearFlow):
    """y' = -y + 0.5 y^2 + cos t (nonlinear N: a stale N after a state jump would show)."""

    @property
    def n_lanes(self):
        return 2

    def linear_operator(self):
        return -torch.ones(2, 1, 1, dtype=F64)

    def nonlinear(self, t, y):
        return 0.5 * y**2 + torch.cos(t)[:, None, None]

    def initial_state(self, theta0):
        return theta0[..., None]


@pytest.mark.parametrize("kw", list(STEPPER_KW), ids=list(STEPPER_KW))
def test_state_jump_restarts_the_stepper(kw):
    flow = Logistic()
    kick = Event(lambda t, y: y[:, 0, 0] - 0.3, direction=-1, handler=lambda t, y, f: y - 0.5)
    y0 = torch.tensor([[[1.0]], [[0.8]]], dtype=F64)
    t = torch.linspace(0, 4, 81, dtype=F64)
    sol = solve(flow, y0, t, events=[kick], **STEPPER_KW[kw])
    assert (sol.event_count >= 1).all()
    for b in range(2):
        t_ev = float(sol.event_t[b, 0])
        # restart by hand from the jumped state (0.3 - 0.5): the same solution up to the next event
        nxt = float(sol.event_t[b, 1]) if int(sol.event_count[b]) > 1 else math.inf
        after = (t > t_ev) & (t < nxt)
        assert after.sum() >= 10
        t_after = torch.cat([torch.tensor([t_ev], dtype=F64), t[after]])
        again = solve(flow, torch.full((2, 1, 1), -0.2, dtype=F64), t_after, t0=t_ev, **STEPPER_KW[kw])
        assert (sol.ys[b, after] - again.ys[b, 1:]).abs().max() <= 1e-8


def test_events_through_simulate_and_trajectory():
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    alpha = torch.tensor([0.05, 0.02], dtype=F64)
    flow = AdamFlow1(land, alpha=alpha, beta1=0.9, beta2=0.999, n_lanes=2, dtype=F64)
    t_out, _, n_out = output_grid(alpha, [40, 100])
    theta0 = torch.full((2, 1), -1.5, dtype=F64)
    cross = Event(lambda t, y: y[:, 0, 0] + 0.6, direction=1, name="theta=-0.6")
    traj = simulate(flow, theta0, t_out, n_out, events=[cross])
    assert set(traj.events) == {"t", "index", "direction", "count"}
    assert traj.events["count"].tolist() == [1, 1]
    assert (traj.events["direction"][:, 0] == 1).all() and (traj.events["index"][:, 0] == 0).all()
    plain = simulate(flow, theta0, t_out, n_out)
    assert plain.events == {}
    assert torch.equal(traj.theta.nan_to_num(9.0), plain.theta.nan_to_num(9.0))
    # theta passes -0.6 between the output samples around the event
    for b in range(2):
        te = float(traj.events["t"][b, 0])
        j = int((t_out[b] <= te).sum()) - 1
        assert float(plain.theta[b, j, 0]) < -0.6 <= float(plain.theta[b, j + 1, 0])
    moved = traj.to("cpu")
    assert torch.equal(moved.events["t"], traj.events["t"])
    both = Trajectory.concat([traj, plain, traj])
    assert both.events["t"].shape == (6, 1) and both.events["count"].tolist() == [1, 1, 0, 0, 1, 1]
    assert torch.isnan(both.events["t"][2:4]).all()
    assert (both.events["index"][2:4] == -1).all() and (both.events["direction"][2:4] == 0).all()


def test_solution_without_events_has_empty_records():
    flow, y0 = memory_problem()
    sol = solve(flow, y0, torch.tensor([0.0, 0.5], dtype=F64))
    assert sol.event_t.shape == (2, 0) and sol.event_index.shape == (2, 0)
    assert sol.event_count.tolist() == [0, 0]


def test_event_validation():
    g = lambda t, y: y[:, 0, 0]  # noqa: E731
    with pytest.raises(ValueError):
        Event(g, direction=2)
    with pytest.raises(ValueError):
        Event(g, terminal=True, handler=lambda t, y, f: y)
    with pytest.raises(ValueError):
        Event(g, tol=-1.0)
    flow, y0 = memory_problem()
    with pytest.raises(TypeError):
        solve(flow, y0, torch.tensor([0.0, 0.5], dtype=F64), events=[g])
    with pytest.raises(ValueError):
        solve(flow, y0, torch.tensor([0.0, 0.5], dtype=F64), events=[Event(lambda t, y: y[:, 0])])


def test_find_root_and_log():
    # per-lane roots of x^3 - r (Illinois with bisection safeguard), one lane not asked
    r = torch.tensor([0.001, 0.3, 0.999, 0.5], dtype=F64)
    f = lambda x: x**3 - r  # noqa: E731
    mask = torch.tensor([True, True, True, False])
    x = find_root(f, f(torch.zeros(4, dtype=F64)), f(torch.ones(4, dtype=F64)),
                  torch.full((4,), 1e-14, dtype=F64), mask)
    assert (x[:3] - r[:3] ** (1 / 3)).abs().max() <= 1e-13 and float(x[3]) == 1.0
    assert (f(x)[:3] >= 0).all()                                   # the far side of the root
    log = EventLog(3, F64, "cpu")
    log.add(torch.tensor([0, 2]), torch.tensor([0.1, 0.2], dtype=F64), torch.tensor([0, 1]),
            torch.tensor([1, -1]))
    log.add(torch.tensor([2]), torch.tensor([0.5], dtype=F64), torch.tensor([0]), torch.tensor([1]))
    rec = log.records()
    assert rec["count"].tolist() == [1, 0, 2]
    assert rec["index"].tolist() == [[0, -1], [-1, -1], [1, 0]]
    assert rec["direction"].tolist() == [[1, 0], [0, 0], [-1, 1]]
