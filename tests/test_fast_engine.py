"""The compiled engine (flows.fast, discrete.fast) against the torch reference engine, scipy and
closed forms: right-hand side, accuracy, order, statuses, engine selection, bitwise discrete runs."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import DOP853, solve_ivp

import landscapes
from core.errors import ConfigError
from core.trajectory import Status
from flows.compiled_form import NewtonForm
from flows.fast import dop853
from flows.fast.solve import compiled_rhs, fast_support, solve_fast
from flows.solve import solve
from runner.experiment import Numerics, run_lanes
from runner.registry import registry
from tests import flow_reference as ref

F64 = torch.float64
ALL_FLOWS = sorted(n for n, info in registry().items() if info.kind == "flow")
DISCRETE = ("gd", "heavyball", "adam", "rmsprop", "adagrad")


#: flows whose domain the shared test data leave get their own: the principal flow of GD
#: (flows.modified) exists where alpha phi'' < 1 (phi'' reaches ~1100 on the test states);
#: heavyball-reduced-flow starts shifted by alpha mu/(1-mu)^2 g (90 alpha g at the default
#: mu = 0.9: theta0 = -159 at alpha = 0.05, where the torch engine's first step underflows)
DOMAIN = {"gd-principal-flow": {"alphas": (5e-4, 2e-4, 1e-4)},
          "heavyball-reduced-flow": {"momentum": 0.5}}


def make_flow(name, land="rosenbrock1d(c=4)", alphas=None, **hyper):
    dom = dict(DOMAIN.get(name, {}))
    alphas = alphas or dom.pop("alphas", (0.05, 0.01, 0.002))
    dom.pop("alphas", None)
    hyper = {**dom, **hyper}
    info = registry()[name]
    B = len(alphas)
    return info.cls(landscapes.parse(land), alpha=torch.tensor(alphas, dtype=F64), n_lanes=B,
                    dtype=F64, **hyper)


#: the flows with a compiled form (the Adam family and the Newton flows of flows.newton); the
#: gated jump flow (flows.jump_flow) runs on the torch engine
FLOWS = [n for n in ALL_FLOWS
         if getattr(make_flow(n, land="quadratic(diag=[1.0])"), "compiled_form", lambda: None)()
         is not None]

#: every registered landscape kind with a compiled gradient and curvature, with per-lane parameters
#: where it has any
COMPILED_LANDSCAPES = ["rosenbrock1d(c=[1.5, 4.0, 0.5])", "shifted(center=[4.0, -1.0, 0.5])",
                       "doublewell", "sextic"]


def is_newton(flow) -> bool:
    return isinstance(flow.compiled_form(), NewtonForm)


def test_tableau_is_scipys_and_consistent():
    for ours, theirs in [(dop853.A, DOP853.A), (dop853.B, DOP853.B), (dop853.C, DOP853.C),
                         (dop853.E3, DOP853.E3), (dop853.E5, DOP853.E5), (dop853.D, DOP853.D),
                         (dop853.A_EXTRA, DOP853.A_EXTRA), (dop853.C_EXTRA, DOP853.C_EXTRA)]:
        assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("land", COMPILED_LANDSCAPES)
@pytest.mark.parametrize("name", FLOWS)
def test_compiled_rhs_is_the_flows_forward(name, land):
    # the compiled right-hand side (from the flow's compiled_form) equals flow.forward, NaN where
    # the flow is not defined included (the Newton flows where phi'' <= 0: the middle lane on
    # rosenbrock1d and the double well)
    flow = make_flow(name, land=land)
    gen = torch.Generator().manual_seed(0)
    y = flow.initial_state(torch.tensor([[-1.5, 2.0], [0.3, 0.9], [1.2, -0.2]], dtype=F64))
    y = y + 0.3 * torch.rand(y.shape, generator=gen, dtype=F64)
    t = torch.tensor([0.0, 0.37, 2.5], dtype=F64)
    want = flow(t, y)
    got = compiled_rhs(flow, t, y)
    assert torch.isfinite(want[0]).all()
    assert torch.allclose(got, want, rtol=1e-14, atol=1e-12 * float(want.nan_to_num().abs().max()),
                          equal_nan=True)


@pytest.mark.parametrize("name", FLOWS)
def test_compiled_engine_matches_torch_engine(name):
    # the test that holds the fast path to the reference path on every registered flow
    flow = make_flow(name)
    # theta = 0.4 lies where phi'' < 0 (c = 4), outside the Newton flows' domain: 0.9 for them
    mid = 0.9 if is_newton(flow) else 0.4
    y0 = flow.initial_state(torch.tensor([[-1.5], [mid], [1.7]], dtype=F64))
    t_out = torch.linspace(0, 1.5, 31, dtype=F64)
    fast = solve_fast(flow, y0, t_out, rtol=1e-11, atol=1e-13)
    slow = solve(flow, y0, t_out, rtol=1e-11, atol=1e-13)
    assert (fast.status == Status.OK).all() and (slow.status == Status.OK).all()
    th_f, th_s = fast.ys[..., 0], slow.ys[..., 0]
    assert (th_f - th_s).abs().max() <= 5e-9
    assert torch.equal(fast.t_final, torch.full((3,), 1.5, dtype=F64))


def test_the_adam_family_is_compiled_and_the_rest_falls_back():
    assert {"adam-flow1", "adam-flow2", "rmsprop-flow", "adagrad-flow"} <= set(FLOWS)
    assert {"newton-flow", "diag-newton-flow"} <= set(FLOWS) and "jump-flow" not in FLOWS
    for name in sorted(set(ALL_FLOWS) - set(FLOWS)):
        flow = make_flow(name, land="quadratic(diag=[1.0])")
        assert "compiled" in (fast_support(flow) or "") or fast_support(flow)
        assert Numerics().choose_engine(flow)[0] == "torch"


@pytest.mark.parametrize("model", ["adam-flow1", "adam-flow2"])
def test_matches_lsoda(model):
    alpha, c, theta0 = 0.01, 1.5, -1.5
    flow = make_flow(model, land=f"rosenbrock1d(c={c})", alphas=(alpha,))
    y0 = flow.initial_state(torch.tensor([[theta0]], dtype=F64))
    te = np.linspace(0.0, 3.0, 301)                    # dense output at 301 times
    sol = solve_fast(flow, y0, torch.tensor(te, dtype=F64), rtol=1e-10, atol=1e-12)
    f = (ref.rhs_flow1 if model == "adam-flow1" else ref.rhs_flow2)(c, alpha, 0.9, 0.999, 1e-8)
    r = solve_ivp(f, (0.0, 3.0), y0[0, 0].numpy(), method="LSODA", rtol=1e-12, atol=1e-14,
                  t_eval=te)
    assert np.abs(sol.ys[0, :, 0, 0].numpy() - r.y[0]).max() <= 2e-9


def test_order_eight():
    # steps capped at h with tolerances that accept every step: global error ~ h^8 (measured slope
    # 7.0 over h = 0.2..0.05: the start-up ramp of the step size and the shortened last step shave
    # some off). RMSProp's flow starts with v > 0, so the solution is smooth at s = 0 (Adam's
    # v(0) = 0 gives sqrt(v) ~ sqrt(s), which caps any method's order near the start)
    flow = make_flow("rmsprop-flow", land="doublewell", alphas=(1.0,), beta=0.5)
    y0 = flow.initial_state(torch.tensor([[2.0]], dtype=F64))
    t = torch.tensor([0.0, 2.0], dtype=F64)
    exact = solve_fast(flow, y0, t, rtol=1e-15, atol=1e-16, stepper="dop853").ys[0, -1, 0, 0]
    hs = [0.2, 0.1, 0.05]
    errs = [abs(float(solve_fast(flow, y0, t, rtol=1e6, atol=1e6, max_step=h,
                                 stepper="dop853").ys[0, -1, 0, 0]
                      - exact)) for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert 6.5 < slope < 9.5, (errs, slope)


def test_dense_output_accuracy_inside_steps():
    flow = make_flow("adam-flow2", land="rosenbrock1d(c=1.5)", alphas=(0.05,))
    y0 = flow.initial_state(torch.tensor([[-1.5]], dtype=F64))
    coarse = solve_fast(flow, y0, torch.linspace(0, 2, 2001, dtype=F64), rtol=1e-10, atol=1e-12)
    assert int(coarse.stats["accepted"][0]) < 400          # far fewer steps than outputs
    fine = solve(flow, y0, torch.linspace(0, 2, 2001, dtype=F64), rtol=1e-12, atol=1e-14)
    assert (coarse.ys[0, :, 0, 0] - fine.ys[0, :, 0, 0]).abs().max() <= 5e-9


def test_statuses_and_lane_independence():
    flow = make_flow("adam-flow2", alphas=(0.05, 0.01))
    y0 = flow.initial_state(torch.tensor([[-1.5], [0.5]], dtype=F64))
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    both = solve_fast(flow, y0, t)
    capped = solve_fast(flow, y0, t, max_steps=3)
    assert (capped.status == Status.MAX_STEPS).all()
    assert (capped.stats["accepted"] + capped.stats["rejected"] == 3).all()
    assert torch.isnan(capped.ys[:, -1]).all()
    # a lane alone gives bit-identical results to the same lane in a batch
    one = solve_fast(flow.subset(torch.tensor([1])), y0[1:], t)
    assert torch.equal(one.ys[0], both.ys[1])


def test_per_lane_grids_and_nan_padding():
    flow = make_flow("adam-flow1")
    y0 = flow.initial_state(torch.tensor([[-1.5], [0.4], [1.7]], dtype=F64))
    t_out = torch.full((3, 5), math.nan, dtype=F64)
    n_out = torch.tensor([5, 2, 3])
    for b, e in enumerate([1.0, 0.3, 2.0]):
        t_out[b, :int(n_out[b])] = torch.linspace(0, e, int(n_out[b]), dtype=F64)
    sol = solve_fast(flow, y0, t_out, n_out)
    valid = torch.arange(5)[None, :] < n_out[:, None]
    assert torch.isfinite(sol.ys[valid]).all() and torch.isnan(sol.ys[~valid]).all()
    assert torch.allclose(sol.t_final, torch.tensor([1.0, 0.3, 2.0], dtype=F64))


def test_support_and_engine_choice():
    flow = make_flow("adam-flow2")
    assert fast_support(flow) is None
    assert "float64" in fast_support(flow, dtype=torch.float32)
    assert "CPU" in fast_support(flow, device="meta")
    quad = make_flow("adam-flow2", land="quadratic(diag=[1.0, 2.0])")
    assert "compiled gradient" in fast_support(quad)
    assert Numerics().choose_engine(flow) == ("compiled", "dop853+rodas5p")
    assert Numerics(integrator="dop853").choose_engine(flow) == ("compiled", "dop853")
    assert Numerics(engine="torch").choose_engine(flow) == ("torch", "exprb43")
    assert Numerics(integrator="etd4").choose_engine(flow) == ("torch", "etd4")
    assert Numerics().choose_engine(quad) == ("torch", "exprb43")
    with pytest.raises(ConfigError, match="compiled engine cannot run this"):
        Numerics(engine="compiled").choose_engine(quad)
    with pytest.raises(ConfigError, match="runs on the torch engine"):
        Numerics(engine="compiled", integrator="exprb43").validate()


@pytest.mark.parametrize("model", DISCRETE)
def test_discrete_compiled_is_bitwise_torch(model):
    lanes = [{"theta0": [x], "alpha": a} for x, a in [(-1.5, 0.01), (0.3, 0.05), (1.7, 0.002),
                                                      (-1.0, 2.0)]]
    Ks = [300, 120, 500, 200]                         # per-lane step counts; alpha 2 may diverge
    land = "rosenbrock1d(c=[1.5, 4.0, 0.5, 4.0])"
    fast = run_lanes(model, land, lanes, Ks, every=7, numerics=Numerics(engine="compiled"))
    slow = run_lanes(model, land, lanes, Ks, every=7, numerics=Numerics(engine="torch"))
    assert fast.meta["engine"] == "compiled" and slow.meta["engine"] == "torch"
    for a, b in [(fast.theta, slow.theta), (fast.f, slow.f), (fast.t, slow.t)]:
        assert torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b, nan=7.0))
    for k in fast.extras:
        assert torch.equal(torch.nan_to_num(fast.extras[k], nan=7.0),
                           torch.nan_to_num(slow.extras[k], nan=7.0))
    assert torch.equal(fast.status, slow.status) and torch.equal(fast.n_out, slow.n_out)
    assert torch.equal(torch.nan_to_num(fast.diverged_at), torch.nan_to_num(slow.diverged_at))
    for k in ("steps", "oracle_value", "oracle_grad", "oracle_hvp"):
        assert torch.equal(fast.stats[k], slow.stats[k]), k


def test_discrete_divergence_matches():
    lanes = [{"theta0": [x], "alpha": 5.0} for x in (-1.5, 1.0)]
    fast = run_lanes("gd", "rosenbrock1d(c=4)", lanes, [50, 50], numerics=Numerics(engine="compiled"))
    slow = run_lanes("gd", "rosenbrock1d(c=4)", lanes, [50, 50], numerics=Numerics(engine="torch"))
    assert int(fast.status[0]) == Status.DIVERGED
    assert torch.equal(fast.status, slow.status) and torch.equal(fast.n_out, slow.n_out)
    assert torch.equal(torch.nan_to_num(fast.diverged_at), torch.nan_to_num(slow.diverged_at))


@pytest.mark.parametrize("model", ["adam", "rmsprop", "adam-flow1", "adam-flow2", "rmsprop-flow"])
def test_zero_over_zero_marks_the_lane_as_the_torch_engine_does(model):
    """eps = 0 at a stationary point (theta0 = 1: g = 0, so m = v = 0 and the direction is 0/0):
    the compiled kernels divide as IEEE does (a NaN the lane loop marks DIVERGED) instead of
    raising ZeroDivisionError inside the prange, which ended the whole run with a SystemError; the
    other lane goes on as on the torch engine."""
    lanes = [{"theta0": [1.0], "alpha": 1e-2, "eps": 0.0}, {"theta0": [0.5], "alpha": 1e-2, "eps": 0.0}]
    fast = run_lanes(model, "rosenbrock1d(c=4)", lanes, [50, 50], numerics=Numerics(engine="compiled"))
    slow = run_lanes(model, "rosenbrock1d(c=4)", lanes, [50, 50], numerics=Numerics(engine="torch"))
    assert int(fast.status[0]) == Status.DIVERGED
    assert torch.equal(fast.status, slow.status)
    assert torch.equal(torch.nan_to_num(fast.diverged_at), torch.nan_to_num(slow.diverged_at))
    ok = fast.status == Status.OK
    # flows: tolerance-level agreement (different steppers); discrete: the same arithmetic
    assert torch.allclose(fast.theta[ok, -1], slow.theta[ok, -1], rtol=0, atol=1e-8)


def _python_adam(land, theta0, alpha, beta1, K, beta2=0.999, eps=1e-8):
    """SPEC §2 Adam in Python floats (libm sqrt and pow): theta_K per coordinate."""
    out = []
    for th in theta0:
        m = v = 0.0
        for k in range(1, K + 1):
            g = land.dphi_point(th, ())
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * (g * g)
            th = th - alpha * (m / (1 - beta1 ** k)) / (math.sqrt(v / (1 - beta2 ** k)) + eps)
        out.append(th)
    return out


@pytest.mark.parametrize("model", ["adam", "heavyball"])
def test_discrete_compiled_blocks_match_torch(model):
    """Over several 64-lane blocks: a shared landscape row (the block gradient over all of a
    block's elements), 3-D theta, mixed step counts and betas, lanes diverging mid-block.

    Bit for bit against the SPEC formula in Python floats; against the torch engine to a few
    ulps: torch's CPU sqrt (SLEEF, AVX512) is not correctly rounded in about 1.4% of arguments
    (measured on 1e6 uniform values with torch 2.13), the compiled engine's is."""
    gen = torch.Generator().manual_seed(3)
    B = 150
    theta0 = (torch.rand(B, 3, generator=gen, dtype=torch.float64) * 3.6 - 1.8).tolist()
    alpha = [0.01 if b % 9 else 1e13 for b in range(B)]      # every 9th lane diverges
    extra = ({"beta1": [0.9 if b % 2 else 0.8 for b in range(B)]} if model == "adam"
             else {"momentum": [0.5] * B})
    lanes = [{"theta0": theta0[b], "alpha": alpha[b], **{k: v[b] for k, v in extra.items()}}
             for b in range(B)]
    Ks = [40 + (b * 7) % 90 for b in range(B)]
    land = landscapes.parse("doublewell")
    fast, slow = (run_lanes(model, land, lanes, Ks, every=5, numerics=Numerics(engine=e))
                  for e in ("compiled", "torch"))
    assert fast.meta["engine"] == "compiled"
    assert int((fast.status == Status.DIVERGED).sum()) == len(range(0, B, 9))
    assert torch.equal(fast.status, slow.status) and torch.equal(fast.n_out, slow.n_out)
    assert torch.equal(torch.nan_to_num(fast.t, nan=7.0), torch.nan_to_num(slow.t, nan=7.0))
    for a, b in [(fast.theta, slow.theta), *[(fast.extras[k], slow.extras[k]) for k in fast.extras]]:
        assert torch.allclose(a, b, rtol=1e-13, atol=1e-15, equal_nan=True)
    if model == "adam":
        for b in (1, 70, 149):                              # lanes of three blocks
            last = fast.theta[b, int(fast.n_out[b]) - 1].tolist()
            assert last == _python_adam(land, theta0[b], alpha[b], lanes[b]["beta1"], Ks[b])


def test_block_gradient_is_the_point_gradient():
    from numba import njit

    from landscapes.compiled import compiled_block_gradient

    land = landscapes.parse("rosenbrock1d(c=4)")
    grad, LP = compiled_block_gradient(land, 1)

    @njit
    def call(g, x, p):
        out = np.empty_like(x)
        g(x.ctypes, p.ctypes, out.ctypes, x.shape[0])
        return out

    x = np.linspace(-2.0, 2.0, 101)
    expect = land.grad(torch.from_numpy(x)[:, None])[:, 0].numpy()
    assert np.array_equal(call(grad, x, LP[0]), expect)
