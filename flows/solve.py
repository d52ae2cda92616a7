"""The exact-mode integration loop: batched, per-lane adaptive exponential integrators, with events.

Solves dy/dt = L y + N(t, y) (the :mod:`flows.semilinear` contract; L constant between events) for B
independent lanes, each with its own time, step size, accept/reject decision, output grid, status and
event record, and samples the solution at per-lane output times.

The loop knows its pieces only by their contracts, and nothing about models:

* the stepper (:class:`flows.stepper.Stepper`): one attempted step, its local error estimate, its
  dense-output data and the state it carries to the next step. Default
  :class:`flows.exprb.ExpRosenbrock43` (exponential Rosenbrock, full per-lane Jacobian, embedded
  order-3 estimate; handles the state-dependent stiffness of the adaptive gain) when n d <=
  EXPRB_MAX_DIM, else (or with ``solver=...``) :class:`flows.solvers.StepDoubling` of an exponential RK
  method (default :class:`flows.solvers.HochbruckOstermann4`);
* the controller (:mod:`flows.controllers`, default :class:`flows.controllers.PIController`): owns the
  tolerances, the norm and the flow's component weights (:meth:`SemilinearFlow.error_weights`, handed
  over at init); the loop asks it for the scaled error norm of a step, then "accept? next h?";
* the interpolation of the stepper (``stepper.interpolation``, :mod:`flows.interpolation`): fills the
  output times and supplies the dense-output error indicator;
* events (:mod:`flows.events`): terminal, switching or recording zero crossings.

Per attempted step (all lanes at once, lanes merged with ``torch.where``):

1. h_eff = h, or the remaining distance to the lane's last output time when t + 1.01 h reaches it
   (the last output time is hit exactly; steps are *not* clipped to the other output times).
2. ``stepper.step`` returns the new state, a local error estimate, the dense-output data and its next
   state (N at the end of the step: first same as last).
3. ``controller.error_norm`` of the error estimate; steps with output times strictly inside also bound
   the interpolation's ``defect`` by the tolerance (max of both norms).
4. ``controller.adapt``: accept iff the norm <= 1, next step size.
5. Accepted lanes: if flow.theta(y1) is NaN/inf or exceeds DIVERGENCE_BOUND the lane becomes DIVERGED
   at t1 and is frozen (its outputs after the last good step stay NaN); divergence is declared from the
   state only. With events, every condition is evaluated at (t1, y1); a lane whose step crossed zero is
   paused before the step (it is resolved at the next host synchronisation, below).
6. Step floor h < 1e-14 max(1, |t|) -> STEP_UNDERFLOW, or DIVERGED at t when the last trial state was
   NaN/inf (the right-hand side is not finite ahead); ``max_steps`` attempts -> MAX_STEPS.

Dense output: every output time in (t, t + h] of an accepted step is filled by the stepper's
interpolation at x = (t_out - t)/(t1 - t) (for the default steppers the quintic Hermite interpolant
through (y0, y0'), (y_mid, y_mid'), (y1, y1'), y' = L y + N: all by-products of the step). Because the
linear part is integrated exactly, a step may be accurate at its end while a fast transient inside it is
not resolved; steps that carry output times therefore also keep the interpolation defect below tolerance
(``dense_control``; on the slow manifold it is of the size of the step error and does not limit the
step). The step data of the last ``sync_every`` steps is buffered and the outputs are filled in one
vectorised pass every ``sync_every`` steps; that pass and the "all lanes done?" check are the host
synchronisations of a solve without events. When fewer than half of the lanes are still active and the
flow implements ``subset(idx)``, the finished lanes are retired (the batch is compacted).

Events (``events=[Event, ...]``): a lane whose step crossed zero idles until the next synchronisation,
where the paused lanes are resolved in one pass (with events one more host synchronisation per pass,
"any lane paused?", and a few more to resolve them when some lane is): every crossing of the step is
located on its interpolant (:func:`flows.events.find_root`); the earliest terminal or switching event
wins (recording events up to it are recorded with it).
Terminal: the lane stops at the event time with ``Status.EVENT`` (``t_final`` = event time). Switching:
``handler`` maps the interpolated state at the event to the restart state, which may also change the
flow's branch; the lane restarts there with ``made_jump`` set (the stepper recomputes N; the linear part
is re-queried by the stepper on every step), keeping its controller state and proposed step. Output
times in (t, t_event] are filled from the truncated step's interpolant, later ones by the steps after the
restart. Recording events (neither) keep the step unchanged: those lanes, like lanes where no event
fires, are bit-identical to a solve without events. Records: ``Solution.event_*``. A crossing is seen
when a condition changes sign between the ends of a step (see :mod:`flows.events`); ``max_step`` caps
the step where a flow may cross twice within one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.threading_policy import small_batch_threads
from core.trajectory import Status, diverged_mask
from flows.controllers import Controller, PIController
from flows.events import Event, EventLog, crossings, find_root
from flows.exprb import ExpRosenbrock43
from flows.semilinear import SemilinearFlow
from flows.solvers import ExponentialRK, HochbruckOstermann4, StepDoubling
from flows.stepper import Stepper

#: largest flattened state (n d) for which the full-Jacobian exponential Rosenbrock method is default
EXPRB_MAX_DIM = 64

#: relative step floor: h < STEP_FLOOR * max(1, |t|) -> STEP_UNDERFLOW
STEP_FLOOR = 1e-14

#: relative floor of the event-time tolerance: |dt| <= max(EVENT_TIME_FLOOR max(1, |t|), event.tol)
EVENT_TIME_FLOOR = 1e-13

#: default tolerances of the default controller
DEFAULT_RTOL, DEFAULT_ATOL = 1e-10, 1e-12


@dataclass
class Solution:
    """Result of :func:`solve`.

    * ``ys``          (B, T, n, d) states at the output times (NaN past n_out and after divergence/failure
      or a terminal event)
    * ``status``      (B,) long :class:`core.trajectory.Status` codes
    * ``diverged_at`` (B,) time of divergence (NaN when the lane did not diverge)
    * ``t_final``     (B,) time each lane reached (the event time after a terminal event)
    * ``stats``       dict of (B,) long tensors: ``nfev`` (evaluations of N), ``accepted``, ``rejected``
    * ``t_out``, ``n_out`` the requested output grid
    * ``event_t`` (B, K) event times in order (NaN-padded), ``event_index`` (B, K) long the index of the
      event in ``events`` (-1 padded), ``event_direction`` (B, K) long +1 rising / -1 falling (0 padded),
      ``event_count`` (B,) long; K = the largest count (0 without events)
    """
    ys: torch.Tensor
    status: torch.Tensor
    diverged_at: torch.Tensor
    t_final: torch.Tensor
    t_out: torch.Tensor
    n_out: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)
    event_t: torch.Tensor | None = None
    event_index: torch.Tensor | None = None
    event_direction: torch.Tensor | None = None
    event_count: torch.Tensor | None = None

    def events(self) -> dict[str, torch.Tensor]:
        """The event records as {"t", "index", "direction", "count"} (the Trajectory layout)."""
        return {"t": self.event_t, "index": self.event_index, "direction": self.event_direction,
                "count": self.event_count}


def _as_lane_times(t_out, B: int, dtype, device) -> torch.Tensor:
    t_out = torch.as_tensor(t_out, dtype=dtype, device=device)
    if t_out.dim() == 1:
        t_out = t_out[None, :].expand(B, -1)
    if t_out.dim() != 2 or t_out.shape[0] != B:
        raise ValueError(f"solve: t_out must be (T,) or (B, T) with B = {B}, got {tuple(t_out.shape)}")
    return t_out.contiguous()


def _lane_where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch.where with a (B,) lane mask broadcast over the trailing dimensions of a and b."""
    return torch.where(mask.reshape(mask.shape + (1,) * (a.dim() - 1)), a, b)


def default_stepper(n: int, d: int, solver: ExponentialRK | None = None) -> Stepper:
    """The stepper :func:`solve` uses unless given one (see the module docstring)."""
    if solver is not None or n * d > EXPRB_MAX_DIM:
        return StepDoubling(solver if solver is not None else HochbruckOstermann4())
    return ExpRosenbrock43()


def solve(flow: SemilinearFlow, y0: torch.Tensor, t_out, n_out: torch.Tensor | None = None, **kwargs
          ) -> Solution:
    """Integrate ``flow`` from ``y0`` and sample it at ``t_out``; see :func:`_solve` for the
    arguments. Small CPU batches run with one intra-op thread
    (:func:`core.threading_policy.small_batch_threads`)."""
    with small_batch_threads(y0):
        return _solve(flow, y0, t_out, n_out, **kwargs)


def _solve(flow: SemilinearFlow, y0: torch.Tensor, t_out, n_out: torch.Tensor | None = None, *,
           rtol: float | None = None, atol: float | torch.Tensor | None = None, h0=None,
           max_steps: int = 1_000_000, t0=0.0, solver: ExponentialRK | None = None,
           controller: Controller | None = None, dense_control: bool = True, sync_every: int = 16,
           compact: bool = True, method: Stepper | None = None,
           events: list[Event] | None = None, max_step=None) -> Solution:
    """Integrate ``flow`` from ``y0`` at time ``t0`` and sample it at per-lane times ``t_out``.

    Args:
        flow: a :class:`flows.semilinear.SemilinearFlow` (B lanes).
        y0: (B, n, d) initial state.
        t_out: (B, T) or (T,) output times, ascending per lane, NaN-padded past ``n_out``; the first may
            equal t0. The lane stops exactly at its last output time t_out[b, n_out[b] - 1].
        n_out: (B,) number of valid output times (default: the finite entries of each row).
        rtol, atol: error tolerances of the default controller (default 1e-10, 1e-12); atol a float or a
            (d,) tensor (per component); rtol is raised to at least 100 machine epsilons of y0's dtype.
            Given together with ``controller`` they replace its tolerances (on a copy).
        h0: first step (float or (B,) tensor); default min(1e-2, 1e-3 / ||L||_inf) per lane.
        max_steps: per-lane budget of attempted steps (accepted + rejected).
        t0: initial time (float or (B,) tensor).
        method: the :class:`flows.stepper.Stepper`. Default: :class:`flows.exprb.ExpRosenbrock43` when
            n d <= EXPRB_MAX_DIM, else step doubling of ``solver``.
        solver: exponential RK method for :class:`flows.solvers.StepDoubling` (default
            :class:`flows.solvers.HochbruckOstermann4`); giving it selects step doubling.
        controller: step-size controller (default :class:`flows.controllers.PIController` with
            ``rtol``/``atol``; :class:`flows.controllers.ConstantStep` for fixed steps).
        dense_control: steps with output times strictly inside (t, t + h) also bound the interpolation's
            error indicator (``stepper.interpolation.defect``) by the tolerance (needed where the step
            would not resolve an exactly integrated fast transient; costs nothing on smooth stretches).
        sync_every: steps between host synchronisations (output filling, termination and event checks).
        compact: retire finished lanes when fewer than half are active and ``flow.subset`` exists.
        events: :class:`flows.events.Event` list (terminal, switching or recording zero crossings).
        max_step: largest step (float or (B,) tensor; default none). Events are found where a
            condition changes sign between step ends, so a flow that returns to an event surface within
            one step (a bouncing ball whose flight is shorter than the step) needs a step cap.

    Returns:
        :class:`Solution`.
    """
    if y0.dim() != 3:
        raise ValueError(f"solve: y0 must be (B, n, d), got {tuple(y0.shape)}")
    B, n, d = y0.shape
    dtype, device = y0.dtype, y0.device
    stepper = method if method is not None else default_stepper(n, d, solver)
    interp = stepper.interpolation
    if controller is None:
        controller = PIController(rtol=DEFAULT_RTOL if rtol is None else rtol,
                                  atol=DEFAULT_ATOL if atol is None else atol)
    elif rtol is not None or atol is not None:
        controller = controller.with_tolerances(rtol, atol)
    evs = list(events or [])
    for ev in evs:
        if not isinstance(ev, Event):
            raise TypeError(f"solve: events must be flows.events.Event, got {type(ev).__name__}")
    E = len(evs)

    # components excluded from error control by the flow (fast, slaved derivative states)
    ew = flow.error_weights().to(dtype=dtype, device=device)
    t_out = _as_lane_times(t_out, B, dtype, device)
    T = t_out.shape[1]
    if n_out is None:
        n_out = torch.isfinite(t_out).sum(dim=1)
    n_out = torch.as_tensor(n_out, dtype=torch.long, device=device).clamp(0, T)
    cols = torch.arange(T, device=device)
    valid = cols[None, :] < n_out[:, None]
    inf = torch.tensor(float("inf"), dtype=dtype, device=device)
    t_search = torch.where(valid, t_out, inf).contiguous()
    t = torch.as_tensor(t0, dtype=dtype, device=device).expand(B).clone()
    if T > 0:
        last_idx = (n_out - 1).clamp(min=0)
        t_end = torch.where(n_out > 0, t_out.gather(1, last_idx[:, None])[:, 0], t)
    else:
        t_end = t.clone()

    # ---- global results --------------------------------------------------------------------------
    ys = torch.full((B, T, n, d), float("nan"), dtype=dtype, device=device)
    G_status = torch.full((B,), int(Status.OK), dtype=torch.long, device=device)
    G_div = torch.full((B,), float("nan"), dtype=dtype, device=device)
    G_tfin = t.clone()
    G_nfev = torch.zeros(B, dtype=torch.long, device=device)
    G_acc = torch.zeros_like(G_nfev)
    G_rej = torch.zeros_like(G_nfev)

    # outputs at (or before) t0 take y0
    at_start = valid & (t_search <= t[:, None])
    ptr = at_start.sum(dim=1)
    ys = torch.where(at_start[:, :, None, None], y0[:, None], ys)

    # ---- per-lane (local) state -----------------------------------------------------------------------
    lane_ids = torch.arange(B, device=device)
    y = y0.clone()
    L = flow.linear_operator().to(dtype=dtype, device=device)
    sstate = tuple(stepper.init(flow, t, y))
    status = G_status.clone()
    div_at = G_div.clone()
    nfev = torch.full((B,), int(stepper.init_nfev), dtype=torch.long, device=device)
    n_acc = torch.zeros_like(nfev)
    n_rej = torch.zeros_like(nfev)
    n_steps = torch.zeros_like(nfev)
    bad0 = diverged_mask(flow.theta(y))
    status = torch.where(bad0, torch.full_like(status, int(Status.DIVERGED)), status)
    div_at = torch.where(bad0, t, div_at)
    active = (t < t_end) & ~bad0

    if h0 is None:
        normL = L.abs().sum(dim=-1).amax(dim=-1)
        h = torch.where(normL > 0, 1e-3 / normL.clamp(min=1e-300), torch.full_like(normL, 1e-2))
        h = h.clamp(max=1e-2)
    else:
        h = torch.as_tensor(h0, dtype=dtype, device=device).expand(B).clone()
    span = (t_end - t)
    h = torch.where(span > 0, torch.minimum(h, span), h)
    h_cap = None
    if max_step is not None:
        h_cap = torch.as_tensor(max_step, dtype=dtype, device=device).expand(B).clone()
        if not bool((h_cap > 0).all()):
            raise ValueError("solve: max_step must be > 0")
    h, cstate = controller.init(h, stepper.error_order + 1, ew)
    if h_cap is not None:
        h = torch.minimum(h, h_cap)

    item_bytes = torch.finfo(dtype).bits // 8
    S = max(1, min(int(sync_every), (1 << 28) // max(1, 6 * B * n * d * item_bytes)))
    buf: list[tuple] = []
    compact_ok = compact
    compacted = False

    # ---- events: state -------------------------------------------------------------------------------
    orig_flow = flow
    if E:
        log = EventLog(B, dtype, device)
        dirs = torch.tensor([ev.direction for ev in evs], dtype=torch.long, device=device)
        G_y = y0.clone()                    # last state of every lane (the frame of conditions)
    made_jump: torch.Tensor | None = None   # lanes restarted by a handler whose state is not renewed
    jump_live = False                       # host flag: made_jump may be True somewhere
    pending = torch.zeros(B, dtype=torch.bool, device=device)
    P: dict | None = None                   # the crossing step of each paused lane

    def frame(tc: torch.Tensor, yc: torch.Tensor, mask: torch.Tensor | None = None):
        """Current-batch (t, y[, mask]) -> all B lanes in their original order."""
        if not compacted:
            return tc, yc, mask
        tf = G_tfin.index_copy(0, lane_ids, tc)
        yf = G_y.index_copy(0, lane_ids, yc)
        mf = None if mask is None else torch.zeros(B, dtype=torch.bool, device=device).index_copy(
            0, lane_ids, mask)
        return tf, yf, mf

    def condition(e: int, tc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        tf, yf, _ = frame(tc, yc)
        g = torch.as_tensor(evs[e].condition(tf, yf), dtype=dtype, device=device)
        if g.shape != (B,):
            raise ValueError(f"solve: event {e} ({evs[e].name!r}) condition must return shape ({B},), "
                             f"got {tuple(g.shape)}")
        return g[lane_ids] if compacted else g

    def conditions(tc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        return torch.stack([condition(e, tc, yc) for e in range(E)], dim=1)     # (Bc, E)

    g_prev = conditions(t, y) if E else None

    def flush() -> None:
        """Fill every output time passed by the buffered steps (one host sync)."""
        nonlocal ptr, buf
        if not buf:
            return
        Bc = t.shape[0]
        bt0 = torch.stack([b[0] for b in buf], 1)
        bt1 = torch.stack([b[1] for b in buf], 1)
        bkey = torch.stack([b[2] for b in buf], 1)
        good = torch.stack([b[3] for b in buf], 1)
        data = [torch.stack([b[4][k] for b in buf], 1) for k in range(len(buf[0][4]))]   # (Bc, S, ...)
        Sb = bt0.shape[1]
        buf = []
        key = torch.where(good, bkey, bt0).contiguous()
        idx_end = torch.searchsorted(t_search_l, t[:, None].contiguous(), right=True)[:, 0]
        idx_end = torch.minimum(idx_end, n_out_l)
        count = (idx_end - ptr).clamp(min=0)
        W = int(count.max()) if Bc > 0 else 0
        if W == 0:
            return
        chunk = max(1, (1 << 22) // max(1, Bc * n * d))
        for c0 in range(0, W, chunk):
            w = min(chunk, W - c0)
            j = ptr[:, None] + torch.arange(c0, c0 + w, device=device)[None, :]
            m = j < idx_end[:, None]
            jc = j.clamp(max=T - 1)
            tq = t_out_l.gather(1, jc)
            tq = torch.where(m, tq, key[:, :1].expand_as(tq)).contiguous()
            s = torch.searchsorted(key, tq, right=False).clamp(max=Sb - 1)
            ta, tb = bt0.gather(1, s), bt1.gather(1, s)
            hs = torch.where(m, tb - ta, torch.ones_like(ta))
            x = torch.where(m, (tq - ta) / hs, torch.zeros_like(ta))
            step_data = tuple(D.gather(1, s.reshape(s.shape + (1,) * (D.dim() - 2)).expand(
                (Bc, w) + tuple(D.shape[2:]))) for D in data)
            yq = interp.evaluate(step_data, x, hs)
            bi = lane_ids[:, None].expand(Bc, w)[m]
            ys[bi, jc[m]] = yq[m]
        ptr = torch.maximum(ptr, idx_end)

    def write_back() -> None:
        G_status[lane_ids] = status
        G_div[lane_ids] = div_at
        G_tfin[lane_ids] = t
        G_nfev[lane_ids] = nfev
        G_acc[lane_ids] = n_acc
        G_rej[lane_ids] = n_rej
        if E:
            G_y[lane_ids] = y

    def resolve_events() -> None:
        """Locate the crossings of the paused lanes, record them, and stop, restart or resume the lanes."""
        nonlocal y, t, sstate, g_prev, status, div_at, active, pending, P, made_jump, jump_live, flow
        if P is None:
            return
        if not bool(pending.any()):
            P = None            # no lane paused: drop the stash (the batch may be compacted next)
            return
        t0_, t1_, hs = t, P["t1"], P["t1"] - t
        dense = P["dense"]
        inf_x = torch.full_like(t, float("inf"))
        tau = inf_x[:, None].repeat(1, E)                 # crossing position x in [0, 1] per event
        for e in range(E):
            m = pending & P["hit"][:, e]
            if not bool(m.any()):
                continue
            tol_t = torch.clamp(t1_.abs(), min=1.0) * EVENT_TIME_FLOOR
            xtol = torch.clamp(tol_t, min=float(evs[e].tol)) / hs

            def f(x, e=e):
                return condition(e, t0_ + x * hs, interp.evaluate(dense, x, hs))

            x = find_root(f, g_prev[:, e], P["g1"][:, e], xtol, m)
            tau[:, e] = torch.where(m, x, inf_x)
        t_at = torch.where(tau >= 1, t1_[:, None], t0_[:, None] + tau * hs[:, None])     # (Bc, E)
        direction = torch.where(g_prev < 0, 1, -1)
        acting = torch.tensor([ev.acting for ev in evs], dtype=torch.bool, device=device)
        terminal = torch.tensor([ev.terminal for ev in evs], dtype=torch.bool, device=device)
        x_win, e_win = torch.where(acting[None, :], tau, inf_x[:, None]).min(dim=1)
        has_act = torch.isfinite(x_win)
        x_cut = torch.where(has_act, x_win, torch.ones_like(x_win))
        winner = torch.zeros_like(tau, dtype=torch.bool).scatter_(1, e_win[:, None], True) & has_act[:, None]
        rec = torch.isfinite(tau) & ((~acting[None, :] & (tau <= x_cut[:, None])) | winner)
        # records in time order (ties: list order)
        sk, order = torch.sort(torch.where(rec, tau, inf_x[:, None]), dim=1, stable=True)
        for j in range(E):
            rows = torch.nonzero(torch.isfinite(sk[:, j])).squeeze(1)
            if rows.numel() == 0:
                break
            ej = order[rows, j]
            log.add(lane_ids[rows], t_at[rows, ej], ej, direction[rows, ej])
        # the state at the cut: the event (interpolated), or the end of the step (recording only)
        t_cut = torch.where(has_act, t_at.gather(1, e_win[:, None])[:, 0], t1_)
        at_end = ~has_act | (x_win >= 1)
        y_cut = _lane_where(at_end, P["y1"], interp.evaluate(dense, torch.where(at_end, 1.0, x_cut), hs))
        buf.append((t0_, t1_, t_cut, pending, dense))      # outputs in (t, t_cut] from this step
        keep = pending & ~has_act                          # recording only: the step as it was
        stop = pending & has_act & terminal[e_win]
        jump = pending & has_act & ~terminal[e_win]
        sstate = tuple(_lane_where(keep, a_, b_) for a_, b_ in zip(P["state"], sstate))
        g_prev = _lane_where(keep, P["g1"], g_prev)
        resumed = keep | jump
        t = torch.where(pending, t_cut, t)
        y = _lane_where(pending, y_cut, y)
        status = torch.where(stop, torch.full_like(status, int(Status.EVENT)), status)
        if bool(jump.any()):
            y_h = y
            for e, ev in enumerate(evs):
                fired = jump & (e_win == e)
                if ev.handler is None or not bool(fired.any()):
                    continue
                tf, yf, ff = frame(t, y, fired)
                y_new = torch.as_tensor(ev.handler(tf, yf, ff), dtype=dtype, device=device)
                y_h = _lane_where(fired, y_new[lane_ids] if compacted else y_new, y_h)
            y = y_h
            if compacted:   # the handler may have changed the flow's branch: re-derive the subset
                flow = orig_flow.subset(lane_ids)
            made_jump = jump if made_jump is None else (made_jump | jump)
            jump_live = True
            g_prev = _lane_where(jump, conditions(t, y), g_prev)
            bad = jump & diverged_mask(flow.theta(y))
            status = torch.where(bad, torch.full_like(status, int(Status.DIVERGED)), status)
            div_at = torch.where(bad, t, div_at)
            resumed = resumed & ~bad
        active = active | (resumed & (t < t_end_l))
        pending = torch.zeros_like(pending)
        P = None

    t_out_l, t_search_l, n_out_l, t_end_l = t_out, t_search, n_out, t_end
    floor = STEP_FLOOR
    while bool(active.any()):
        for _ in range(S):
            was_active = active
            last = t + 1.01 * h >= t_end_l
            h_eff = torch.where(last, t_end_l - t, h)
            t_new = torch.where(last, t_end_l, t + h_eff)
            res = stepper.step(flow, t, y, h_eff, sstate, made_jump if jump_live else None, t1=t_new)
            y_new = res.y
            en = controller.error_norm(y, y_new, res.y_error)
            if dense_control and T > 0:
                # steps that carry output times strictly inside also control the interpolation error
                nxt = torch.searchsorted(t_search_l, t[:, None].contiguous(), right=True)
                t_next = t_search_l.gather(1, nxt.clamp(max=T - 1))[:, 0]
                inside = (nxt[:, 0] < n_out_l) & (t_next < t_new)
                ed = controller.error_norm(y, y_new, interp.defect(res.dense_info, h_eff))
                en = torch.where(inside, torch.maximum(en, ed), en)
            accept, h_next, cs_new = controller.adapt(h_eff, en, cstate)
            acc = was_active & accept
            div = acc & diverged_mask(flow.theta(y_new))
            good = acc & ~div
            commit = good
            if E:
                g_new = conditions(t_new, y_new)
                hit, _ = crossings(g_prev, g_new, dirs)
                crossed = good & hit.any(dim=1)
                commit = good & ~crossed
                new = {"t1": t_new, "y1": y_new, "dense": res.dense_info, "state": tuple(res.state),
                       "g1": g_new, "hit": hit}
                if P is None:
                    P = new
                else:
                    P = {k: (tuple(_lane_where(crossed, a_, b_) for a_, b_ in zip(v, P[k]))
                             if isinstance(v, tuple) else _lane_where(crossed, v, P[k]))
                         for k, v in new.items()}
                pending = pending | crossed
                g_prev = _lane_where(commit, g_new, g_prev)
                if jump_live:
                    made_jump = made_jump & ~good
            buf.append((t, t_new, t_new, commit, res.dense_info))
            y = _lane_where(commit, y_new, y)
            sstate = tuple(_lane_where(commit, a_, b_) for a_, b_ in zip(res.state, sstate))
            t = torch.where(commit, t_new, t)
            status = torch.where(div, torch.full_like(status, int(Status.DIVERGED)), status)
            div_at = torch.where(div, t_new, div_at)
            cstate = tuple(torch.where(was_active, a_, b_) for a_, b_ in zip(cs_new, cstate))
            h = torch.where(was_active, h_next if h_cap is None else torch.minimum(h_next, h_cap), h)
            n_steps = n_steps + was_active.long()
            n_acc = n_acc + good.long()
            n_rej = n_rej + (was_active & ~accept).long()
            nfev = nfev + was_active.long() * res.nfev + acc.long() * res.nfev_fsal
            active = was_active & ~div & (t < t_end_l) & ~pending
            under = active & (h < floor * torch.clamp(t.abs(), min=1.0))
            # a step size driven to the floor by non-finite trial states means the trajectory runs
            # into a region where the right-hand side is NaN/inf: the lane diverged at t
            blown = under & ~torch.isfinite(y_new).all(dim=-1).all(dim=-1)
            status = torch.where(under, torch.full_like(status, int(Status.STEP_UNDERFLOW)), status)
            status = torch.where(blown, torch.full_like(status, int(Status.DIVERGED)), status)
            div_at = torch.where(blown, t, div_at)
            active = active & ~under
            out_of_steps = active & (n_steps >= max_steps)
            status = torch.where(out_of_steps, torch.full_like(status, int(Status.MAX_STEPS)), status)
            active = active & ~out_of_steps
        if E:
            resolve_events()
            if jump_live and not bool(made_jump.any()):
                made_jump, jump_live = None, False
        flush()
        # ---- retire finished lanes ------------------------------------------------------------------
        Bc = t.shape[0]
        n_act = int(active.sum())
        if compact_ok and 0 < n_act and 2 * n_act < Bc:
            idx = torch.nonzero(active).squeeze(1)
            try:
                sub = flow.subset(idx)
            except NotImplementedError:
                compact_ok = False
            else:
                write_back()
                flow = sub
                sel = lambda x: x[idx]  # noqa: E731
                (lane_ids, t, y, h, t_out_l, t_search_l, n_out_l, t_end_l, ptr, status, div_at,
                 active, nfev, n_acc, n_rej, n_steps, pending) = map(sel, (
                    lane_ids, t, y, h, t_out_l, t_search_l, n_out_l, t_end_l, ptr, status,
                    div_at, active, nfev, n_acc, n_rej, n_steps, pending))
                sstate = tuple(sel(c) for c in sstate)
                cstate = tuple(sel(c) for c in cstate)
                if E:
                    g_prev = sel(g_prev)
                if made_jump is not None:
                    made_jump = sel(made_jump)
                if h_cap is not None:
                    h_cap = sel(h_cap)
                compacted = True
    flush()
    write_back()
    if E:
        rec = log.records()
    else:
        rec = {"t": torch.full((B, 0), float("nan"), dtype=dtype, device=device),
               "index": torch.full((B, 0), -1, dtype=torch.long, device=device),
               "direction": torch.zeros((B, 0), dtype=torch.long, device=device),
               "count": torch.zeros(B, dtype=torch.long, device=device)}
    return Solution(ys=ys, status=G_status, diverged_at=G_div, t_final=G_tfin, t_out=t_out,
                    n_out=n_out, stats={"nfev": G_nfev, "accepted": G_acc, "rejected": G_rej},
                    event_t=rec["t"], event_index=rec["index"], event_direction=rec["direction"],
                    event_count=rec["count"])


__all__ = ["EVENT_TIME_FLOOR", "EXPRB_MAX_DIM", "STEP_FLOOR", "Solution", "default_stepper", "solve"]
