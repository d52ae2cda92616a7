"""Landscapes: exact gradients, HVPs, closed-form facts (SPEC §1, §8.1), spec language, errors."""
import math

import pytest
import torch

import landscapes as L
from core.errors import ConfigError

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _sym(B, n, seed):
    M = torch.randn(B, n, n, generator=_gen(seed), dtype=F64)
    return M + M.transpose(-1, -2)


# (id, factory, n, B): per-lane parameters where the landscape has them
CASES = [
    ("rosenbrock1d-lanes", lambda: L.Rosenbrock1D(c=torch.tensor([0.0, 1.5, 4.0, -0.5])), 1, 4),
    ("rosenbrock1d", lambda: L.Rosenbrock1D(c=4), 1, 3),
    ("rosenbrock-lanes", lambda: L.Rosenbrock(a=torch.tensor([1.0, 0.5, -1.0]), b=[100.0, 3.0, 10.0], n=4), 4, 3),
    ("rosenbrock", lambda: L.Rosenbrock(), 2, 2),
    ("quadratic-diag", lambda: L.Quadratic(diag=[1, 100], center=[1, 2]), 2, 3),
    ("quadratic-lanes", lambda: L.Quadratic(diag=torch.rand(3, 2, generator=_gen(1), dtype=F64) + 0.1,
                                            center=torch.randn(3, 2, generator=_gen(2), dtype=F64)), 2, 3),
    ("quadratic-A", lambda: L.Quadratic(A=[[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 3.0]],
                                        center=[1, -1, 0.5]), 3, 2),
    ("quadratic-A-lanes", lambda: L.Quadratic(A=_sym(2, 3, 3)), 3, 2),
    ("quadratic-default", lambda: L.Quadratic(), 3, 2),
    ("shifted-lanes", lambda: L.Shifted(center=torch.tensor([4.0, -1.0])), 3, 2),
    ("doublewell", lambda: L.DoubleWell(), 3, 2),
    ("sextic", lambda: L.Sextic(), 2, 3),
    ("linreg", lambda: L.LinReg(), 2, 3),
    ("mlp", lambda: L.TinyMLP(width=3, n_points=16), 10, 3),
]
IDS = [c[0] for c in CASES]


def _theta(n, B, dtype=F64, device="cpu", seed=0):
    return torch.randn(B, n, generator=_gen(seed), dtype=F64).to(dtype=dtype, device=device)


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    _, make, n, B = request.param
    return make(), n, B


def test_shapes_and_autograd_gradient(case):
    land, n, B = case
    theta = _theta(n, B)
    f, g = land.value(theta), land.grad(theta)
    assert f.shape == (B,) and g.shape == (B, n) and f.dtype == F64
    x = theta.clone().requires_grad_(True)
    (g_ad,) = torch.autograd.grad(land.value(x).sum(), x)
    torch.testing.assert_close(g, g_ad, rtol=1e-12, atol=1e-12)
    f2, g2 = land.value_and_grad(theta)
    torch.testing.assert_close(f2, f, rtol=1e-14, atol=0)
    torch.testing.assert_close(g2, g, rtol=1e-14, atol=0)


def test_gradient_vs_central_differences(case):
    land, n, B = case
    theta, h = _theta(n, B, seed=1), 1e-6
    g = land.grad(theta)
    fd = torch.empty_like(theta)
    for i in range(n):
        e = torch.zeros_like(theta)
        e[:, i] = h
        fd[:, i] = (land.value(theta + e) - land.value(theta - e)) / (2 * h)
    torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-6 * (1 + g.abs().max().item()))


def test_hvp_hessian_vs_differences_of_grad(case):
    land, n, B = case
    theta, h = _theta(n, B, seed=2), 1e-6
    vec = torch.randn(B, n, generator=_gen(3), dtype=F64)
    hv = land.hvp(theta, vec)
    fd = (land.grad(theta + h * vec) - land.grad(theta - h * vec)) / (2 * h)
    torch.testing.assert_close(hv, fd, rtol=1e-6, atol=1e-6 * (1 + hv.abs().max().item()))
    H = land.hessian(theta)
    assert H.shape == (B, n, n)
    torch.testing.assert_close(H, H.transpose(-1, -2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.einsum("bij,bj->bi", H, vec), hv, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(land.hessian_diag(theta), torch.diagonal(H, dim1=-2, dim2=-1),
                               rtol=1e-12, atol=1e-12)
    # analytic HVP overrides agree with the autograd default of the base class
    torch.testing.assert_close(hv, L.Landscape.hvp(land, theta, vec), rtol=1e-10, atol=1e-10)


def test_float32(case):
    land, n, B = case
    theta64 = _theta(n, B, seed=4)
    theta32 = theta64.float()
    f32, g32 = land.value(theta32), land.grad(theta32)
    assert f32.dtype == torch.float32 and g32.dtype == torch.float32
    f64, g64 = land.value(theta64), land.grad(theta64)
    torch.testing.assert_close(f32.double(), f64, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-4 * (1 + g64.abs().max().item()))
    assert land.hvp(theta32, torch.ones_like(theta32)).dtype == torch.float32


def test_spec_round_trip(case):
    land, n, B = case
    again = L.parse(land.spec())
    assert again == land and again.spec() == land.spec() and again.dim == land.dim
    theta = _theta(n, B, seed=5)
    torch.testing.assert_close(again.value(theta), land.value(theta), rtol=0, atol=0)
    assert "\n" not in land.spec() and land.spec().startswith(land.name)


def test_per_lane_parameters_match_single_lanes():
    cs = [0.0, 1.5, 4.0]
    lanes = L.Rosenbrock1D(c=torch.tensor(cs))
    theta = torch.tensor([[-1.5], [0.3], [2.0]], dtype=F64)
    for i, c in enumerate(cs):
        one = L.Rosenbrock1D(c=c)
        torch.testing.assert_close(lanes.value(theta)[i], one.value(theta[i:i + 1])[0])
        torch.testing.assert_close(lanes.grad(theta)[i], one.grad(theta[i:i + 1])[0])
    with pytest.raises(ConfigError, match="3 lane values but theta has 2 lanes"):
        lanes.value(theta[:2])


# --- closed-form facts (SPEC §1, §8.1) -----------------------------------------------------------

def test_rosenbrock1d_reference_values():
    x = torch.tensor([[-1.5]], dtype=F64)
    assert L.parse("rosenbrock1d(c=1.5)").value(x).item() == pytest.approx(8.59375, abs=1e-14)
    assert L.parse("rosenbrock1d(c=4)").value(x).item() == pytest.approx(12.5, abs=1e-14)
    assert L.parse("rosenbrock1d(c=4)").grad(x).item() == pytest.approx(-35.0, abs=1e-13)  # g_1 of §8.1


def test_rosenbrock1d_critical_points_c4():
    pts = L.Rosenbrock1D(c=4).critical_points()
    assert [p.kind for p in pts] == ["min", "max", "min"]
    s2 = math.sqrt(2)
    assert pts[0].x == pytest.approx(-(2 + s2) / 4, abs=1e-15)
    assert pts[0].x == pytest.approx(-0.8535534, abs=1e-7)
    assert pts[0].f == pytest.approx(3.7303932, abs=1e-7)
    assert pts[1].x == pytest.approx(-(2 - s2) / 4, abs=1e-15)
    assert pts[1].x == pytest.approx(-0.1464466, abs=1e-7)
    assert (pts[2].x, pts[2].f) == (1.0, 0.0)


@pytest.mark.parametrize("c", [-3.0, -0.25, 0.0, 0.5, 1.5, 2.0, 2.5, 4.0, 1e3, 1e8])
def test_rosenbrock1d_critical_points_are_roots(c):
    pts = L.rosenbrock1d_critical_points(c)
    expected = 1 if 0 <= c < 2 else (2 if c in (2.0, -0.25) else 3)  # double roots merge
    assert len(pts) == expected
    assert [p.x for p in pts] == sorted(p.x for p in pts)
    land = L.Rosenbrock1D(c=c)
    x = torch.tensor([[p.x] for p in pts], dtype=F64)
    g, h = land.grad(x)[:, 0], land.hessian_diag(x)[:, 0]
    for p, gi, hi in zip(pts, g.tolist(), h.tolist()):
        scale = 1 + abs(c) * (1 + abs(p.x) ** 3)
        assert abs(gi) <= 1e-12 * scale
        assert p.kind == ("inflection" if abs(hi) <= 1e-9 * scale else ("min" if hi > 0 else "max"))
        assert p.f == pytest.approx(land.value(torch.tensor([[p.x]], dtype=F64)).item(), abs=1e-12)
    if c == 2.0:
        assert pts[0].kind == "inflection" and pts[0].x == -0.5


def test_sextic_critical_points():
    pts = L.Sextic().critical_points()
    assert [p.kind for p in pts] == ["min", "max", "min"]
    for p, ref in zip(pts, [-1.184795, -0.699511, -0.150873]):
        assert p.x == pytest.approx(ref, abs=1e-6)
    g = L.Sextic().grad(torch.tensor([[p.x] for p in pts], dtype=F64))
    assert g.abs().max().item() < 1e-12
    assert L.Sextic().minimum_value(n=2) == pytest.approx(2 * pts[0].f, rel=1e-15)


def test_minimum_values():
    assert L.Rosenbrock1D(c=4).minimum_value() == 0.0
    mv = L.Rosenbrock1D(c=torch.tensor([4.0, -1.0])).minimum_value()
    assert mv.tolist() == [0.0, -math.inf]
    assert L.Rosenbrock(n=5).minimum_value() == 0.0
    assert L.Rosenbrock(a=2.0, n=3).minimum_value() is None
    assert L.Quadratic(diag=[1, 100]).minimum_value() == 0.0
    assert L.Quadratic(A=[[1.0, 2.0], [2.0, 1.0]]).minimum_value() == -math.inf
    assert L.Shifted().minimum_value() == 0.0 and L.DoubleWell().minimum_value() == 0.0
    lin = L.LinReg()
    X = torch.stack([lin.x, torch.ones_like(lin.x)], dim=-1)
    w = torch.linalg.lstsq(X, lin.y.unsqueeze(-1)).solution.T
    assert lin.grad(w).abs().max().item() < 1e-12
    assert lin.minimum_value() == pytest.approx(lin.value(w).item(), rel=1e-12)
    assert 0 < lin.minimum_value() < 0.02  # noise 0.1 -> residual about 0.01
    mlp = L.TinyMLP()
    assert mlp.minimum_value() == 0.0 and mlp.value(mlp.teacher_theta).item() < 1e-28
    assert L.TinyMLP(noise=0.1).minimum_value() is None


def test_data_is_reproducible():
    a, b = L.LinReg(seed=3), L.LinReg(seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, L.LinReg(seed=4).x)
    assert L.LinReg(n_points=10).x.shape == (10,) and float(L.LinReg().x.abs().max()) <= 1.0
    assert L.TinyMLP(width=5).dim == 16


# --- spec language and errors ------------------------------------------------------------------

def test_registry_and_available():
    names = {"rosenbrock1d", "rosenbrock", "quadratic", "shifted", "doublewell", "sextic", "linreg", "mlp",
             "mse2024", "cubic"}
    assert set(L.REGISTRY) == names
    listed = L.available()
    assert [n for n, _ in listed] == sorted(names)
    for name, desc in listed:
        assert desc and "\n" not in desc and issubclass(L.REGISTRY[name], L.Landscape)


@pytest.mark.parametrize("spec, expected", [
    ("rosenbrock1d(c=4)", "rosenbrock1d(c=4)"),
    ("rosenbrock1d", "rosenbrock1d(c=1.5)"),
    ("  rosenbrock1d ( c = -2.5e-1 )  ", "rosenbrock1d(c=-0.25)"),
    ("rosenbrock1d(c=[1.5, 4])", "rosenbrock1d(c=[1.5,4])"),
    ("rosenbrock(a=1,b=100,n=2)", "rosenbrock(a=1,b=100,n=2)"),
    ("rosenbrock(n=5)", "rosenbrock(a=1,b=100,n=5)"),
    ("quadratic(diag=[1,100],center=[1,2])", "quadratic(diag=[1,100],center=[1,2])"),
    ("quadratic(center=[3])", "quadratic(diag=1,center=[3])"),
    ("quadratic(A=[[2,1],[1,3]])", "quadratic(center=0,A=[[2,1],[1,3]])"),
    ("sextic", "sextic"), ("sextic()", "sextic"), ("doublewell", "doublewell"),
    ("shifted(center=4)", "shifted(center=4)"),
    ("linreg", "linreg(n_points=64,seed=0,noise=0.1)"),
    ("mlp(width=3)", "mlp(width=3,n_points=32,seed=0,noise=0)"),
    ("shifted(center=1e-3)", "shifted(center=0.001)"),
])
def test_parse_canonical(spec, expected):
    land = L.parse(spec)
    assert land.spec() == expected
    assert L.parse(expected) == land


@pytest.mark.parametrize("spec, fragment", [
    ("rosenbrok", "unknown landscape 'rosenbrok'; choose from: cubic, doublewell, linreg"),
    ("rosenbrock1d(c=)", "malformed landscape spec"),
    ("rosenbrock1d(c=4", "malformed landscape spec"),
    ("rosenbrock1d(4)", "key=value"),
    ("", "empty landscape spec"),
    ("quadratic(diag=[1,2],center=[1])", "inconsistent dimensions"),
    ("quadratic(diag=[[1,2],[3,4]],center=[[1,2],[3,4],[5,6]])", "inconsistent lane counts"),
    ("quadratic(diag=[1,2],A=[[1,0],[0,1]])", "either 'diag' or 'A'"),
    ("quadratic(A=[[1,2],[0,1]])", "symmetric"),
    ("quadratic(A=[1,2])", "square matrix"),
    ("rosenbrock1d(c=nan)", "must be finite"),
    ("rosenbrock1d(c=-inf)", "must be finite"),
    ("rosenbrock1d(c=[1, inf])", "must be finite"),
    ("rosenbrock1d(d=1)", "unknown parameter 'd' for landscape rosenbrock1d; expected: c"),
    ("sextic(c=1)", "unknown parameter 'c' for landscape sextic; expected: none"),
    ("rosenbrock(n=2.5)", "must be an integer"),
    ("rosenbrock(n=1)", "integer >= 2"),
    ("mlp(width=[3])", "must be an integer"),
    ("linreg(noise=-1)", ">= 0"),
    ("rosenbrock1d(c='4')", "invalid value for 'c'"),
    ("rosenbrock1d(c=__import__('os'))", "invalid value for 'c'"),
    ("rosenbrock1d(c=1+1)", "invalid value for 'c'"),
    ("rosenbrock1d(c=True)", "invalid value for 'c'"),
    ("rosenbrock1d(c=[[1]])", "one number per lane"),
    ("rosenbrock1d(c=[])", "must not be empty"),
    ("rosenbrock1d(c=1,c=2)", "'c'"),
    ("os.system('x')", "malformed landscape spec"),
    ("rosenbrock1d(c=4)\nsextic", "malformed landscape spec"),
])
def test_parse_errors(spec, fragment):
    with pytest.raises(ConfigError) as info:
        L.parse(spec)
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg


def test_python_api_errors():
    with pytest.raises(ConfigError, match="must be finite"):
        L.Rosenbrock1D(c=torch.tensor([1.0, float("nan")]))
    with pytest.raises(ConfigError, match="integer"):
        L.TinyMLP(width=2.0)
    with pytest.raises(ConfigError):
        L.parse(42)


def test_check_dim():
    assert L.parse("shifted").check_dim(7) == 7 and L.parse("shifted").dim is None
    assert L.parse("quadratic(diag=[1,100])").check_dim(2) == 2
    with pytest.raises(ConfigError, match="dimension 2, but theta0 has 3"):
        L.parse("quadratic(diag=[1,100])").check_dim(3)
    with pytest.raises(ConfigError, match="dimension 1"):
        L.parse("rosenbrock1d(c=4)").check_dim(2)
    assert L.parse("rosenbrock(n=4)").resolve_dim() == 4
    assert L.parse("mlp(width=2)").resolve_dim(7) == 7
    with pytest.raises(ConfigError, match="give theta0"):
        L.parse("doublewell").resolve_dim()


def test_device(device):
    """Evaluation follows theta's device (the 'cuda' param of the fixture carries the cuda mark)."""
    for _, make, n, B in CASES:
        land = make()
        theta = _theta(n, B)
        on = theta.to(device)
        f, g = land.value(on), land.grad(on)
        hv = land.hvp(on, torch.ones_like(on))
        assert f.device.type == device.type and g.device.type == device.type and hv.device.type == device.type
        torch.testing.assert_close(f.cpu(), land.value(theta), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(g.cpu(), land.grad(theta), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(hv.cpu(), land.hvp(theta, torch.ones_like(theta)), rtol=1e-10, atol=1e-10)
        assert land.value(on.float()).dtype == torch.float32
