"""The modified-equation flows (flows/modified.py) on the compiled engine: the velocity family
(flows.compiled_form.ModifiedForm) against each flow's own forward, agreement with the torch engine,
the principal flow's domain lane by lane, the engine choice (phi''' only where gd-flow3 needs it)
and the refinement slopes 1, 2, 3 of the GD family on the compiled engine."""
import math

import pytest
import torch
from scipy.integrate import quad

import landscapes
from analysis.cli_options import Problem
from analysis.refine import refine
from core.errors import ConfigError
from core.trajectory import Status
from flows.fast.solve import compiled_rhs, fast_support, solve_fast
from flows.solve import solve
from landscapes.base import Separable
from landscapes.compiled import Unsupported, compiled_third
from runner.experiment import Numerics, run_lanes
from runner.registry import registry

F64 = torch.float64
MODIFIED = ("gd-flow", "gd-flow2", "gd-flow3", "gd-principal-flow", "heavyball-flow",
            "heavyball-reduced-flow", "adam-sign-flow", "adam-modified-flow")
LANDS = ("rosenbrock1d(c=1.5)", "sextic", "doublewell", "shifted")


def make_flow(name, land, alphas, **hyper):
    """``name`` over len(alphas) lanes, with per-lane momentum, betas and eps where it reads
    them."""
    info = registry()[name]
    B = len(alphas)
    lane = lambda *v: torch.tensor(v[:B], dtype=F64)                      # noqa: E731
    per_lane = {"momentum": lane(0.9, 0.5, 0.0, 0.7), "beta1": lane(0.9, 0.5, 0.0, 0.8),
                "beta2": lane(0.999, 0.9, 0.5, 0.99), "eps": lane(1e-8, 1e-3, 0.0, 0.1)}
    names = {p.name for p in info.hyper}
    hyper = {**{k: v for k, v in per_lane.items() if k in names}, **hyper}
    land = landscapes.parse(land) if isinstance(land, str) else land
    return info.cls(land, alpha=torch.tensor(alphas, dtype=F64), n_lanes=B, dtype=F64, **hyper)


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("land", LANDS)
def test_compiled_rhs_is_the_flows_forward(land, n):
    # per lane: equal to rounding where the torch velocity is finite; where it is not (the principal
    # flow at alpha phi'' >= 1: lane 3) the whole compiled lane is NaN
    gen = torch.Generator().manual_seed(1)
    theta0 = 2.4 * torch.rand(4, n, generator=gen, dtype=F64) - 1.2
    theta0[3] = 1.1                           # alpha phi''(1.1) >= 1 on every landscape here
    alphas = (1e-3, 2e-3, 5e-3, 0.6)
    t = torch.tensor([0.0, 0.3, 1.0, 2.5], dtype=F64)
    for name in MODIFIED:
        flow = make_flow(name, land, alphas)
        y = flow.initial_state(theta0)
        want = flow(t, y)
        got = compiled_rhs(flow, t, y)
        fin = torch.isfinite(want).flatten(1).all(dim=1)
        assert fin[:3].all(), name
        scale = float(want[fin].abs().max())
        assert torch.allclose(got[fin], want[fin], rtol=1e-14, atol=1e-14 * scale), (name, land)
        assert torch.isnan(got[~fin]).all(), (name, land)
        if name == "gd-principal-flow":
            assert not fin[3]


def test_a_zero_denominator_is_a_nan_lane_not_an_exception():
    # the sign and Adam flows at g = 0 with eps = 0 (0/0: NaN on torch; numba would raise on the
    # division): the compiled lane is NaN, the eps > 0 lane next to it is finite
    for name in ("adam-sign-flow", "adam-modified-flow"):
        flow = make_flow(name, "shifted(center=4)", (0.01, 0.01), eps=torch.tensor([0.0, 1e-8]))
        y = flow.initial_state(torch.full((2, 1), 4.0, dtype=F64))
        want, got = flow(torch.zeros(2), y), compiled_rhs(flow, torch.zeros(2), y)
        assert torch.isnan(want[0]).all() and torch.isnan(got[0]).all(), name
        assert torch.equal(got[1], want[1]) and torch.isfinite(got[1]).all(), name


@pytest.mark.parametrize("name", MODIFIED)
def test_compiled_engine_matches_torch_engine(name):
    # three lanes on rosenbrock1d(c=1.5) (either side of its barrier) with their own alphas; heavy
    # ball at momenta 0.5, 0.5, 0 (the default 0.9 shifts the reduced flow's start by 90 alpha g).
    # Tolerances where the torch engine takes ~1 s per flow; both are within ~1e-9 of the solution
    theta0 = torch.tensor([[-1.5], [0.8], [2.0]], dtype=F64)
    hyper = {"momentum": torch.tensor([0.5, 0.5, 0.0], dtype=F64)} if "heavyball" in name else {}
    flow = make_flow(name, "rosenbrock1d(c=1.5)", (2e-3, 5e-3, 1e-2), **hyper)
    y0 = flow.initial_state(theta0)
    t_out = torch.linspace(0, 0.3, 11, dtype=F64)
    fast = solve_fast(flow, y0, t_out, rtol=1e-9, atol=1e-11)
    slow = solve(flow, y0, t_out, rtol=1e-9, atol=1e-11)
    assert (fast.status == Status.OK).all() and (slow.status == Status.OK).all()
    assert (fast.ys[..., 0] - slow.ys[..., 0]).abs().max() <= 1e-8
    assert torch.equal(fast.t_final, torch.full((3,), 0.3, dtype=F64))


def test_principal_flow_outside_its_domain_ends_the_lane_only():
    # rosenbrock1d(c=1.5) at theta0 = -1.5: phi'' = 36.5, so alpha = 0.05 has alpha phi'' >= 1 (no
    # real logarithm of the GD map): that lane ends DIVERGED at t = 0 on both engines, its
    # neighbours (alpha phi'' = 0.37, 0.73) run on, bit for bit as without it on the compiled engine
    lanes = [{"theta0": [-1.5], "alpha": a} for a in (0.01, 0.05, 0.02)]
    Ks = [100, 20, 50]
    fast = run_lanes("gd-principal-flow", "rosenbrock1d(c=1.5)", lanes, Ks, numerics=Numerics())
    slow = run_lanes("gd-principal-flow", "rosenbrock1d(c=1.5)", lanes, Ks,
                     numerics=Numerics(engine="torch"))
    assert fast.meta["engine"] == "compiled" and slow.meta["engine"] == "torch"
    assert fast.status.tolist() == slow.status.tolist() == [Status.OK, Status.DIVERGED, Status.OK]
    assert float(fast.diverged_at[1]) == float(slow.diverged_at[1]) == 0.0
    assert torch.equal(fast.n_out, slow.n_out) and int(fast.n_out[1]) == 1
    assert torch.allclose(fast.theta, slow.theta, rtol=0, atol=1e-8, equal_nan=True)
    alone = run_lanes("gd-principal-flow", "rosenbrock1d(c=1.5)", [lanes[0], lanes[2]],
                      [Ks[0], Ks[2]], numerics=Numerics())
    assert torch.equal(alone.theta.nan_to_num(), fast.theta[[0, 2]].nan_to_num())


def test_principal_flow_that_reaches_the_domain_boundary_ends_there():
    # from theta0 = 0.2 the flow climbs to x = 1 (phi'' = 14): at alpha = 0.08 it reaches
    # alpha phi'' = 1 at x_b = 0.9574 at the time t_b = int_0.2^x_b dx / v(x) (the speed
    # v = -phi(z) g grows like -log(1 - z), integrably), where both engines end the lane as
    # DIVERGED; at alpha = 0.01 it runs on to x = 1
    c, a = 1.5, 0.08
    g = lambda x: -2 * (1 - x) + 4 * c * x * (x * x - 1)                # noqa: E731
    z = lambda x: a * (2 + 4 * c * (3 * x * x - 1))                     # noqa: E731
    x_b = math.sqrt((1 / a - 2) / (12 * c) + 1 / 3)
    t_b = quad(lambda x: z(x) / (math.log1p(-z(x)) * g(x)), 0.2, x_b, epsabs=1e-14,
               epsrel=1e-13)[0]
    lanes = [{"theta0": [0.2], "alpha": al} for al in (a, 0.01)]
    for engine in ("compiled", "torch"):
        tr = run_lanes("gd-principal-flow", "rosenbrock1d(c=1.5)", lanes, [50, 400],
                       numerics=Numerics(engine=engine))
        assert tr.meta["engine"] == engine
        assert tr.status.tolist() == [Status.DIVERGED, Status.OK], engine
        assert abs(float(tr.diverged_at[0]) - t_b) < 1e-9, (engine, float(tr.diverged_at[0]), t_b)
        assert int(tr.n_out[0]) == math.floor(t_b / a) + 1
        assert abs(float(tr.theta[1, -1, 0]) - 1.0) < 1e-10


class NoThird(Separable):
    """phi = x^4/4 + x^2/2 with compiled phi', phi'' but no phi''' (d3phi by autograd, torch)."""
    name = "nothird"

    def phi(self, x):
        return x ** 4 / 4 + x * x / 2

    @staticmethod
    def dphi_point(x, p):
        return x * x * x + x

    @staticmethod
    def d2phi_point(x, p):
        return 3 * x * x + 1


class GradOnly(NoThird):
    """The same phi with a compiled phi' only (phi'' for the torch engine)."""
    name = "gradonly"
    d2phi_point = None

    def d2phi(self, x):
        return 3 * x * x + 1


def test_engine_choice():
    # compiled for every modified flow on the separable landscapes, torch on a non-separable one
    for name in MODIFIED:
        for land in LANDS:
            flow = make_flow(name, land, (0.01,))
            # heavyball-flow's mass ODE is an Adam-family form: auto may run it on either stepper
            want = "dop853+rodas5p" if name == "heavyball-flow" else "dop853"
            assert Numerics().choose_engine(flow) == ("compiled", want), name
        quad = make_flow(name, "quadratic(diag=[1, 2])", (0.01,))
        assert "no compiled gradient" in fast_support(quad)
        assert Numerics().choose_engine(quad) == ("torch", "exprb43")
    # phi''' only where gd-flow3 reads it, phi'' only where the velocity reads it
    with pytest.raises(Unsupported, match="no compiled third derivative"):
        compiled_third(NoThird(), 1)
    needs = {"gd-flow": 1, "adam-sign-flow": 1, "heavyball-flow": 1, "gd-flow3": 3}
    for name in MODIFIED:
        for land, level in ((NoThird(), 2), (GradOnly(), 1)):
            flow = make_flow(name, land, (0.01,))
            if needs.get(name, 2) <= level:
                assert Numerics().choose_engine(flow)[0] == "compiled", (name, land.name)
                continue
            why = fast_support(flow)
            assert why and "\n" not in why and ("third" in why or "curvature" in why), why
            assert Numerics().choose_engine(flow) == ("torch", "exprb43")
            with pytest.raises(ConfigError, match="compiled engine cannot run this"):
                Numerics(engine="compiled").choose_engine(flow)
    tr = run_lanes("gd-flow3", NoThird(), [{"theta0": [1.0], "alpha": 0.01}], [50])
    assert tr.meta["engine"] == "torch" and int(tr.status[0]) == Status.OK


def test_gd_family_shows_slopes_one_two_three_on_the_compiled_engine():
    # the acceptance run of tests/test_modified.py (torch engine: 1.045, 2.041, 3.047)
    problem = Problem(landscape="rosenbrock1d(c=1.5)", theta0=[[-1.5]],
                      alpha=[1e-3, 2e-3, 4e-3, 8e-3], models=["gd-flow", "gd-flow2", "gd-flow3"],
                      beta1=0.9, beta2=0.999, eps=1e-8, u0=[0.0], engine="compiled")
    res = refine(problem, protocol="clean", horizon=1.0, reference="gd")
    s = {r["model"]: r for r in res["slopes"]}
    for model, p in (("gd-flow", 1), ("gd-flow2", 2), ("gd-flow3", 3)):
        assert abs(s[model]["p_sup"] - p) < 0.15, (model, s[model])
        assert s[model]["ci_sup"][0] < s[model]["p_sup"] < s[model]["ci_sup"][1]
    assert all(r["status"] == "ok" for r in res["rows"]), res["rows"]
