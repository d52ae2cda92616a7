"""Flows: independent checks against scipy LSODA (numpy right-hand sides), memory = kernel
convolution of the flow's own gradient history, analytic Jacobians vs autograd, torchdiffeq interop,
stiffness behaviour (steps vs alpha beside an explicit solver), divergence, CLI."""
import json
import math

import pytest
import torch
import torchdiffeq
from scipy.integrate import solve_ivp

import landscapes
from adamflow.cli import main
from core.errors import ConfigError
from core.trajectory import Status
from flows import get as get_flow
from flows.adam import AdaGradFlow, AdamFlow1, AdamFlow2, RMSPropFlow
from flows.kernels import FirstOrderKernel, SecondOrderKernel, history_convolution
from flows.semilinear import SemilinearFlow
from flows.simulate import output_grid, simulate
from landscapes.base import Landscape
from tests.flow_reference import grad_rb1d, lsoda_flow

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_flow(model, c, theta0, alphas, b1s, b2s, T, u0s=None, **kw):
    land = landscapes.parse(f"rosenbrock1d(c={c})")
    B = len(alphas)
    cls = get_flow(model)
    extra = {"u0": u0s} if model == "adam-flow2" else {}
    flow = cls(land, alpha=alphas, beta1=b1s, beta2=b2s, n_lanes=B, **extra)
    a = torch.tensor(alphas, dtype=F64)
    t_out, _, n_out = output_grid(a, [round(T / x) for x in alphas], every=max(1, round(0.5 / min(alphas))))
    theta0 = torch.full((B, 1), theta0, dtype=F64)
    return simulate(flow, theta0, t_out, n_out, **kw)


# -- LSODA agreement -------------------------------------------------------------------------------
CI_CASES = [  # model, alpha, b1, b2, u0, T
    ("adam-flow1", 1e-2, 0.9, 0.999, 0.0, 5.0),
    ("adam-flow1", 5e-2, 0.6, 0.2, 0.0, 5.0),
    ("adam-flow2", 1e-2, 0.99, 0.99, -1.0, 5.0),
    ("adam-flow2", 5e-2, 0.3, 0.2, 2.0, 5.0),
    ("adam-flow2", 1e-3, 0.9, 0.999, 1.0, 2.0),
]


@pytest.mark.parametrize("model, alpha, b1, b2, u0, T", CI_CASES)
def test_matches_lsoda(model, alpha, b1, b2, u0, T):
    tr = run_flow(model, 1.5, -1.5, [alpha], [b1], [b2], T, u0s=[u0])
    assert int(tr.status[0]) == Status.OK
    ref = lsoda_flow(model, 1.5, -1.5, alpha, b1, b2, T, u0=u0)
    assert abs(float(tr.final_theta()[0, 0]) - ref.y[0, -1]) <= 1e-8
    assert float(tr.t[0, int(tr.n_out[0]) - 1]) == pytest.approx(T)
    # moments too (m and v are reported outputs)
    m_ref, v_ref = (ref.y[1, -1], ref.y[2, -1]) if model == "adam-flow1" else (ref.y[2, -1], ref.y[4, -1])
    k = int(tr.n_out[0]) - 1
    assert float(tr.extras["m"][0, k, 0]) == pytest.approx(m_ref, rel=1e-7, abs=1e-9)
    assert float(tr.extras["v"][0, k, 0]) == pytest.approx(v_ref, rel=1e-7, abs=1e-9)


GRID = [(a, b1, b2) for a in (1e-3, 1e-2, 5e-2) for b1 in (0.3, 0.6, 0.9, 0.99)
        for b2 in (0.2, 0.99, 0.999)]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["adam-flow1", "adam-flow2"])
def test_full_grid_matches_lsoda(model):
    """The issue's acceptance grid, all lanes in one batch: |theta(5) - LSODA| <= 1e-8 on every lane
    whose reference is itself determined to that accuracy.

    Where LSODA at rtol 1e-11 is not converged to 1e-9 (it disagrees with DOP853 at 1e-13), the
    reference is refined (LSODA at 1e-13). Some lanes (small beta2 or small beta1 at alpha = 1e-3)
    chatter around the minimiser for most of the horizon; there theta(5) is ill-conditioned: the
    references disagree with each other by 1e-6 to 1e-3. Such lanes are reported and excluded (no
    solver can match an unconverged reference); they must stay a minority.
    """
    rows = [(a, b1, b2, u0) for (a, b1, b2) in GRID
            for u0 in ((-1.0, 2.0) if model == "adam-flow2" else (0.0,))]
    tr = run_flow(model, 1.5, -1.5, [r[0] for r in rows], [r[1] for r in rows],
                  [r[2] for r in rows], 5.0, u0s=[r[3] for r in rows])
    ill, checked = [], 0
    for i, (a, b1, b2, u0) in enumerate(rows):
        ours = float(tr.final_theta()[i, 0])
        assert int(tr.status[i]) == Status.OK, rows[i]
        ref = lsoda_flow(model, 1.5, -1.5, a, b1, b2, 5.0, u0=u0).y[0, -1]
        alt = lsoda_flow(model, 1.5, -1.5, a, b1, b2, 5.0, u0=u0, method="DOP853", rtol=1e-13,
                         atol=1e-14).y[0, -1]
        if abs(ref - alt) > 1e-9:
            # LSODA at 1e-11 is not converged here: refine the reference, or give up on the lane
            ref = lsoda_flow(model, 1.5, -1.5, a, b1, b2, 5.0, u0=u0, rtol=1e-13, atol=1e-15).y[0, -1]
            if abs(ref - alt) > 1e-9:
                ill.append((rows[i], ref, alt, ours))
                continue
        checked += 1
        assert abs(ours - ref) <= 1e-8, (rows[i], ours, ref, alt)
    print(f"{model}: {checked} lanes checked, {len(ill)} ill-conditioned: {ill}")
    assert len(ill) <= len(rows) // 4


def test_rmsprop_and_adagrad_flows_match_lsoda():
    c, x0, T = 1.5, -1.5, 3.0
    for model, a, b in (("rmsprop-flow", 0.01, 0.9), ("rmsprop-flow", 0.05, 0.0), ("adagrad-flow", 0.05, None)):
        land = landscapes.parse(f"rosenbrock1d(c={c})")
        if model == "rmsprop-flow":
            flow = RMSPropFlow(land, alpha=a, beta=b, n_lanes=1)
            lam = (1 - b) / a

            def f(s, y):
                g = grad_rb1d(y[0], c)
                return [-g / (math.sqrt(max(y[1], 0)) + 1e-8), lam * (g * g - y[1])]
            y0 = [x0, (1 - b) * grad_rb1d(x0, c) ** 2]
        else:
            flow = AdaGradFlow(land, alpha=a, n_lanes=1)

            def f(s, y):
                g = grad_rb1d(y[0], c)
                return [-g / (math.sqrt(max(y[1], 0)) + 1e-8), g * g / a]
            y0 = [x0, grad_rb1d(x0, c) ** 2]
        ref = solve_ivp(f, (0, T), y0, method="LSODA", rtol=1e-11, atol=1e-13)
        t_out, _, n_out = output_grid(torch.tensor([a], dtype=F64), [round(T / a)], every=10)
        tr = simulate(flow, torch.tensor([[x0]], dtype=F64), t_out, n_out)
        assert int(tr.status[0]) == Status.OK
        assert abs(float(tr.final_theta()[0, 0]) - ref.y[0, -1]) <= 1e-8, model
        assert float(tr.extras["v"][0, 0, 0]) == pytest.approx(y0[1])


# -- memories are the kernel convolutions of the flow's own gradient history ------------------------
@pytest.mark.parametrize("order, b1, b2", [(1, 0.9, 0.99), (2, 0.9, 0.99), (2, 0.5, 0.2)])
def test_memories_equal_history_quadrature(order, b1, b2):
    alpha, T = 0.05, 2.0
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    cls = AdamFlow1 if order == 1 else AdamFlow2
    flow = cls(land, alpha=alpha, beta1=b1, beta2=b2, n_lanes=1)
    t_out = torch.linspace(0, T, 2001, dtype=F64)[None]
    tr = simulate(flow, torch.tensor([[-1.5]], dtype=F64), t_out)
    g = land.grad(tr.theta[0])[:, 0]                                   # (N,)
    Kern = FirstOrderKernel if order == 1 else SecondOrderKernel
    s = t_out[0]
    m = history_convolution(Kern(alpha, b1), s, g[None])[0]
    v = history_convolution(Kern(alpha, b2), s, (g * g)[None])[0]
    # piecewise-linear g on a grid of step 1e-3: O(h^2) quadrature error
    assert torch.allclose(tr.extras["m"][0, :, 0], m, rtol=0, atol=2e-5 * float(m.abs().max()))
    assert torch.allclose(tr.extras["v"][0, :, 0], v, rtol=0, atol=2e-5 * float(v.abs().max()))


# -- Jacobians --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["adam-flow1", "adam-flow2", "rmsprop-flow", "adagrad-flow"])
@pytest.mark.parametrize("land_spec", ["rosenbrock1d(c=4)", "rosenbrock(a=1,b=100,n=3)"])
def test_analytic_jacobian_matches_autograd(model, land_spec):
    gen = torch.Generator().manual_seed(3)
    land = landscapes.parse(land_spec)
    n = 1 if land_spec.startswith("rosenbrock1d") else 3
    B = 3
    kw = {"alpha": [1e-2, 3e-2, 1e-1]}
    if model.startswith("adam"):
        kw.update(beta1=[0.9, 0.5, 0.3], beta2=[0.999, 0.2, 0.5])
    if model == "rmsprop-flow":
        kw.update(beta=[0.9, 0.0, 0.99])
    flow = get_flow(model)(land, n_lanes=B, **kw)
    y = torch.randn(B, n, flow.d, generator=gen, dtype=F64)
    for comp in ("v", "x_v0"):
        if comp in flow.components:
            y[..., flow.index(comp)] = y[..., flow.index(comp)].abs() + 0.1
    t = torch.tensor([0.0, 0.05, 1.0], dtype=F64)
    Jy, Jt = flow.jacobian(t, y)
    Jy_ad, Jt_ad = SemilinearFlow.jacobian(flow, t, y)
    assert torch.allclose(Jy, Jy_ad, rtol=1e-10, atol=1e-10)
    assert torch.allclose(Jt, Jt_ad, rtol=1e-10, atol=1e-10)


# -- torchdiffeq interop ----------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["adam-flow1", "adam-flow2", "rmsprop-flow", "adagrad-flow"])
def test_torchdiffeq_odeint_integrates_the_module(model):
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    alpha = 0.1
    flow = get_flow(model)(land, alpha=[alpha, alpha], n_lanes=2)
    theta0 = torch.tensor([[-1.5], [2.0]], dtype=F64)
    y0 = flow.initial_state(theta0)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    ys = torchdiffeq.odeint(flow, y0, t, method="dopri5", rtol=1e-10, atol=1e-12)
    assert ys.shape == (3, 2, 1, flow.d)
    tr = simulate(flow, theta0, t[None].expand(2, 3).contiguous())
    assert torch.allclose(ys[:, :, 0, 0].T, tr.theta[:, :, 0], atol=1e-7)


# -- stiffness: steps set by accuracy, not by the fast modes -----------------------------------------
def test_step_counts_vs_alpha_beside_explicit_solver():
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    T = 0.5
    exact, explicit = {}, {}
    for alpha in (1e-2, 1e-3):
        flow = AdamFlow2(land, alpha=alpha, beta1=0.9, beta2=0.999, n_lanes=1)
        theta0 = torch.tensor([[-1.5]], dtype=F64)
        tr = simulate(flow, theta0, torch.tensor([[0.0, T]], dtype=F64), rtol=1e-8, atol=1e-10)
        exact[alpha] = int(tr.stats["accepted"][0])
        calls = [0]

        class Counted(torch.nn.Module):
            def forward(self, t, y):
                calls[0] += 1
                return flow(t, y)

        torchdiffeq.odeint(Counted(), flow.initial_state(theta0), torch.tensor([0.0, T], dtype=F64),
                           method="dopri5", rtol=1e-8, atol=1e-10)
        explicit[alpha] = calls[0]
    # an explicit solver pays for the fast modes (~2/alpha): 10x smaller alpha, >= 4x more work
    assert explicit[1e-3] >= 4 * explicit[1e-2]
    # the exact integrator resolves the memories (scale alpha/(1-beta)) and theta, not 2/alpha:
    # far less than the explicit solver's growth, and far fewer steps than dopri5 at small alpha
    assert exact[1e-3] * 6 < explicit[1e-3]
    assert exact[1e-3] / exact[1e-2] < 0.6 * explicit[1e-3] / explicit[1e-2]


# -- divergence -------------------------------------------------------------------------------------
class Cliff(Landscape):
    """f = -x on x <= 2, undefined (NaN) beyond: the flow runs over the edge at finite speed."""
    name = "cliff"

    def value(self, theta):
        return (-theta + 0.0 * torch.sqrt(2 - theta)).sum(-1)

    def grad(self, theta):
        return -1.0 + 0.0 * torch.sqrt(2 - theta)


def test_diverging_lane_beside_healthy_one():
    # lane 0 runs over the edge at x = 2 (t ~ 2); lane 1 (huge eps) creeps and stays healthy
    flow = AdamFlow1(Cliff(), alpha=[0.1, 0.1], beta1=0.9, beta2=0.999, eps=[1e-8, 1e3], n_lanes=2)
    theta0 = torch.zeros(2, 1, dtype=F64)
    t_out = torch.linspace(0, 10, 11, dtype=F64)[None].expand(2, 11).contiguous()
    tr = simulate(flow, theta0, t_out)
    assert int(tr.status[0]) == Status.DIVERGED
    assert 1.0 < float(tr.diverged_at[0]) < 4.0
    assert int(tr.n_out[0]) < 11 and torch.isfinite(tr.theta[0, : int(tr.n_out[0])]).all()
    assert int(tr.status[1]) == Status.OK and int(tr.n_out[1]) == 11
    alone = simulate(AdamFlow1(Cliff(), alpha=0.1, beta1=0.9, beta2=0.999, eps=1e3, n_lanes=1),
                     theta0[1:], t_out[1:])
    assert torch.allclose(alone.theta[0], tr.theta[1], rtol=1e-9, atol=1e-12)


def test_bad_flow_parameters():
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    with pytest.raises(ConfigError):
        AdamFlow1(land, alpha=0.0, n_lanes=1)
    with pytest.raises(ConfigError):
        AdamFlow2(land, alpha=1e-3, beta2=1.0, n_lanes=1)
    with pytest.raises(ConfigError):
        AdamFlow2(land, alpha=1e-3, u0=float("nan"), n_lanes=1)
    with pytest.raises(ConfigError):
        RMSPropFlow(land, alpha=1e-3, beta=-0.5, n_lanes=1)


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_discrete_and_flows_share_output_times(capsys):
    code = main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam", "adam-flow1", "adam-flow2",
                 "--theta0", "-1.5", "--alpha", "0.05", "--beta1", "0.9", "--beta2", "0.999",
                 "--u0", "0", "1", "--steps", "40", "--every", "5", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lanes = json.loads(out)["lanes"]
    assert [ln["model"] for ln in lanes] == ["adam", "adam-flow1", "adam-flow2", "adam-flow2"]
    ts = [ln["t"] for ln in lanes]
    assert all(t == pytest.approx(ts[0], rel=1e-15) for t in ts)
    assert ts[0][-1] == pytest.approx(40 * 0.05)
    for ln in lanes[1:]:
        assert ln["status"] == "ok" and "m" in ln and "v" in ln
        assert ln["stats"]["accepted"] > 0
    assert lanes[1]["u0"] is None and {lanes[2]["u0"], lanes[3]["u0"]} == {0.0, 1.0}
    assert "u" in lanes[2] and lanes[2]["min_v"] >= 0 and lanes[2]["v_negative"] is False


def test_cli_reports_negative_v_for_small_beta2(capsys):
    code = main(["run", "--landscape", "rosenbrock1d(c=1.5)", "--model", "adam-flow2", "--theta0", "-1.5",
                 "--alpha", "1e-2", "--beta1", "0.5", "--beta2", "0.2", "--u0", "0", "--steps", "270",
                 "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (lane,) = json.loads(out)["lanes"]
    assert lane["v_negative"] is (lane["min_v"] < 0)


@pytest.mark.parametrize("args", [["--rtol", "-1"], ["--atol", "nan"], ["--u0", "nan"],
                                  ["--scheme", "magic"], ["--horizon", "0"]])
def test_cli_flow_errors(capsys, args):
    base = ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow2", "--theta0", "-1.5",
            "--alpha", "1e-2"]
    if "--horizon" not in args:
        base += ["--steps", "10"]
    code = main(base + args)
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_integrator_choice_agrees(capsys):
    out = {}
    for integ in ("exprb43", "etd4"):
        code = main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow2", "--theta0", "-1.5",
                     "--alpha", "1e-2", "--beta1", "0.9", "--beta2", "0.999", "--u0", "1", "--steps", "100",
                     "--integrator", integ, "--json", "-"])
        text, err = capsys.readouterr()
        assert code == 0, err
        out[integ] = json.loads(text)["lanes"][0]["final_theta"][0]
    assert out["exprb43"] == pytest.approx(out["etd4"], abs=1e-8)
    assert main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow2", "--theta0", "-1.5",
                 "--alpha", "1e-2", "--steps", "10", "--integrator", "rk4"]) == 2
