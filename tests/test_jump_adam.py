"""Jump Adam (SPEC §2; seeds/jump_adam.md): the torch.optim class ``discrete.JumpAdam`` and the
lane-batched model ``jumpadam`` (``discrete.jump_adam.JumpAdamLanes``), which share one per-element
update (:func:`discrete.jump_adam.gated_step`)."""
from __future__ import annotations

import io
import json
import math

import pytest
import torch

import discrete
import landscapes
from adamflow.cli import main
from core.errors import ConfigError
from core.method import ALPHA, BETA1, BETA2, EPS
from core.trajectory import Status
from discrete.jump_adam import (
    JumpAdamLanes,
    gate_fraction,
    gated_step,
    mean_multiplier,
    secant_curvature,
    sign_rule_flags,
    step_multiplier,
)
from landscapes.base import Landscape
from runner.experiment import run_lanes
from runner.registry import get_model
from tests.toy_landscapes import DiagQuad

BIG_TRUST = 1e12


# ----------------------------------------------------------------------------- helpers
class Rosen1D(Landscape):
    """f = (1-x)^2 + c (x^2-1)^2 (convex for c = 0, bistable for c = 4)."""

    name = "test_rosen1d"
    dim = 1

    def __init__(self, c):
        self.c = float(c)

    def value(self, theta):
        return ((1 - theta) ** 2 + self.c * (theta * theta - 1) ** 2).sum(-1)

    def grad(self, theta):
        return -2 * (1 - theta) + 4 * self.c * theta * (theta * theta - 1)

    def spec(self):
        return "test_rosen1d"


def run_torch_optim(opt_cls, land, theta0_row, steps, **kw):
    """Run a torch.optim optimizer on one (1, n) parameter; (steps + 1, n) iterates."""
    p = torch.nn.Parameter(theta0_row.detach().clone().unsqueeze(0))
    opt = opt_cls([p], **kw)
    out = [p.detach()[0].clone()]
    for _ in range(steps):
        p.grad = land.grad(p.detach())
        opt.step()
        out.append(p.detach()[0].clone())
    return torch.stack(out), opt


def torch_kw(lane: dict) -> dict:
    """torch.optim keyword arguments of a lane's hyper-parameters."""
    kw = {"lr": lane["alpha"], "betas": (lane["beta1"], lane["beta2"]), "eps": lane["eps"]}
    for key in ("jump_lr", "trust_coefficient", "h_min", "motion_floor"):
        if key in lane:
            kw[key] = lane[key]
    if "sign_rule" in lane:
        kw["sign_rule"] = int(lane["sign_rule"])
    return kw


def plain_jump_adam(g_fn, x0, K, alpha, b1=0.9, b2=0.999, eps=1e-8, jump_lr=1.0, trust=10.0,
                    h_min=1e-8, floor=1e-12, rule="adam"):
    """Independent scalar reference of SPEC §2 Jump Adam (plain Python floats, one coordinate)."""
    x, x_prev, g_prev, m, v = x0, x0, 0.0, 0.0, 0.0
    xs, gates = [x], [0]
    sgn = lambda z: (z > 0) - (z < 0)  # noqa: E731
    for k in range(1, K + 1):
        g = g_fn(x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        a = -alpha * (m / (1 - b1 ** k)) / (math.sqrt(v / (1 - b2 ** k)) + eps)
        d = x - x_prev
        gate = False
        if abs(d) > floor:
            h = (g - g_prev) / d
            if h > h_min:
                j = -jump_lr * g / h
                ok_adam = sgn(j) == sgn(a) != 0
                ok_grad = sgn(g) == sgn(g_prev) != 0
                gate = {"adam": ok_adam, "gradient": ok_grad, "both": ok_adam and ok_grad}[rule]
        s = max(-trust * abs(a), min(trust * abs(a), j)) if gate else a
        x_prev, g_prev, x = x, g, x + s
        xs.append(x)
        gates.append(int(gate))
    return xs, gates


def small_mlp(seed: int, dtype=torch.float64):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)
    x = torch.randn(32, 3, dtype=dtype)
    y = torch.sin(x.sum(-1, keepdim=True))
    return net, x, y


def train(net, opt, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    return [p.detach().clone() for p in net.parameters()]


# ----------------------------------------------------------------------------- torch.optim.Adam
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_closed_gate_is_torch_adam_bitwise(dtype):
    """With the gate held shut (h_min huge) Jump Adam is torch.optim.Adam on a network, bit for bit."""
    net_a, x, y = small_mlp(0, dtype)
    net_b, _, _ = small_mlp(0, dtype)
    kw = dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-7)
    ref = train(net_a, torch.optim.Adam(net_a.parameters(), foreach=False, **kw), x, y, 40)
    opt = discrete.JumpAdam(net_b.parameters(), h_min=1e300, **kw)
    got = train(net_b, opt, x, y, 40)
    for a, b in zip(ref, got):
        assert torch.equal(a, b)
    assert opt.last_gate_fraction == 0.0 and opt.last_multiplier == 1.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_linear_loss_never_opens_the_gate(dtype):
    """A constant gradient has zero secant curvature: h = 0 <= h_min, so every step is Adam's."""
    w = torch.linspace(-2, 3, 7, dtype=dtype)
    p1 = torch.nn.Parameter(torch.randn(7, dtype=dtype))
    p2 = torch.nn.Parameter(p1.detach().clone())
    o1, o2 = torch.optim.Adam([p1], lr=1e-2), discrete.JumpAdam([p2], lr=1e-2)
    for _ in range(30):
        for p, o in ((p1, o1), (p2, o2)):
            p.grad = w.clone()
            o.step()
        assert torch.equal(p1, p2)
        assert o2.last_gate_fraction == 0.0 and o2.last_multiplier == 1.0


# ----------------------------------------------------------------------------- lanes == torch.optim
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("rule", [0, 1, 2])
def test_lanes_match_torch_optim_class_bitwise(dtype, rule):
    """The lane model (torch arithmetic) and the torch.optim class run the same update."""
    gen = torch.Generator().manual_seed(3 + rule)
    B, n = 9, 3
    d = torch.rand(B, n, generator=gen, dtype=torch.float64) * 4 + 0.2
    c = torch.randn(B, n, generator=gen, dtype=torch.float64)
    theta0 = (torch.randn(B, n, generator=gen, dtype=torch.float64) * 2).to(dtype)
    hyper = {"alpha": 10 ** (torch.rand(B, generator=gen, dtype=torch.float64) * 2 - 3),
             "beta1": torch.rand(B, generator=gen, dtype=torch.float64) * 0.4 + 0.5,
             "beta2": torch.rand(B, generator=gen, dtype=torch.float64) * 0.09 + 0.9,
             "eps": torch.full((B,), 1e-8, dtype=torch.float64),
             "trust_coefficient": torch.rand(B, generator=gen, dtype=torch.float64) * 20 + 1,
             "jump_lr": torch.rand(B, generator=gen, dtype=torch.float64) * 0.9 + 0.1,
             "sign_rule": rule}
    land = DiagQuad(d, c)
    traj = JumpAdamLanes(arithmetic="torch", **hyper).run(land, theta0, steps=60)
    assert bool((traj.status == Status.OK).all())
    assert float(traj.extras["gate"].mean()) > 0.2         # the gate does open
    for b in range(B):
        lane = {k: (float(v[b]) if isinstance(v, torch.Tensor) else v) for k, v in hyper.items()}
        ref, _ = run_torch_optim(discrete.JumpAdam, DiagQuad(d[b], c[b]), theta0[b], 60,
                                 **torch_kw(lane))
        assert torch.equal(traj.theta[b], ref)


@pytest.mark.parametrize("rule", ["adam", "gradient", "both"])
def test_spec_arithmetic_matches_plain_reference(rule):
    """The lane model (spec arithmetic) follows an independent scalar SPEC §2 implementation."""
    land = Rosen1D(1.5)
    g_fn = lambda x: -2 * (1 - x) + 4 * 1.5 * x * (x * x - 1)  # noqa: E731
    for x0, alpha in ((-1.2, 0.05), (2.0, 0.02), (0.3, 0.1)):
        xs, gates = plain_jump_adam(g_fn, x0, 80, alpha, rule=rule)
        traj = discrete.get("jumpadam")(alpha=alpha, sign_rule=rule).run(
            land, torch.tensor([[x0]], dtype=torch.float64), steps=80)
        got = traj.theta[0, :, 0]
        torch.testing.assert_close(got, torch.tensor(xs, dtype=torch.float64), rtol=0, atol=1e-12)
        assert traj.extras["gate"][0, :, 0].tolist() == [float(g) for g in gates]


def test_closed_gate_lanes_equal_adam_in_both_arithmetics():
    gen = torch.Generator().manual_seed(1)
    land = DiagQuad(torch.rand(5, 4, generator=gen, dtype=torch.float64) + 0.5,
                    torch.randn(5, 4, generator=gen, dtype=torch.float64))
    theta0 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    alpha = torch.tensor([1e-3, 3e-3, 1e-2, 3e-2, 0.1], dtype=torch.float64)
    for arith in ("spec", "torch"):
        adam = discrete.Adam(arithmetic=arith, alpha=alpha).run(land, theta0, steps=70)
        jump = JumpAdamLanes(arithmetic=arith, alpha=alpha, h_min=1e300).run(land, theta0, steps=70)
        assert torch.equal(adam.theta, jump.theta)
        assert torch.equal(adam.extras["m"], jump.extras["m"])
        assert torch.equal(adam.extras["v"], jump.extras["v"])
        assert float(jump.extras["gate"].abs().sum()) == 0.0
        assert bool((jump.extras["multiplier"] == 1).all())


# ----------------------------------------------------------------------------- moments, records
def test_moments_follow_the_gradients_through_jumps():
    """m, v are Adam's statistics of g_k = grad f(theta_{k-1}) on every step, jumps included."""
    land = Rosen1D(4.0)
    theta0 = torch.tensor([[-1.4], [0.2], [1.8]], dtype=torch.float64)
    b1, b2 = 0.85, 0.995
    traj = discrete.get("jumpadam")(alpha=0.03, beta1=b1, beta2=b2).run(land, theta0, steps=50)
    assert float(traj.extras["gate"].sum()) > 10
    m = torch.zeros(3, 1, dtype=torch.float64)
    v = torch.zeros_like(m)
    for k in range(1, 51):
        g = land.grad(traj.theta[:, k - 1])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        torch.testing.assert_close(traj.extras["m"][:, k], m, rtol=1e-14, atol=0)
        torch.testing.assert_close(traj.extras["v"][:, k], v, rtol=1e-14, atol=0)


def test_trajectory_records_gate_and_multiplier():
    land = DiagQuad(torch.tensor([[1.0, 3.0, 0.5]]), torch.tensor([[0.5, -1.0, 2.0]]))
    theta0 = torch.tensor([[2.0, 2.0, -1.0]], dtype=torch.float64)
    opt = discrete.get("jumpadam")(alpha=1e-2, trust_coefficient=4.0)
    traj = opt.run(land, theta0, steps=12, every=3)
    assert set(traj.extras) == {"m", "v", "gate", "multiplier"}
    assert traj.extras["gate"].shape == traj.theta.shape == (1, 5, 3)
    frac, mult = gate_fraction(traj), mean_multiplier(traj)
    assert frac.shape == mult.shape == (1, 5)
    assert frac[0, 0] == 0 and mult[0, 0] == 1                 # k = 0: nothing happened yet
    assert float(frac[0, 1]) == 1.0                            # k = 3: every coordinate jumps
    assert 1.0 < float(mult[0, 1]) <= 4.0 * (1 + 1e-15)       # ... clamped to 4 |a_k| at most
    assert get_model("jumpadam").records == ("m", "v", "gate", "multiplier")
    # the gate fraction equals what the torch.optim class reports at the same step
    _, o = run_torch_optim(discrete.JumpAdam, land, theta0[0], 12, lr=1e-2, trust_coefficient=4.0)
    assert o.last_gate_fraction == pytest.approx(float(frac[0, -1]))
    assert o.last_multiplier == pytest.approx(float(mult[0, -1]), rel=1e-12)


# ----------------------------------------------------------------------------- gate, clamp, rules
def T(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def gate_kw(**over):
    kw = dict(jump_lr=1.0, trust=10.0, h_min=1e-8, motion_floor=1e-12, check_adam=True,
              check_grad=False)
    kw.update(over)
    return kw


def test_gate_conditions_and_clamp():
    """Each gate condition falls back to the Adam step; an open gate is clamped to T |a|."""
    a = T(-0.01, -0.01, -0.01, -0.01, -0.01, -0.01, 0.01)
    g = T(2.0, 2.0, 2.0, 2.0, 2.0, 2.0, -2.0)
    g_prev = T(1.0, 3.0, 2.0, 1.0, 1.0, 1.0, -1.0)
    motion = T(1e-13, 1.0, 1.0, -1.0, 1.0, 50.0, -1.0)
    # 0: motion below the floor; 1: h = -1 < 0; 2: h = 0 (flat); 3: h = -1 (motion reversed);
    # 4: h = 1, j = -2: |j| > 10 |a| -> clamped to -0.1; 5: h = 0.02, j = -100 -> clamped;
    # 6: h = 1, j = +2 -> clamped to +0.1
    s, gate = gated_step(a, g, g_prev, motion, **gate_kw())
    assert gate.tolist() == [False, False, False, False, True, True, True]
    assert s.tolist() == [-0.01, -0.01, -0.01, -0.01, -0.1, -0.1, 0.1]
    # an unclamped jump: trust large, j = -g/h exactly
    s, gate = gated_step(a, g, g_prev, motion, **gate_kw(trust=1e6))
    assert s[4].item() == -2.0 and s[6].item() == 2.0 and s[5].item() == pytest.approx(-100.0)
    # jump_lr scales the jump
    s, _ = gated_step(a, g, g_prev, motion, **gate_kw(trust=1e6, jump_lr=0.25))
    assert s[4].item() == -0.5
    # h_min: h = 1 is not above h_min = 1 -> Adam step
    s, gate = gated_step(a, g, g_prev, motion, **gate_kw(h_min=1.0))
    assert gate.tolist() == [False, False, False, False, False, False, False]
    assert torch.equal(s, a)
    # sign mismatch: the jump points against the Adam step -> Adam step
    s, gate = gated_step(-a, g, g_prev, motion, **gate_kw())
    assert not bool(gate.any()) and torch.equal(s, -a)


def test_multiplier_definition():
    a = T(0.0, 0.0, 0.01, -0.02, 0.01)
    s = T(0.0, 0.0, 0.01, -0.2, 0.05)
    assert step_multiplier(s, a).tolist() == [1.0, 1.0, 1.0, pytest.approx(10.0), pytest.approx(5.0)]


def test_sign_rules():
    """"adam": the jump agrees with the Adam step; "gradient": g kept its sign; "both": both."""
    a = T(-0.01, -0.01, 0.01, 0.01)
    g = T(2.0, 2.0, 2.0, 2.0)
    motion = T(1.0, 1.0, 1.0, 1.0)
    # h = 1 everywhere (j = -2 < 0): coordinate 0 both rules hold; 1: g changed sign (g_prev = -...
    # would give h = 4: jump -0.5, same as Adam); 2: Adam step disagrees, g kept sign; 3: neither
    g_prev = T(1.0, -2.0, 1.0, -2.0)
    expect = {0: [True, True, False, False], 1: [True, False, True, False],
              2: [True, False, False, False]}
    for code, want in expect.items():
        check_adam, check_grad = sign_rule_flags(code)
        _, gate = gated_step(a, g, g_prev, motion, **gate_kw(check_adam=check_adam,
                                                            check_grad=check_grad))
        assert gate.tolist() == want, code
    # per-lane codes as (B, 1) tensors give the same gates, one rule per lane
    codes = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    check_adam, check_grad = sign_rule_flags(codes)
    _, gate = gated_step(a.expand(3, 4), g.expand(3, 4), g_prev.expand(3, 4), motion.expand(3, 4),
                         **gate_kw(check_adam=check_adam, check_grad=check_grad))
    assert gate.tolist() == [expect[0], expect[1], expect[2]]


def test_sign_rules_through_both_apis():
    land = Rosen1D(4.0)
    theta0 = torch.tensor([[-1.3], [0.4], [1.9], [-0.2]], dtype=torch.float64)
    per_lane = discrete.get("jumpadam")(arithmetic="torch", alpha=0.05,
                                        sign_rule=["adam", "gradient", "both", "adam"])
    traj = per_lane.run(land, theta0, steps=40)
    for b, rule in enumerate(["adam", "gradient", "both", "adam"]):
        one = discrete.get("jumpadam")(arithmetic="torch", alpha=0.05, sign_rule=rule).run(
            land, theta0[b:b + 1], steps=40)
        assert torch.equal(traj.theta[b], one.theta[0])
        ref, _ = run_torch_optim(discrete.JumpAdam, land, theta0[b], 40, lr=0.05, sign_rule=rule)
        assert torch.equal(traj.theta[b], ref)
    # the rules do gate differently on this landscape
    runs = {rule: discrete.get("jumpadam")(alpha=0.05, sign_rule=rule).run(land, theta0, steps=40)
            for rule in ("adam", "gradient", "both")}
    opened = {rule: r.extras["gate"].sum().item() for rule, r in runs.items()}
    assert opened["gradient"] != opened["adam"] and opened["both"] <= min(opened.values())
    assert discrete.JumpAdam([torch.nn.Parameter(torch.zeros(1))], sign_rule=2) \
        .param_groups[0]["sign_rule"] == "both"


# ----------------------------------------------------------------------------- degenerate inputs
def test_no_nan_when_motion_or_curvature_vanishes():
    # direct: zero gradient, repeated point, no previous gradient, subnormal curvature, h_min = 0
    tiny = 5e-324
    a = T(0.0, -1e-3, -1e-3, -1e-3, -1e-3)
    g = T(0.0, 1.0, 1.0, 1.0, 1.0 + 2e-16)
    g_prev = T(0.0, 0.0, 1.0, 1.0, 1.0)
    motion = T(0.0, 0.0, 1.0, tiny, 1e300)
    for h_min in (0.0, 1e-8):
        for floor in (0.0, 1e-12):
            s, _ = gated_step(a, g, g_prev, motion, **gate_kw(h_min=h_min, motion_floor=floor))
            assert bool(torch.isfinite(s).all()) and bool(torch.isfinite(step_multiplier(s, a)).all())
            assert bool((s.abs() <= 10 * a.abs()).all())
    h, measured = secant_curvature(g, g_prev, motion, 0.0)
    assert bool(torch.isfinite(h).all()) and measured.tolist() == [False, False, True, True, True]


def test_no_nan_through_the_optimizers():
    # zero gradient from the start: no motion, no jump, no NaN
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = discrete.JumpAdam([p], lr=0.1, h_min=0.0, motion_floor=0.0)
    assert opt.last_gate_fraction is None and opt.last_multiplier is None
    for _ in range(5):
        p.grad = torch.zeros_like(p)
        opt.step()
        assert torch.equal(p.detach(), torch.ones(4, dtype=torch.float64))
        assert opt.last_gate_fraction == 0.0 and opt.last_multiplier == 1.0
    # the first step never jumps (no previous gradient): it is Adam's first step, |step| = lr
    p = torch.nn.Parameter(torch.tensor([3.0, -2.0], dtype=torch.float64))
    opt = discrete.JumpAdam([p], lr=0.1, h_min=0.0, motion_floor=0.0)
    p.grad = torch.tensor([1.0, -4.0], dtype=torch.float64)
    opt.step()
    assert opt.last_gate_fraction == 0.0
    torch.testing.assert_close(p.detach(), torch.tensor([2.9, -1.9], dtype=torch.float64))
    # a repeated point (the parameter put back where it was): zero motion, Adam step, finite
    state = opt.state[p]
    with torch.no_grad():
        p.copy_(state["prev_param"])
        state["prev_param"].copy_(p)
    p.grad = torch.tensor([1.0, -4.0], dtype=torch.float64)
    opt.step()
    assert opt.last_gate_fraction == 0.0 and bool(torch.isfinite(p).all())
    # the lane model on a flat landscape (zero gradient everywhere) and on a minimizer
    flat = DiagQuad(torch.zeros(1, 2), torch.zeros(1, 2))
    traj = discrete.get("jumpadam")(alpha=0.1, h_min=0.0, motion_floor=0.0).run(
        flat, torch.tensor([[1.0, -1.0]], dtype=torch.float64), steps=10)
    assert bool(torch.isfinite(traj.theta).all()) and bool((traj.theta == traj.theta[:, :1]).all())
    at_min = discrete.get("jumpadam")(alpha=0.1).run(
        DiagQuad(torch.ones(1, 2), torch.zeros(1, 2)), torch.zeros(1, 2, dtype=torch.float64),
        steps=10)
    assert bool((at_min.theta == 0).all()) and bool(torch.isfinite(at_min.extras["multiplier"]).all())


# ----------------------------------------------------------------------------- identities (b)-(d)
def test_open_gate_lands_on_the_quadratic_minimizer():
    """(b) On a separable quadratic the first secant measurement (step 2) is exact: the open gate
    puts every coordinate on the minimizer, to rounding (lanes and torch.optim)."""
    d = torch.tensor([[0.5, 2.0, 7.0, 30.0]], dtype=torch.float64)
    c = torch.tensor([[1.0, -2.0, 0.25, 3.0]], dtype=torch.float64)
    land = DiagQuad(d, c)
    theta0 = torch.tensor([[-1.0, 1.0, 2.0, 2.5]], dtype=torch.float64)
    traj = discrete.get("jumpadam")(alpha=1e-2, trust_coefficient=BIG_TRUST).run(land, theta0, steps=2)
    assert traj.extras["gate"][0, 2].tolist() == [1.0] * 4
    # rounding: the ulps of g_1, g_2 relative to their difference, times the jump length
    g1, g2 = land.grad(traj.theta[:, 0])[0], land.grad(traj.theta[:, 1])[0]
    eps = torch.finfo(torch.float64).eps
    tol = 4 * eps * ((g1.abs() + g2.abs()) / (g2 - g1).abs() * (traj.theta[0, 1] - c[0]).abs()
                     + c[0].abs())
    assert bool(((traj.theta[0, 2] - c[0]).abs() <= tol).all()), (traj.theta[0, 2] - c[0], tol)
    ref, opt = run_torch_optim(discrete.JumpAdam, DiagQuad(d[0], c[0]), theta0[0], 2, lr=1e-2,
                               trust_coefficient=BIG_TRUST)
    assert opt.last_gate_fraction == 1.0
    assert bool(((ref[2] - c[0]).abs() <= tol).all())


def test_one_dim_quadratic_solved_within_three_steps():
    """(c) Public API: a 1-D quadratic reaches its minimizer to 1e-12 within 3 steps."""
    for curv, center, x0 in ((1.0, 3.0, 0.0), (40.0, -0.7, 1.3), (0.02, 5.0, 4.0)):
        p = torch.nn.Parameter(torch.tensor([x0], dtype=torch.float64))
        opt = discrete.JumpAdam([p], lr=1e-2, jump_lr=1.0, trust_coefficient=BIG_TRUST)
        errors = []
        for _ in range(3):
            opt.zero_grad()
            (curv * (p - center) ** 2).sum().backward()
            opt.step()
            errors.append(abs(p.item() - center))
        assert min(errors) < 1e-12, errors


def steps_to_stationary(model, steps=5000, **hyper):
    land = landscapes.Sextic()
    traj = discrete.get(model)(alpha=1e-2, **hyper).run(
        land, torch.tensor([[1.0]], dtype=torch.float64), steps=steps)
    small = (land.grad(traj.theta[0]).abs() < 1e-6).flatten().nonzero()
    return int(small[0]) if len(small) else None, traj


@pytest.mark.parametrize("rule", ["adam", "gradient", "both"])
def test_sextic_fewer_steps_than_adam(rule):
    """(d) On the sextic from x0 = 1 at lr = 1e-2, Jump Adam reaches |g| < 1e-6 in fewer steps."""
    k_adam, _ = steps_to_stationary("adam")
    k_jump, traj = steps_to_stationary("jumpadam", sign_rule=rule)
    assert k_adam is not None and k_jump is not None
    assert k_jump < k_adam, (k_jump, k_adam)
    local_min = min(p.x for p in landscapes.sextic_critical_points() if p.kind == "min" and p.x > -1)
    assert traj.theta[0, k_jump, 0].item() == pytest.approx(local_min, abs=1e-6)


# ----------------------------------------------------------------------------- torch.optim API
def test_state_dict_round_trip_is_bit_identical():
    net_full, x, y = small_mlp(4)
    opt_full = discrete.JumpAdam(net_full.parameters(), lr=2e-2, trust_coefficient=3.0)
    want = train(net_full, opt_full, x, y, 30)

    net_a, _, _ = small_mlp(4)
    opt_a = discrete.JumpAdam(net_a.parameters(), lr=2e-2, trust_coefficient=3.0)
    train(net_a, opt_a, x, y, 12)
    assert opt_a.last_gate_fraction > 0               # jumps happen before the checkpoint
    buf = io.BytesIO()
    torch.save({"model": net_a.state_dict(), "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    net_b, _, _ = small_mlp(99)                        # different initial weights, overwritten
    net_b.load_state_dict(ckpt["model"])
    opt_b = discrete.JumpAdam(net_b.parameters())      # hyper-parameters come from the checkpoint
    opt_b.load_state_dict(ckpt["opt"])
    got = train(net_b, opt_b, x, y, 18)
    for a, b in zip(want, got):
        assert torch.equal(a, b)
    assert set(opt_b.state[next(net_b.parameters())]) == {"step", "exp_avg", "exp_avg_sq",
                                                          "prev_param", "prev_grad"}


def test_param_groups_with_different_hyper_parameters():
    """Each group uses its own hyper-parameters: equal to one optimizer per group, bit for bit."""
    groups = dict(
        a=dict(lr=1e-2, trust_coefficient=2.0, sign_rule="adam"),
        b=dict(lr=5e-2, betas=(0.7, 0.99), jump_lr=0.5, trust_coefficient=50.0, sign_rule="both"),
    )
    net, x, y = small_mlp(7)
    net2, _, _ = small_mlp(7)
    l0, l1 = net[0], net[2]
    opt = discrete.JumpAdam([{"params": l0.parameters(), **groups["a"]},
                             {"params": l1.parameters(), **groups["b"]}], h_min=1e-6)
    opt_sep = [discrete.JumpAdam(net2[0].parameters(), h_min=1e-6, **groups["a"]),
               discrete.JumpAdam(net2[2].parameters(), h_min=1e-6, **groups["b"])]
    opened = 0.0
    for _ in range(25):
        opt.zero_grad()
        for o in opt_sep:
            o.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        torch.nn.functional.mse_loss(net2(x), y).backward()
        opt.step()
        for o in opt_sep:
            o.step()
        opened += opt.last_gate_fraction
    assert opened > 0
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)
    stats = opt.group_stats()
    assert [s["numel"] for s in stats] == [3 * 8 + 8, 8 + 1]
    for s, o in zip(stats, opt_sep):
        assert s["gate_fraction"] == pytest.approx(o.last_gate_fraction)
        assert s["multiplier"] == pytest.approx(o.last_multiplier)
    assert opt.param_groups[1]["h_min"] == 1e-6 and opt.param_groups[1]["jump_lr"] == 0.5


def test_closure_and_missing_gradients():
    p = torch.nn.Parameter(torch.tensor([2.0], dtype=torch.float64))
    q = torch.nn.Parameter(torch.tensor([5.0], dtype=torch.float64))    # never gets a gradient
    opt = discrete.JumpAdam([p, q], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ((p - 1) ** 2).sum()
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(6)]
    assert losses[0] == 1.0 and losses[-1] < losses[0]
    assert q.item() == 5.0 and q not in opt.state
    assert opt.group_stats()[0]["numel"] == 1


BAD_TORCH = [
    dict(lr=0.0), dict(lr=-1e-3), dict(lr=float("nan")), dict(betas=(1.0, 0.999)),
    dict(betas=(0.9, -0.1)), dict(betas=(0.9,)), dict(eps=-1e-8), dict(jump_lr=0.0),
    dict(jump_lr=float("inf")), dict(trust_coefficient=-1.0), dict(trust_coefficient=0.0),
    dict(h_min=-1e-3), dict(motion_floor=-1.0), dict(motion_floor=float("nan")),
    dict(sign_rule="newton"), dict(sign_rule=3),
]


@pytest.mark.parametrize("bad", BAD_TORCH, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_bad_hyper_parameters_raise_value_error(bad):
    key = next(iter(bad))
    name = "beta" if key == "betas" else key
    with pytest.raises(ValueError, match=name):
        discrete.JumpAdam([torch.nn.Parameter(torch.zeros(2))], **bad)
    # a param group overriding the value is checked too
    opt = discrete.JumpAdam([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match=name):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], **bad})
    assert len(opt.param_groups) == 1                  # the bad group was not added


@pytest.mark.parametrize("key,bad", [("alpha", 0.0), ("jump_lr", -1.0), ("trust_coefficient", 0.0),
                                     ("h_min", -1.0), ("motion_floor", float("inf")),
                                     ("sign_rule", 3), ("sign_rule", "newton"), ("beta1", 1.0)])
def test_lane_model_rejects_bad_values(key, bad):
    kw = {"alpha": 1e-2, key: bad}
    with pytest.raises(ConfigError, match=key):
        discrete.get("jumpadam")(**kw)
    with pytest.raises(ConfigError, match=key):
        get_model("jumpadam").lane_hyper({**kw, "theta0": [0.0]})


# ----------------------------------------------------------------------------- registry, runner, CLI
def test_registered_with_adams_declarations():
    cls = discrete.get("jumpadam")
    assert cls is JumpAdamLanes and "jumpadam" in discrete.MODELS
    assert cls.hyper[:4] == (ALPHA, BETA1, BETA2, EPS) == discrete.Adam.hyper
    assert cls.hyperparameters == {"alpha": None, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                   "jump_lr": 1.0, "trust_coefficient": 10.0, "h_min": 1e-8,
                                   "motion_floor": 1e-12, "sign_rule": 0.0}
    assert cls.compiled_code is None


def test_run_lanes_falls_back_to_the_torch_engine():
    lanes = [{"theta0": [1.0], "alpha": 1e-2}, {"theta0": [1.0], "alpha": 1e-2, "sign_rule": 2}]
    traj = run_lanes("jumpadam", "sextic", lanes, [30, 30])
    assert traj.meta["engine"] == "torch"
    assert traj.params["sign_rule"] == [0.0, 2.0]
    assert set(traj.extras) == {"m", "v", "gate", "multiplier"}


def test_cli_run(capsys):
    code = main(["run", "--model", "jumpadam", "--landscape", "sextic", "--theta0", "1",
                 "--alpha", "0.01", "--steps", "30", "--sign-rule", "0", "1", "--trust-coefficient",
                 "5", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lanes = json.loads(out)["lanes"]
    assert [ln["sign_rule"] for ln in lanes] == [0.0, 1.0]
    for ln in lanes:
        assert ln["status"] == "ok" and ln["trust_coefficient"] == 5.0
        assert len(ln["gate"]) == len(ln["multiplier"]) == len(ln["t"]) == 31
        assert max(max(row) for row in ln["multiplier"]) <= 5.0 * (1 + 1e-15)    # T, to rounding
    code = main(["run", "--model", "jumpadam", "--landscape", "sextic", "--theta0", "1",
                 "--alpha", "0.01", "--steps", "3", "--sign-rule", "7"])
    _, err = capsys.readouterr()
    assert code == 2 and "sign_rule" in err


# ----------------------------------------------------------------------------- dtypes, devices
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype(device, dtype):
    """Lane model and torch.optim class on the device agree with the CPU run."""
    land = DiagQuad(torch.tensor([[1.0, 4.0, 0.3]]), torch.tensor([[0.5, -1.0, 2.0]]))
    theta0 = torch.tensor([[2.0, 2.0, -1.0]], dtype=dtype)
    cpu = discrete.get("jumpadam")(alpha=1e-2).run(land, theta0, steps=40)
    dev = discrete.get("jumpadam")(alpha=torch.tensor([1e-2], dtype=torch.float64, device=device)).run(
        land, theta0.to(device), steps=40)
    assert dev.theta.device.type == device.type and dev.theta.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dev.theta.cpu(), cpu.theta, **tol)
    ref, _ = run_torch_optim(discrete.JumpAdam, land, theta0[0], 40, lr=1e-2)
    p = torch.nn.Parameter(theta0[0].to(device).unsqueeze(0))
    opt = discrete.JumpAdam([p], lr=1e-2)
    for _ in range(40):
        p.grad = land.grad(p.detach())
        opt.step()
    assert p.dtype == dtype and bool(torch.isfinite(p).all())
    torch.testing.assert_close(p.detach()[0].cpu(), ref[-1], **tol)
    assert 0.0 <= opt.last_gate_fraction <= 1.0
