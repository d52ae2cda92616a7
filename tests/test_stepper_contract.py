"""The integrator's contracts, measured: every stepper's declared order, error-estimate order and dense
output order (log-log slopes on a smooth manufactured problem), the ``made_jump`` rule, the per-step
query of the linear part, the interpolation, and the controllers (tolerances, norm, weights).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flows.exprb
import flows.solvers
from core.trajectory import Status
from flows.controllers import (
    ConstantStep,
    Controller,
    IController,
    PIController,
    max_norm,
)
from flows.exprb import ExpRosenbrock43
from flows.interpolation import Interpolation, QuinticHermite
from flows.solve import solve
from flows.solvers import CoxMatthews4, HochbruckOstermann4, StepDoubling
from flows.stepper import Stepper, StepResult
from tests.test_integrator import Manufactured, memory_problem

F64 = torch.float64

STEPPERS = [ExpRosenbrock43(), StepDoubling(HochbruckOstermann4()), StepDoubling(CoxMatthews4())]
IDS = [s.name for s in STEPPERS]


pytestmark = pytest.mark.usefixtures("single_thread")


def _slope(hs, errs) -> float:
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


def _all_subclasses(cls):
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _all_subclasses(sub)
    return out


def test_every_shipped_stepper_is_covered():
    shipped = {c for c in _all_subclasses(Stepper) if c.__module__ in (flows.exprb.__name__,
                                                                         flows.solvers.__name__)}
    assert shipped and shipped <= {type(s) for s in STEPPERS}


@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_declared_attributes(stepper):
    assert isinstance(stepper, Stepper) and stepper.name
    assert stepper.order == 4
    assert stepper.error_order == (3 if isinstance(stepper, ExpRosenbrock43) else 4)
    assert isinstance(stepper.interpolation, Interpolation)


# ------------------------------------------------------------------------------------------------------
# orders: solution, error estimate, dense output
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_order_of_convergence(stepper):
    """Fixed steps on the manufactured nonlinear problem: global error ~ h^order."""
    flow = Manufactured()
    y0 = flow.exact(torch.zeros(1, dtype=F64))[:, None, :]
    T = 2.0
    hs = np.array([0.2, 0.1, 0.05, 0.025])
    errs = []
    for h in hs:
        sol = solve(flow, y0, torch.tensor([0.0, T], dtype=F64), method=stepper,
                    controller=ConstantStep(h))
        assert int(sol.status[0]) == Status.OK
        assert int(sol.stats["accepted"][0]) == round(T / h)
        errs.append(float((sol.ys[0, -1, 0] - flow.exact(torch.tensor([T], dtype=F64))[0]).abs().max()))
    slope = _slope(hs, errs)
    assert abs(slope - stepper.order) <= 0.4, (slope, errs)


def _one_step(stepper, h: float, t0: float = 0.3):
    flow = Manufactured()
    t = torch.tensor([t0], dtype=F64)
    y = flow.exact(t)[:, None, :]
    state = stepper.init(flow, t, y)
    res = stepper.step(flow, t, y, torch.tensor([h], dtype=F64), state, None)
    return flow, t, y, res


HS_LOCAL = np.array([0.2, 0.1, 0.05, 0.025])


@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_error_estimate_order(stepper):
    """One step from the exact solution: the local error estimate ~ h^(error_order + 1)."""
    ests = [float(_one_step(stepper, h)[3].y_error.abs().max()) for h in HS_LOCAL]
    slope = _slope(HS_LOCAL, ests)
    assert abs(slope - (stepper.error_order + 1)) <= 0.4, (slope, ests)


@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_dense_output_order(stepper):
    """One step from the exact solution: the interpolant's largest error at interior points is
    O(h^(min(order, interpolation.order) + 1)) (the local order of solution and interpolant)."""
    x = torch.linspace(0.05, 0.95, 19, dtype=F64)
    errs = []
    for h in HS_LOCAL:
        flow, t, _, res = _one_step(stepper, h)
        hv = torch.full_like(x, h)
        info = tuple(D.expand((x.shape[0],) + tuple(D.shape[1:])) for D in res.dense_info)
        yq = stepper.interpolation.evaluate(info, x, hv)
        errs.append(float((yq[:, 0] - flow.exact(t + x * h)).abs().max()))
    slope = _slope(HS_LOCAL, errs)
    want = min(stepper.order, stepper.interpolation.order) + 1
    assert abs(slope - want) <= 0.4, (slope, errs)


def test_quintic_hermite_order_with_exact_data():
    """Fed with exact values and derivatives, the interpolation error is O(h^(order + 1))."""
    interp = QuinticHermite()
    flow = Manufactured()
    x = torch.linspace(0.05, 0.95, 19, dtype=F64)
    errs = []
    for h in HS_LOCAL:
        t = torch.tensor([0.3, 0.3 + h / 2, 0.3 + h], dtype=F64)
        ye = flow.exact(t)
        fe = torch.stack([torch.cos(t), -2 * torch.sin(2 * t)], -1)
        info = tuple(v[None, None].expand(x.shape[0], 1, 2) for v in (ye[0], fe[0], ye[1], fe[1], ye[2], fe[2]))
        yq = interp.evaluate(info, x, torch.full_like(x, h))
        errs.append(float((yq[:, 0] - flow.exact(0.3 + x * h)).abs().max()))
    assert abs(_slope(HS_LOCAL, errs) - (interp.order + 1)) <= 0.4, errs
    # the defect is O(h^5) on smooth data (one order below the interpolant's local error)
    defects = []
    for h in HS_LOCAL:
        t = torch.tensor([0.3, 0.3 + h / 2, 0.3 + h], dtype=F64)
        ye = flow.exact(t)[:, None, None, :]
        fe = torch.stack([torch.cos(t), -2 * torch.sin(2 * t)], -1)[:, None, None, :]
        info = (ye[0], fe[0], ye[1], fe[1], ye[2], fe[2])
        defects.append(float(interp.defect(info, torch.tensor([h], dtype=F64)).max()))
    assert abs(_slope(HS_LOCAL, defects) - 5) <= 0.4, defects


@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_dense_info_matches_step_ends(stepper):
    flow, t, y, res = _one_step(stepper, 0.1)
    assert isinstance(res, StepResult)
    assert res.y.shape == y.shape and res.y_error.shape == y.shape
    one = torch.ones(1, dtype=F64)
    h = torch.full((1,), 0.1, dtype=F64)
    assert torch.allclose(stepper.interpolation.evaluate(res.dense_info, 0 * one, h), y, rtol=0, atol=1e-12)
    assert torch.allclose(stepper.interpolation.evaluate(res.dense_info, one, h), res.y, rtol=0, atol=1e-12)
    # the next state holds N at the end of the step (first same as last)
    assert torch.equal(res.state[0], flow.nonlinear(t + 0.1, res.y))
    assert res.nfev_fsal == 1


# ------------------------------------------------------------------------------------------------------
# made_jump and the linear part
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_made_jump_recomputes_the_cached_first_stage(stepper):
    flow = Manufactured(B=3)
    t = torch.tensor([0.1, 0.4, 0.7], dtype=F64)
    y = flow.exact(t)[:, None, :].expand(3, 2, 2).contiguous()
    h = torch.full((3,), 0.05, dtype=F64)
    stale = stepper.init(flow, t, y)
    y_jump = y + torch.tensor([0.3, -0.2], dtype=F64)            # an event handler moved the state
    fresh = stepper.step(flow, t, y_jump, h, stepper.init(flow, t, y_jump), None)
    jumped = torch.tensor([True, False, True])
    res = stepper.step(flow, t, y_jump, h, stale, jumped)
    old = stepper.step(flow, t, y_jump, h, stale, None)
    for lanes, ref in ((jumped, fresh), (~jumped, old)):
        assert torch.equal(res.y[lanes], ref.y[lanes])
        assert torch.equal(res.y_error[lanes], ref.y_error[lanes])
        for a, b in zip(res.dense_info, ref.dense_info):
            assert torch.equal(a[lanes], b[lanes])
    assert torch.equal(torch.as_tensor(res.nfev), torch.as_tensor(old.nfev) + jumped.long())
    # reusing the stale N would be wrong: the jumped lanes differ from the stale step by O(h)
    assert (res.y[jumped] - old.y[jumped]).abs().max() > 1e-4


@pytest.mark.parametrize("stepper", STEPPERS, ids=IDS)
def test_linear_operator_is_queried_every_step(stepper):
    flow, y0 = memory_problem()
    t = torch.zeros(2, dtype=F64)
    h = torch.full((2,), 0.01, dtype=F64)
    state = stepper.init(flow, t, y0)
    before = stepper.step(flow, t, y0, h, state, None)
    flow.w2 = flow.w2 * 2          # a switching event changed the flow's branch (and its L)
    after = stepper.step(flow, t, y0, h, state, torch.ones(2, dtype=torch.bool))
    ref = stepper.step(flow, t, y0, h, stepper.init(flow, t, y0), None)
    assert not torch.equal(before.y, after.y)
    assert torch.equal(after.y, ref.y)


# ------------------------------------------------------------------------------------------------------
# controllers: tolerances, norm, weights
# ------------------------------------------------------------------------------------------------------
def _old_norm(y0, y1, err, w, rtol, atol):
    """The error norm the solve loop computed before the controllers owned it."""
    rtol = max(float(rtol), 100.0 * torch.finfo(y0.dtype).eps)
    atol_t = torch.as_tensor(atol, dtype=y0.dtype)
    scale = atol_t + rtol * torch.maximum(y0.abs(), y1.abs())
    en = ((err.abs() * w) / scale).amax(dim=(1, 2))
    return torch.where(torch.isnan(en), torch.full_like(en, float("inf")), en)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("cls", [PIController, IController, lambda **kw: ConstantStep(0.1, **kw)])
def test_controller_norm_matches_the_old_formula(cls, dtype):
    g = torch.Generator().manual_seed(3)
    y0, y1, err = (torch.randn(5, 4, 3, generator=g, dtype=F64).to(dtype) for _ in range(3))
    err[2, 1, 0] = math.nan
    err[3, 0, 2] = math.inf
    w = torch.tensor([1.0, 0.0, 1.0], dtype=dtype)
    atol = torch.tensor([1e-12, 1e-9, 1e-6], dtype=F64)
    c = cls(rtol=1e-10, atol=atol)
    c.init(torch.full((5,), 0.1, dtype=dtype), 5, w)
    ref = _old_norm(y0, y1, err, w, 1e-10, atol)
    assert torch.equal(c.error_norm(y0, y1, err), ref)
    assert torch.equal(c.error_norm(y0, y1, err, w), ref)
    assert math.isinf(float(ref[2])) and math.isinf(float(ref[3]))


def test_controller_norm_is_pluggable():
    rms = lambda r: r.pow(2).mean(dim=(1, 2)).sqrt()  # noqa: E731
    c = PIController(rtol=1e-3, atol=1e-6, norm=rms)
    y = torch.ones(2, 3, 1, dtype=F64)
    err = torch.tensor([[[1e-3], [0.0], [0.0]], [[1e-3], [1e-3], [1e-3]]], dtype=F64)
    en = c.error_norm(y, y, err)
    assert torch.allclose(en, torch.tensor([1 / math.sqrt(3), 1.0], dtype=F64) / (1 + 1e-3), rtol=1e-12)
    assert torch.equal(max_norm(torch.zeros(4, 0, 2)), torch.zeros(4))


def test_solve_tolerances_build_or_replace_the_controllers():
    flow, y0 = memory_problem()
    t = torch.linspace(0.0, 1.0, 5, dtype=F64)
    a = solve(flow, y0, t, rtol=1e-7, atol=1e-9)
    b = solve(flow, y0, t, controller=PIController(rtol=1e-7, atol=1e-9))
    c = solve(flow, y0, t, rtol=1e-7, atol=1e-9, controller=PIController())    # kwargs win (on a copy)
    for s in (b, c):
        assert torch.equal(a.ys, s.ys) and torch.equal(a.stats["accepted"], s.stats["accepted"])
    tight = solve(flow, y0, t)
    assert int(tight.stats["accepted"].sum()) > int(a.stats["accepted"].sum())
    ctl = PIController(rtol=1e-4)
    assert ctl.with_tolerances(rtol=1e-8).rtol == 1e-8 and ctl.rtol == 1e-4
    with pytest.raises(ValueError):
        PIController(rtol=-1.0)
    assert isinstance(PIController(), Controller)


def test_constant_step():
    c = ConstantStep(0.25)
    h, st = c.init(torch.tensor([1e-3, 0.5], dtype=F64), 5)
    assert torch.equal(h, torch.full((2,), 0.25, dtype=F64))
    acc, hn, _ = c.adapt(h, torch.tensor([math.inf, 1e6], dtype=F64), st)
    assert acc.all() and torch.equal(hn, h)
    with pytest.raises(ValueError):
        ConstantStep(0.0)
    flow = Manufactured()
    y0 = flow.exact(torch.zeros(1, dtype=F64))[:, None, :]
    sol = solve(flow, y0, torch.tensor([0.0, 0.3, 1.0], dtype=F64), controller=ConstantStep(0.125),
                rtol=1e-30)   # tolerances do not matter: every step is accepted
    assert int(sol.stats["accepted"][0]) == 8 and int(sol.stats["rejected"][0]) == 0
    assert (sol.ys[0, :, 0] - flow.exact(torch.tensor([0.0, 0.3, 1.0], dtype=F64))).abs().max() < 1e-4
