"""``solve_fast``: the exact mode on the compiled engine, with the :class:`flows.solve.Solution`
contract of the torch engine (:func:`flows.solve.solve`).

Which runs it takes (:func:`fast_support` says why not, in one line): a flow with a
``compiled_form()`` (:mod:`flows.compiled_form`: the Adam-family form, the Newton form of the
Newton flows, or the velocity form of the modified-equation flows), a landscape with a compiled
gradient (and the compiled curvature phi'' and phi''' that the form reads: the Newton form and
most modified-equation velocities phi'', gd-flow3 also phi'''; :mod:`landscapes.compiled`), float64
on the CPU, no events and the default controller. Everything else runs on the torch engine.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch

from core.trajectory import DIVERGENCE_BOUND
from flows.compiled_form import AdamForm, ModifiedForm, NewtonForm
from flows.fast.block import WIDTHS
from flows.fast.ensemble import EXPLICIT, ROSENBROCK, SWITCHING, solve_ensemble
from flows.fast.rhs import (
    ADAM_FORM,
    MODIFIED_FORM,
    NEWTON_FORM,
    evaluate_lanes,
    pack_adam_form,
    stiffness,
)
from flows.semilinear import SemilinearFlow
from flows.solve import DEFAULT_ATOL, DEFAULT_RTOL, Solution, _as_lane_times
from landscapes.compiled import (
    Unsupported,
    compiled_curvature,
    compiled_gradient,
    compiled_lanes_gradient,
    compiled_third,
    no_curvature,
    no_lanes_gradient,
)

__all__ = ["Unsupported", "fast_support", "solve_fast", "compiled_problem", "compiled_rhs",
           "fast_stepper", "lane_steppers", "error_scales", "rosenbrock_support", "STEPPERS",
           "STIFF_RATE"]

#: the compiled engine's steppers: the explicit DOP853 kernel (:mod:`flows.fast.kernel`) and the
#: Rosenbrock kernel (:mod:`flows.fast.rosenbrock`, the Adam-family form on landscapes with a
#: compiled phi'')
STEPPERS = ("dop853", "rodas5p")


def fast_support(flow: SemilinearFlow, dtype: torch.dtype = torch.float64, device="cpu",
                 events=None) -> str | None:
    """None when ``solve_fast`` can run this, else the reason (one line)."""
    if torch.device(device).type != "cpu":
        return f"the compiled engine runs on the CPU (got device {torch.device(device)})"
    if dtype != torch.float64:
        return f"the compiled engine runs in float64 (got {dtype})"
    if events:
        return "events run on the torch engine"
    try:
        compiled_problem(flow)
    except Unsupported as exc:
        return str(exc)
    return None


def _form_data(flow: SemilinearFlow):
    """``flow.compiled_form()``, or None for a flow without one."""
    form = getattr(flow, "compiled_form", None)
    return form() if callable(form) else None


def compiled_problem(flow: SemilinearFlow, jacobian: bool = False, data=None):
    """(family, grad, hess, third, M (B, PM), LP (B, PL)) of ``flow``: its compiled family code,
    landscape phi', phi'' and phi''' (:func:`landscapes.compiled.no_curvature` for a derivative the
    family does not read) and per-lane rows. ``jacobian``: also phi'' for the Adam-family form's
    Jacobian (the Rosenbrock stepper), where the landscape has one. ``data``: the flow's
    ``compiled_form()`` where the caller has it (default: asked for here)."""
    if data is None:
        data = _form_data(flow)
    if data is None:
        raise Unsupported(f"flow {flow.name or type(flow).__name__} has no compiled form")
    if isinstance(data, AdamForm):
        grad, LP = compiled_gradient(flow.landscape, flow.n_lanes)
        hess = no_curvature()
        if jacobian:            # phi'' for the Rosenbrock stepper's Jacobian, where there is one
            try:
                _, hess, _ = compiled_curvature(flow.landscape, flow.n_lanes)
            except Unsupported:
                pass
        return ADAM_FORM, grad, hess, no_curvature(), pack_adam_form(data), LP
    if isinstance(data, NewtonForm):
        grad, hess, LP = compiled_curvature(flow.landscape, flow.n_lanes)
        M = np.ascontiguousarray(data.rows().numpy())
        return NEWTON_FORM, grad, hess, no_curvature(), M, LP
    if isinstance(data, ModifiedForm):
        land, B = flow.landscape, flow.n_lanes
        hess = third = no_curvature()
        if data.derivative_order() >= 3:
            grad, hess, third, LP = compiled_third(land, B)
        elif data.derivative_order() == 2:
            grad, hess, LP = compiled_curvature(land, B)
        else:
            grad, LP = compiled_gradient(land, B)
        M = np.ascontiguousarray(data.rows().numpy())
        return MODIFIED_FORM, grad, hess, third, M, LP
    raise Unsupported(f"flow {flow.name or type(flow).__name__}: unknown compiled form "
                      f"{type(data).__name__}")


def rosenbrock_support(flow: SemilinearFlow, data=None) -> str | None:
    """None when the Rosenbrock stepper can run ``flow`` (on top of :func:`fast_support`), else
    why not: it needs the Adam-family form and the landscape's compiled phi'' (``data``: the
    flow's ``compiled_form()`` where the caller has it)."""
    if not isinstance(_form_data(flow) if data is None else data, AdamForm):
        return "the rodas5p stepper runs the Adam-family flows"
    try:
        compiled_curvature(flow.landscape, flow.n_lanes)
    except Unsupported as exc:
        return str(exc)
    return None


def linear_rates(flow: SemilinearFlow) -> np.ndarray:
    """(B, d) float64 the rates -L_kk of the flow's linear part (its diagonal, taken where L lives:
    only B d numbers leave the device)."""
    L = flow.linear_operator().detach()
    return np.ascontiguousarray(
        (-torch.diagonal(L, dim1=1, dim2=2)).to("cpu", torch.float64).numpy())


def _row_max(a: np.ndarray) -> np.ndarray:
    """max over axis 1 of a narrow (B, d) array, column by column (numpy's axis-1 reduction of
    a (1e6, 6) array took 46 ms)."""
    out = a[:, 0].copy()
    for k in range(1, a.shape[1]):
        np.maximum(out, a[:, k], out=out)
    return out


#: auto's rule: a lane of an Adam-family flow runs on rodas5p from the start when the fastest rate
#: of its linear part, max_k -L_kk, is at least STIFF_RATE (see :func:`lane_steppers`)
STIFF_RATE = 300.0


def lane_steppers(flow: SemilinearFlow, stepper: str = "auto", data=None,
                  rate: np.ndarray | None = None) -> np.ndarray:
    """(B,) int64 per-lane stepper codes of :mod:`flows.fast.ensemble`: ``stepper`` dop853 (every
    lane EXPLICIT), rodas5p (every lane ROSENBROCK; ValueError when it cannot run the flow), or
    auto: for an Adam-family flow on a landscape with compiled phi'', ROSENBROCK for a lane whose
    linear part has a rate >= :data:`STIFF_RATE` and SWITCHING (DOP853 until its stiffness test
    fires) for the others; EXPLICIT for every other flow. A lane's stepper depends on its own
    parameters only, so its result does not depend on the batch it runs in.

    The rate, measured (8 lanes, theta0 in [-1.5, 1.8], rosenbrock1d c = 4, T = 4.5, rtol 1e-10,
    one thread; DOP853 ms / Rodas5P ms per lane): adam-flow2 (rate 2/alpha) 18.0/1.87 at 4000,
    6.31/2.09 at 1000, 1.65/1.80 at 200, 1.57/2.90 at 67; adam-flow1 ((1 - beta1)/alpha)
    1.14/1.07 at 200, 0.37/0.70 at 50; heavyball-flow 0.66/0.85 at 210. Below the threshold the
    explicit method is cheaper (2-7x at rates <= 10), except where the adaptive gain turns the lane
    stiff, which the switch catches. ``data``, ``rate``: the flow's ``compiled_form()`` and
    :func:`linear_rates` where the caller has them."""
    if stepper not in ("auto", *STEPPERS):
        raise ValueError(f"unknown compiled stepper {stepper!r} (choose from: auto, "
                         f"{', '.join(STEPPERS)})")
    B = flow.n_lanes
    if stepper == "dop853":
        return np.full(B, EXPLICIT, dtype=np.int64)
    why = rosenbrock_support(flow, data)
    if stepper == "rodas5p":
        if why is not None:
            raise ValueError(f"the rodas5p stepper cannot run this: {why}")
        return np.full(B, ROSENBROCK, dtype=np.int64)
    if why is not None:
        return np.full(B, EXPLICIT, dtype=np.int64)
    fastest = _row_max(linear_rates(flow) if rate is None else rate)
    return np.where(fastest >= STIFF_RATE, ROSENBROCK, SWITCHING).astype(np.int64)


def fast_stepper(flow: SemilinearFlow, stepper: str = "auto") -> str:
    """The name of what runs ``flow`` (:func:`lane_steppers`): dop853, rodas5p, or
    dop853+rodas5p when auto may run a lane on either (per lane, or switching within a lane)."""
    mode = lane_steppers(flow, stepper)
    if (mode == EXPLICIT).all():
        return "dop853"
    return "rodas5p" if (mode == ROSENBROCK).all() else "dop853+rodas5p"


def error_scales(flow: SemilinearFlow, n: int = 1, rate: np.ndarray | None = None) -> np.ndarray:
    """(B, n d) the Rosenbrock stepper's error weights of every component of the n coordinates: 1
    for a state, and for a fast derivative state (one the flow leaves out of error control,
    :meth:`SemilinearFlow.error_weights`) its relaxation time 1/gamma, gamma = -L_kk its rate in
    the linear part (1 where L_kk = 0): its local error reaches the state it is the derivative of
    through an integral over that time (alpha/2 for u, m', v' of the second-order model),
    written by one compiled pass over the lanes (at 1e6 lanes the (B, d) temporaries and np.tile
    took 0.27 s). ``rate``: :func:`linear_rates` where the caller has it."""
    rate = linear_rates(flow) if rate is None else rate                          # (B, d)
    B, d = rate.shape
    fast = np.ascontiguousarray(flow.error_weights().numpy() == 0)
    ew = np.empty((B, n * d))
    _fill_scales(rate, fast, n, ew)
    return ew


@numba.njit(cache=True, parallel=True)
def _fill_scales(rate, fast, n, ew):
    """ew[b, i d + k] of :func:`error_scales`: 1/rate[b, k] for a fast component k with a
    positive rate, else 1."""
    d = rate.shape[1]
    for b in numba.prange(rate.shape[0]):
        for k in range(d):
            r = rate[b, k]
            w = 1.0 / r if fast[k] and r > 0 else 1.0
            for i in range(n):
                ew[b, i * d + k] = w


@numba.njit(cache=True)
def _finite_counts(t):
    """(B,) int64 the finite entries of each row of ``t`` (B, T), in one pass (torch's
    isfinite(t).sum(dim=1) took 56 ms at 1e6 lanes)."""
    out = np.empty(t.shape[0], dtype=np.int64)
    for b in range(t.shape[0]):
        c = 0
        for j in range(t.shape[1]):
            c += abs(t[b, j]) < math.inf
        out[b] = c
    return out


def compiled_rhs(flow: SemilinearFlow, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The compiled right-hand side F(t, y) (t (B,), y (B, n, d)): what the kernel integrates,
    to hold against ``flow.forward`` (the torch definition)."""
    B, n, d = y.shape
    family, grad, hess, third, M, LP = compiled_problem(flow)
    Y = np.ascontiguousarray(y.detach().to("cpu", torch.float64).reshape(B, n * d).numpy())
    s = np.ascontiguousarray(torch.as_tensor(t, dtype=torch.float64).expand(B).numpy())
    out = np.empty_like(Y)
    evaluate_lanes(family, grad, hess, third, s, Y, M, LP, n, d, out)
    return torch.from_numpy(out).reshape(B, n, d).to(y)


def _balanced_order(cost: np.ndarray) -> np.ndarray:
    """Lanes sorted by decreasing estimated cost: with dynamic chunks of one lane, the expensive
    lanes start first and the cheap ones fill the gaps (longest-processing-time first)."""
    return np.argsort(-cost, kind="stable").astype(np.int64)


#: lane blocks (:mod:`flows.fast.block`) run where each thread gets at least this many blocks'
#: worth of lanes (fewer lanes run one at a time: a block's slots would idle)
MIN_BLOCKS_PER_THREAD = 2

#: the block lanes are cut into chunks of consecutive lanes, one queue each: at least
#: CHUNKS_PER_THREAD chunks per thread (dynamic scheduling evens out the threads' work), of at most
#: MAX_CHUNK lanes and at least MIN_CHUNK_BLOCKS blocks' worth
CHUNKS_PER_THREAD, MAX_CHUNK, MIN_CHUNK_BLOCKS = 16, 4096, 8


def want_threads(threads: int | None, B: int) -> int:
    """The numba threads a solve over B lanes uses: ``threads`` (default: all numba threads), at
    most B."""
    want = numba.get_num_threads() if threads is None else \
        max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    return min(want, max(1, B))


def _lane_queues(cost: np.ndarray, mode: np.ndarray, family: int, threads: int, blocks: bool):
    """(order, border, bptr, width): the lanes that run one at a time, the longest first by
    ``cost`` (:func:`_balanced_order`), and the queues of lanes that run through lane blocks of
    ``width`` slots, queue j ``border[bptr[j]:bptr[j + 1]]``: the DOP853 lanes (EXPLICIT,
    SWITCHING) of the Adam-family form, through the widest blocks of :data:`WIDTHS` that they
    fill (:data:`MIN_BLOCKS_PER_THREAD` per thread). A queue is a chunk of consecutive lanes (the
    block reads each lane's rows and writes its outputs in memory order: at 1e6 lanes, lanes taken
    in cost order spent more time in cache misses on their rows than in their first step), the
    chunks ordered by their summed cost, the largest first (:data:`CHUNKS_PER_THREAD`,
    :data:`MAX_CHUNK`)."""
    one = np.zeros(1, dtype=np.int64)
    none = np.zeros(0, dtype=np.int64)
    in_block = mode != ROSENBROCK
    nb = int(in_block.sum()) if blocks and family == ADAM_FORM else 0
    fits = [w for w in WIDTHS if nb >= MIN_BLOCKS_PER_THREAD * w * threads]
    if not fits:
        return _balanced_order(cost), none, one, 0
    width = fits[0]
    single = np.flatnonzero(~in_block)
    order = np.ascontiguousarray(single[_balanced_order(cost[single])])
    lanes = np.flatnonzero(in_block)
    size = max(MIN_CHUNK_BLOCKS * width, min(MAX_CHUNK, -(-nb // (CHUNKS_PER_THREAD * threads))))
    starts = np.arange(0, nb, size)
    chunks = _balanced_order(np.add.reduceat(cost[lanes], starts))
    ends = np.minimum(starts + size, nb)
    border = np.concatenate([lanes[starts[c]:ends[c]] for c in chunks]).astype(np.int64)
    bptr = np.concatenate([[0], np.cumsum(ends[chunks] - starts[chunks])]).astype(np.int64)
    return order, border, bptr, width


def solve_fast(flow: SemilinearFlow, y0: torch.Tensor, t_out, n_out: torch.Tensor | None = None, *,
               rtol: float | None = None, atol: float | None = None, max_steps: int = 1_000_000,
               max_step=None, threads: int | None = None, stepper: str = "auto",
               blocks: bool = True) -> Solution:
    """Integrate ``flow`` from ``y0`` (B, n, d) at t = 0 and sample it at ``t_out`` (B, T) or (T,).

    Same arguments and result as :func:`flows.solve.solve` (``stats``: nfev, accepted, rejected per
    lane), on a compiled per-lane kernel: ``stepper`` dop853 (:mod:`flows.fast.kernel`), rodas5p
    (:mod:`flows.fast.rosenbrock`) or auto, per lane (:func:`lane_steppers`). ``threads``: numba threads
    (default: all numba threads). ``blocks``: run the DOP853 lanes of an Adam-family flow through
    lane blocks where there are enough of them (:mod:`flows.fast.block`; the same bits as one lane
    at a time, which False forces). Raises :class:`Unsupported` when the flow or the landscape has no
    compiled form (:func:`fast_support`).
    """
    if y0.dim() != 3:
        raise ValueError(f"solve_fast: y0 must be (B, n, d), got {tuple(y0.shape)}")
    B, n, d = y0.shape
    device, dtype = y0.device, y0.dtype
    data = _form_data(flow)
    rate = linear_rates(flow) if isinstance(data, AdamForm) else None
    mode = lane_steppers(flow, stepper, data, rate)
    stiff_lanes = bool((mode != EXPLICIT).any())
    family, grad, hess, third, M, LP = compiled_problem(flow, stiff_lanes, data)
    t_out = _as_lane_times(t_out, B, torch.float64, "cpu")
    T = t_out.shape[1]
    if n_out is None:
        n_out = torch.from_numpy(_finite_counts(np.ascontiguousarray(t_out.numpy())))
    n_out = torch.as_tensor(n_out, dtype=torch.long).cpu().clamp(0, T)
    rtol = DEFAULT_RTOL if rtol is None else float(rtol)
    atol = DEFAULT_ATOL if atol is None else float(atol)
    rtol = max(rtol, 100 * torch.finfo(torch.float64).eps)
    h_max = math.inf if max_step is None else float(max_step)
    if not h_max > 0:
        raise ValueError("solve_fast: max_step must be > 0")
    y0n = np.ascontiguousarray(y0.detach().to("cpu", torch.float64).reshape(B, n * d).numpy())
    tn = np.ascontiguousarray(t_out.numpy())
    nn = np.ascontiguousarray(n_out.numpy().astype(np.int64))
    # every array the kernel writes is first touched here, on this thread (np.full, not
    # np.zeros, whose calloc pages would fault in the kernel): page faults taken by the prange's
    # threads at once were 5-15x slower in this VM (96 MB: 17 ms here, 50-350 ms there)
    ys = np.full((B, T, n * d), np.nan)
    status = np.full(B, 0, dtype=np.int64)
    div_at = np.full(B, np.nan)
    t_fin = np.full(B, 0.0)
    nfev = np.full(B, 0, dtype=np.int64)
    acc = np.full(B, 0, dtype=np.int64)
    rej = np.full(B, 0, dtype=np.int64)
    # cost estimate: horizon x stiffness (the family's rate scale), the step count of a
    # stability-bound lane
    last = np.where(nn > 0, tn[np.arange(B), np.maximum(nn - 1, 0)], 0.0)
    cost = np.nan_to_num(last) * (1.0 + stiffness(family, M))
    nthreads = want_threads(threads, B)
    order, border, bptr, width = _lane_queues(cost, mode, family, nthreads, blocks)
    grad_lanes = (compiled_lanes_gradient(flow.landscape, B)[0] if width else
                  no_lanes_gradient())
    if not stiff_lanes:
        ew = np.ones((B, n * d))
    else:
        ew = error_scales(flow, n, rate)                                              # (B, n d)
    prev = numba.get_num_threads()
    numba.set_num_threads(nthreads)
    try:
        with numba.parallel_chunksize(1):
            solve_ensemble(width, family, grad, grad_lanes, hess, third, y0n, M, LP, n, d, tn, nn,
                           ew, mode, rtol, atol, int(max_steps), h_max, float(DIVERGENCE_BOUND),
                           order, border, bptr, ys, status, div_at, t_fin, nfev, acc, rej)
    finally:
        numba.set_num_threads(prev)
    to = lambda a, dt=dtype: torch.from_numpy(a).to(device=device, dtype=dt)   # noqa: E731
    return Solution(
        ys=to(ys.reshape(B, T, n, d)), status=to(status, torch.long), diverged_at=to(div_at),
        t_final=to(t_fin), t_out=t_out.to(device=device, dtype=dtype), n_out=n_out.to(device),
        stats={"nfev": to(nfev, torch.long), "accepted": to(acc, torch.long),
               "rejected": to(rej, torch.long)})
