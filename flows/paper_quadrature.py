"""The published history quadrature of the paper scheme (arXiv 2602.09101): ``--quadrature glN``.

The published solver of the second paper evaluated the memories of the nonlocal Adam flows by
Gauss-Legendre quadrature of the convolution integrals on a cubic interpolant of theta (SPEC §4,
"Paper scheme"): at every grid point s_i = i h of the paper scheme,

    m(s_i) = int_0^{s_i} k_m(s_i - r) g(theta(r)) dr  ~  sum_q  s_i w_q  k_m(s_i (1 - x_q)) g(Theta(s_i x_q)),
    v(s_i) = int_0^{s_i} k_v(s_i - r) g(theta(r))^2 dr (likewise),

with (x_q, w_q) the N-node Gauss-Legendre rule moved to [0, 1] (N = 1000 published), Theta the
not-a-knot cubic spline through the grid values theta_0..theta_{N-1} (scipy's ``CubicSpline``; on
the uniform grid it is the spline in the index coordinate s/h), k_m, k_v the weighted kernels of
the flow (K1 for ``adam-flow1``, lam K2 for ``adam-flow2``, :mod:`flows.kernels`) and g the
landscape's gradient. m_0 = v_0 = 0. The rule is global over [0, s_i]: its nodes are spaced about
s_i/N apart, so when the kernel's time scale (100 alpha for m at beta1 = 0.99) holds only a few
nodes, the quadrature error is a visible part of small errors (the E_T of the refinement study at
alpha = 5e-4). The exact piecewise-linear convolution of :mod:`flows.paper_scheme` (``--quadrature
exact``) has no such error; this module is the published one, for reproducing the published
numbers.

Cost: N x nodes gradient and kernel evaluations per sweep per lane (45k x 1000 at alpha = 5e-4).
Two engines compute the same sums:

* ``compiled`` (CPU, float64, landscapes with a compiled gradient, :mod:`landscapes.compiled`): a
  numba kernel, ``prange`` over (lane, coordinate, row), the spline and the gradient (one block call
  per row) over the row's nodes, the kernels in closed form;
* ``torch`` (every other case, CUDA included): the same sums over chunks of rows as tensor ops,
  the kernels by their :class:`flows.kernels.MemoryKernel` classes.

Entry points: :func:`parse_quadrature` (the option's value -> nodes or None) and
:func:`gl_memories`.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch
from numba import njit, prange

from core.errors import ConfigError
from core.numba_pointers import data_pointer, row_pointer
from flows.kernels import SecondOrderKernel
from landscapes.compiled import Unsupported, compiled_block_gradient

#: nodes of the published rule
PUBLISHED_NODES = 1000
#: elements (rows x nodes) per chunk of the torch engine
CHUNK_ELEMENTS = 1 << 21

# closed-form kernel kinds of the compiled engine
_K1, _K2_OVER, _K2_CRIT, _K2_UNDER = range(4)


def parse_quadrature(value) -> int | None:
    """``exact`` -> None, ``gl<N>`` (N >= 2) -> N; ConfigError otherwise."""
    if value is None or value == "exact":
        return None
    m = re.fullmatch(r"gl(\d{1,6})", str(value))
    if m is None or int(m.group(1)) < 2:
        raise ConfigError(f"unknown quadrature {str(value)[:40]!r} (choose exact or glN with "
                          f"N >= 2 nodes, e.g. gl{PUBLISHED_NODES}, the published rule)")
    return int(m.group(1))


def quadrature_name(nodes: int | None) -> str:
    return "exact" if nodes is None else f"gl{nodes}"


def gauss_legendre_unit(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """The nodes-point Gauss-Legendre rule on [0, 1]: (x (Q,), w (Q,)), sum w = 1."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return (x + 1.0) / 2.0, w / 2.0


def spline_coefficients(theta: torch.Tensor) -> np.ndarray:
    """Not-a-knot cubic spline of theta (B, N, n) in the index coordinate: (B, n, 4, N-1) float64,
    Theta(i + d) = ((c0 d + c1) d + c2) d + c3 on [i, i + 1] (scipy ``CubicSpline`` layout; the
    end cubics extend beyond the grid). N = 2 gives the line, N = 3 the parabola (scipy's rule)."""
    from scipy.interpolate import CubicSpline

    th = theta.detach().to("cpu", torch.float64).numpy()
    B, N, n = th.shape
    y = np.moveaxis(th, 1, 0).reshape(N, B * n)
    sp = CubicSpline(np.arange(N, dtype=np.float64), y, axis=0, bc_type="not-a-knot")
    c = sp.c.reshape(4, N - 1, B, n)                                   # (4, N-1, B, n)
    return np.ascontiguousarray(np.transpose(c, (2, 3, 0, 1)))


# -- compiled engine -------------------------------------------------------------------------------

def _kernel_params(kernel_class, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """(B, 4): kind, lam, and the regime's constants of the weighted kernel per lane."""
    B = alpha.shape[0]
    out = np.zeros((B, 4))
    lam = (1.0 - beta) / alpha
    out[:, 1] = lam
    if kernel_class is not SecondOrderKernel:
        out[:, 0] = _K1
        return out
    d = 2.0 * beta - 1.0
    for b in range(B):
        if d[b] > 0:
            kap = math.sqrt(d[b])
            out[b] = (_K2_OVER, lam[b], kap, 2.0 * (1.0 - beta[b]) / (1.0 + kap))
        elif d[b] < 0:
            out[b] = (_K2_UNDER, lam[b], math.sqrt(-d[b]), 0.0)
        else:
            out[b] = (_K2_CRIT, lam[b], 0.0, 0.0)
    return out


#: rows per job of the compiled engine: the kernel values of a job's first row are computed in
#: closed form, the next rows' by exact one-row step factors (kernel(s + h(1 - x_q)) from
#: kernel(s)), so the inner loop has no exp; the recurrence adds at most ROWS ulps (relative)
ROWS = 32


@njit(cache=True, inline="always")
def _kernel_start(kind, kp2, kp3, x):
    """Closed-form state (P, D, R) of the weighted kernel at scaled lag x (K1: x = lam tau, else
    x = tau/alpha); the value is _kernel_row's combination of it."""
    if kind == _K2_OVER:
        d = -math.expm1(-2.0 * kp2 * x)
        return math.exp(-kp3 * x), d, 1.0 - d    # e^{-slow x}, 1 - e^{-2 kappa x}, e^{-2 kappa x}
    if kind == _K2_UNDER:
        e = math.exp(-x)
        return e * math.cos(kp2 * x), e * math.sin(kp2 * x), 0.0   # Z = e^{(-1 + i w) x}
    return math.exp(-x), 0.0, 0.0


@njit(cache=True, inline="always")
def _kernel_row(kind, lam, kp2, s, xq, scale, P, D, R, st, out):
    """out[q] = weighted kernel at lag s (1 - x_q) for every node; then advance the state by one
    row (exact step factors st (3, Q): 1 - R r = (1 - R) + R (1 - r), no cancellation)."""
    Q = xq.shape[0]
    if kind == _K1:
        for q in range(Q):
            out[q] = lam * P[q]
            P[q] *= st[0, q]
    elif kind == _K2_OVER:
        c = lam / kp2
        for q in range(Q):
            out[q] = c * P[q] * D[q]
            D[q] += R[q] * st[2, q]
            R[q] *= st[1, q]
            P[q] *= st[0, q]
    elif kind == _K2_CRIT:
        for q in range(Q):
            out[q] = lam * 2.0 * scale * s * (1.0 - xq[q]) * P[q]
            P[q] *= st[0, q]
    else:
        c = 2.0 * lam / kp2
        for q in range(Q):
            out[q] = c * D[q]
            zr = P[q] * st[0, q] - D[q] * st[1, q]
            D[q] = P[q] * st[1, q] + D[q] * st[0, q]
            P[q] = zr


def _kernel_steps(kp: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """(3, Q) one-row step factors of the state for scaled lag increments dx (Q,)."""
    kind = int(kp[0])
    st = np.zeros((3, dx.shape[0]))
    if kind == _K2_OVER:
        st[0] = np.exp(-kp[3] * dx)
        st[1] = np.exp(-2.0 * kp[2] * dx)
        st[2] = -np.expm1(-2.0 * kp[2] * dx)
    elif kind == _K2_UNDER:
        e = np.exp(-dx)
        st[0] = e * np.cos(kp[2] * dx)
        st[1] = e * np.sin(kp[2] * dx)
    else:
        st[0] = np.exp(-dx)
    return st


@njit(cache=True, parallel=True)
def _gl_kernel(C, h, scale, KP, ST, xq, wq, grad, LP, out_m, out_v):
    # C (B, n, 4, N-1) spline coefficients; h (B,); scale (B, 2) lag -> scaled lag factor of the
    # two kernels; KP (B, 2, 4) kernel parameters; ST (B, 2, 3, Q) one-row step factors;
    # LP (B, P) landscape parameter rows; out_m, out_v (B, N, n), row 0 left at zero
    B, n = C.shape[0], C.shape[1]
    N = C.shape[3] + 1
    Q = xq.shape[0]
    blocks = (N - 2) // ROWS + 1
    for job in prange(B * n * blocks):
        b = job // (n * blocks)
        k = (job // blocks) % n
        i0 = 1 + (job % blocks) * ROWS
        i1 = min(N, i0 + ROWS)
        th = np.empty(Q)
        g = np.empty(Q)
        kv = np.empty((2, Q))
        P = np.empty((2, Q))
        D = np.empty((2, Q))
        R = np.empty((2, Q))
        for c in range(2):
            kind = int(KP[b, c, 0])
            for q in range(Q):
                P[c, q], D[c, q], R[c, q] = _kernel_start(
                    kind, KP[b, c, 2], KP[b, c, 3], scale[b, c] * h[b] * i0 * (1.0 - xq[q]))
        cs = C[b, k]
        for i in range(i0, i1):
            for q in range(Q):
                X = i * xq[q]
                j = int(X)
                if j > N - 2:
                    j = N - 2
                d = X - j
                th[q] = ((cs[0, j] * d + cs[1, j]) * d + cs[2, j]) * d + cs[3, j]
            grad(data_pointer(th, 0), row_pointer(LP, b), data_pointer(g, 0), Q)
            s = h[b] * i
            for c in range(2):
                _kernel_row(int(KP[b, c, 0]), KP[b, c, 1], KP[b, c, 2], s, xq, scale[b, c],
                            P[c], D[c], R[c], ST[b, c], kv[c])
            sm = 0.0
            sv = 0.0
            for q in range(Q):
                wg = s * wq[q] * g[q]
                sm += wg * kv[0, q]
                sv += wg * kv[1, q] * g[q]
            out_m[b, i, k] = sm
            out_v[b, i, k] = sv


def _np(x: torch.Tensor, lanes: torch.Tensor) -> np.ndarray:
    return x.detach()[lanes.to(x.device)].to("cpu", torch.float64).numpy()


def _compiled(flow, theta, h, nodes, lanes):
    land = flow.landscape
    B = theta.shape[0]
    if land.n_lanes() is None:
        grad, LP = compiled_block_gradient(land, 1)
        LP = np.ascontiguousarray(np.repeat(LP, B, axis=0))
    else:
        grad, LP = compiled_block_gradient(land, land.n_lanes())
        LP = np.ascontiguousarray(LP[lanes.cpu().numpy()])
    hp = flow.hp
    alpha = _np(hp.alpha, lanes)
    hh = _np(h, lanes)
    kcls = type(flow).kernel_class
    KP = np.stack([_kernel_params(kcls, alpha, _np(beta, lanes))
                   for beta in (hp.beta1, hp.beta2)], axis=1)            # (B, 2, 4)
    # scaled lag: lam tau for K1 (state e^{-lam tau}), tau/alpha for K2
    scale = np.where(KP[..., 0] == _K1, KP[..., 1], 1.0 / alpha[:, None])
    xq, wq = gauss_legendre_unit(nodes)
    ST = np.stack([np.stack([_kernel_steps(KP[b, c], scale[b, c] * hh[b] * (1.0 - xq))
                             for c in range(2)]) for b in range(B)])      # (B, 2, 3, Q)
    C = spline_coefficients(theta)
    B, N, n = theta.shape
    m = np.zeros((B, N, n))
    v = np.zeros((B, N, n))
    _gl_kernel(C, hh, np.ascontiguousarray(scale), KP, ST, xq, wq, grad, LP, m, v)
    return torch.from_numpy(m), torch.from_numpy(v)


# -- torch engine ----------------------------------------------------------------------------------

def _torch(flow, theta, h, nodes, lanes):
    B, N, n = theta.shape
    dtype, dev = theta.dtype, theta.device
    hp = flow.hp
    kcls = type(flow).kernel_class
    alpha = hp.alpha.to(torch.float64)[lanes]
    km = kcls(alpha, hp.beta1.to(torch.float64)[lanes], dtype=dtype, device=dev)
    kv = kcls(alpha, hp.beta2.to(torch.float64)[lanes], dtype=dtype, device=dev)
    h = h[lanes]
    xq_np, wq_np = gauss_legendre_unit(nodes)
    xq = torch.as_tensor(xq_np, dtype=dtype, device=dev)
    wq = torch.as_tensor(wq_np, dtype=dtype, device=dev)
    C = torch.as_tensor(spline_coefficients(theta), dtype=dtype, device=dev)   # (B, n, 4, N-1)
    C = C.permute(0, 3, 1, 2)                                                 # (B, N-1, n, 4)
    land = flow.landscape
    per_lane = land.n_lanes() is not None
    if per_lane:
        land = land.subset(lanes)
    m = torch.zeros(B, N, n, dtype=dtype, device=dev)
    v = torch.zeros(B, N, n, dtype=dtype, device=dev)
    R = max(1, CHUNK_ELEMENTS // (nodes * B * n))
    lanes = torch.arange(B, device=dev)
    hh = h.to(dtype)[:, None, None]                                           # (B, 1, 1)
    for i0 in range(1, N, R):
        i = torch.arange(i0, min(N, i0 + R), dtype=dtype, device=dev)          # (I,)
        X = i[:, None] * xq[None, :]                                          # (I, Q)
        j = X.floor().long().clamp_(0, N - 2)
        d = (X - j)[None, :, :, None]                                         # (1, I, Q, 1)
        c = C[:, j]                                                           # (B, I, Q, n, 4)
        th = ((c[..., 0] * d + c[..., 1]) * d + c[..., 2]) * d + c[..., 3]    # (B, I, Q, n)
        M = th.shape[1] * th.shape[2]
        if per_lane:
            sub = land.subset(lanes.repeat_interleave(M))
            g = sub.grad(th.reshape(B * M, n)).reshape(th.shape)
        else:
            g = land.grad(th.reshape(B * M, n)).reshape(th.shape)
        s = hh * i[None, :, None]                                             # (B, I, 1)
        tau = (s * (1.0 - xq)).reshape(B, -1)                                 # (B, I*Q)
        W = (s * wq)[..., None]                                               # (B, I, Q, 1)
        Km = km(tau).reshape(B, len(i), nodes, 1)
        Kv = kv(tau).reshape(B, len(i), nodes, 1)
        m[:, i0:i0 + len(i)] = (W * Km * g).sum(2)
        v[:, i0:i0 + len(i)] = (W * Kv * g * g).sum(2)
    return m, v


def gl_memories(flow, theta: torch.Tensor, h: torch.Tensor, nodes: int = PUBLISHED_NODES, *,
                lanes: torch.Tensor | None = None, engine: str = "auto"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Memories (m, v), each (B, N, n), of ``flow`` (adam-flow1 or adam-flow2) along the grid values
    theta (B, N, n) on s_i = i h (h per lane of the flow) by the nodes-point Gauss-Legendre rule on
    the not-a-knot cubic spline of theta (module doc). ``lanes`` (B,) long: the flow's lanes that
    theta holds (default all). ``engine``: auto (compiled where it applies), compiled
    (ConfigError when it does not) or torch."""
    B, N, n = theta.shape
    if lanes is None:
        lanes = torch.arange(B)
    lanes = lanes.to(torch.long)
    if N < 2:
        z = torch.zeros_like(theta)
        return z, z.clone()
    if engine not in ("auto", "compiled", "torch"):
        raise ConfigError(f"unknown quadrature engine {engine!r} (auto, compiled or torch)")
    if engine != "torch":
        reason = None
        if theta.device.type != "cpu" or theta.dtype != torch.float64:
            reason = "the compiled quadrature runs on CPU in float64"
        else:
            try:
                m, v = _compiled(flow, theta, h, nodes, lanes)
                return m.to(theta.dtype), v.to(theta.dtype)
            except Unsupported as exc:
                reason = str(exc)
        if engine == "compiled":
            raise ConfigError(f"compiled quadrature unavailable: {reason}")
    return _torch(flow, theta, h, nodes, lanes.to(theta.device))
