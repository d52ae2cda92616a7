"""The compiled engine of the classical discrete optimizers: every lane's K updates in one numba
kernel (``prange`` over blocks of 64 lanes, one call of the landscape's block gradient per block
and step, no per-step Python or tensor dispatch).

Runs the "spec" arithmetic of GD, heavy ball, Adam, RMSProp and AdaGrad (:mod:`discrete.updates`:
the same update functions as the torch engine, compiled; lanes agree with it bit for bit but
where torch's CPU sqrt is not correctly rounded: the compiled sqrt is), float64 on
the CPU, on a landscape with a compiled gradient (:mod:`landscapes.compiled`). The trajectory has
the contract of :meth:`discrete.base.DiscreteOptimizer.run` (samples, divergence, statuses, stats);
f at the samples is evaluated afterwards by the landscape itself
(:func:`landscapes.base.trajectory_values`, as for flows).
:func:`compiled_support` says why a run cannot take this engine.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from core import numba_math
from core.grid import output_indices
from core.numba_pointers import data_pointer, row_pointer
from core.trajectory import DIVERGENCE_BOUND, Status, Trajectory
from discrete.powers import lane_pow
from discrete.updates import make_updates
from landscapes.base import trajectory_values
from landscapes.compiled import Unsupported, compiled_block_gradient

GD, HEAVYBALL, ADAM, RMSPROP, ADAGRAD = range(5)

_gd, _hb, _adam, _rms, _ada = (njit(cache=True, inline="always")(f) for f in make_updates(numba_math))


#: lanes advanced together by one thread: the gradient (one call of the landscape's block
#: gradient, phi' inlined), the update and the divergence test run as loops over the block's lanes
#: with no calls and no branches, so they are vectorised (SIMD) across lanes
BLOCK = 64


@njit(cache=True, inline="always")
def _col(H, lanes, j, n):
    """Hyper-parameter column j of the block's lanes, one value per element (lane-major, n per
    lane; 0 where the method has fewer)."""
    W = lanes.shape[0]
    out = np.zeros(W * n)
    if j < H.shape[1]:
        for w in range(W):
            for i in range(n):
                out[w * n + i] = H[lanes[w], j]
    return out


# error_model="numpy": IEEE division, so a 0/0 update (Adam with eps = 0 at a stationary point) is a
# NaN that the divergence test catches, as on the torch engine (numba's default raised
# ZeroDivisionError inside the prange: a SystemError for the whole run); the zero-divisor branch it
# drops also kept LLVM from vectorising the update loops (1e9 Adam lane-steps: 3.2 s -> 2.0 s)
@njit(cache=True, error_model="numpy")
def _block(code, grad, lanes, theta0, H, LP, Ks, BC, bidx, every, bound, out_theta, out_s1, out_s2,
           k_div):
    # the block's state is flat, lane-major (element j = w n + i), so that the update loops run
    # over all W n elements at once
    W = lanes.shape[0]
    n = theta0.shape[1]
    N = W * n
    th = np.empty(N)
    s1 = np.zeros(N)
    s2 = np.zeros(N)
    nt = np.empty(N)
    n1 = np.zeros(N)
    n2 = np.zeros(N)
    g = np.empty(N)
    live = np.zeros(N, dtype=np.bool_)               # the element's lane is running
    K = np.empty(W, dtype=np.int64)
    row = np.ones(W, dtype=np.int64)
    run = np.zeros(W, dtype=np.bool_)
    Kmax = 0
    for w in range(W):
        b = lanes[w]
        K[w] = Ks[b]
        ok = True
        for i in range(n):
            th[w * n + i] = theta0[b, i]
            if not (abs(theta0[b, i]) <= bound):
                ok = False
        if ok:
            k_div[b] = K[w] + 1
            run[w] = True
            for i in range(n):
                live[w * n + i] = True
                out_theta[b, 0, i] = th[w * n + i]
                out_s1[b, 0, i] = 0.0
                out_s2[b, 0, i] = 0.0
            Kmax = max(Kmax, K[w])
        else:
            k_div[b] = 0
            for i in range(n):
                th[w * n + i] = 0.0                  # never advanced: keep its arithmetic finite
    h0, h1, h2 = _col(H, lanes, 0, n), _col(H, lanes, 1, n), _col(H, lanes, 2, n)
    h3, h4, h5 = _col(H, lanes, 3, n), _col(H, lanes, 4, n), _col(H, lanes, 5, n)
    bc1 = np.ones(N)
    bc2 = np.ones(N)
    shared = True                                    # one parameter row for the whole block
    for w in range(1, W):
        for j in range(LP.shape[1]):
            if LP[lanes[w], j] != LP[lanes[0], j]:
                shared = False
    one_beta = True                                  # one bias-correction row for the whole block
    for w in range(1, W):
        if bidx[lanes[w]] != bidx[lanes[0]]:
            one_beta = False
    kmin = Kmax                                      # the earliest step at which a running lane ends
    n_run = 0
    for w in range(W):
        if run[w]:
            kmin = min(kmin, K[w])
            n_run += 1
    for k in range(1, Kmax + 1):
        if k > kmin:                                 # lanes whose K is reached stop
            kmin = Kmax
            for w in range(W):
                if run[w] and k > K[w]:
                    run[w] = False
                    n_run -= 1
                    for i in range(n):
                        live[w * n + i] = False
                if run[w]:
                    kmin = min(kmin, K[w])
            if n_run == 0:
                break
        if code == ADAM:
            if one_beta:
                c1 = BC[bidx[lanes[0]], 0, k]
                c2 = BC[bidx[lanes[0]], 1, k]
                bc1[:] = c1
                bc2[:] = c2
            else:
                for w in range(W):
                    for i in range(n):
                        bc1[w * n + i] = BC[bidx[lanes[w]], 0, k]
                        bc2[w * n + i] = BC[bidx[lanes[w]], 1, k]
        if shared:
            grad(data_pointer(th, 0), row_pointer(LP, lanes[0]), data_pointer(g, 0), N)
        else:
            for w in range(W):
                grad(data_pointer(th, w * n), row_pointer(LP, lanes[w]), data_pointer(g, w * n),
                     n)
        # the updates, over every element of the block (stopped lanes compute and are discarded)
        if code == GD:
            for j in range(N):
                nt[j] = _gd(th[j], g[j], h0[j])
        elif code == HEAVYBALL:
            if k == 1:
                for j in range(N):
                    n1[j] = g[j]
                    nt[j] = _hb(th[j], g[j], h0[j])
            else:
                for j in range(N):
                    buf = s1[j] * h1[j] + g[j]
                    n1[j] = buf
                    nt[j] = _hb(th[j], buf, h0[j])
        elif code == ADAM:
            for j in range(N):
                nt[j], n1[j], n2[j] = _adam(th[j], s1[j], s2[j], g[j], h0[j], h1[j], h2[j], h3[j],
                                            h4[j], h5[j], bc1[j], bc2[j])
        elif code == RMSPROP:
            for j in range(N):
                nt[j], n1[j] = _rms(th[j], s1[j], g[j], h0[j], h1[j], h2[j], h3[j])
        else:
            for j in range(N):
                nt[j], n1[j] = _ada(th[j], s1[j], g[j], h0[j], h1[j])
        # divergence test of the running lanes: a branch-free count first, lanes only if it fired
        n_bad = 0
        for j in range(N):
            n_bad += live[j] and not (abs(nt[j]) <= bound)
        if n_bad:
            for w in range(W):
                if not run[w]:
                    continue
                bad = False
                for i in range(n):
                    if not (abs(nt[w * n + i]) <= bound):
                        bad = True
                if bad:                              # stop with its last finite state
                    k_div[lanes[w]] = k
                    run[w] = False
                    n_run -= 1
                    for i in range(n):
                        j = w * n + i
                        live[j] = False
                        nt[j] = th[j]
                        n1[j] = s1[j]
                        n2[j] = s2[j]
        th, nt = nt, th
        s1, n1 = n1, s1
        s2, n2 = n2, s2
        if k % every == 0 or k >= kmin:
            for w in range(W):
                if run[w] and (k % every == 0 or k == K[w]):
                    b = lanes[w]
                    r = row[w]
                    for i in range(n):
                        out_theta[b, r, i] = th[w * n + i]
                        out_s1[b, r, i] = s1[w * n + i]
                        out_s2[b, r, i] = s2[w * n + i]
                    row[w] = r + 1
        if n_run == 0:
            break


@njit(cache=True, parallel=True, error_model="numpy")
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
        compiled_block_gradient(landscape, 1 if landscape.n_lanes() is None else landscape.n_lanes())
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
    grad, LP = compiled_block_gradient(landscape, B)
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
    if bool((pairs == pairs[:1]).all()):             # the usual case, without a sort of B rows
        uniq, inv = pairs[:1], torch.zeros(B, dtype=torch.long)
    else:
        uniq, inv = torch.unique(pairs, dim=0, return_inverse=True)
    table = torch.empty(uniq.shape[0], 2, K + 1, dtype=torch.float64)
    for u in range(uniq.shape[0]):
        for j in range(2):
            table[u, j] = 1 - lane_pow(uniq[u, j].expand(K + 1), k)
    return np.ascontiguousarray(table.numpy()), np.ascontiguousarray(inv.numpy().astype(np.int64))
