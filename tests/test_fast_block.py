"""Lane blocks (flows.fast.block) against the one-lane loop (flows.fast.kernel): bit for bit on
every Adam-family flow, with everything a lane can meet on the way (per-lane grids and landscape
rows, dense outputs, lanes that start out of bounds, diverge, spend their step budget, switch to
Rodas5P, several coordinates, a step cap), and the lanes gradient against the point gradient."""
import math

import numpy as np
import pytest
import torch
from numba import carray, cfunc, njit

import landscapes
from core.trajectory import Status
from flows.fast import solve as fast_solve
from flows.fast.block import WIDTHS
from flows.fast.solve import compiled_problem, lane_steppers, solve_fast
from landscapes.compiled import (
    LANES_SIGNATURE,
    compiled_gradient,
    compiled_lanes_gradient,
)
from tests.test_fast_engine import make_flow

F64 = torch.float64
ADAM_FAMILY = ["adam-flow1", "adam-flow2", "rmsprop-flow", "adagrad-flow", "heavyball-flow"]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b))
                and torch.equal(torch.nan_to_num(a, nan=7.0), torch.nan_to_num(b, nan=7.0)))


def _assert_bitwise(sol_a, sol_b):
    for a, b in [(sol_a.ys, sol_b.ys), (sol_a.diverged_at, sol_b.diverged_at),
                 (sol_a.t_final, sol_b.t_final), (sol_a.status, sol_b.status)]:
        assert _same(a, b)
    for k in sol_a.stats:
        assert torch.equal(sol_a.stats[k], sol_b.stats[k]), k


def _lanes(name, B, land, gen, n=1):
    alphas = tuple(np.exp(gen.uniform(np.log(5e-4), np.log(5e-2), B)).tolist())
    flow = make_flow(name, land=land, alphas=alphas)
    theta = torch.tensor(gen.uniform(-1.8, 1.8, (B, n)), dtype=F64)
    theta[::19] = 1e13                 # beyond the divergence bound at the start
    theta[3::29] = 1.0                 # at a minimizer of rosenbrock1d
    return flow, flow.initial_state(theta)


def _block_width(flow, stepper="auto"):
    """The slots per block that a 2-thread solve of ``flow`` uses (0: no blocks)."""
    mode = lane_steppers(flow, stepper)
    family = compiled_problem(flow)[0]
    cost = np.ones(flow.n_lanes)
    return fast_solve._lane_queues(cost, mode, family, 2, True)[3]


@pytest.mark.parametrize("name", ADAM_FAMILY)
def test_blocks_are_the_one_lane_loop_bit_for_bit(name):
    gen = np.random.default_rng(11)
    B = 640                     # 280 DOP853 lanes: blocks of the widest width on 2 threads
    c = gen.uniform(0.5, 6.0, B).round(3).tolist()
    flow, y0 = _lanes(name, B, f"rosenbrock1d(c={c})", gen)
    assert _block_width(flow) == max(WIDTHS)
    # per-lane grids: some lanes with outputs inside steps, some with one output, some with none
    T = 7
    t_out = torch.full((B, T), math.nan, dtype=F64)
    n_out = torch.tensor(gen.integers(0, T + 1, B))
    for b in range(B):
        k = int(n_out[b])
        t_out[b, :k] = torch.linspace(0.0, float(gen.uniform(0.2, 3.0)), k, dtype=F64)
    for kw in ({}, {"max_steps": 8}, {"max_step": 0.01}):
        ours = solve_fast(flow, y0, t_out, n_out, rtol=1e-9, atol=1e-11, **kw)
        ref = solve_fast(flow, y0, t_out, n_out, rtol=1e-9, atol=1e-11, blocks=False, **kw)
        _assert_bitwise(ours, ref)
    capped = solve_fast(flow, y0, t_out, n_out, rtol=1e-9, atol=1e-11, max_steps=8)
    assert (capped.status == Status.MAX_STEPS).any()
    assert (capped.status == Status.DIVERGED).any()             # the out-of-bounds starts


def test_blocks_with_lanes_that_turn_stiff_and_several_coordinates():
    """rmsprop-flow near its minimum turns stiff (the stiffness test hands the lane to Rodas5P
    from inside its block); three coordinates per lane."""
    gen = np.random.default_rng(12)
    B = 96
    alphas = tuple(np.exp(gen.uniform(np.log(5e-4), np.log(1e-2), B)).tolist())
    flow = make_flow("rmsprop-flow", land="doublewell", alphas=alphas)
    y0 = flow.initial_state(torch.tensor(gen.uniform(-2.0, 2.0, (B, 3)), dtype=F64))
    t = torch.linspace(0.0, 4.0, 9, dtype=F64)
    assert _block_width(flow) == min(WIDTHS)
    ours = solve_fast(flow, y0, t, rtol=1e-10, atol=1e-12)
    ref = solve_fast(flow, y0, t, rtol=1e-10, atol=1e-12, blocks=False)
    _assert_bitwise(ours, ref)
    assert (ours.status == Status.OK).all()
    # the switch happened: DOP853 alone needs more than 5x the steps on some lanes
    cap = int(5 * (ours.stats["accepted"] + ours.stats["rejected"]).max())
    dop = solve_fast(flow, y0, t, rtol=1e-10, atol=1e-12, stepper="dop853", max_steps=cap)
    assert (dop.status == Status.MAX_STEPS).any()


def test_blocks_beside_rosenbrock_lanes_and_small_batches():
    """adam-flow2 over alpha in [5e-4, 5e-2]: the stiff lanes run Rodas5P one at a time beside the
    queues; a batch too small for blocks runs one lane at a time; a lane alone gets its bits."""
    gen = np.random.default_rng(13)
    flow, y0 = _lanes("adam-flow2", 160, "rosenbrock1d(c=4)", gen)
    mode = lane_steppers(flow)
    assert (mode == fast_solve.ROSENBROCK).any() and _block_width(flow) > 0
    t = torch.tensor([0.0, 0.25, 1.0, 1.5], dtype=F64)
    ours = solve_fast(flow, y0, t)
    _assert_bitwise(ours, solve_fast(flow, y0, t, blocks=False))
    small = flow.subset(torch.arange(2 * min(WIDTHS)))
    assert _block_width(small) == 0
    for b in (0, 7, 64, 159):
        one = solve_fast(flow.subset(torch.tensor([b])), y0[b:b + 1], t)
        assert _same(one.ys[0], ours.ys[b])


@pytest.mark.parametrize("land", ["rosenbrock1d(c=[1.5, 4.0, 0.5])", "doublewell", "sextic",
                                  "shifted(center=[4.0, -1.0, 0.5])"])
def test_lanes_gradient_is_the_point_gradient(land):
    L = landscapes.parse(land)
    grad, LP = compiled_gradient(L, 3)
    lanes, LP2 = compiled_lanes_gradient(L, 3)
    assert np.array_equal(LP, LP2)
    x = np.array([-1.3, 0.2, 1.7])

    @njit
    def both(x, LP, out_point, out_lanes):
        for j in range(x.shape[0]):
            out_point[j] = grad(x[j], LP[j].ctypes)
        lanes(x.ctypes, LP.ctypes, LP.shape[1], out_lanes.ctypes, x.shape[0])

    a, b = np.empty(3), np.empty(3)
    both(x, LP, a, b)
    assert np.array_equal(a, b) and np.isfinite(a).all()


def test_lanes_signature_reads_each_lanes_row():
    @cfunc(LANES_SIGNATURE)
    def row_sum(x, P, stride, out, count):
        xs, ys = carray(x, (count,)), carray(out, (count,))
        ps = carray(P, (count, stride))
        for j in range(count):
            ys[j] = xs[j] + ps[j, 0] + 10.0 * ps[j, 1]

    x = np.array([1.0, 2.0])
    P = np.array([[0.5, 1.0], [0.25, 2.0]])
    out = np.empty(2)

    @njit
    def call(fn, x, P, out):
        fn(x.ctypes, P.ctypes, P.shape[1], out.ctypes, x.shape[0])

    call(row_sum, x, P, out)
    assert out.tolist() == [11.5, 22.25]
