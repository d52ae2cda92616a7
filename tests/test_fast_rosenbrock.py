"""The compiled Rosenbrock stepper (flows.fast.rosenbrock, Rodas5P): its three orders, its
Jacobian against the torch flow's, and its solutions against LSODA and the explicit kernel."""
import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import landscapes
from core.errors import ConfigError
from flows.fast import rodas5p as tab
from flows.fast.rhs import jacobian_lanes
from flows.fast.solve import compiled_problem, solve_fast
from runner.experiment import Numerics, run_lanes
from runner.registry import registry
from tests import flow_reference as ref

F64 = torch.float64


def _step(f, jac, t, y, h):
    """One Rodas5P step in plain numpy from the tableau (the kernel's formulas)."""
    J, Jt = jac(t, y)
    W = np.eye(y.size) / (h * tab.GAMMA) - J
    ks = []
    u = y
    for i in range(tab.N_STAGES):
        if 0 < i < 6:
            u = y + sum(tab.A[i, j] * ks[j] for j in range(i))
        elif i >= 6:
            u = u + ks[i - 1]
        r = f(t + tab.NODES[i] * h, u) + tab.D[i] * h * Jt \
            + sum(tab.C[i, j] / h * ks[j] for j in range(i))
        ks.append(np.linalg.solve(W, r))
    q = [sum(tab.H[r, j] * ks[j] for j in range(tab.N_STAGES)) for r in range(3)]
    return u + ks[-1], ks[-1], q


def test_orders_of_the_tableau():
    # a non-autonomous stiff-ish problem: local error ~ h^6, estimate ~ h^5, dense output ~ h^5
    def f(t, y):
        return np.array([-y[0] + np.sin(t) * y[1] ** 2, -10 * y[1] + np.cos(3 * t) + y[0]])

    def jac(t, y):
        return (np.array([[-1, 2 * np.sin(t) * y[1]], [1, -10]]),
                np.array([np.cos(t) * y[1] ** 2, -3 * np.sin(3 * t)]))

    y0, t0, hs = np.array([1.0, 0.5]), 0.3, [0.05, 0.025, 0.0125]
    loc, est, den = [], [], []
    for h in hs:
        r = solve_ivp(f, (t0, t0 + h), y0, method="DOP853", rtol=1e-13, atol=1e-16,
                      dense_output=True)
        y1, e, q = _step(f, jac, t0, y0, h)
        th = 0.37
        yd = (1 - th) * y0 + th * (y1 + (1 - th) * (q[0] + th * (q[1] + th * q[2])))
        loc.append(np.abs(y1 - r.y[:, -1]).max())
        est.append(np.abs(e).max())
        den.append(np.abs(yd - r.sol(t0 + th * h)).max())
    slope = lambda v: np.polyfit(np.log(hs), np.log(v), 1)[0]      # noqa: E731
    assert 5.5 < slope(loc) < 6.8, loc
    assert 4.5 < slope(est) < 5.6, est
    assert 4.5 < slope(den) < 5.6, den


@pytest.mark.parametrize("name", ["adam-flow1", "adam-flow2", "rmsprop-flow", "adagrad-flow"])
def test_compiled_jacobian_is_the_flows(name):
    info = registry()[name]
    flow = info.cls(landscapes.parse("rosenbrock1d(c=[1.5, 4.0])"),
                    alpha=torch.tensor([0.05, 0.002], dtype=F64), n_lanes=2, dtype=F64)
    y = flow.initial_state(torch.tensor([[-1.5, 0.7], [0.3, 1.2]], dtype=F64))
    y = y + 0.2 * torch.rand(y.shape, generator=torch.Generator().manual_seed(1), dtype=F64).abs()
    t = torch.tensor([0.4, 1.3], dtype=F64)
    Jy, Jt = flow.jacobian(t, y)
    _, grad, hess, _, M, LP = compiled_problem(flow, jacobian=True)
    B, n, d = y.shape
    J = np.zeros((B, n * d, d))
    Jtc = np.zeros((B, n * d))
    jacobian_lanes(grad, hess, t.numpy().copy(), y.reshape(B, n * d).numpy().copy(), M, LP, n, d,
                   J, Jtc)
    for i in range(n):
        blk = Jy[:, i * d:(i + 1) * d, i * d:(i + 1) * d].numpy()
        assert np.allclose(J[:, i * d:(i + 1) * d], blk, rtol=1e-12, atol=1e-12 * np.abs(blk).max())
    assert np.allclose(Jtc, Jt.numpy(), rtol=1e-12, atol=1e-12 * np.abs(Jt.numpy()).max())


@pytest.mark.parametrize("alpha", [5e-4, 5e-3, 5e-2])
def test_rodas5p_matches_lsoda_and_needs_fewer_steps_when_stiff(alpha):
    c, theta0, T = 1.5, -1.5, 3.0
    flow = registry()["adam-flow2"].cls(landscapes.parse(f"rosenbrock1d(c={c})"),
                                        alpha=torch.tensor([alpha], dtype=F64), n_lanes=1,
                                        dtype=F64)
    y0 = flow.initial_state(torch.tensor([[theta0]], dtype=F64))
    te = np.linspace(0.0, T, 301)
    ros = solve_fast(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12,
                     stepper="rodas5p")
    dop = solve_fast(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12,
                     stepper="dop853")
    f = ref.rhs_flow2(c, alpha, 0.9, 0.999, 1e-8)
    r = solve_ivp(f, (0.0, T), y0[0, 0].numpy(), method="LSODA", rtol=1e-12, atol=1e-14,
                  t_eval=te)
    assert np.abs(ros.ys[0, :, 0, 0].numpy() - r.y[0]).max() <= 2e-9
    if alpha <= 5e-3:
        assert int(ros.stats["accepted"][0]) * 2 < int(dop.stats["accepted"][0])


def test_rodas5p_through_the_runner_and_its_limits():
    lanes = [{"theta0": [-1.5], "alpha": a} for a in (0.01, 0.001)]
    grids = [[0.0, 0.5, 1.0]] * 2
    a = run_lanes("adam-flow2", "rosenbrock1d(c=1.5)", lanes, [0, 0], grids=grids,
                  numerics=Numerics(integrator="rodas5p"))
    b = run_lanes("adam-flow2", "rosenbrock1d(c=1.5)", lanes, [0, 0], grids=grids,
                  numerics=Numerics(rtol=1e-12, atol=1e-14))
    assert a.meta["integrator"] == "rodas5p"
    assert (a.theta - b.theta).abs().max() <= 1e-8
    newton = registry()["newton-flow"].cls(landscapes.parse("rosenbrock1d(c=1.5)"),
                                           alpha=torch.tensor([0.01], dtype=F64), n_lanes=1,
                                           dtype=F64)
    with pytest.raises(ConfigError, match="rodas5p"):
        Numerics(integrator="rodas5p").choose_engine(newton)


def test_auto_switches_a_lane_that_turns_stiff_and_keeps_lanes_independent():
    # rmsprop-flow near its minimum: v decays at rate lam = (1 - beta)/alpha = 20 while the gain
    # 1/sqrt(v) grows, so the lane turns stiff (stability-bound) long after the start, which no
    # rule on the parameters sees; DOP853 alone spends its budget there, auto hands the lane to
    # Rodas5P where DOP853's stiffness test fires
    c, beta, eps, T = 4.0, 0.99, 1e-8, 4.5
    alphas = [5e-4, 1e-2, 5e-4]
    theta0 = [-1.5, 0.3, 1.8]
    land = landscapes.parse(f"rosenbrock1d(c={c})")
    flow = registry()["rmsprop-flow"].cls(land, alpha=torch.tensor(alphas, dtype=F64), n_lanes=3,
                                          dtype=F64)
    y0 = flow.initial_state(torch.tensor(theta0, dtype=F64)[:, None])
    te = np.linspace(0.0, T, 46)
    auto = solve_fast(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12)
    dop = solve_fast(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12,
                     stepper="dop853", max_steps=20_000)
    assert auto.status.tolist() == [0, 0, 0]
    assert int(dop.status[0]) == 3 and int(dop.status[2]) == 3        # budget spent
    assert int(auto.stats["accepted"].max()) < 2000

    def f(t, y, a):
        g = 2 * (y[0] - 1) + 4 * c * y[0] * (y[0] ** 2 - 1)
        return [-g / (np.sqrt(max(y[1], 0.0)) + eps), (1 - beta) / a * (g * g - y[1])]

    for b in range(3):
        r = solve_ivp(f, (0.0, T), y0[b, 0].numpy(), method="LSODA", rtol=1e-12, atol=1e-14,
                      t_eval=te, args=(alphas[b],))
        assert np.abs(auto.ys[b, :, 0, 0].numpy() - r.y[0]).max() <= 2e-9, b
        # a lane alone gives the same bits as in the batch (its stepper is its own)
        one = flow.subset(torch.tensor([b]))
        alone = solve_fast(one, y0[b:b + 1], torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12)
        assert torch.equal(alone.ys[0], auto.ys[b])
