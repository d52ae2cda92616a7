"""The pieces of a lane's adaptive loop that both compiled steppers share (:mod:`flows.fast.kernel`,
DOP853, and :mod:`flows.fast.rosenbrock`, Rodas5P): the outputs at the start, the divergence bound,
the Hairer-Norsett-Wanner starting step, the step floor and the stall count, with the statuses they
end a lane with (see :mod:`flows.fast.kernel` for what each means)."""
from __future__ import annotations

import math

from numba import njit

OK, DIVERGED, STEP_UNDERFLOW, MAX_STEPS = 0, 1, 2, 3

#: per-lane stepper codes (the ``mode`` argument of :func:`flows.fast.ensemble.solve_ensemble`)
EXPLICIT, ROSENBROCK, SWITCHING = 0, 1, 2

#: the step floor: FLOOR_ULPS ulp of t
FLOOR_ULPS = 16.0
EPS = 2.220446049250313e-16

#: stalls in a row that end a lane as diverged (lanes that escape a stall were seen to need fewer
#: than 10)
STALL_LIMIT = 100


@njit(cache=True, inline="always")
def out_of_bounds(y, n, d, bound):
    """True when some theta_i = y[i d] is non-finite or beyond ``bound``."""
    bad = False
    for i in range(n):
        if not (abs(y[i * d]) <= bound):
            bad = True
    return bad


@njit(cache=True, inline="always")
def start_lane(b, y, t_out, n_out, ys, n, d, bound, status, div_at):
    """Write the outputs at t <= 0 of lane ``b`` from its initial state ``y``; mark it diverged
    when it starts out of bounds. Returns the next output index (n_out[b] when the lane is done)."""
    nout = n_out[b]
    p = 0
    while p < nout and t_out[b, p] <= 0.0:
        ys[b, p, :] = y
        p += 1
    if out_of_bounds(y, n, d, bound):
        status[b] = DIVERGED
        div_at[b] = 0.0
        p = nout
    return p


@njit(cache=True, inline="always")
def first_trial(y, f0, w, atol, rtol, span, h_max):
    """(h0, d1) of the starting-step estimate (Hairer, Norsett & Wanner, II.4) in the norm of
    weights ``w``: the explicit Euler trial step h0, and the scaled size d1 of f(y0)."""
    N = y.shape[0]
    d0 = 0.0
    d1 = 0.0
    for k in range(N):
        sc = atol + rtol * abs(y[k])
        d0 += (w[k] * y[k] / sc) ** 2
        d1 += (w[k] * f0[k] / sc) ** 2
    d0 = math.sqrt(d0 / N)
    d1 = math.sqrt(d1 / N)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    return min(h0, span, h_max), d1


@njit(cache=True, inline="always")
def first_step(y, f0, f1, w, atol, rtol, h0, d1, inv_q):
    """The starting step from f1 = f(y0 + h0 f0) (:func:`first_trial`), for a method whose error
    estimate is of order 1/inv_q - 1; h0 where the trial's right-hand side was not finite."""
    N = y.shape[0]
    d2 = 0.0
    for k in range(N):
        sc = atol + rtol * abs(y[k])
        d2 += (w[k] * (f1[k] - f0[k]) / sc) ** 2
    d2 = math.sqrt(d2 / N) / h0
    dm = max(d1, d2)
    if dm <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / dm) ** inv_q
    h = min(100.0 * h0, h1)
    if not (h > 0.0):
        h = h0
    return h


@njit(cache=True, inline="always")
def below_floor(h, t, last):
    """True when a step that is not the last one is below FLOOR_ULPS ulp of t."""
    return (not last) and h <= FLOOR_ULPS * EPS * max(abs(t), 1e-300)


@njit(cache=True, inline="always")
def floor_status(nonfinite):
    """The status of a lane whose step reached the floor: diverged when non-finite trial states
    drove it there, step underflow otherwise."""
    return DIVERGED if nonfinite else STEP_UNDERFLOW


@njit(cache=True, inline="always")
def count_stalls(y, yn, nonfinite, stalls):
    """The stall count after an accepted step from y to yn: 0 when the state moved, one more when
    it did not right after a non-finite trial (the lane pinned at the edge of a region where the
    right-hand side is not finite)."""
    for k in range(y.shape[0]):
        if yn[k] != y[k]:
            return 0
    return stalls + 1 if nonfinite else stalls
