"""The published Gauss-Legendre history quadrature of the paper scheme (``--quadrature glN``,
:mod:`flows.paper_quadrature`): the sums against an independent evaluation (scipy's spline object,
the kernels by matrix exponential of their realisations, plain loops), against adaptive quadrature
of the same integrals, the two engines against each other in every kernel regime, and the paper
scheme's fixed point with it."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.interpolate import CubicSpline

import landscapes
import landscapes as L
from adamflow.cli import main
from core.errors import ConfigError
from flows.adam import AdamFlow1, AdamFlow2, one_minus_pow
from flows.paper_quadrature import (
    gauss_legendre_unit,
    gl_memories,
    parse_quadrature,
    spline_coefficients,
)
from flows.paper_scheme import paper_solve, run_paper_scheme
from runner import presets

F64 = torch.float64


def _trajectory(B, N, n=1, seed=0):
    """A smooth trajectory-like (B, N, n) signal: decaying oscillation from -1.5."""
    g = torch.Generator().manual_seed(seed)
    s = torch.linspace(0.0, 1.0, N, dtype=F64)[None, :, None]
    a = 0.5 + torch.rand(B, 1, n, generator=g, dtype=F64)
    w = 2.0 + 4.0 * torch.rand(B, 1, n, generator=g, dtype=F64)
    return -1.5 + 2.3 * (1 - torch.exp(-3 * s)) + 0.2 * a * torch.sin(w * s)


def _flow(cls, B, alpha, beta1, beta2, land=None):
    land = land or landscapes.parse("rosenbrock1d(c=1.5)")
    lt = lambda v: torch.as_tensor(v, dtype=F64).expand(B).clone()  # noqa: E731
    return cls(land, alpha=lt(alpha), beta1=lt(beta1), beta2=lt(beta2), n_lanes=B)


def test_parse_quadrature():
    assert parse_quadrature("exact") is None and parse_quadrature(None) is None
    assert parse_quadrature("gl1000") == 1000 and parse_quadrature("gl2") == 2
    for bad in ("gl1", "gl", "gauss", "gl-5", "GL10", "gl10.5", "x" * 1000):
        with pytest.raises(ConfigError) as e:
            parse_quadrature(bad)
        assert "\n" not in str(e.value) and len(str(e.value)) < 200


def test_gauss_legendre_unit_rule_exact_for_polynomials():
    x, w = gauss_legendre_unit(7)
    for p in range(14):
        assert abs(np.sum(w * x ** p) - 1.0 / (p + 1)) < 1e-15


def test_spline_in_the_index_coordinate_is_scipy_spline_in_time():
    th = _trajectory(2, 40, n=2)
    h = 0.013
    C = spline_coefficients(th)                                     # (B, n, 4, N-1)
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 39, 50)
    for b in range(2):
        for k in range(2):
            ref = CubicSpline(h * np.arange(40), th[b, :, k].numpy(), bc_type="not-a-knot")(h * X)
            j = np.minimum(np.floor(X).astype(int), 38)
            d = X - j
            c = C[b, k]
            ours = ((c[0, j] * d + c[1, j]) * d + c[2, j]) * d + c[3, j]
            assert np.max(np.abs(ours - ref)) < 1e-13


def _independent_sums(flow, theta, h, nodes, rows):
    """The GL sums for rows i, by scipy's spline object on the time grid and the kernels from
    their realisations (matrix exponential), in plain loops."""
    B, N, n = theta.shape
    x, w = np.polynomial.legendre.leggauss(nodes)
    m = np.zeros((B, len(rows), n))
    v = np.zeros((B, len(rows), n))
    for b in range(B):
        hb = float(h[b])
        for k in range(n):
            sp = CubicSpline(hb * np.arange(N), theta[b, :, k].numpy(), bc_type="not-a-knot")
            for r, i in enumerate(rows):
                si = hb * i
                nodes_r = si * (x + 1) / 2
                land = flow.landscape
                if land.n_lanes() is not None:
                    land = land.subset(torch.full((nodes,), b, dtype=torch.long))
                g = land.grad(torch.as_tensor(sp(nodes_r), dtype=F64)[:, None])[:, 0].numpy()
                tau = torch.as_tensor(si - nodes_r, dtype=F64)
                km = flow.kernel_m.kernel(tau)[b].numpy()
                kv = flow.kernel_v.kernel(tau)[b].numpy()
                m[b, r, k] = np.sum(si / 2 * w * km * g)
                v[b, r, k] = np.sum(si / 2 * w * kv * g * g)
    return m, v


# kernel regimes: K1 (flow1); lam K2 over-damped (b > 1/2), critical (b = 1/2), under-damped
CASES = [(AdamFlow1, 0.9, 0.999), (AdamFlow2, 0.9, 0.999), (AdamFlow2, 0.5, 0.5),
         (AdamFlow2, 0.3, 0.2)]


@pytest.mark.parametrize("cls,b1,b2", CASES, ids=["K1", "K2-over", "K2-crit", "K2-under"])
@pytest.mark.parametrize("engine", ["compiled", "torch"])
def test_gl_sums_match_independent_evaluation(cls, b1, b2, engine):
    B, N, Q = 2, 120, 48
    flow = _flow(cls, B, [0.05, 0.02], b1, b2)
    theta = _trajectory(B, N)
    h = flow.hp.alpha / 5
    m, v = gl_memories(flow, theta, h, Q, engine=engine)
    assert torch.all(m[:, 0] == 0) and torch.all(v[:, 0] == 0)
    rows = [1, 2, 7, 60, N - 1]
    mi, vi = _independent_sums(flow, theta, h, Q, rows)
    scale_m = np.abs(mi).max()
    scale_v = np.abs(vi).max()
    assert np.abs(m[:, rows].numpy() - mi).max() < 1e-12 * scale_m
    assert np.abs(v[:, rows].numpy() - vi).max() < 1e-12 * scale_v


@pytest.mark.parametrize("cls,b1,b2", CASES, ids=["K1", "K2-over", "K2-crit", "K2-under"])
def test_compiled_and_torch_engines_agree(cls, b1, b2):
    B, N = 3, 300
    flow = _flow(cls, B, [0.05, 0.01, 5e-3], b1, b2)
    theta = _trajectory(B, N, seed=3)
    h = flow.hp.alpha / 5
    mc, vc = gl_memories(flow, theta, h, 200, engine="compiled")
    mt, vt = gl_memories(flow, theta, h, 200, engine="torch")
    assert (mc - mt).abs().max() <= 1e-13 * mt.abs().max()
    assert (vc - vt).abs().max() <= 1e-13 * vt.abs().max()


def test_per_lane_landscape_and_lane_subset():
    land = L.Rosenbrock1D(c=torch.tensor([0.0, 1.5, 4.0]))
    flow = _flow(AdamFlow2, 3, [0.05, 0.02, 0.01], 0.9, 0.999, land=land)
    theta = _trajectory(3, 80, seed=5)
    h = flow.hp.alpha / 5
    full_c = gl_memories(flow, theta, h, 40, engine="compiled")
    full_t = gl_memories(flow, theta, h, 40, engine="torch")
    assert (full_c[0] - full_t[0]).abs().max() < 1e-13 * full_t[0].abs().max()
    mi, vi = _independent_sums(flow, theta, h, 40, [79])
    assert np.abs(full_c[0][:, [79]].numpy() - mi).max() < 1e-12 * np.abs(mi).max()
    # lanes 2 and 0 alone: the same rows as in the full batch, bit for bit
    sel = torch.tensor([2, 0])
    for engine in ("compiled", "torch"):
        m, v = gl_memories(flow, theta[sel], h, 40, lanes=sel, engine=engine)
        ref = full_c if engine == "compiled" else full_t
        assert torch.equal(m, ref[0][sel]) and torch.equal(v, ref[1][sel])


def test_unsupported_landscape_falls_back_to_torch_and_compiled_refuses():
    land = landscapes.parse("rosenbrock(n=2)")
    flow = _flow(AdamFlow1, 1, 0.05, 0.9, 0.999, land=land)
    theta = _trajectory(1, 30, n=2)
    h = flow.hp.alpha / 5
    m, v = gl_memories(flow, theta, h, 16)                            # auto: torch
    assert torch.isfinite(m).all() and torch.isfinite(v).all() and v[0, 1:].min() > 0
    with pytest.raises(ConfigError, match="compiled quadrature unavailable"):
        gl_memories(flow, theta, h, 16, engine="compiled")


@pytest.mark.parametrize("cls,b1,b2", CASES[:2], ids=["K1", "K2-over"])
def test_gl1000_converges_to_the_integral_of_the_spline(cls, b1, b2):
    """With 1000 nodes the rule is the convolution integral of the spline to ~1e-9 relative
    (scipy.integrate.quad, adaptive, split at the knots), and it converges with nodes."""
    N = 40
    flow = _flow(cls, 1, 0.05, b1, b2)
    theta = _trajectory(1, N, seed=7)
    h = flow.hp.alpha / 5
    hb = float(h[0])
    sp = CubicSpline(hb * np.arange(N), theta[0, :, 0].numpy(), bc_type="not-a-knot")
    i = N - 1
    si = hb * i
    land = flow.landscape

    def integrand(r, which):
        g = float(land.grad(torch.tensor([[float(sp(r))]], dtype=F64))[0, 0])
        k = (flow.kernel_m if which == 0 else flow.kernel_v).kernel(
            torch.tensor([si - r], dtype=F64))[0, 0].item()
        return k * (g if which == 0 else g * g)

    ref = [quad(integrand, 0.0, si, args=(c,), points=list(hb * np.arange(1, N - 1)),
                epsabs=0.0, epsrel=1e-13, limit=500)[0] for c in (0, 1)]
    errs = []
    for Q in (10, 40, 1000):
        m, v = gl_memories(flow, theta, h, Q)
        errs.append(max(abs(m[0, i, 0].item() - ref[0]) / abs(ref[0]),
                        abs(v[0, i, 0].item() - ref[1]) / abs(ref[1])))
    assert errs[2] < 1e-9
    assert errs[0] > errs[2]


def test_paper_solve_with_quadrature_is_the_published_fixed_point():
    """First order: the result theta satisfies theta = G_Q(theta) (the published sweep written out
    here: memories by the rule, Euler with h) to the reported residual; it differs from the
    exact-convolution fixed point by the small quadrature effect."""
    B, N, Q = 2, 400, 200
    flow = _flow(AdamFlow1, B, [0.02, 0.01], 0.9, 0.999)
    th0 = torch.full((B, 1), -1.5, dtype=F64)
    sol = paper_solve(flow, th0, N, quadrature=Q)
    lin = paper_solve(flow, th0, N)
    assert sol.corrections >= 1 and bool(sol.converged.all())
    h = flow.hp.alpha / 5
    m, v = gl_memories(flow, sol.theta, h, Q)
    q = 1.0 + torch.arange(N, dtype=F64)[None] / 5
    c1 = one_minus_pow(flow.hp.beta1[:, None], q)
    c2 = one_minus_pow(flow.hp.beta2[:, None], q)
    A = (torch.sqrt(c2) / c1)[..., None] * m / (torch.sqrt(v) + (1e-8 * torch.sqrt(c2))[..., None])
    G = torch.cat([th0[:, None], th0[:, None] - torch.cumsum(h[:, None, None] * A[:, :-1], 1)], 1)
    res = (G - sol.theta).abs().amax(dim=(1, 2))
    assert torch.allclose(res, sol.residual, rtol=1e-6, atol=1e-15)
    assert res.max() < 1e-11
    d = (sol.theta - lin.theta).abs().max()
    assert 0 < d < 1e-4
    assert torch.equal(sol.m, m) and torch.equal(sol.v, v)


def test_second_order_result_satisfies_the_published_equations():
    """Second order with look-ahead: theta = G_Q(theta) where G_Q is the published sweep written out
    here in plain loops (u_{i+1} = u_i - h (2/alpha)(u_i + A_j), j = min(i + 5, N - 1), theta_{i+1}
    = theta_i + h u_i, memories by the rule), to the reported residual."""
    B, N, Q = 2, 301, 64
    alpha = 0.02
    flow = AdamFlow2(landscapes.parse("rosenbrock1d(c=1.5)"),
                     alpha=torch.tensor([alpha, alpha], dtype=F64), beta1=0.99, beta2=0.999,
                     n_lanes=B, u0=torch.tensor([0.0, 1.0], dtype=F64))
    th0 = torch.full((B, 1), -1.5, dtype=F64)
    sol = paper_solve(flow, th0, N, quadrature=Q)
    h = alpha / 5
    m, v = gl_memories(flow, sol.theta, flow.hp.alpha / 5, Q)
    q = 1.0 + np.arange(N) / 5
    c1, c2 = 1 - 0.99 ** q, 1 - 0.999 ** q
    A = (np.sqrt(c2) / c1) * m[..., 0].numpy() / (np.sqrt(v[..., 0].numpy()) + 1e-8 * np.sqrt(c2))
    for b, u0 in enumerate((0.0, 1.0)):
        th, u = [-1.5], u0
        for i in range(N - 1):
            th.append(th[-1] + h * u)
            u = u - h * (2 / alpha) * (u + A[b, min(i + 5, N - 1)])
        res = np.abs(np.array(th) - sol.theta[b, :, 0].numpy()).max()
        assert res < 1e-10
        assert math.isclose(res, float(sol.residual[b]), rel_tol=1e-3, abs_tol=1e-13)
    lin = paper_solve(flow, th0, N)
    assert 0 < (sol.theta - lin.theta).abs().max() < 1e-4
    tr = run_paper_scheme(flow, th0, steps=(N - 1) // 5, quadrature=Q)      # the same grid
    assert tr.meta["quadrature"] == f"gl{Q}"
    assert torch.equal(tr.theta[:, -1], sol.theta[:, -1])
    assert int(tr.stats["corrections"][0]) == sol.corrections


def _cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_refine_quadrature_option(capsys):
    base = ["refine", "--landscape", "rosenbrock1d(c=1.5)", "--theta0", "-1.5", "--alpha", "0.05",
            "0.02", "--epochs", "41", "61", "--models", "adam-flow1", "--beta1", "0.9",
            "--beta2", "0.999", "--scheme", "paper", "--protocol", "paper", "--json", "-"]
    code, out, err = _cli(capsys, *base, "--quadrature", "gl64")
    assert code == 0, err
    gl = json.loads(out)
    assert gl["quadrature"] == "gl64"
    code, out, err = _cli(capsys, *base)
    assert code == 0, err
    ex = json.loads(out)
    assert ex["quadrature"] == "exact"
    for a, b in zip(gl["rows"], ex["rows"]):
        assert a["E_T"] != b["E_T"] and math.isclose(a["E_T"], b["E_T"], rel_tol=1e-2)
    code, out, err = _cli(capsys, *base[:-2], "--quadrature", "simpson")
    assert code == 2 and err.count("\n") == 1 and "quadrature" in err


def test_refine_preset_defaults_to_the_published_quadrature():
    assert presets.command_defaults("heredia2026-refine", "refine")["quadrature"] == "gl1000"


def test_cli_run_quadrature(capsys):
    base = ["run", "--landscape", "rosenbrock1d", "--model", "adam-flow1", "--theta0", "-1.5",
            "--alpha", "0.05", "--steps", "40", "--scheme", "paper", "--json", "-"]
    code, out, err = _cli(capsys, *base, "--quadrature", "gl100")
    assert code == 0, err
    (gl,) = json.loads(out)["lanes"]
    code, out, err = _cli(capsys, *base)
    assert code == 0, err
    (ex,) = json.loads(out)["lanes"]
    assert gl["stats"]["corrections"] >= 1 and ex["stats"]["corrections"] == 0
    assert gl["stats"]["converged"] == 1
    d = abs(gl["final_theta"][0] - ex["final_theta"][0])
    assert 0 < d < 1e-3
