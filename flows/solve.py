"""The exact-mode integration loop: batched, per-lane adaptive exponential integrators.

Solves dy/dt = L y + N(t, y) (the :mod:`flows.semilinear` contract) for B independent lanes, each with
its own time, step size, accept/reject decision, output grid and status, and samples the solution at
per-lane output times.

Per attempted step (all lanes at once, lanes merged with ``torch.where``):

1. h_eff = h, or the remaining distance to the lane's last output time when t + 1.01 h reaches it
   (the last output time is hit exactly; steps are *not* clipped to the other output times).
2. The stepper returns the new state, a local error estimate, a midpoint and N there. Default:
   :class:`flows.exprb.ExpRosenbrock43` (exponential Rosenbrock, full per-lane Jacobian, embedded
   order-3 estimate; handles the state-dependent stiffness of the adaptive gain). Alternative
   (``solver=...``): :class:`flows.solvers.StepDoubling` of an exponential RK method with the fixed
   linear part L, one step h against two steps h/2, err = (y_half2 - y_full) / (2^p - 1).
3. Error norm per lane: max over (n, d) of w |err| / (atol + rtol max(|y0|, |y1|)) with the flow's
   component weights w (:meth:`flows.semilinear.SemilinearFlow.error_weights`); NaN/inf -> inf.
   Steps with output times strictly inside also bound the dense-output defect (see below).
4. Controller (per lane): accept iff norm <= 1, next step size.
5. Accepted lanes: N(t1, y1) is evaluated once (first stage of the next step and y1' for dense output).
   If flow.theta(y1) is NaN/inf or exceeds DIVERGENCE_BOUND the lane becomes DIVERGED at t1 and is frozen
   (its outputs after the last good step stay NaN); divergence is declared from the state only.
6. Step floor h < 1e-14 max(1, |t|) -> STEP_UNDERFLOW, or DIVERGED at t when the last trial state was
   NaN/inf (the right-hand side is not finite ahead); ``max_steps`` attempts -> MAX_STEPS.

Dense output: every output time in (t, t + h] of an accepted step is filled by the quintic Hermite
interpolant through (y0, y0'), (y_mid, y_mid'), (y1, y1') with y' = L y + N(t, y) (all derivatives are
by-products of the step). Because the linear part is integrated exactly, a step may be accurate at its
end while a fast transient inside it is not resolved; steps that carry output times therefore also keep
the interpolation-error indicator :func:`flows.solvers.hermite5_defect` below tolerance (on the slow
manifold it is of the size of the step error and does not limit the step). The step data of the last ``sync_every`` steps is buffered and the outputs are
filled in one vectorised pass every ``sync_every`` steps; that pass and the "all lanes done?" check are
the only host synchronisations. When fewer than half of the lanes are still active and the flow
implements ``subset(idx)``, the finished lanes are retired (the batch is compacted).

The loop knows nothing about models, solvers or controllers beyond their contracts
(:mod:`flows.solvers`, :mod:`flows.controllers`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.threading_policy import small_batch_threads
from core.trajectory import Status, diverged_mask
from flows.controllers import PIController
from flows.exprb import ExpRosenbrock43
from flows.semilinear import SemilinearFlow, apply_linear
from flows.solvers import (
    ExponentialRK,
    HochbruckOstermann4,
    StepDoubling,
    hermite5_defect,
    hermite5_weights,
)

#: largest flattened state (n d) for which the full-Jacobian exponential Rosenbrock method is default
EXPRB_MAX_DIM = 64

#: relative step floor: h < STEP_FLOOR * max(1, |t|) -> STEP_UNDERFLOW
STEP_FLOOR = 1e-14


@dataclass
class Solution:
    """Result of :func:`solve`.

    * ``ys``          (B, T, n, d) states at the output times (NaN past n_out and after divergence/failure)
    * ``status``      (B,) long :class:`core.trajectory.Status` codes
    * ``diverged_at`` (B,) time of divergence (NaN when the lane did not diverge)
    * ``t_final``     (B,) time each lane reached
    * ``stats``       dict of (B,) long tensors: ``nfev`` (evaluations of N), ``accepted``, ``rejected``
    * ``t_out``, ``n_out`` the requested output grid
    """
    ys: torch.Tensor
    status: torch.Tensor
    diverged_at: torch.Tensor
    t_final: torch.Tensor
    t_out: torch.Tensor
    n_out: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


def _as_lane_times(t_out, B: int, dtype, device) -> torch.Tensor:
    t_out = torch.as_tensor(t_out, dtype=dtype, device=device)
    if t_out.dim() == 1:
        t_out = t_out[None, :].expand(B, -1)
    if t_out.dim() != 2 or t_out.shape[0] != B:
        raise ValueError(f"solve: t_out must be (T,) or (B, T) with B = {B}, got {tuple(t_out.shape)}")
    return t_out.contiguous()


def solve(flow: SemilinearFlow, y0: torch.Tensor, t_out, n_out: torch.Tensor | None = None, **kwargs
          ) -> Solution:
    """Integrate ``flow`` from ``y0`` and sample it at ``t_out``; see :func:`_solve` for the
    arguments. Small CPU batches run with one intra-op thread
    (:func:`core.threading_policy.small_batch_threads`)."""
    with small_batch_threads(y0):
        return _solve(flow, y0, t_out, n_out, **kwargs)


def _solve(flow: SemilinearFlow, y0: torch.Tensor, t_out, n_out: torch.Tensor | None = None, *,
          rtol: float = 1e-10, atol: float | torch.Tensor = 1e-12, h0=None,
          max_steps: int = 1_000_000, t0=0.0, solver: ExponentialRK | None = None,
          controller=None, dense_control: bool = True, sync_every: int = 16,
          compact: bool = True, method=None) -> Solution:
    """Integrate ``flow`` from ``y0`` at time ``t0`` and sample it at per-lane times ``t_out``.

    Args:
        flow: a :class:`flows.semilinear.SemilinearFlow` (B lanes).
        y0: (B, n, d) initial state.
        t_out: (B, T) or (T,) output times, ascending per lane, NaN-padded past ``n_out``; the first may
            equal t0. The lane stops exactly at its last output time t_out[b, n_out[b] - 1].
        n_out: (B,) number of valid output times (default: the finite entries of each row).
        rtol, atol: error tolerances; atol a float or a (d,) tensor (per component). rtol is raised to
            at least 100 machine epsilons of y0's dtype.
        h0: first step (float or (B,) tensor); default min(1e-2, 1e-3 / ||L||_inf) per lane.
        max_steps: per-lane budget of attempted steps (accepted + rejected).
        t0: initial time (float or (B,) tensor).
        method: the error-estimating stepper (``order`` of its error estimate and
            ``step(flow, t, y, h, L, N0) -> DoublingResult``). Default: the exponential Rosenbrock
            method :class:`flows.exprb.ExpRosenbrock43` (full Jacobian; handles the state-dependent
            stiffness of the adaptive gain) when n d <= EXPRB_MAX_DIM, else step doubling of
            ``solver``.
        solver: exponential RK method for step doubling (default
            :class:`flows.solvers.HochbruckOstermann4`); giving it selects step doubling.
        controller: step-size controller (default :class:`flows.controllers.PIController`; use
            :class:`flows.controllers.ConstantStep` for fixed steps).
        dense_control: steps with output times strictly inside (t, t + h) also bound the dense-output
            error indicator :func:`flows.solvers.hermite5_defect` by the tolerance (needed where the step
            would not resolve an exactly integrated fast transient; costs nothing on smooth stretches).
        sync_every: steps between host synchronisations (output filling, termination check).
        compact: retire finished lanes when fewer than half are active and ``flow.subset`` exists.

    Returns:
        :class:`Solution`.
    """
    if y0.dim() != 3:
        raise ValueError(f"solve: y0 must be (B, n, d), got {tuple(y0.shape)}")
    B, n, d = y0.shape
    dtype, device = y0.dtype, y0.device
    if method is not None:
        doubling = method
    elif solver is not None or n * d > EXPRB_MAX_DIM:
        doubling = StepDoubling(solver if solver is not None else HochbruckOstermann4())
    else:
        doubling = ExpRosenbrock43()
    controller = controller if controller is not None else PIController()
    rtol = max(float(rtol), 100.0 * torch.finfo(dtype).eps)
    atol_t = torch.as_tensor(atol, dtype=dtype, device=device)

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
    N0 = flow.nonlinear(t, y)
    status = G_status.clone()
    div_at = G_div.clone()
    nfev = torch.ones(B, dtype=torch.long, device=device)
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
    h, cstate = controller.init(h, doubling.order + 1)

    item_bytes = torch.finfo(dtype).bits // 8
    S = max(1, min(int(sync_every), (1 << 28) // max(1, 6 * B * n * d * item_bytes)))
    buf: list[tuple] = []
    compact_ok = compact

    def flush() -> None:
        """Fill every output time passed by the buffered steps (one host sync)."""
        nonlocal ptr, buf
        if not buf:
            return
        Bc = t.shape[0]
        bt0 = torch.stack([b[0] for b in buf], 1)
        bt1 = torch.stack([b[1] for b in buf], 1)
        good = torch.stack([b[2] for b in buf], 1)
        data = [torch.stack([b[3 + k] for b in buf], 1) for k in range(6)]   # (Bc, S, n, d)
        Sb = bt0.shape[1]
        buf = []
        key = torch.where(good, bt1, bt0).contiguous()
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
            wts = hermite5_weights(x)
            sidx = s[:, :, None, None].expand(Bc, w, n, d)
            Y0, F0, YM, FM, Y1, F1 = (D.gather(1, sidx) for D in data)
            hh = hs[:, :, None, None]
            W_ = [q[:, :, None, None] for q in wts]
            yq = (W_[0] * Y0 + W_[1] * hh * F0 + W_[2] * YM + W_[3] * hh * FM
                  + W_[4] * Y1 + W_[5] * hh * F1)
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

    t_out_l, t_search_l, n_out_l, t_end_l = t_out, t_search, n_out, t_end
    floor = STEP_FLOOR
    while bool(active.any()):
        for _ in range(S):
            was_active = active
            last = t + 1.01 * h >= t_end_l
            h_eff = torch.where(last, t_end_l - t, h)
            res = doubling.step(flow, t, y, h_eff, L, N0)
            y_new = res.y_new
            scale = atol_t + rtol * torch.maximum(y.abs(), y_new.abs())
            en = ((res.error.abs() * ew) / scale).amax(dim=(1, 2)) if n * d > 0 else torch.zeros_like(t)
            en = torch.where(torch.isnan(en), torch.full_like(en, float("inf")), en)
            t_new = torch.where(last, t_end_l, t + h_eff)
            N1 = flow.nonlinear(t_new, y_new)
            f0 = apply_linear(L, y) + N0
            fm = apply_linear(L, res.y_mid) + res.N_mid
            f1 = apply_linear(L, y_new) + N1
            if dense_control and T > 0:
                # steps that carry output times strictly inside also control the interpolation error
                nxt = torch.searchsorted(t_search_l, t[:, None].contiguous(), right=True)
                t_next = t_search_l.gather(1, nxt.clamp(max=T - 1))[:, 0]
                inside = (nxt[:, 0] < n_out_l) & (t_next < t_new)
                hh = h_eff[:, None, None]
                dd = hermite5_defect([y, hh * f0, res.y_mid, hh * fm, y_new, hh * f1]) * ew / scale
                ed = dd.amax(dim=(1, 2)) if n * d > 0 else torch.zeros_like(t)
                ed = torch.where(torch.isnan(ed), torch.full_like(ed, float("inf")), ed)
                en = torch.where(inside, torch.maximum(en, ed), en)
            accept, h_next, cs_new = controller.adapt(h_eff, en, cstate)
            acc = was_active & accept
            div = acc & diverged_mask(flow.theta(y_new))
            good = acc & ~div
            buf.append((t, t_new, good, y, f0, res.y_mid, fm, y_new, f1))
            g3 = good[:, None, None]
            y = torch.where(g3, y_new, y)
            N0 = torch.where(g3, N1, N0)
            t = torch.where(good, t_new, t)
            status = torch.where(div, torch.full_like(status, int(Status.DIVERGED)), status)
            div_at = torch.where(div, t_new, div_at)
            cstate = tuple(torch.where(was_active, a_, b_) for a_, b_ in zip(cs_new, cstate))
            h = torch.where(was_active, h_next, h)
            n_steps = n_steps + was_active.long()
            n_acc = n_acc + good.long()
            n_rej = n_rej + (was_active & ~accept).long()
            nfev = nfev + was_active.long() * res.nfev + acc.long()
            active = was_active & ~div & (t < t_end_l)
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
                (lane_ids, t, y, h, N0, L, t_out_l, t_search_l, n_out_l, t_end_l, ptr, status, div_at,
                 active, nfev, n_acc, n_rej, n_steps) = map(sel, (
                    lane_ids, t, y, h, N0, L, t_out_l, t_search_l, n_out_l, t_end_l, ptr, status,
                    div_at, active, nfev, n_acc, n_rej, n_steps))
                cstate = tuple(sel(c) for c in cstate)
    flush()
    write_back()
    return Solution(ys=ys, status=G_status, diverged_at=G_div, t_final=G_tfin, t_out=t_out,
                    n_out=n_out, stats={"nfev": G_nfev, "accepted": G_acc, "rejected": G_rej})


__all__ = ["solve", "Solution", "STEP_FLOOR"]
