"""The Landscape contract beyond evaluation: ``subset``/``n_lanes`` (per-lane parameters),
``critical_points`` (closed forms or None) and :class:`landscapes.FunctionLandscape` (any torch
function, derivatives by autograd)."""
import math

import pytest
import torch

import landscapes as L
from core.errors import ConfigError

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _theta(n, B, dtype=F64, seed=0):
    return torch.randn(B, n, generator=_gen(seed), dtype=F64).to(dtype)


# -- subset -------------------------------------------------------------------------------------

def _sym(B, n, seed):
    M = torch.randn(B, n, n, generator=_gen(seed), dtype=F64)
    return M + M.transpose(-1, -2)


#: (id, factory, n, B): landscapes whose parameters are (partly) per lane, B lanes
PER_LANE = [
    ("rosenbrock1d-c", lambda: L.Rosenbrock1D(c=torch.tensor([0.0, 1.5, 4.0, -0.5])), 1, 4),
    ("rosenbrock-a-b", lambda: L.Rosenbrock(a=[1.0, 0.5, -1.0], b=[100.0, 3.0, 10.0], n=3), 3, 3),
    ("rosenbrock-a-shared-b", lambda: L.Rosenbrock(a=[1.0, 0.5, -1.0], b=7.0, n=4), 4, 3),
    ("rosenbrock-b-lane1", lambda: L.Rosenbrock(a=[1.0, 0.5, -1.0], b=[5.0], n=2), 2, 3),
    ("quadratic-diag-center", lambda: L.Quadratic(
        diag=torch.rand(3, 2, generator=_gen(1), dtype=F64) + 0.1,
        center=torch.randn(3, 2, generator=_gen(2), dtype=F64)), 2, 3),
    ("quadratic-diag-lanes-center-shared", lambda: L.Quadratic(
        diag=[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [0.5, 0.25, 9.0], [1.0, 1.0, 1.0]],
        center=[1.0, -2.0, 0.5]), 3, 4),
    ("quadratic-center-lanes-diag-shared", lambda: L.Quadratic(diag=[1.0, 100.0],
                                                               center=[[1, 2], [3, 4], [5, 6]]), 2, 3),
    ("quadratic-A-lanes", lambda: L.Quadratic(A=_sym(3, 3, 3), center=[1.0, 0.0, -1.0]), 3, 3),
    ("quadratic-A-shared-center-lanes", lambda: L.Quadratic(
        A=[[2.0, 0.5], [0.5, 1.0]], center=[[0.0, 1.0], [2.0, 3.0], [-1.0, 4.0], [5.0, 5.0]]), 2, 4),
    ("shifted-center", lambda: L.Shifted(center=torch.tensor([4.0, -1.0, 0.5])), 2, 3),
]

#: landscapes whose parameters are all shared (numbers, (n,) vectors, (n, n) matrices, integers,
#: lane dimensions of size 1), one or more per registered landscape
SHARED = [
    ("rosenbrock1d", lambda: L.Rosenbrock1D(c=4), 1),
    ("rosenbrock1d-one-lane", lambda: L.Rosenbrock1D(c=[4.0]), 1),
    ("rosenbrock", lambda: L.Rosenbrock(n=3), 3),
    ("quadratic-default", lambda: L.Quadratic(), 2),
    ("quadratic-vectors", lambda: L.Quadratic(diag=[1, 100], center=[1, 2]), 2),
    ("quadratic-vector-one-lane", lambda: L.Quadratic(diag=[[1, 100]], center=[1, 2]), 2),
    ("quadratic-A", lambda: L.Quadratic(A=[[2.0, 0.5], [0.5, 1.0]], center=[1, -1]), 2),
    ("shifted", lambda: L.Shifted(), 3),
    ("doublewell", lambda: L.DoubleWell(), 2),
    ("sextic", lambda: L.Sextic(), 2),
    ("cubic", lambda: L.parse("cubic"), 2),
    ("linreg", lambda: L.LinReg(), 2),
    ("mlp", lambda: L.TinyMLP(width=2, n_points=8), 7),
    ("mse2024", lambda: L.parse("mse2024(n_points=50)"), 1),
]


def test_every_registered_landscape_is_covered():
    made = {make().name for _, make, *_ in PER_LANE + SHARED}
    assert made == set(L.REGISTRY)


@pytest.mark.parametrize("make, n, B", [c[1:] for c in PER_LANE], ids=[c[0] for c in PER_LANE])
def test_subset_matches_full_lanes(make, n, B):
    land = make()
    assert land.n_lanes() == B
    theta = _theta(n, B, seed=4)
    vec = _theta(n, B, seed=5)
    f, g, hv, H = land.value(theta), land.grad(theta), land.hvp(theta, vec), land.hessian(theta)
    spec = land.spec()
    for idx in ([B - 1, 0], [1], [0, 0, B - 1], list(range(B))[::-1]):
        sel = torch.tensor(idx, dtype=torch.long)
        sub = land.subset(sel)
        assert sub is not land and type(sub) is type(land)
        # one lane left: a lane dimension of size 1 broadcasts, like a shared parameter
        assert sub.n_lanes() == (None if len(idx) == 1 else len(idx)) and sub.dim == land.dim
        th = theta[sel]
        torch.testing.assert_close(sub.value(th), f[sel], rtol=0, atol=0)
        torch.testing.assert_close(sub.grad(th), g[sel], rtol=0, atol=0)
        torch.testing.assert_close(sub.hvp(th, vec[sel]), hv[sel], rtol=1e-15, atol=0)
        torch.testing.assert_close(sub.hessian(th), H[sel], rtol=1e-15, atol=0)
        again = L.parse(sub.spec())          # the subset is an ordinary landscape of its class
        assert again == sub
        # the wrong number of lanes is still refused
        if len(idx) not in (1, B):
            with pytest.raises(ConfigError, match="lane values"):
                sub.value(theta)
    assert land.spec() == spec and land.n_lanes() == B     # the original is untouched


def test_subset_boolean_mask_and_float32_cache():
    land = L.Rosenbrock1D(c=torch.tensor([0.0, 1.5, 4.0]))
    theta = torch.tensor([[-1.5], [0.3], [2.0]], dtype=torch.float32)
    full = land.value(theta)                 # fills the cast cache of the original
    sub = land.subset(torch.tensor([False, True, True]))
    assert sub.c.tolist() == [1.5, 4.0]
    torch.testing.assert_close(sub.value(theta[1:]), full[1:], rtol=0, atol=0)
    assert sub.value(theta[1:]).dtype == torch.float32


def test_subset_index_errors():
    land = L.Shifted(center=[1.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        land.subset(torch.tensor([3]))
    with pytest.raises(IndexError):
        land.subset(torch.tensor([[0, 1]]))
    with pytest.raises(IndexError):
        land.subset(torch.tensor([0.0]))
    with pytest.raises(IndexError):
        land.subset(torch.tensor([True, False]))
    assert land.subset(torch.tensor([-1])).center.tolist() == [3.0]


def test_inconsistent_lane_counts():
    land = L.Rosenbrock(a=[1.0, 2.0, 3.0], b=[1.0, 2.0])
    with pytest.raises(ConfigError, match="inconsistent lane counts"):
        land.n_lanes()
    with pytest.raises(ConfigError):
        land.subset(torch.tensor([0]))


@pytest.mark.parametrize("make, n", [c[1:] for c in SHARED], ids=[c[0] for c in SHARED])
def test_subset_of_shared_landscape_is_identity(make, n):
    land = make()
    assert land.n_lanes() is None
    assert land.subset(torch.tensor([0])) is land
    assert land.subset(torch.tensor([3, 1, 1])) is land     # any lanes: parameters are shared
    theta = _theta(n, 4, seed=6)
    torch.testing.assert_close(land.subset(torch.tensor([2, 0])).value(theta[[2, 0]]),
                               land.value(theta)[[2, 0]], rtol=0, atol=0)


def test_lane_dimension_recognised_per_kind():
    # lane scalar: a 1-D tensor is one value per lane
    assert L.Rosenbrock1D(c=[1.0, 2.0]).n_lanes() == 2
    assert L.Shifted(center=[1.0, 2.0, 3.0]).n_lanes() == 3
    # vector: (n,) is per coordinate (shared), (B, n) per lane
    assert L.Quadratic(diag=[1.0, 2.0, 3.0]).n_lanes() is None
    assert L.Quadratic(center=[1.0, 2.0]).n_lanes() is None
    assert L.Quadratic(diag=[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).n_lanes() == 3
    # matrix: (n, n) shared, (B, n, n) per lane
    assert L.Quadratic(A=[[1.0, 0.0], [0.0, 2.0]]).n_lanes() is None
    assert L.Quadratic(A=_sym(5, 2, 0)).n_lanes() == 5
    # integers and data tensors are never per lane
    assert L.Rosenbrock(n=5).n_lanes() is None and L.LinReg(n_points=5).n_lanes() is None


def test_undeclared_tensor_parameter_is_refused():
    class Bad(L.Separable):
        name, PARAMS = "bad", ("w",)

        def __init__(self):
            self.w = torch.ones(3)

        def phi(self, x):
            return x * x

        def dphi(self, x):
            return 2 * x

        def d2phi(self, x):
            return 2 + 0 * x

    with pytest.raises(TypeError, match="LANE_DIMS"):
        Bad().subset(torch.tensor([0]))


def test_subset_index_on_theta_device(device):
    land = L.Quadratic(diag=[[1.0], [2.0], [3.0]], center=[[0.5], [1.0], [1.5]])
    idx = torch.tensor([2, 0], device=device)
    sub = land.subset(idx)
    theta = torch.tensor([[1.0], [2.0]], dtype=F64, device=device)
    assert torch.equal(sub.value(theta).cpu(), torch.tensor([3 * 0.25, 1.0 * 2.25], dtype=F64))


# -- critical points ------------------------------------------------------------------------------

#: (id, landscape, lane): landscapes with closed-form critical points
WITH_POINTS = [
    ("rosenbrock1d-c4", L.Rosenbrock1D(c=4), 0),
    ("rosenbrock1d-c1.5", L.Rosenbrock1D(c=1.5), 0),
    ("rosenbrock1d-c-3", L.Rosenbrock1D(c=-3), 0),
    ("rosenbrock1d-lane2", L.Rosenbrock1D(c=[0.0, 1.5, 10.0]), 2),
    ("sextic", L.Sextic(), 0),
    ("shifted", L.Shifted(), 0),
    ("shifted-lane1", L.Shifted(center=[4.0, -2.5]), 1),
    ("doublewell", L.DoubleWell(), 0),
    ("quadratic-1d", L.Quadratic(center=[3]), 0),
    ("quadratic-1d-concave", L.Quadratic(diag=[-2.0], center=[1.5]), 0),
    ("quadratic-1d-lanes", L.Quadratic(diag=[[1.0], [-3.0]], center=[[0.5], [-0.5]]), 1),
    ("quadratic-1d-A", L.Quadratic(A=[[5.0]], center=[-1.0]), 0),
    ("quadratic-numbers", L.Quadratic(diag=2.0, center=-1.0), 0),
    ("mse2024", L.parse("mse2024"), 0),
]


@pytest.mark.parametrize("land, lane", [c[1:] for c in WITH_POINTS], ids=[c[0] for c in WITH_POINTS])
def test_critical_points_are_roots_of_the_gradient(land, lane):
    pts = land.critical_points(lane)
    assert pts, "expected closed-form critical points"
    assert [p.x for p in pts] == sorted(p.x for p in pts)
    one = land.subset(torch.tensor([lane]))   # lane `lane` only (itself when shared)
    assert one.n_lanes() is None                # a single lane broadcasts over the points
    x = torch.tensor([[p.x] for p in pts], dtype=F64)
    g, h, f = one.grad(x), one.hessian(x)[:, 0, 0], one.value(x)
    for p, gi, hi, fi in zip(pts, g[:, 0].tolist(), h.tolist(), f.tolist()):
        scale = 1.0 + abs(hi) * (1.0 + abs(p.x))
        assert abs(gi) <= 1e-12 * scale, (p, gi)
        assert p.kind in ("min", "max", "inflection")
        if p.kind == "min":
            assert hi > 0, (p, hi)
        elif p.kind == "max":
            assert hi < 0, (p, hi)
        assert p.f == pytest.approx(fi, rel=1e-12, abs=1e-12)
    # per-lane parameters: another lane has other points (or the same when shared)
    if land.n_lanes():
        assert land.critical_points(lane) != land.critical_points(0)


def test_critical_points_closed_forms():
    assert L.Shifted().critical_points() == [L.CriticalPoint(4.0, "min", 0.0)]
    assert [(p.x, p.kind, p.f) for p in L.DoubleWell().critical_points()] == [
        (-1.0, "min", 0.0), (0.0, "max", 0.25), (1.0, "min", 0.0)]
    assert L.Quadratic(diag=[-2.0], center=[1.5]).critical_points() == [
        L.CriticalPoint(1.5, "max", 0.0)]
    # lane selection and the existing closed forms are kept
    lanes = L.Rosenbrock1D(c=[1.5, 4.0])
    assert lanes.critical_points(1) == L.rosenbrock1d_critical_points(4.0)
    assert lanes.critical_points() == L.rosenbrock1d_critical_points(1.5)
    assert L.Sextic().critical_points(3) == list(L.sextic_critical_points())
    mse = L.parse("mse2024")
    (p,) = mse.critical_points()
    assert p.x == pytest.approx(mse.minimizer(), rel=1e-15) and p.f == mse.minimum_value()


@pytest.mark.parametrize("land", [
    L.Rosenbrock(), L.Rosenbrock(n=3), L.Quadratic(diag=[1.0, 2.0]), L.Quadratic(diag=[0.0]),
    L.Quadratic(A=[[1.0, 0.2], [0.2, 1.0]]), L.LinReg(), L.TinyMLP(width=2),
    L.from_function(lambda x: (x * x).sum()),
], ids=["rosenbrock", "rosenbrock3", "quadratic-2d", "quadratic-flat", "quadratic-A-2d", "linreg",
        "mlp", "function"])
def test_critical_points_unknown_is_none(land):
    assert land.critical_points() is None


def test_base_default_critical_points_is_none():
    class Plain(L.Landscape):
        def value(self, theta):
            return theta.sum(-1)

        def grad(self, theta):
            return torch.ones_like(theta)

    plain = Plain()
    assert plain.critical_points() is None and plain.critical_points(lane=3) is None
    assert plain.n_lanes() is None and plain.subset(torch.tensor([0])) is plain


# -- FunctionLandscape ----------------------------------------------------------------------------

def _rb1d(c):
    return lambda x: (1 - x[0]) ** 2 + c * (x[0] ** 2 - 1) ** 2


def _rb1d_batched(c):
    return lambda X: ((1 - X[:, 0]) ** 2 + c * (X[:, 0] ** 2 - 1) ** 2)


@pytest.mark.parametrize("c", [0.0, 1.5, 4.0])
@pytest.mark.parametrize("batched", [False, True])
def test_function_landscape_matches_rosenbrock1d(c, batched):
    ref = L.Rosenbrock1D(c=c)
    land = L.from_function(_rb1d_batched(c) if batched else _rb1d(c), dim=1, batched=batched,
                           name="rb1d", minimum=0.0)
    assert isinstance(land, L.FunctionLandscape)
    theta = torch.linspace(-2, 2, 9, dtype=F64).reshape(-1, 1)
    vec = torch.randn(9, 1, generator=_gen(7), dtype=F64)
    tol = dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(land.value(theta), ref.value(theta), **tol)
    torch.testing.assert_close(land.grad(theta), ref.grad(theta), **tol)
    torch.testing.assert_close(land.hvp(theta, vec), ref.hvp(theta, vec), **tol)
    torch.testing.assert_close(land.hessian(theta), ref.hessian(theta), **tol)
    torch.testing.assert_close(land.hessian_diag(theta), ref.hessian_diag(theta), **tol)
    f, g = land.value_and_grad(theta)
    torch.testing.assert_close(g, ref.grad(theta), **tol)
    # float32 follows theta
    t32 = theta.float()
    for out, want in ((land.value(t32), ref.value(theta)), (land.grad(t32), ref.grad(theta)),
                      (land.hvp(t32, vec.float()), ref.hvp(theta, vec)),
                      (land.hessian(t32), ref.hessian(theta))):
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-4)
    # the derivatives do not depend on the caller's grad mode
    with torch.no_grad():
        torch.testing.assert_close(land.grad(theta), ref.grad(theta), **tol)
        torch.testing.assert_close(land.hvp(theta, vec), ref.hvp(theta, vec), **tol)
    assert land.minimum_value() == 0.0


def test_function_landscape_batched_equals_pointwise():
    def f(x):
        return torch.sin(x[0]) * torch.exp(x[1]) + x[0] ** 2 * x[1] ** 3

    def fb(X):
        return torch.sin(X[:, 0]) * torch.exp(X[:, 1]) + X[:, 0] ** 2 * X[:, 1] ** 3

    a, b = L.from_function(f, dim=2), L.from_function(fb, dim=2, batched=True)
    theta, vec = _theta(2, 5, seed=8), _theta(2, 5, seed=9)
    for op in (lambda ls: ls.value(theta), lambda ls: ls.grad(theta), lambda ls: ls.hvp(theta, vec),
               lambda ls: ls.hessian(theta)):
        torch.testing.assert_close(op(a), op(b), rtol=1e-13, atol=1e-13)


def _f2(x):
    """A 2-D function with a full, point-dependent Hessian."""
    return torch.sin(x[0]) * torch.exp(0.5 * x[1]) + x[0] ** 2 * x[1] ** 3 + torch.cosh(x[0] * x[1])


def test_function_landscape_2d_against_finite_differences():
    land = L.FunctionLandscape(_f2, dim=2, name="f2")
    theta = torch.tensor([[0.3, -0.7], [1.1, 0.4], [-0.5, 1.3]], dtype=F64)
    g, H = land.grad(theta), land.hessian(theta)
    h = 1e-5
    fd_g = torch.empty_like(theta)
    fd_H = torch.empty_like(H)
    for j in range(2):
        e = torch.zeros_like(theta)
        e[:, j] = h
        fd_g[:, j] = (land.value(theta + e) - land.value(theta - e)) / (2 * h)
        fd_H[:, :, j] = (land.grad(theta + e) - land.grad(theta - e)) / (2 * h)
    torch.testing.assert_close(g, fd_g, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(H, fd_H, rtol=1e-8, atol=1e-8)
    assert H[:, 0, 1].abs().min() > 0.1                      # nontrivial coupling
    torch.testing.assert_close(H, H.transpose(-1, -2), rtol=1e-13, atol=1e-13)
    # analytic values at one point
    x, y = 0.3, -0.7
    dxx = -math.sin(x) * math.exp(0.5 * y) + 2 * y ** 3 + y * y * math.cosh(x * y)
    dxy = (0.5 * math.cos(x) * math.exp(0.5 * y) + 6 * x * y ** 2 + math.sinh(x * y)
           + x * y * math.cosh(x * y))
    assert H[0, 0, 0].item() == pytest.approx(dxx, rel=1e-13)
    assert H[0, 0, 1].item() == pytest.approx(dxy, rel=1e-13)
    vec = _theta(2, 3, seed=10)
    torch.testing.assert_close(land.hvp(theta, vec), torch.einsum("bij,bj->bi", H, vec),
                               rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(land.hvp(theta, vec), L.Landscape.hvp(land, theta, vec),
                               rtol=1e-12, atol=1e-12)


def test_function_landscape_falls_back_where_vmap_cannot():
    def piecewise(x):                     # data-dependent Python control flow and .item()
        if x[0].item() > 0:
            return x[0] ** 3
        return x[0] ** 2

    land = L.from_function(piecewise, dim=1)
    theta = torch.tensor([[-1.5], [0.5], [2.0]], dtype=F64)
    assert land.value(theta).tolist() == [2.25, 0.125, 8.0]
    assert land.grad(theta)[:, 0].tolist() == [-3.0, 0.75, 12.0]
    assert land.hvp(theta, torch.ones_like(theta))[:, 0].tolist() == [2.0, 3.0, 12.0]
    assert land.hessian(theta).reshape(-1).tolist() == [2.0, 3.0, 12.0]


def test_function_landscape_gradient_is_differentiable():
    land = L.from_function(_f2, dim=2)
    x = _theta(2, 3, seed=11).requires_grad_(True)
    (hs,) = torch.autograd.grad(land.grad(x)[:, 1].sum(), x)
    torch.testing.assert_close(hs, land.hessian(x.detach())[:, 1, :], rtol=1e-13, atol=1e-13)


def test_function_landscape_contract():
    land = L.FunctionLandscape(_f2, dim=2, name="f2")
    assert land.spec() == "function(f2)" and "f2" in repr(land)
    with pytest.raises(ConfigError):
        L.parse(land.spec())            # a label, not parsable spec text
    assert "function" not in L.REGISTRY
    assert land.subset(torch.tensor([0, 0, 1])) is land and land.n_lanes() is None
    assert land.critical_points() is None and land.minimum_value() is None
    assert land == L.FunctionLandscape(_f2, dim=2, name="f2")
    assert land != L.FunctionLandscape(lambda x: _f2(x), dim=2, name="f2")
    assert land.resolve_dim() == 2 and L.from_function(_f2).dim is None
    with pytest.raises(ConfigError, match="dimension 2"):
        land.value(torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ConfigError):
        L.from_function("not callable")
    with pytest.raises(ValueError, match="scalar"):
        L.from_function(lambda x: x * 2).value(torch.zeros(2, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        L.from_function(lambda X: X * 2, batched=True).value(torch.zeros(2, 3, dtype=F64))
    # any dimension when dim is not given; f constant or linear in theta
    free = L.from_function(lambda x: (x ** 2).sum())
    th = _theta(5, 2, seed=12)
    torch.testing.assert_close(free.grad(th), 2 * th, rtol=0, atol=0)
    lin = L.from_function(lambda X: X.sum(-1), batched=True)
    assert torch.equal(lin.hvp(th, th), torch.zeros_like(th))
    assert torch.equal(lin.grad(th), torch.ones_like(th))


def test_function_landscape_in_a_flow():
    """A FunctionLandscape drives a continuous-time flow exactly like the analytic landscape."""
    import flows
    from flows.simulate import simulate

    theta0 = torch.tensor([[-1.5]], dtype=F64)
    t_out = torch.tensor([[0.0, 0.5]], dtype=F64)
    out = []
    for land in (L.Rosenbrock1D(c=4), L.from_function(_rb1d(4.0), dim=1)):
        flow = flows.get("adam-flow1")(land, alpha=0.1, beta1=0.9, beta2=0.999, n_lanes=1)
        traj = simulate(flow, theta0, t_out, torch.tensor([2]), rtol=1e-10, atol=1e-12)
        assert int(traj.n_out[0]) == 2
        out.append(float(traj.theta[0, -1, 0]))
    assert math.isfinite(out[0]) and out[0] != -1.5
    assert out[1] == pytest.approx(out[0], rel=1e-12, abs=1e-12)


def test_function_landscape_device(device):
    land = L.from_function(_f2, dim=2)
    theta = _theta(2, 3, seed=13)
    for dtype in (F64, torch.float32):
        th = theta.to(dtype=dtype, device=device)
        for out in (land.value(th), land.grad(th), land.hvp(th, th), land.hessian(th)):
            assert out.dtype == dtype and out.device.type == torch.device(device).type
        torch.testing.assert_close(land.grad(th).cpu().double(), land.grad(theta),
                                   rtol=1e-5 if dtype == torch.float32 else 1e-12,
                                   atol=1e-5 if dtype == torch.float32 else 1e-12)
