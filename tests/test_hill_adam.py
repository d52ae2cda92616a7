"""Hill-ADAM (SPEC §2; seeds/hill_adam.md; the authors' ``2manikan/Hill-ADAM``): the torch.optim
class ``discrete.HillAdam`` and the lane-batched model ``hilladam``, which share one decision
function (:func:`discrete.hill_adam.decide`) and torch.optim.Adam's arithmetic.

Independent checks: scripted loss/gradient sequences with the expected event, reset, direction and
best-state bookkeeping written out by hand; plain-Python scalar transcriptions of both variants'
rules (the original's in the authors' own bookkeeping: ``prev_loss = None``, ``not_here``);
``torch.optim.Adam`` where no rule can fire; the ``cubic`` landscape against autograd.
"""
from __future__ import annotations

import io
import json
import math

import pytest
import torch

import discrete
import landscapes
from adamflow.cli import main
from analysis import hill_study
from core.errors import ConfigError
from core.method import ALPHA, BETA1, BETA2, DELTA, EPS, GAMMA, GAMMA_LOW
from discrete.hill_adam import (
    EVENTS,
    VARIANT,
    HillAdam,
    HillAdamLanes,
    best_state,
    march_direction,
    variant_code,
)
from landscapes.base import Landscape
from runner.experiment import run_lanes
from runner.registry import get_model

F64 = torch.float64
INF = math.inf


# ----------------------------------------------------------------------------- references
def sextic(x):
    return x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x


def dsextic(x):
    return 6 * x ** 5 + 5 * x ** 4 + 9 * x ** 2 + 8 * x + 1


def cubic(x):
    return x ** 3 - 3 * x


def dcubic(x):
    return 3 * x * x - 3


def ref_original(fn, gn, x0, K, lr, b1=0.9, b2=0.999, eps=1e-8, delta=1e-4, gamma=200.0,
                 gamma_low=-1e4):
    """The authors' bookkeeping on one scalar, in plain Python: the loss is forgotten (None) when a
    test fires, ``not_here`` re-arms the reset of a forced excursion. Returns (x_k, events, best,
    best_x)."""
    x, m, v, step = x0, 0.0, 0.0, 0
    prev, direction, not_here = None, 0, 1          # direction 0: minimise, 1: maximise
    least, best_x = INF, x0
    xs, events = [x], [0]
    for _ in range(K):
        new, g = fn(x), gn(x)
        changed = event = 0
        if prev is not None and abs(new - prev) < delta:
            direction, changed, event, new = 1 - direction, 1, 1, None
        if new is not None:
            if new > gamma:
                direction, event = 0, 3
                if not_here == 1:
                    changed = 1
                new, not_here = None, 0
            else:
                not_here = 1
        if new is not None:
            if new < gamma_low:
                direction, event = 1, 4
                if not_here == 1:
                    changed = 1
                new, not_here = None, 0
            else:
                not_here = 1
        if changed:
            m = v = 0.0
            step = 0
        step += 1
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        q = lr * (m / (1 - b1 ** step)) / (math.sqrt(v / (1 - b2 ** step)) + eps)
        x_before = x
        x = x - q if direction == 0 else x + q
        prev = new
        if new is not None and least > new:
            least, best_x = new, x_before
        xs.append(x)
        events.append(event)
    return xs, events, least, best_x


def ref_robust(fn, gn, x0, K, lr, b1=0.9, b2=0.999, eps=1e-8, delta=1e-4, gamma=200.0,
               gamma_low=-1e4):
    """The robust rules (discrete/hill_adam.py docstring) on one scalar, in plain Python."""
    x, m, v, step = x0, 0.0, 0.0, 0
    marching, d, last, bounced, armed = False, 0.0, 0.0, False, True
    prev = prev_diff = None
    best, best_x = INF, x0
    xs, events = [x], [0]
    sgn = lambda z: float((z > 0) - (z < 0))  # noqa: E731
    for _ in range(K):
        L, g = fn(x), gn(x)
        thr = delta * max(1.0, abs(L))
        diff = None if prev is None else abs(L - prev)
        event, reset, enter, flip = 0, False, False, False
        was_marching = marching
        if best < INF and L > best + gamma * max(1.0, abs(best)):
            event, reset = 3, armed
            if marching:
                bounced = True
            marching, armed = False, False
        elif L < gamma_low:
            event, reset, enter = 4, armed, armed
            marching, armed = True, False
        else:
            armed = True
            if not marching and diff is not None and prev_diff is not None and diff < thr \
                    and diff <= prev_diff and lr * abs(g) < thr:
                event, reset, enter, flip = 1, True, True, bounced
                marching, bounced = True, False
            elif marching and diff is not None and L <= prev:
                event, reset, marching = 2, True, False
        changed = reset or marching != was_marching
        prev_diff = None if changed else diff
        prev = L
        if L < best:
            best, best_x = L, x
        if reset:
            m = v = 0.0
            step = 0
        if enter:
            d = -d if flip else (sgn(g) if g != 0 else (-last if last != 0 else 1.0))
        if marching:
            s = lr * d
        else:
            step += 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * (g * g)
            s = -(lr * (m / (1 - b1 ** step)) / (math.sqrt(v / (1 - b2 ** step)) + eps))
        if s != 0:
            last = sgn(s)
        x = x + s
        xs.append(x)
        events.append(event)
    return xs, events, best, best_x


class Scripted(Landscape):
    """One lane, one coordinate: step k sees the scripted (L_k, g_k) whatever theta is."""

    name = "test_scripted"
    dim = 1

    def __init__(self, losses, grads):
        self.losses, self.grads, self.k = list(losses), list(grads), 0

    def value_and_grad(self, theta):
        L, g = self.losses[self.k], self.grads[self.k]
        self.k += 1
        return (torch.full((theta.shape[0],), L, dtype=theta.dtype),
                torch.full_like(theta, g))

    def value(self, theta):
        return torch.full((theta.shape[0],), math.nan, dtype=theta.dtype)

    def grad(self, theta):
        raise AssertionError("only value_and_grad is scripted")

    def spec(self):
        return "test_scripted"


def scripted_optim(losses, grads, **kw):
    """HillAdam on one scalar parameter driven by the script: per step the parameter before the
    step, the step counter, the direction, the event and the best loss after it."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=F64))
    opt = HillAdam([p], **kw)
    it = iter(zip(losses, grads))
    rows = []

    def closure():
        L, g = next(it)
        opt.zero_grad()
        p.grad = torch.full_like(p, g)
        return torch.tensor(L, dtype=F64)

    for _ in losses:
        before = float(p.detach())
        opt.step(closure)
        rows.append({"p": before, "step": int(opt.state[p]["step"]), "sigma": opt.direction,
                     "event": opt.last_event, "best": opt.best_loss,
                     "best_p": None if opt.best_params() is None else float(opt.best_params()[0])})
    return rows, float(p.detach()), opt


def plain_adam_with_resets(grads, resets, sigmas, lr, b1=0.9, b2=0.999, eps=1e-8, march=None):
    """Parameters after each step of Adam (SPEC order) with the given resets and directions; where
    ``march[k]`` is a number the step is lr * march[k] instead (m, v, counter left alone)."""
    x, m, v, c = 0.0, 0.0, 0.0, 0
    out = []
    for k, (g, r, s) in enumerate(zip(grads, resets, sigmas)):
        if r:
            m = v = 0.0
            c = 0
        if march is not None and march[k] is not None:
            x += lr * march[k]
        else:
            c += 1
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * (g * g)
            x += -s * lr * (m / (1 - b1 ** c)) / (math.sqrt(v / (1 - b2 ** c)) + eps)
        out.append(x)
    return out


# ----------------------------------------------------------------------------- original semantics
#: L_k, g_k and what the authors' code does with them (delta 1e-4, gamma 200, gamma_low -1e4):
#: (event, reset, direction after the step, best loss after the step)
ORIGINAL_SCRIPT = [
    (5.0, 0.5, "none", 0, +1, 5.0),
    (4.0, 0.6, "none", 0, +1, 4.0),
    (3.99995, 0.7, "plateau", 1, -1, 4.0),        # toggles, resets, forgets L_3 (lower than 4)
    (3.99994, 0.8, "none", 0, -1, 3.99994),       # plateau test skipped (L_3 forgotten)
    (3.99993, 0.9, "plateau", 1, +1, 3.99994),
    (300.0, 1.0, "dead end", 1, +1, 3.99994),     # first step of a dead end: reset
    (300.00001, 1.1, "dead end", 0, +1, 3.99994),  # still above gamma: no reset, no plateau test
    (200.0, 1.2, "none", 0, +1, 3.99994),         # not above gamma: re-armed
    (200.00005, 1.3, "plateau", 1, -1, 3.99994),  # the plateau test wins: no dead end checked
    (200.5, 1.4, "dead end", 1, +1, 3.99994),     # armed since step 8 -> reset
    (-2e4, 1.5, "floor", 1, -1, 3.99994),         # floor after a dead end: reset (re-armed)
    (-2e4 - 1e-5, 1.6, "floor", 1, -1, 3.99994),  # every floor step resets (authors' code)
    (-2.1e4, 1.7, "floor", 1, -1, 3.99994),
    (1.0, 1.8, "none", 0, -1, 1.0),
    (1.00001, 1.9, "plateau", 1, +1, 1.0),
]


def test_original_bookkeeping_on_a_scripted_sequence():
    losses = [r[0] for r in ORIGINAL_SCRIPT]
    grads = [r[1] for r in ORIGINAL_SCRIPT]
    rows, final, opt = scripted_optim(losses, grads, lr=0.1, variant="original")
    assert [r["event"] for r in rows] == [r[2] for r in ORIGINAL_SCRIPT]
    assert [r["sigma"] for r in rows] == [r[4] for r in ORIGINAL_SCRIPT]
    assert [r["best"] for r in rows] == [r[5] for r in ORIGINAL_SCRIPT]
    # the step counter restarts at 1 after each reset (bias correction restarts)
    counter, want = 0, []
    for r in ORIGINAL_SCRIPT:
        counter = 1 if r[3] else counter + 1
        want.append(counter)
    assert [r["step"] for r in rows] == want
    # best state = the parameters at which the best loss was evaluated (before that step's update)
    assert rows[1]["best_p"] == rows[1]["p"] == rows[2]["best_p"]
    assert rows[3]["best_p"] == rows[3]["p"] and rows[13]["best_p"] == rows[13]["p"]
    # the direction set by a test applies to the same step's update; Adam with these resets
    xs = plain_adam_with_resets(grads, [r[3] for r in ORIGINAL_SCRIPT],
                                [r[4] for r in ORIGINAL_SCRIPT], 0.1)
    assert [r["p"] for r in rows[1:]] + [final] == pytest.approx(xs, rel=1e-14, abs=1e-15)
    # g > 0 throughout: the toggle of step 3 ascends on that very step, the one of step 15 descends
    assert rows[3]["p"] > rows[2]["p"] and final < rows[-1]["p"]
    assert opt.resets == sum(r[3] for r in ORIGINAL_SCRIPT)
    assert opt.events == {"plateau": 4, "crest": 0, "dead end": 3, "floor": 3}


def test_original_lanes_on_the_same_script():
    losses = [r[0] for r in ORIGINAL_SCRIPT]
    grads = [r[1] for r in ORIGINAL_SCRIPT]
    traj = HillAdamLanes(arithmetic="torch", alpha=0.1).run(
        Scripted(losses, grads), torch.zeros(1, 1, dtype=F64), steps=len(losses))
    names = [EVENTS[int(e)] for e in traj.extras["event"][0, 1:, 0].tolist()]
    assert names == [r[2] for r in ORIGINAL_SCRIPT]
    assert traj.extras["reset"][0, 1:, 0].tolist() == [float(r[3]) for r in ORIGINAL_SCRIPT]
    assert traj.extras["sigma"][0, 1:, 0].tolist() == [float(r[4]) for r in ORIGINAL_SCRIPT]
    assert traj.extras["best_f"][0, 1:, 0].tolist() == [r[5] for r in ORIGINAL_SCRIPT]
    rows, final, _ = scripted_optim(losses, grads, lr=0.1, variant="original")
    assert traj.theta[0, :, 0].tolist() == [r["p"] for r in rows] + [final]     # bitwise
    best_f, best_theta = best_state(traj)
    assert float(best_f[0]) == 1.0 and float(best_theta[0, 0]) == rows[13]["p"]


# ----------------------------------------------------------------------------- robust semantics
#: delta 1e-4, gamma 10 (relative), lr 0.1: (L_k, g_k, event, reset, direction after, march step)
ROBUST_SCRIPT = [
    (5.0, 1.0, "none", 0, +1, None),
    (4.0, 1.0, "none", 0, +1, None),
    (3.99995, 1.0, "none", 0, +1, None),      # |dL| < thr, slowing, but 0.1 |g| > thr: no plateau
    (3.99992, 1e-4, "plateau", 1, -1, +1.0),  # stationary: march up, d = sign(g); recorded
    (4.5, 2.0, "none", 0, -1, +1.0),          # the march keeps d and a constant step
    (5.0, -3.0, "none", 0, -1, +1.0),
    (4.9, -3.0, "crest", 1, +1, None),        # the loss fell: crest behind, descend (fresh Adam)
    (3.0, 1.0, "none", 0, +1, None),
    (2.99999, 1e-5, "plateau", 1, -1, +1.0),
    (20.0, 1.0, "none", 0, -1, +1.0),
    (40.0, 1.0, "dead end", 1, +1, None),     # 40 > best + 10 max(1, |best|) = 32.99999: bounce
    (41.0, 1.0, "dead end", 0, +1, None),     # still a dead end: no reset
    (10.0, 1.0, "none", 0, +1, None),
    (2.5, 1.0, "none", 0, +1, None),
    (2.49999, 1e-5, "plateau", 1, -1, -1.0),  # after the bounce the march goes the other way
    (-2e4, -1.0, "floor", 0, -1, -1.0),       # floor during a march: first step (armed) ...
    (-2e4 - 1.0, -1.0, "floor", 0, -1, -1.0),
]


def test_robust_rules_on_a_scripted_sequence():
    losses = [r[0] for r in ROBUST_SCRIPT]
    grads = [r[1] for r in ROBUST_SCRIPT]
    rows, final, opt = scripted_optim(losses, grads, lr=0.1, gamma=10.0, variant="robust")
    events = [r["event"] for r in rows]
    assert events == [r[2] for r in ROBUST_SCRIPT]
    assert [r["sigma"] for r in rows] == [r[4] for r in ROBUST_SCRIPT]
    # every loss is recorded, including those of steps on which a rule fired
    best = INF
    for r, row in zip(ROBUST_SCRIPT, rows):
        best = min(best, r[0])
        assert row["best"] == best
    assert rows[3]["best_p"] == rows[3]["p"] and rows[-1]["best_p"] == rows[-1]["p"]
    # the floor on step 16 entered during a march: its first step resets (armed), the next not
    resets = [bool(r[3]) for r in ROBUST_SCRIPT]
    resets[15] = True
    assert opt.resets == sum(resets)
    march = [r[5] for r in ROBUST_SCRIPT]
    xs = plain_adam_with_resets(grads, resets, [r[4] for r in ROBUST_SCRIPT], 0.1, march=march)
    assert [r["p"] for r in rows[1:]] + [final] == pytest.approx(xs, rel=1e-14, abs=1e-15)
    for k in (4, 5, 15, 16):                                          # march steps: lr * d exactly
        nxt = rows[k + 1]["p"] if k + 1 < len(rows) else final
        assert nxt - rows[k]["p"] == pytest.approx(0.1 * march[k], rel=1e-12)


def test_robust_lanes_on_the_same_script():
    losses = [r[0] for r in ROBUST_SCRIPT]
    grads = [r[1] for r in ROBUST_SCRIPT]
    traj = HillAdamLanes(arithmetic="torch", alpha=0.1, gamma=10.0, variant="robust").run(
        Scripted(losses, grads), torch.zeros(1, 1, dtype=F64), steps=len(losses))
    names = [EVENTS[int(e)] for e in traj.extras["event"][0, 1:, 0].tolist()]
    assert names == [r[2] for r in ROBUST_SCRIPT]
    rows, final, _ = scripted_optim(losses, grads, lr=0.1, gamma=10.0, variant="robust")
    assert traj.theta[0, :, 0].tolist() == [r["p"] for r in rows] + [final]     # bitwise


def test_robust_relative_threshold_and_dead_end_scale():
    # |L| = 1000: thr = 0.1; the original's absolute 1e-4 would not fire on a 0.05 change
    losses = [1002.0, 1000.1, 1000.05, 1000.0]
    grads = [1.0, 1.0, 1e-3, 1e-3]
    rows, _, _ = scripted_optim(losses, grads, lr=0.1, gamma=INF, variant="robust")
    assert [r["event"] for r in rows] == ["none", "none", "plateau", "crest"]
    rows, _, _ = scripted_optim(losses, grads, lr=0.1, gamma=INF, variant="original")
    assert all(r["event"] == "none" for r in rows)
    # a loss that lives above gamma = 200: the original forgets every loss (nothing recorded),
    # the robust variant's gamma is relative to the best loss
    losses = [1000.0, 999.0, 998.0, 997.0]
    rows, _, opt = scripted_optim(losses, [1.0] * 4, lr=0.1, variant="original")
    assert [r["event"] for r in rows] == ["dead end"] * 4 and opt.best_params() is None
    rows, _, opt = scripted_optim(losses, [1.0] * 4, lr=0.1, variant="robust")
    assert [r["event"] for r in rows] == ["none"] * 4 and opt.best_loss == 997.0


def test_march_direction_guards():
    g = torch.tensor([0.0, 0.0, 2.0, -1.0, 0.0])
    last = torch.tensor([1.0, 0.0, -1.0, 1.0, -1.0])
    assert march_direction(g, last).tolist() == [-1.0, 1.0, 1.0, -1.0, 1.0]


# ----------------------------------------------------------------------------- plain references
@pytest.mark.parametrize("variant, ref", [("original", ref_original), ("robust", ref_robust)])
@pytest.mark.parametrize("spec, fn, gn, x0, lr, K", [
    ("sextic", sextic, dsextic, 1.0, 0.1, 1000),
    ("sextic", sextic, dsextic, 0.5, 0.03, 1500),
    ("cubic", cubic, dcubic, 2.0, 0.1, 1000),
])
def test_lanes_match_plain_python_reference(variant, ref, spec, fn, gn, x0, lr, K):
    """SPEC arithmetic vs a plain scalar transcription of the rules: the same events, step for
    step, and the same iterates to rounding (torch's sqrt is not always correctly rounded)."""
    xs, events, best, best_x = ref(fn, gn, x0, K, lr)
    traj = HillAdamLanes(alpha=lr, variant=variant).run(
        landscapes.parse(spec), torch.tensor([[x0]], dtype=F64), steps=K)
    assert [int(e) for e in traj.extras["event"][0, :, 0].tolist()] == events
    assert sum(1 for e in events if e) >= 3                      # the rules did fire
    torch.testing.assert_close(traj.theta[0, :, 0], torch.tensor(xs, dtype=F64), rtol=1e-9,
                               atol=1e-10)
    bf, bt = best_state(traj)
    assert float(bf[0]) == pytest.approx(best, rel=1e-12)
    assert float(bt[0, 0]) == pytest.approx(best_x, rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------- lanes vs torch.optim
def run_optim_on(land, x0_row, K, **kw):
    p = torch.nn.Parameter(x0_row.detach().clone())
    opt = HillAdam([p], **kw)

    def closure():
        opt.zero_grad()
        p.grad = land.grad(p.detach()[None])[0]
        return land.value(p.detach()[None])[0]

    xs = [p.detach().clone()]
    for _ in range(K):
        opt.step(closure)
        xs.append(p.detach().clone())
    return torch.stack(xs), opt


@pytest.mark.parametrize("variant", ["original", "robust"])
@pytest.mark.parametrize("spec, x0", [("sextic", [1.3]), ("cubic", [2.0]),
                                      ("sextic", [1.3, -0.4, 0.6])])
def test_lanes_match_torch_optim_bitwise(variant, spec, x0):
    land = landscapes.parse(spec)
    theta0 = torch.tensor([x0], dtype=F64)
    K = 700
    traj = HillAdamLanes(arithmetic="torch", alpha=0.1, variant=variant).run(land, theta0, steps=K)
    xs, opt = run_optim_on(land, theta0[0], K, lr=0.1, variant=variant)
    assert torch.equal(traj.theta[0], xs)
    assert opt.resets == int(traj.extras["reset"][0, 1:, 0].sum()) > 0
    bf, bt = best_state(traj)
    assert opt.best_loss == float(bf[0]) and torch.equal(opt.best_params()[0], bt[0])


def test_mixed_lanes_equal_single_runs():
    land = landscapes.parse("sextic")
    lanes = HillAdamLanes(alpha=[0.1, 0.01, 0.1, 0.05], variant=["original", "robust", 1, 0],
                          delta=[1e-4, 1e-3, 1e-5, 1e-4], gamma=[200.0, 50.0, 200.0, 1e3])
    theta0 = torch.tensor([[1.0], [0.3], [-0.2], [1.9]], dtype=F64)
    traj = lanes.run(land, theta0, steps=400)
    for b, kw in enumerate([dict(alpha=0.1, variant=0), dict(alpha=0.01, variant=1, delta=1e-3,
                                                             gamma=50.0),
                            dict(alpha=0.1, variant=1, delta=1e-5),
                            dict(alpha=0.05, variant=0, gamma=1e3)]):
        one = HillAdamLanes(**kw).run(land, theta0[b:b + 1], steps=400)
        assert torch.equal(traj.theta[b], one.theta[0])
        for name in ("sigma", "event", "best_f", "best_theta"):
            assert torch.equal(traj.extras[name][b], one.extras[name][0])


# ----------------------------------------------------------------------------- torch.optim API
def two_group_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(),
                               torch.nn.Linear(4, 1)).to(F64)


def net_closure(net, opt, x, y):
    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()
        return loss
    return closure


def test_nn_module_two_groups_equals_torch_adam_when_no_rule_fires():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 2, generator=gen, dtype=F64)
    y = torch.sin(x.sum(-1, keepdim=True))
    nets = [two_group_net(3), two_group_net(3)]
    groups = lambda n: [{"params": n[0].parameters(), "lr": 1e-2},  # noqa: E731
                        {"params": n[2].parameters(), "lr": 3e-2, "betas": (0.8, 0.99)}]
    hill = HillAdam(groups(nets[0]), delta=0.0, gamma=INF, gamma_low=-INF)
    adam = torch.optim.Adam(groups(nets[1]))
    for _ in range(40):
        hill.step(net_closure(nets[0], hill, x, y))
        adam.step(net_closure(nets[1], adam, x, y))
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(p, q)
    assert hill.resets == 0 and hill.param_groups[1]["lr"] == 3e-2


def test_reset_steps_have_the_group_lr_per_coordinate():
    """A reset (plateau toggle, first dead-end step) applies to every group: the update after it is
    a fresh Adam step, -sigma lr_group g / (|g| + eps), with the new direction sigma."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 2, generator=gen, dtype=F64)
    y = torch.sin(x.sum(-1, keepdim=True))
    net = two_group_net(5)
    lrs = (1e-2, 3e-2)
    opt = HillAdam([{"params": net[0].parameters(), "lr": lrs[0]},
                    {"params": net[2].parameters(), "lr": lrs[1]}], delta=1e-3, gamma=1.0)
    seen = set()
    for _ in range(250):
        before = [p.detach().clone() for p in net.parameters()]
        resets = opt.resets
        opt.step(net_closure(net, opt, x, y))
        if opt.resets > resets:
            seen.add(opt.last_event)
            for i, (p, b) in enumerate(zip(net.parameters(), before)):
                g = p.grad
                want = -opt.direction * lrs[i // 2] * g / (g.abs() + 1e-8)
                torch.testing.assert_close(p.detach() - b, want, rtol=1e-9, atol=1e-15)
                assert int(opt.state[p]["step"]) == 1
    assert seen == {"plateau", "dead end"}


@pytest.mark.parametrize("variant", ["original", "robust"])
def test_state_dict_round_trip_continues_bit_for_bit(variant):
    def model():
        a = torch.nn.Parameter(torch.tensor([1.2, 0.4, 1.9], dtype=F64))
        b = torch.nn.Parameter(torch.tensor([[0.8, -0.3]], dtype=F64))
        return a, b

    def closure_for(params, opt):
        def closure():
            opt.zero_grad()
            loss = sum(sextic(q).sum() for q in params)
            loss.backward()
            return loss
        return closure

    def make(params):
        return HillAdam([{"params": [params[0]], "lr": 0.1},
                         {"params": [params[1]], "lr": 0.05}], variant=variant)

    full = model()
    opt = make(full)
    for _ in range(750):
        opt.step(closure_for(full, opt))
    part = model()
    opt_a = make(part)
    for _ in range(450):
        opt_a.step(closure_for(part, opt_a))
    assert opt_a.resets > 0
    buf = io.BytesIO()
    torch.save({"p": [q.detach().clone() for q in part], "opt": opt_a.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    fresh = model()
    with torch.no_grad():
        for q, v in zip(fresh, ckpt["p"]):
            q.copy_(v)
    opt_b = HillAdam([{"params": [fresh[0]]}, {"params": [fresh[1]]}], lr=1.0)  # from the ckpt
    opt_b.load_state_dict(ckpt["opt"])
    assert opt_b.param_groups[1]["lr"] == 0.05 and opt_b.param_groups[0]["variant"] == variant
    for _ in range(300):
        opt_b.step(closure_for(fresh, opt_b))
    for q, r in zip(full, fresh):
        assert torch.equal(q, r)
    assert opt_b.best_loss == opt.best_loss and opt_b.events == opt.events
    for q, r in zip(opt.best_params(), opt_b.best_params()):
        assert torch.equal(q, r)
    opt_b.load_best()
    with torch.no_grad():
        assert float(sum(sextic(q).sum() for q in fresh)) == opt.best_loss


@pytest.mark.parametrize("variant", ["original", "robust"])
def test_zero_gradient_and_missing_gradients(variant):
    p = torch.nn.Parameter(torch.tensor([0.5, -1.0], dtype=F64))
    q = torch.nn.Parameter(torch.tensor([3.0], dtype=F64))            # never gets a gradient
    opt = HillAdam([p, q], lr=0.1, variant=variant)

    def closure():
        opt.zero_grad()
        loss = (0.0 * p).sum() + 1.0                                   # flat: g = 0 exactly
        loss.backward()
        return loss

    for _ in range(30):
        assert float(opt.step(closure).detach()) == 1.0
        assert bool(torch.isfinite(p).all())
    assert q.item() == 3.0 and "step" not in opt.state[q]
    assert opt.best_loss == 1.0 and [t.tolist() for t in opt.best_params()] == [[0.5, -1.0], [3.0]]
    if variant == "original":
        # a flat loss: every other step is a plateau (the step after it skips the test); Adam's
        # step is 0 / (0 + eps) = 0
        assert opt.events["plateau"] == 15 and p.tolist() == [0.5, -1.0]
    else:
        # the robust plateau fires (stationary); the zero-gradient guard marches +lr, and the next
        # march reverses the last step: the parameters alternate between two points
        assert opt.events["plateau"] == 10 and opt.events["crest"] == 9
        assert p.tolist() in ([0.5, -1.0], [0.6, -0.9])


def test_step_needs_a_closure_and_rejects_sparse():
    p = torch.nn.Parameter(torch.zeros(2, dtype=F64))
    opt = HillAdam([p])
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    emb = torch.nn.Embedding(3, 2, sparse=True)
    opt = HillAdam(emb.parameters())

    def closure():
        opt.zero_grad()
        loss = emb(torch.tensor([1])).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="sparse"):
        opt.step(closure)


BAD_TORCH = [dict(lr=0.0), dict(lr=float("nan")), dict(betas=(1.0, 0.999)), dict(betas=(0.9,)),
             dict(eps=-1.0), dict(delta=-1e-4), dict(delta=float("inf")),
             dict(gamma=float("nan")), dict(gamma_low=float("nan")), dict(variant="hill"),
             dict(variant=2)]


@pytest.mark.parametrize("bad", BAD_TORCH, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_bad_hyper_parameters_raise_value_error(bad):
    key = next(iter(bad))
    name = "beta" if key == "betas" else key
    with pytest.raises(ValueError, match=name):
        HillAdam([torch.nn.Parameter(torch.zeros(2))], **bad)
    opt = HillAdam([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match=name):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], **bad})
    assert len(opt.param_groups) == 1


def test_switching_parameters_are_shared_by_all_groups():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError, match="same for every param group"):
        HillAdam([{"params": [a]}, {"params": [b], "delta": 1e-3}])
    opt = HillAdam([{"params": [a]}, {"params": [b], "lr": 1e-2, "variant": 0}])
    assert opt.param_groups[1]["variant"] == "original"
    assert HillAdam([a], variant=1).param_groups[0]["variant"] == "robust"


@pytest.mark.parametrize("key,bad", [("alpha", 0.0), ("delta", -1.0), ("gamma", float("nan")),
                                     ("gamma_low", float("nan")), ("variant", 2),
                                     ("variant", "hill"), ("beta1", 1.0)])
def test_lane_model_rejects_bad_values(key, bad):
    kw = {"alpha": 1e-2, key: bad}
    with pytest.raises(ConfigError, match=key):
        discrete.get("hilladam")(**kw)
    with pytest.raises(ConfigError, match=key):
        get_model("hilladam").lane_hyper({**kw, "theta0": [0.0]})


# ----------------------------------------------------------------------------- registry, CLI
def test_registered_with_shared_declarations():
    cls = discrete.get("hilladam")
    assert cls is HillAdamLanes and discrete.HillAdam is HillAdam
    assert cls.hyper == (ALPHA, BETA1, BETA2, EPS, DELTA, GAMMA, GAMMA_LOW, VARIANT)
    assert cls.hyperparameters == {"alpha": None, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                   "delta": 1e-4, "gamma": 200.0, "gamma_low": -1e4,
                                   "variant": 0.0}
    assert get_model("hilladam").records == ("m", "v", "sigma", "reset", "event", "best_f",
                                             "best_theta")
    assert variant_code("robust") == 1 and variant_code(0.0) == 0
    with pytest.raises(ConfigError):
        HillAdamLanes(alpha=0.1).step(HillAdamLanes(alpha=0.1).init_state(torch.zeros(1, 1)), 1,
                                      torch.zeros(1, 1))


def test_run_lanes_and_float32():
    lanes = [{"theta0": [1.0], "alpha": 0.1}, {"theta0": [1.0], "alpha": 0.1, "variant": 1}]
    traj = run_lanes("hilladam", "sextic", lanes, [300, 300])
    assert traj.meta["engine"] == "torch" and traj.params["variant"] == [0.0, 1.0]
    bf, bt = best_state(traj)
    assert float(bf[1]) == pytest.approx(hill_study.SEXTIC_MIN, abs=1e-6)
    assert float(bt[1, 0]) < hill_study.SEXTIC_HILL
    # float32 lanes make the decisions in float64 and stay finite
    t32 = HillAdamLanes(alpha=0.1, variant=[0, 1]).run(
        landscapes.parse("sextic"), torch.tensor([[1.0], [1.0]]), steps=600)
    assert t32.theta.dtype == torch.float32 and bool(torch.isfinite(t32.theta).all())
    assert float(best_state(t32)[0][1]) == pytest.approx(hill_study.SEXTIC_MIN, abs=1e-4)


def test_cli_run(capsys):
    code = main(["run", "--model", "hilladam", "--landscape", "sextic", "--theta0", "1",
                 "--alpha", "0.1", "--steps", "300", "--variant", "0", "1", "--delta", "1e-4",
                 "--gamma", "200", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lanes = json.loads(out)["lanes"]
    assert [ln["variant"] for ln in lanes] == [0.0, 1.0]
    for ln in lanes:
        assert ln["status"] == "ok" and ln["delta"] == 1e-4 and ln["gamma"] == 200.0
        assert len(ln["sigma"]) == len(ln["event"]) == len(ln["best_f"]) == len(ln["t"]) == 301
        assert {row[0] for row in ln["sigma"]} <= {1.0, -1.0}
    assert lanes[1]["best_f"][-1][0] == pytest.approx(hill_study.SEXTIC_MIN, abs=1e-6)
    assert lanes[1]["best_theta"][-1][0] < hill_study.SEXTIC_HILL
    for bad in (["--variant", "2"], ["--delta", "-1"], ["--gamma", "nan"]):
        code = main(["run", "--model", "hilladam", "--landscape", "sextic", "--theta0", "1",
                     "--alpha", "0.1", "--steps", "3", *bad])
        _, err = capsys.readouterr()
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert bad[0][2:] in err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype(device, dtype):
    land = landscapes.parse("sextic")
    theta0 = torch.tensor([[1.0], [1.8]], dtype=dtype)
    cpu = HillAdamLanes(alpha=0.1, variant=[0, 1]).run(land, theta0, steps=200)
    dev = HillAdamLanes(alpha=0.1, variant=[0, 1]).run(land, theta0.to(device), steps=200)
    assert dev.theta.device.type == device.type and dev.theta.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(dev.theta.cpu(), cpu.theta, **tol)
    xs, opt = run_optim_on(land, theta0[1].to(device), 200, lr=0.1, variant="robust")
    assert xs.device.type == device.type and xs.dtype == dtype
    torch.testing.assert_close(xs.cpu(), cpu.theta[1], **tol)
    assert opt.best_loss == pytest.approx(float(best_state(cpu)[0][1]), rel=1e-4)


# ----------------------------------------------------------------------------- the cubic landscape
def test_cubic_landscape_against_autograd():
    land = landscapes.parse("cubic")
    assert land.spec() == "cubic" and landscapes.parse(land.spec()) == land
    assert "cubic" in landscapes.REGISTRY and land.minimum_value() == -INF
    x = torch.tensor([[-2.5, 0.3], [1.0, -1.0], [3.1, 0.0]], dtype=F64, requires_grad=True)
    (g_ad,) = torch.autograd.grad(land.value(x).sum(), x, create_graph=True)
    torch.testing.assert_close(land.grad(x.detach()), g_ad.detach(), rtol=1e-14, atol=1e-14)
    H = torch.stack([torch.autograd.grad(g_ad[:, i].sum(), x, retain_graph=True)[0]
                     for i in range(2)], dim=-1)
    torch.testing.assert_close(land.hessian(x.detach()), H, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(land.value(x.detach()), (x.detach() ** 3 - 3 * x.detach()).sum(-1))
    for cp in land.critical_points():
        t = torch.tensor([[cp.x]], dtype=F64)
        assert float(land.grad(t)) == 0.0 and float(land.value(t)) == cp.f
        assert (float(land.hessian_diag(t)) > 0) == (cp.kind == "min")


# ----------------------------------------------------------------------------- the sextic claim
def _claim(n_starts, lrs, K):
    res = hill_study.sextic_starts(n_starts=n_starts, lrs=lrs, K=K)
    counts = {lr: res["claim"][lr] for lr in lrs}
    for r in res["rows"]:                         # best state and best loss agree
        assert r["best_f"] == pytest.approx(sextic(r["best_x"]), rel=1e-12, abs=1e-15)
    return counts


def test_sextic_claim_reduced():
    """27 starts at lr 0.1 for 1500 steps: robust 27/27 >= original >= Adam 0/27."""
    c = _claim(27, (0.1,), 1500)[0.1]
    assert c["holds"] and c["robust"] == 27 and c["adam"] == 0 and 0 < c["original"] < 27


@pytest.mark.slow
def test_sextic_claim_done_when():
    """The issue's claim: 27 starts, 15 000 steps, lr in {0.1, 0.01}: robust >= original >= Adam
    in the number of starts whose best state is in the global basin (measured: 27 >= 12 >= 0 and
    27 >= 1 >= 0)."""
    counts = _claim(27, (0.1, 0.01), 15000)
    for lr, c in counts.items():
        assert c["holds"], (lr, c)
        assert c["robust"] == 27 and c["adam"] == 0
