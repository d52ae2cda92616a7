"""Aitken / Steffensen GD (SPEC §2; ``discrete.AitkenGD`` and the lane model ``aitkengd``) and the
identities that tie Jump Adam's secant jump to Aitken's delta-squared process and to Anderson
acceleration (seeds/jump_adam_em_view.md)."""
from __future__ import annotations

import copy
import io

import pytest
import torch

import discrete
from core.errors import ConfigError
from core.trajectory import Status
from discrete.aitken import AitkenGDLanes, aitken_step
from discrete.jump_adam import secant_curvature, secant_jump
from landscapes.base import Landscape
from runner.experiment import run_lanes
from tests.toy_landscapes import DiagQuad

EPS64 = torch.finfo(torch.float64).eps


class SeparableQuartic(Landscape):
    """A separable non-quadratic function, per coordinate
    f_i(x) = q_i x^4 + c_i x^3 + d_i x^2 + s_i sin(w_i x), with per-lane (B, n) coefficients."""

    name = "test_sepquartic"

    def __init__(self, q, c, d, s, w):
        self.q, self.c, self.d, self.s, self.w = q, c, d, s, w

    def value(self, x):
        return (self.q * x ** 4 + self.c * x ** 3 + self.d * x ** 2
                + self.s * torch.sin(self.w * x)).sum(-1)

    def grad(self, x):
        return (4 * self.q * x ** 3 + 3 * self.c * x ** 2 + 2 * self.d * x
                + self.s * self.w * torch.cos(self.w * x))

    def spec(self):
        return "test_sepquartic"


def random_problem(gen, B=64, n=3):
    u = lambda lo, hi: torch.rand(B, n, generator=gen, dtype=torch.float64) * (hi - lo) + lo  # noqa
    land = SeparableQuartic(u(0.05, 0.5), u(-0.3, 0.3), u(0.5, 2.0), u(-0.3, 0.3), u(0.5, 3.0))
    return land, u(-1.5, 1.5)


def gd_triple(land, x0, alpha):
    g0 = land.grad(x0)
    x1 = x0 - alpha * g0
    g1 = land.grad(x1)
    x2 = x1 - alpha * g1
    return x1, x2, g0, g1


def test_secant_jump_on_gd_is_aitken_and_anderson():
    """(a) Per coordinate, the unclamped secant jump (jump_lr = 1) from the GD iterates equals
    Aitken's delta-squared point and Anderson acceleration with one stored step.

    GD is the fixed-point map G(x) = x - alpha g(x); x1 = G(x0), x2 = G(x1), so
    x1 - x0 = -alpha g0 and x2 - 2 x1 + x0 = -alpha (g1 - g0).

    * Secant jump (Jump Adam at step 2, h = (g1 - g0)/(x1 - x0)):  S = x1 - g1 / h.
    * Aitken (1926) delta-squared:  A = x0 - (x1 - x0)^2 / (x2 - 2 x1 + x0)
        = x0 + alpha g0^2 / (g1 - g0) = x1 + alpha g0 g1 / (g1 - g0) = S.
    * Anderson (1965) acceleration, depth m = 1, type II in the form of Walker & Ni (2011): with
      residuals f_i = G(x_i) - x_i = -alpha g_i, gamma = argmin_gamma |f1 - gamma (f1 - f0)|, which
      per coordinate (the diagonal / separable version) is gamma = f1 / (f1 - f0), and
      x_AA = G(x1) - gamma (G(x1) - G(x0)) = x1 + f1 - gamma ((x1 - x0) + (f1 - f0))
           = x1 - f1 (x1 - x0) / (f1 - f0) = x1 - g1 (x1 - x0) / (g1 - g0) = S.

    The three are evaluated here independently, in float64, and must agree to rounding: the
    error bound is a few ulps of |x| plus the ulps of g relative to g1 - g0, times the jump.
    The lane model ``aitkengd`` and the torch.optim class land on the same point after two steps.
    """
    gen = torch.Generator().manual_seed(2024)
    for _ in range(5):
        land, x0 = random_problem(gen)
        alpha = 0.1 + 0.3 * torch.rand(x0.shape[0], 1, generator=gen, dtype=torch.float64)
        x1, x2, g0, g1 = gd_triple(land, x0, alpha)
        h, measured = secant_curvature(g1, g0, x1 - x0, 0.0)
        assert bool(measured.all())
        S = x1 + secant_jump(g1, h, 1.0)
        A = x0 - (x1 - x0) ** 2 / (x2 - 2 * x1 + x0)
        f0, f1 = (x1 - x0), (x2 - x1)                     # G(x0) - x0, G(x1) - x1
        G0, G1 = x1, x2
        gamma = f1 / (f1 - f0)
        AA = G1 - gamma * (G1 - G0)
        cond = (g0.abs() + g1.abs()) / (g1 - g0).abs()    # cancellation in g1 - g0
        tol = 64 * EPS64 * (x0.abs() + x1.abs() + x2.abs() + cond * (S - x1).abs())
        assert bool(((S - A).abs() <= tol).all()), float(((S - A).abs() / tol).max())
        assert bool(((S - AA).abs() <= tol).all()), float(((S - AA).abs() / tol).max())
        # the optimizers: theta_2 is Aitken's point
        traj = AitkenGDLanes(alpha=alpha[:, 0], aitken_guard=0.0).run(land, x0, steps=2)
        assert bool((traj.extras["gate"][:, 2] == 1).all())
        assert bool(((traj.theta[:, 2] - A).abs() <= tol).all())
        assert torch.equal(traj.theta[:, 1], x1)
        p = torch.nn.Parameter(x0.clone())
        opt = discrete.AitkenGD([p], lr=0.25, guard=0.0)
        for _ in range(2):
            p.grad = land.grad(p.detach())
            opt.step()
        x1b, x2b, g0b, g1b = gd_triple(land, x0, 0.25)
        Ab = x0 - (x1b - x0) ** 2 / (x2b - 2 * x1b + x0)
        tolb = 64 * EPS64 * (x0.abs() + x1b.abs() + x2b.abs()
                             + (g0b.abs() + g1b.abs()) / (g1b - g0b).abs() * (Ab - x1b).abs())
        assert bool(((p.detach() - Ab).abs() <= tolb).all())
        assert opt.last_gate_fraction == 1.0


def test_steffensen_on_a_separable_quadratic_is_exact():
    """(b) On a separable quadratic Aitken's point (the first secant measurement) is the minimizer,
    to rounding; the iterates then stay there."""
    d = torch.tensor([[0.3, 1.0, 4.0, 20.0]], dtype=torch.float64)
    c = torch.tensor([[2.0, -1.0, 0.5, -3.0]], dtype=torch.float64)
    land = DiagQuad(d, c)
    theta0 = torch.tensor([[-1.0, 2.0, 1.5, 0.0]], dtype=torch.float64)
    traj = discrete.get("aitkengd")(alpha=0.02).run(land, theta0, steps=6)
    assert traj.extras["gate"][0, :3].sum(-1).tolist() == [0, 0, 4]
    g0, g1 = land.grad(theta0)[0], land.grad(traj.theta[:, 1])[0]
    tol = 8 * EPS64 * ((g0.abs() + g1.abs()) / (g1 - g0).abs() * (traj.theta[0, 1] - c[0]).abs()
                       + c[0].abs())
    assert bool(((traj.theta[0, 2] - c[0]).abs() <= tol).all())
    # later triples start at the minimizer: their secants are rounding noise, the guard keeps
    # the extrapolations small
    assert float((traj.theta[0, 3:] - c[0]).abs().max()) < 1e-10


def test_odd_steps_are_gd_bitwise_and_even_steps_accelerate():
    gen = torch.Generator().manual_seed(9)
    land, x0 = random_problem(gen, B=6, n=4)
    alpha = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.3], dtype=torch.float64)
    traj = discrete.get("aitkengd")(alpha=alpha).run(land, x0, steps=9)
    assert bool((traj.status == Status.OK).all())
    for k in (1, 3, 5, 7, 9):
        gd = discrete.get("gd")(alpha=alpha).run(land, traj.theta[:, k - 1], steps=1)
        assert torch.equal(traj.theta[:, k], gd.theta[:, 1])
        assert float(traj.extras["gate"][:, k].sum()) == 0.0
    assert float(traj.extras["gate"][:, 2::2].mean()) > 0.5
    # much faster than GD on this separable problem (Steffensen converges quadratically)
    K = 8
    gd = discrete.get("gd")(alpha=alpha).run(land, x0, steps=K)
    stf = discrete.get("aitkengd")(alpha=alpha).run(land, x0, steps=K)
    g_gd = land.grad(gd.theta[:, K]).abs().amax(-1)
    g_stf = land.grad(stf.theta[:, K]).abs().amax(-1)
    assert bool((g_stf < 1e-3 * g_gd).all()), (g_stf, g_gd)


def test_guard_falls_back_to_gd_without_nan():
    # direct: zero motion, zero curvature (linear), tiny curvature below the guard, a real one
    g = torch.tensor([0.0, 1.0, 1.0, 2.0], dtype=torch.float64)
    g_prev = torch.tensor([0.0, 1.0, 1.0 - 1e-12, 1.0], dtype=torch.float64)
    motion = torch.tensor([0.0, 0.5, 0.5, 0.5], dtype=torch.float64)
    s, ok = aitken_step(g, g_prev, motion, 0.1, 1e-6)
    assert ok.tolist() == [False, False, False, True]
    assert s[:3].tolist() == [-0.0, -0.1, -0.1] and s[3].item() == -1.0
    # guard 0 accepts the tiny curvature (a huge but finite extrapolation)
    s, ok = aitken_step(g, g_prev, motion, 0.1, 0.0)
    assert ok.tolist() == [False, False, True, True] and bool(torch.isfinite(s).all())
    # through both APIs: a linear function and a flat one never accelerate and stay finite
    lin = DiagQuad(torch.zeros(1, 2), torch.zeros(1, 2))
    traj = discrete.get("aitkengd")(alpha=0.1, aitken_guard=0.0).run(
        lin, torch.tensor([[1.0, -2.0]], dtype=torch.float64), steps=6)
    assert bool((traj.theta == traj.theta[:, :1]).all()) and float(traj.extras["gate"].sum()) == 0
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = discrete.AitkenGD([p], lr=0.1)
    for k in range(6):
        p.grad = torch.tensor([3.0, 0.0], dtype=torch.float64)        # constant: h = 0
        opt.step()
        assert opt.last_gate_fraction == 0.0 and opt.last_multiplier == 1.0
    torch.testing.assert_close(p.detach(), torch.tensor([1.0 - 1.8, -2.0], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lanes_match_torch_optim_class_bitwise(dtype):
    gen = torch.Generator().manual_seed(4)
    land, x0 = random_problem(gen, B=5, n=3)
    x0 = x0.to(dtype)
    land32 = SeparableQuartic(*(t.to(dtype) for t in (land.q, land.c, land.d, land.s, land.w)))
    alpha = [0.05, 0.1, 0.15, 0.2, 0.3]
    traj = discrete.get("aitkengd")(alpha=alpha).run(land32, x0, steps=30)
    for b in range(5):
        lane = SeparableQuartic(*(t[b] for t in (land32.q, land32.c, land32.d, land32.s, land32.w)))
        p = torch.nn.Parameter(x0[b].clone())
        opt = discrete.AitkenGD([p], lr=alpha[b])
        for k in range(30):
            p.grad = lane.grad(p.detach())
            opt.step()
            assert torch.equal(p.detach(), traj.theta[b, k + 1]), (b, k)


def test_state_dict_round_trip_param_groups_and_bad_values():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    x = torch.randn(16, 2, dtype=torch.float64)
    y = x[:, :1] ** 2

    def make(model):
        return discrete.AitkenGD([{"params": model[0].parameters(), "lr": 0.05},
                                  {"params": model[2].parameters(), "lr": 0.2, "guard": 1e-3}])

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    net_full = copy.deepcopy(net)
    opt_full = make(net_full)
    train(net_full, opt_full, 21)
    net_a = copy.deepcopy(net)
    opt_a = make(net_a)
    train(net_a, opt_a, 9)                  # odd: the checkpoint falls inside a Steffensen triple
    buf = io.BytesIO()
    torch.save({"m": net_a.state_dict(), "o": opt_a.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf)
    net_b = copy.deepcopy(net)
    net_b.load_state_dict(ck["m"])
    opt_b = discrete.AitkenGD([{"params": net_b[0].parameters()},
                               {"params": net_b[2].parameters()}])    # defaults, overwritten
    opt_b.load_state_dict(ck["o"])
    assert [g["lr"] for g in opt_b.param_groups] == [0.05, 0.2]
    assert [g["guard"] for g in opt_b.param_groups] == [1e-6, 1e-3]
    train(net_b, opt_b, 12)
    for p, q in zip(net_full.parameters(), net_b.parameters()):
        assert torch.equal(p, q)
    assert len(opt_full.group_stats()) == 2
    for bad in (dict(lr=0.0), dict(lr=float("inf")), dict(guard=-1.0), dict(guard=float("nan"))):
        with pytest.raises(ValueError, match=next(iter(bad))):
            discrete.AitkenGD(net.parameters(), **bad)
    with pytest.raises(ConfigError, match="aitken_guard"):
        discrete.get("aitkengd")(alpha=0.1, aitken_guard=-1.0)


def test_registered_and_runs_through_the_runner():
    assert discrete.get("aitkengd") is AitkenGDLanes
    assert AitkenGDLanes.hyperparameters == {"alpha": None, "aitken_guard": 1e-6}
    traj = run_lanes("aitkengd", "sextic", [{"theta0": [1.0], "alpha": 1e-2}], [50])
    assert traj.meta["engine"] == "torch" and set(traj.extras) == {"gate"}
    assert bool((traj.status == Status.OK).all())


def test_device_and_float32(device):
    land = DiagQuad(torch.tensor([[1.0, 4.0]]), torch.tensor([[0.5, -1.0]]))
    for dtype in (torch.float32, torch.float64):
        theta0 = torch.tensor([[2.0, 2.0]], dtype=dtype, device=device)
        traj = discrete.get("aitkengd")(alpha=0.05).run(land, theta0, steps=4)
        assert traj.theta.dtype == dtype and traj.theta.device.type == device.type
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(traj.theta[0, 2].cpu(), torch.tensor([0.5, -1.0], dtype=dtype),
                                   rtol=0, atol=tol)
        p = torch.nn.Parameter(theta0.clone())
        opt = discrete.AitkenGD([p], lr=0.05)
        for _ in range(2):
            p.grad = land.grad(p.detach())
            opt.step()
        torch.testing.assert_close(p.detach()[0].cpu(), torch.tensor([0.5, -1.0], dtype=dtype),
                                   rtol=0, atol=tol)
