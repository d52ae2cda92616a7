"""The compiled engine of the classical discrete optimizers: every lane's K updates in one numba
kernel (``prange`` over lanes, state in registers, no per-step Python or tensor dispatch).

Runs the "spec" arithmetic of GD, heavy ball, Adam, RMSProp and AdaGrad (:mod:`discrete.updates`:
the same update functions as the torch engine, compiled, so lanes agree bit for bit), float64 on
the CPU, on a landscape with a compiled gradient (:mod:`landscapes.compiled`). The trajectory has
the contract of :meth:`discrete.base.DiscreteOptimizer.run` (samples, divergence, statuses, stats);
f at the samples is evaluated afterwards by the landscape itself (one batched torch call).
:func:`compiled_support` says why a run cannot take this engine.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from core import numba_math
from core.grid import output_indices
from core.trajectory import DIVERGENCE_BOUND, Status, Trajectory
from discrete.updates import make_updates
from landscapes.compiled import Unsupported, compiled_gradient

GD, HEAVYBALL, ADAM, RMSPROP, ADAGRAD = range(5)

_gd, _hb, _adam, _rms, _ada = (njit(cache=True, inline="always")(f) for f in make_updates(numba_math))


@njit(cache=True)
def _lane(code, grad, b, theta0, H, LP, Ks, every, bound, out_theta, out_s1, out_s2, k_div):
    n = theta0.shape[1]
    th = theta0[b].copy()
    s1 = np.zeros(n)
    s2 = np.zeros(n)
    nt = np.empty(n)
    n1 = np.empty(n)
    n2 = np.empty(n)
    h = H[b]
    lp = LP[b].ctypes
    K = Ks[b]
    for i in range(n):
        if not (abs(th[i]) <= bound):
            k_div[b] = 0
            return
    for i in range(n):
        out_theta[b, 0, i] = th[i]
        out_s1[b, 0, i] = 0.0
        out_s2[b, 0, i] = 0.0
    row = 1
    kd = K + 1
    for k in range(1, K + 1):
        if code == ADAM:
            bc1 = 1.0 - h[1] ** float(k)
            bc2 = 1.0 - h[3] ** float(k)
        bad = False
        for i in range(n):
            g = grad(th[i], lp)
            if code == GD:
                nt[i] = _gd(th[i], g, h[0])
            elif code == HEAVYBALL:
                buf = g if k == 1 else s1[i] * h[1] + g
                n1[i] = buf
                nt[i] = _hb(th[i], buf, h[0])
            elif code == ADAM:
                nt[i], n1[i], n2[i] = _adam(th[i], s1[i], s2[i], g, h[0], h[1], h[2], h[3], h[4],
                                            h[5], bc1, bc2)
            elif code == RMSPROP:
                nt[i], n1[i] = _rms(th[i], s1[i], g, h[0], h[1], h[2], h[3])
            else:
                nt[i], n1[i] = _ada(th[i], s1[i], g, h[0], h[1])
            if not (abs(nt[i]) <= bound):
                bad = True
        if bad:
            kd = k
            break
        for i in range(n):
            th[i] = nt[i]
            s1[i] = n1[i]
            s2[i] = n2[i]
        if k % every == 0 or k == K:
            for i in range(n):
                out_theta[b, row, i] = th[i]
                out_s1[b, row, i] = s1[i]
                out_s2[b, row, i] = s2[i]
            row += 1
    k_div[b] = kd


@njit(cache=True, parallel=True)
def run_lanes_compiled(code, grad, order, theta0, H, LP, Ks, every, bound, out_theta, out_s1,
                       out_s2, k_div):
    for j in prange(order.shape[0]):
        _lane(code, grad, order[j], theta0, H, LP, Ks, every, bound, out_theta, out_s1, out_s2,
              k_div)


def compiled_support(opt, landscape, dtype: torch.dtype, device) -> str | None:
    """None when :func:`run_compiled` can run ``opt`` on ``landscape``, else the reason."""
    if getattr(opt, "compiled_code", None) is None:
        return f"{opt.name} has no compiled update"
    if opt.arithmetic != "spec":
        return "the compiled engine evaluates the spec arithmetic"
    if torch.device(device).type != "cpu" or dtype != torch.float64:
        return "the compiled engine runs float64 on the CPU"
    try:
        compiled_gradient(landscape, 1 if landscape.n_lanes() is None else landscape.n_lanes())
    except Unsupported as exc:
        return str(exc)
    return None


def run_compiled(opt, landscape, theta0: torch.Tensor, Ks: list[int], every: int = 1,
                 record_moments: bool = True, threads: int | None = None) -> Trajectory:
    """``opt.run(landscape, theta0, steps=Ks, every=every)`` on the compiled engine."""
    B, n = theta0.shape
    dtype, device = theta0.dtype, theta0.device
    h64 = opt.lane_hyper(B, "cpu")
    H = np.ascontiguousarray(torch.stack(opt.compiled_row(h64), dim=1).numpy())
    grad, LP = compiled_gradient(landscape, B)
    lane_ks = [output_indices(K, every) for K in Ks]
    T = max((len(r) for r in lane_ks), default=1)
    out_theta = np.full((B, T, n), np.nan)
    out_s1 = np.full((B, T, n), np.nan)
    out_s2 = np.full((B, T, n), np.nan)
    k_div = np.zeros(B, dtype=np.int64)
    Kn = np.asarray(Ks, dtype=np.int64)
    order = np.argsort(-Kn, kind="stable").astype(np.int64)
    th0 = np.ascontiguousarray(theta0.detach().to("cpu", torch.float64).numpy())
    prev = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        with numba.parallel_chunksize(1):
            run_lanes_compiled(opt.compiled_code, grad, order, th0, H, LP, Kn, int(every),
                               float(DIVERGENCE_BOUND), out_theta, out_s1, out_s2, k_div)
    finally:
        numba.set_num_threads(prev)
    k_rows = np.full((B, T), -1, dtype=np.int64)
    for b, r in enumerate(lane_ks):
        k_rows[b, :len(r)] = r
    valid = (k_rows >= 0) & (k_rows < k_div[:, None])
    # rows at or past the divergence (and padding) are NaN, as on the torch engine
    out_theta[~valid] = np.nan
    out_s1[~valid] = np.nan
    out_s2[~valid] = np.nan
    alpha64 = h64["alpha"].numpy()
    diverged = k_div <= Kn
    t = np.where(valid, k_rows * alpha64[:, None], np.nan)
    to = lambda a, dt=dtype: torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dt)  # noqa: E731
    theta = to(out_theta)
    f = landscape_values(landscape, theta)
    moments = {}
    if record_moments:
        for name, arr in zip(opt.moment_names, (out_s1, out_s2)):
            moments[name] = to(arr)
    steps_done = np.where(diverged, np.maximum(k_div - 1, 0), Kn)
    attempted = np.where(diverged, k_div, Kn)
    params = {key: [float(x) for x in val.tolist()] for key, val in h64.items()}
    return Trajectory(
        t=to(t), theta=theta, f=f,
        status=to(np.where(diverged, int(Status.DIVERGED), int(Status.OK)), torch.long),
        diverged_at=to(np.where(diverged, k_div * alpha64, np.nan)),
        n_out=to(valid.sum(axis=1), torch.long), extras=moments, params=params,
        stats={"steps": to(steps_done, torch.long), "oracle_value": to(attempted, torch.long),
               "oracle_grad": to(attempted, torch.long),
               "oracle_hvp": to(np.zeros(B, dtype=np.int64), torch.long)},
        meta={"model": opt.name, "landscape": landscape.spec(),
              "steps": Ks[0] if len(set(Ks)) <= 1 else list(Ks), "every": every,
              "engine": "compiled"})


def landscape_values(landscape, theta: torch.Tensor) -> torch.Tensor:
    """f along (B, T, n) samples -> (B, T), NaN rows NaN (per-lane parameters kept aligned)."""
    B, T, n = theta.shape
    if landscape.n_lanes() is None:
        return landscape.value(theta.reshape(B * T, n)).reshape(B, T)
    cols = [landscape.value(theta[:, j]) for j in range(T)]
    return torch.stack(cols, dim=1) if cols else theta.new_zeros(B, 0)
