"""The compiled engine of the classical discrete optimizers: every lane's K updates in one numba
kernel (``prange`` over lanes, state in registers, no per-step Python or tensor dispatch).

Runs the "spec" arithmetic of GD, heavy ball, Adam, RMSProp and AdaGrad (:mod:`discrete.updates`:
the same update functions as the torch engine, compiled, so lanes agree bit for bit), float64 on
the CPU, on a landscape with a compiled gradient (:mod:`landscapes.compiled`). The trajectory has
the contract of :meth:`discrete.base.DiscreteOptimizer.run` (samples, divergence, statuses, stats);
f at the samples is evaluated afterwards by the landscape itself (:func:`landscapes.base.trajectory_values`, as for flows).
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
from discrete.powers import lane_pow
from discrete.updates import make_updates
from landscapes.base import trajectory_values
from landscapes.compiled import Unsupported, compiled_gradient

GD, HEAVYBALL, ADAM, RMSPROP, ADAGRAD = range(5)

_gd, _hb, _adam, _rms, _ada = (njit(cache=True, inline="always")(f) for f in make_updates(numba_math))


#: lanes advanced together by one thread: the update loop over a block's lanes has no calls and no
#: branches, so it is vectorised (SIMD) across lanes; the gradient is gathered first, per lane
BLOCK = 64


@njit(cache=True)
def _block(code, grad, lanes, theta0, H, LP, Ks, BC, bidx, every, bound, out_theta, out_s1, out_s2,
           k_div):
    W = lanes.shape[0]
    n = theta0.shape[1]
    th = np.empty((W, n))
    s1 = np.zeros((W, n))
    s2 = np.zeros((W, n))
    nt = np.empty((W, n))
    n1 = np.zeros((W, n))
    n2 = np.zeros((W, n))
    g = np.empty((W, n))
    K = np.empty(W, dtype=np.int64)
    row = np.ones(W, dtype=np.int64)
    run = np.zeros(W, dtype=np.bool_)
    Kmax = 0
    for w in range(W):
        b = lanes[w]
        K[w] = Ks[b]
        ok = True
        for i in range(n):
            th[w, i] = theta0[b, i]
            if not (abs(th[w, i]) <= bound):
                ok = False
        if ok:
            k_div[b] = K[w] + 1
            run[w] = True
            for i in range(n):
                out_theta[b, 0, i] = th[w, i]
                out_s1[b, 0, i] = 0.0
                out_s2[b, 0, i] = 0.0
            Kmax = max(Kmax, K[w])
        else:
            k_div[b] = 0
    h0 = np.empty(W)
    h1 = np.empty(W)
    h2 = np.empty(W)
    h3 = np.empty(W)
    h4 = np.empty(W)
    h5 = np.empty(W)
    bc1 = np.ones(W)
    bc2 = np.ones(W)
    for w in range(W):
        h = H[lanes[w]]
        h0[w] = h[0]
        h1[w] = h[1] if h.shape[0] > 1 else 0.0
        h2[w] = h[2] if h.shape[0] > 2 else 0.0
        h3[w] = h[3] if h.shape[0] > 3 else 0.0
        h4[w] = h[4] if h.shape[0] > 4 else 0.0
        h5[w] = h[5] if h.shape[0] > 5 else 0.0
    lp0 = LP[lanes[0]].ctypes
    shared = True                                    # one parameter row for the whole block
    for w in range(1, W):
        for j in range(LP.shape[1]):
            if LP[lanes[w], j] != LP[lanes[0], j]:
                shared = False
    for k in range(1, Kmax + 1):
        for w in range(W):
            if run[w] and k > K[w]:
                run[w] = False
        if code == ADAM:
            for w in range(W):
                bc1[w] = BC[bidx[lanes[w]], 0, k]
                bc2[w] = BC[bidx[lanes[w]], 1, k]
        if shared:                                   # gradients (calls: not vectorised)
            for w in range(W):
                for i in range(n):
                    g[w, i] = grad(th[w, i], lp0)
        else:
            for w in range(W):
                lp = LP[lanes[w]].ctypes
                for i in range(n):
                    g[w, i] = grad(th[w, i], lp)
        # the updates: branch-free over lanes (SIMD); finished lanes compute and are discarded
        if code == GD:
            for w in range(W):
                for i in range(n):
                    nt[w, i] = _gd(th[w, i], g[w, i], h0[w])
        elif code == HEAVYBALL:
            first = k == 1
            for w in range(W):
                for i in range(n):
                    buf = g[w, i] if first else s1[w, i] * h1[w] + g[w, i]
                    n1[w, i] = buf
                    nt[w, i] = _hb(th[w, i], buf, h0[w])
        elif code == ADAM:
            for w in range(W):
                for i in range(n):
                    nt[w, i], n1[w, i], n2[w, i] = _adam(th[w, i], s1[w, i], s2[w, i], g[w, i],
                                                         h0[w], h1[w], h2[w], h3[w], h4[w], h5[w],
                                                         bc1[w], bc2[w])
        elif code == RMSPROP:
            for w in range(W):
                for i in range(n):
                    nt[w, i], n1[w, i] = _rms(th[w, i], s1[w, i], g[w, i], h0[w], h1[w], h2[w],
                                              h3[w])
        else:
            for w in range(W):
                for i in range(n):
                    nt[w, i], n1[w, i] = _ada(th[w, i], s1[w, i], g[w, i], h0[w], h1[w])
        any_run = False
        for w in range(W):
            if not run[w]:
                continue
            bad = False
            for i in range(n):
                if not (abs(nt[w, i]) <= bound):
                    bad = True
            b = lanes[w]
            if bad:
                k_div[b] = k
                run[w] = False
                continue
            any_run = True
            for i in range(n):
                th[w, i] = nt[w, i]
                s1[w, i] = n1[w, i]
                s2[w, i] = n2[w, i]
            if k % every == 0 or k == K[w]:
                r = row[w]
                for i in range(n):
                    out_theta[b, r, i] = th[w, i]
                    out_s1[b, r, i] = s1[w, i]
                    out_s2[b, r, i] = s2[w, i]
                row[w] = r + 1
        if not any_run:
            break


@njit(cache=True, parallel=True)
def run_lanes_compiled(code, grad, order, theta0, H, LP, Ks, BC, bidx, every, bound, out_theta,
                       out_s1, out_s2, k_div):
    nb = (order.shape[0] + BLOCK - 1) // BLOCK
    for j in prange(nb):
        lanes = order[j * BLOCK: min((j + 1) * BLOCK, order.shape[0])]
        _block(code, grad, lanes, theta0, H, LP, Ks, BC, bidx, every, bound, out_theta, out_s1,
               out_s2, k_div)


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
    BC, bidx = _bias_corrections(opt, h64, Kn)
    order = np.argsort(-Kn, kind="stable").astype(np.int64)
    th0 = np.ascontiguousarray(theta0.detach().to("cpu", torch.float64).numpy())
    prev = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        with numba.parallel_chunksize(1):
            run_lanes_compiled(opt.compiled_code, grad, order, th0, H, LP, Kn, BC, bidx, int(every),
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
    f = trajectory_values(landscape, theta)
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


def _bias_corrections(opt, h64: dict, Kn: np.ndarray) -> np.ndarray:
    """((U, 2, K+1) table of 1 - b1^k, 1 - b2^k per distinct (beta1, beta2), (B,) row of each lane);
    computed with the torch engine's own :func:`discrete.powers.lane_pow`, so both engines divide
    by the same numbers, and no pow runs per lane and step. Other methods: a dummy table."""
    B = Kn.shape[0]
    if opt.compiled_code != ADAM:
        return np.ones((1, 2, 1)), np.zeros(B, dtype=np.int64)
    K = int(Kn.max()) if B else 0
    k = torch.arange(K + 1, dtype=torch.float64)
    pairs = torch.stack([h64["beta1"], h64["beta2"]], dim=1)
    uniq, inv = torch.unique(pairs, dim=0, return_inverse=True)
    table = torch.empty(uniq.shape[0], 2, K + 1, dtype=torch.float64)
    for u in range(uniq.shape[0]):
        for j in range(2):
            table[u, j] = 1 - lane_pow(uniq[u, j].expand(K + 1), k)
    return np.ascontiguousarray(table.numpy()), np.ascontiguousarray(inv.numpy().astype(np.int64))
