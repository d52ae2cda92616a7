"""The compiled engine's one entry point: every lane with its own adaptive loop and its own
stepper, in one ``prange`` loop over lanes.

    solve_ensemble(width, family, grad, grad_lanes, hess, third, y0, M, LP, n, d, t_out, n_out, ew,
                   mode, rtol, atol, max_steps, h_max, bound, order, border, bptr, ys, status,
                   div_at, t_fin, nfev, acc, rej)

runs the queues of lanes through lane blocks of ``width`` slots (queue j:
``border[bptr[j]:bptr[j + 1]]``, a chunk of consecutive lanes, :func:`flows.fast.block.run_queue`:
EXPLICIT and SWITCHING lanes of the Adam-family form, with the landscape's lanes gradient
``grad_lanes``; :func:`flows.fast.solve._lane_queues`), then lanes ``order[j]`` one at a time (the
longest first, :func:`flows.fast.solve._balanced_order`), lane b with stepper ``mode[b]``:

* EXPLICIT: DOP853 (:func:`flows.fast.kernel.lane`) for the whole run;
* ROSENBROCK: Rodas5P (:func:`flows.fast.rosenbrock.lane`; the Adam-family form only) for the whole
  run: the lanes whose linear part is stiff from the start (:func:`flows.fast.solve.lane_steppers`);
* SWITCHING: DOP853 while it is not stiff, then Rodas5P from where DOP853's stiffness test (Hairer
  on the Jacobian's diagonal, :data:`flows.fast.kernel.STIFF_HLAMBDA`: h max_k |J_kk| > 1.5 on
  2 accepted steps, without 6 calm steps in a row between them) finds the step bounded by
  stability: the state-dependent stiffness of the adaptive gain 1/sqrt(v), which grows as v
  decays near a minimum (rmsprop-flow at alpha = 5e-4: DOP853 spends its 1e6-step budget where
  Rodas5P needs 482 steps). The hand-over keeps the time, state, next
  output, next step, step budget and counters; outputs before it are DOP853's.

``ew`` (B, n d): the error weights (DOP853 controls the components with ew > 0, Rodas5P weights
them by ew, :func:`flows.fast.solve.error_scales`); the other arguments and the outputs as
:mod:`flows.fast.kernel`. Compiled once for every family and landscape (first-class function
arguments) and cached on disk by numba.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from flows.fast import block, kernel, rosenbrock
from flows.fast.lane_control import EXPLICIT, ROSENBROCK, SWITCHING

__all__ = ["solve_ensemble", "EXPLICIT", "ROSENBROCK", "SWITCHING"]



@njit(cache=True, parallel=True, error_model="numpy")
def solve_ensemble(width, family, grad, grad_lanes, hess, third, y0, M, LP, n, d, t_out, n_out, ew,
                   mode, rtol, atol, max_steps, h_max, bound, order, border, bptr, ys, status,
                   div_at, t_fin, nfev, acc, rej):
    nqueue = bptr.shape[0] - 1
    for j in prange(nqueue + order.shape[0]):
        if j < nqueue:                  # a queue of lanes through one block of slots
            block.run_queue(width, grad, grad_lanes, hess, border[bptr[j]:bptr[j + 1]], y0, M,
                            LP, n, d, t_out, n_out, ew, mode, rtol, atol, max_steps, h_max, bound,
                            ys, status, div_at, t_fin, nfev, acc, rej)
            continue
        b = order[j - nqueue]
        if mode[b] == ROSENBROCK:
            rosenbrock.lane(grad, hess, b, y0[b].copy(), 0.0, -1, 0.0, 0, M, LP, n, d, t_out,
                            n_out, ew, rtol, atol, max_steps, h_max, bound, ys, status, div_at,
                            t_fin, nfev, acc, rej)
        else:
            yh = np.empty(y0.shape[1])
            stiff, t, h, p, steps = kernel.lane(
                family, grad, hess, third, b, y0, M, LP, n, d, t_out, n_out, ew, rtol, atol,
                max_steps, h_max, bound, mode[b] == SWITCHING, yh, ys, status, div_at, t_fin,
                nfev, acc, rej)
            if stiff:
                rosenbrock.lane(grad, hess, b, yh, t, p, h, steps, M, LP, n, d, t_out, n_out, ew,
                                rtol, atol, max_steps, h_max, bound, ys, status, div_at, t_fin,
                                nfev, acc, rej)
