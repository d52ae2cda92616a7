"""The Newton limit flows (newton-flow, diag-newton-flow) on the compiled engine: phi'' written once
(``d2phi_point``) for both engines, the runner's engine choice, agreement with the torch engine, the
invariant g(t) = exp(-r t) g(0), statuses outside the domain (phi'' <= 0) lane by lane, and the
torch fallback on a landscape without a compiled phi''."""
import math

import numpy as np
import pytest
import torch
from numba import njit

import landscapes
from core.errors import ConfigError
from core.trajectory import Status
from flows import DiagNewtonFlow, NewtonFlow
from flows.fast.solve import compiled_rhs, fast_support, solve_fast
from flows.solve import solve
from landscapes.base import Separable
from landscapes.compiled import Unsupported, compiled_curvature
from runner.experiment import Numerics, run_lanes

F64 = torch.float64
NEWTON = ("newton-flow", "diag-newton-flow")
LAND = "rosenbrock1d(c=4)"


@njit
def _call(f, x, p):
    out = np.empty_like(x)
    for j in range(x.shape[0]):
        out[j] = f(x[j], p.ctypes)
    return out


def test_d2phi_is_the_point_function_on_both_engines():
    # the torch d2phi evaluates d2phi_point, with the formulas it had before, and the compiled phi''
    # is the same function
    x = torch.linspace(-2.0, 2.0, 39, dtype=F64).reshape(3, 13)
    c = torch.tensor([1.5, 4.0, 0.5], dtype=F64)
    x2 = x * x
    old = {"rosenbrock1d(c=[1.5, 4.0, 0.5])": 2 + 4 * c[:, None] * (3 * x * x - 1),
           "shifted(center=[4.0, -1.0, 0.5])": torch.full_like(x, 2.0),
           "doublewell": 3 * x * x - 1,
           "sextic": 30 * x2 * x2 + 20 * x2 * x + 18 * x + 8}
    for spec, want in old.items():
        land = landscapes.parse(spec)
        assert torch.equal(land.d2phi(x), want), spec
        assert torch.equal(land.hessian_diag(x), want), spec
        grad, hess, LP = compiled_curvature(land, 3)
        for b in range(3):
            xb = np.ascontiguousarray(x[b].numpy())
            assert np.array_equal(_call(hess, xb, LP[b]), want[b].numpy()), spec
            assert np.array_equal(_call(grad, xb, LP[b]), land.grad(x)[b].numpy()), spec


def _lanes(theta0, alpha=0.01, jump_lr=0.01):
    return [{"theta0": [x], "alpha": alpha, "jump_lr": jump_lr} for x in theta0]


@pytest.mark.parametrize("model", NEWTON)
def test_runner_picks_compiled_and_matches_torch(model):
    # inside the convex region on either side of the barrier of rosenbrock1d(c=4); mixed rates
    lanes = [{"theta0": [x], "alpha": a, "jump_lr": j}
             for x, a, j in [(0.6, 0.01, 0.01), (1.4, 0.01, 0.03), (-1.5, 0.05, 0.02),
                             (-0.6, 0.002, 0.004)]]
    Ks = [200, 150, 60, 500]
    fast = run_lanes(model, LAND, lanes, Ks, every=5, numerics=Numerics())
    slow = run_lanes(model, LAND, lanes, Ks, every=5, numerics=Numerics(engine="torch"))
    assert fast.meta["engine"] == "compiled" and fast.meta["integrator"] == "dop853"
    assert slow.meta["engine"] == "torch"
    assert (fast.status == Status.OK).all() and (slow.status == Status.OK).all()
    assert torch.equal(fast.n_out, slow.n_out)
    assert torch.equal(fast.t.nan_to_num(), slow.t.nan_to_num())
    assert torch.allclose(fast.theta, slow.theta, rtol=0, atol=1e-9, equal_nan=True)
    # the invariant g(t) = exp(-r t) g(0) on the compiled engine (relative to g(0); g(t) is
    # up to 25x smaller, the error in g is h times that in theta, h up to 94)
    land = landscapes.parse(LAND)
    for b, ln in enumerate(lanes):
        k = int(fast.n_out[b])
        t, th = fast.t[b, :k], fast.theta[b, :k]
        g = land.grad(th)[:, 0]
        r = ln["jump_lr"] / ln["alpha"]
        want = torch.exp(-r * t) * g[0]
        err = float(((g - want).abs() / abs(float(g[0]))).max())
        assert err <= 1e-9, (b, err)


def test_a_lane_outside_the_domain_diverges_alone():
    # theta0 = 0.2: phi'' = 2 + 16 (3 theta^2 - 1) < 0; its neighbours are untouched
    lanes = _lanes([0.8, 0.2, -1.2])
    Ks = [200, 200, 200]
    for model in NEWTON:
        fast = run_lanes(model, LAND, lanes, Ks, numerics=Numerics())
        slow = run_lanes(model, LAND, lanes, Ks, numerics=Numerics(engine="torch"))
        assert fast.meta["engine"] == "compiled"
        assert fast.status.tolist() == slow.status.tolist() == [Status.OK, Status.DIVERGED,
                                                                  Status.OK]
        assert float(fast.diverged_at[1]) == float(slow.diverged_at[1]) == 0.0
        assert torch.equal(fast.n_out, slow.n_out) and int(fast.n_out[1]) == 1
        assert torch.allclose(fast.theta, slow.theta, rtol=0, atol=1e-9, equal_nan=True)
        # the neighbours are bit for bit what they are without the diverging lane
        alone = run_lanes(model, LAND, [lanes[0], lanes[2]], [200, 200], numerics=Numerics())
        assert torch.equal(alone.theta, fast.theta[[0, 2]])


def test_the_domain_boundary_ends_the_lane_at_the_blow_up_time():
    # rosenbrock1d(c=1.5) left of x_b = -sqrt(2)/3 (phi'' = 18 x^2 - 4 > 0) has g < 0 all the way
    # to x_b, where phi'' = 0: the Newton speed -r g/phi'' blows up when |g| = exp(-r t) |g(0)|
    # reaches |phi'(x_b)|. Both engines end the lane there; whether as DIVERGED (last trial state
    # in phi'' <= 0, NaN) or STEP_UNDERFLOW depends on the integrator's last trials (the torch
    # engine gives the one with exprb43 and mostly the other with etd4)
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    flow = NewtonFlow(land, alpha=torch.tensor([0.01, 0.01], dtype=F64),
                      jump_lr=torch.tensor([0.01, 0.02], dtype=F64), n_lanes=2)
    y0 = flow.initial_state(torch.tensor([[-1.5], [0.8]], dtype=F64))
    t = torch.linspace(0, 5, 51, dtype=F64)
    fast, slow = solve_fast(flow, y0, t), solve(flow, y0, t)
    gb = float(land.grad(torch.tensor([[-math.sqrt(2.0) / 3.0]], dtype=F64)))
    t_b = math.log(float(land.grad(y0[:1, :, 0])) / gb)
    for sol in (fast, slow):
        assert int(sol.status[0]) in (Status.DIVERGED, Status.STEP_UNDERFLOW)
        assert float(sol.t_final[0]) == pytest.approx(t_b, abs=1e-8)
        assert int(sol.status[1]) == Status.OK
    assert (fast.ys - slow.ys).nan_to_num().abs().max() <= 1e-9


def test_lanes_next_to_the_boundary_end_or_escape():
    # theta0 within 1e-12 .. 1 ulp of the inflection point x_b: toward it (c = 1.5) the Newton flow
    # ends at t ~ 1e-23, far below the time floor of the kernel (16 ulp of t): the lane stalls at
    # the edge of phi'' <= 0 and ends as DIVERGED within a few thousand evaluations (not after
    # max_steps); away from it (c = 4) the speed ~ 1/phi'' is huge at first and the lane escapes
    eps = [0.0, 1e-15, 1e-12]
    toward = landscapes.parse("rosenbrock1d(c=1.5)")
    away = landscapes.parse("rosenbrock1d(c=4)")
    for land, sign, want in [(toward, -1.0, Status.DIVERGED), (away, -1.0, Status.OK)]:
        c = float(land.c)
        xb = -math.sqrt((1 - 1 / (2 * c)) / 3)
        th = torch.tensor([[xb + sign * e] for e in eps], dtype=F64)
        flow = NewtonFlow(land, alpha=0.01, jump_lr=0.01, n_lanes=len(eps))
        y0 = flow.initial_state(th)
        sol = solve_fast(flow, y0, torch.linspace(0, 2, 5, dtype=F64))
        ok = torch.tensor([float(land.d2phi(x[None])) > 0 for x in th])
        assert (sol.status[ok] == want).all(), sol.status
        assert (sol.status[~ok] == Status.DIVERGED).all()
        assert int(sol.stats["nfev"].max()) < 20_000
        if want == Status.OK:
            g = land.grad(sol.ys[:, -1, :, 0])
            assert torch.allclose(g, math.exp(-2.0) * land.grad(th), rtol=1e-8, atol=0)


class TorchCurvature(Separable):
    """phi = x^4/4 + x^2/2 with a compiled phi' but phi'' for the torch engine only."""
    name = "torchcurvature"

    def phi(self, x):
        return x ** 4 / 4 + x * x / 2

    @staticmethod
    def dphi_point(x, p):
        return x * x * x + x

    def d2phi(self, x):
        return 3 * x * x + 1


def test_a_landscape_without_compiled_curvature_falls_back():
    land = TorchCurvature()
    with pytest.raises(Unsupported, match="no compiled curvature"):
        compiled_curvature(land, 1)
    for cls in (NewtonFlow, DiagNewtonFlow):
        flow = cls(land, alpha=0.01, jump_lr=0.01, n_lanes=1)
        assert "no compiled curvature" in fast_support(flow)
        assert Numerics().choose_engine(flow) == ("torch", "exprb43")
        with pytest.raises(ConfigError, match="no compiled curvature"):
            Numerics(engine="compiled").choose_engine(flow)
        with pytest.raises(Unsupported, match="no compiled curvature"):
            compiled_rhs(flow, torch.zeros(1, dtype=F64), torch.ones(1, 1, 1, dtype=F64))
    tr = run_lanes("newton-flow", land, _lanes([1.0]), [50], numerics=Numerics())
    assert tr.meta["engine"] == "torch" and int(tr.status[0]) == Status.OK
    # the Adam family reads no curvature: it still runs compiled there
    assert run_lanes("adam-flow1", land, [{"theta0": [1.0], "alpha": 0.01}], [50],
                     numerics=Numerics()).meta["engine"] == "compiled"
    # a landscape that is not separable has no compiled gradient to begin with
    quad = NewtonFlow(landscapes.parse("quadratic(diag=[1.0, 2.0])"), alpha=0.01, n_lanes=1)
    assert "no compiled gradient" in fast_support(quad)
