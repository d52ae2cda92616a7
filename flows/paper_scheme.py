"""Paper scheme of arXiv 2602.09101 (SPEC §4 "Paper scheme"), vectorised over lanes and time.

Grid t_i = alpha + i h, h = alpha/substeps (substeps = 5 in the paper), i = 0..N-1; shifted time
s_i = i h; bias factors at q_i = 1 + i/substeps. Memories m_i, v_i are the exact convolutions of the
kernel (K1 for ``adam-flow1``, lam*K2 for ``adam-flow2``) with g (resp. g^2) taken piecewise linear on
each substep, propagated exactly: x_{i+1} = E x_i + P1 g_i + P2 (g_{i+1} - g_i) with E, P1, P2 from
one matrix exponential per lane (:func:`flows.kernels.phi_propagators`).

* first order:  theta_{i+1} = theta_i - h A_i                       (no look-ahead)
* second order: theta_{i+1} = theta_i + h u_i,
                u_{i+1} = u_i - h (2/alpha)(u_i + A_j),  j = min(i + substeps, N - 1),  u_0 = u0.

The whole trajectory is the fixed point of  theta -> (memories along theta) -> re-integration,
started from the trajectory with zero memory forcing (A = 0) and relaxed y <- 0.5 y_old + 0.5 y_new
until max |Δtheta| < tol. Every linear recurrence (memories, u) is evaluated by a blocked scan
(:func:`linear_scan`): block-local convolutions with powers E^k as batched matmuls, the carries
between blocks by the same scan one level up (no Python loop per substep); theta by cumsum.

Memories by quadrature (``quadrature=Q``, ``--quadrature glQ``): as published, by Q-node
Gauss-Legendre quadrature of the convolution integrals on the cubic spline of theta
(:mod:`flows.paper_quadrature`); everything else is the same scheme.

Entry points: :func:`paper_solve` (raw grid) and :func:`run_paper_scheme` (a Trajectory at t = k alpha).
"""
from __future__ import annotations

import math

import torch

from core.trajectory import Status, Trajectory, diverged_mask
from flows.adam import AdamFlow1, AdamFlow2, NonlocalAdamFlow, one_minus_pow
from flows.kernels import phi_propagators
from flows.paper_quadrature import gl_memories, quadrature_name
from flows.simulate import trajectory_values

BLOCK = 64
#: substeps per Adam step in the published scheme (h = alpha / SUBSTEPS)
SUBSTEPS = 5


# ----------------------------------------------------------------------------------------------
# blocked linear scan  x_{i+1} = E x_i + f_i
# ----------------------------------------------------------------------------------------------

def _powers(E: torch.Tensor, L: int) -> torch.Tensor:
    """E (B, J, J) -> (B, L + 1, J, J) with E^0..E^L (L small matmuls, once per run and level)."""
    B, J, _ = E.shape
    out = [torch.eye(J, dtype=E.dtype, device=E.device).expand(B, J, J)]
    for _ in range(L):
        out.append(out[-1] @ E)
    return torch.stack(out, dim=1)


class ScanPlan:
    """Precomputed powers for scanning x_{i+1} = E x_i + f_i in blocks of L (all levels)."""

    def __init__(self, E: torch.Tensor, N: int, L: int = BLOCK):
        self.L = L
        self.levels = []          # per level: (powers (B, L+1, J, J), T (B, L, L, J, J))
        Ecur = E
        n = N
        while True:
            P = _powers(Ecur, L)
            j = torch.arange(L, device=E.device)
            d = j[:, None] - j[None, :]
            T = P[:, d.clamp(min=0)] * (d >= 0).to(E.dtype)[None, :, :, None, None]
            self.levels.append((P, T))
            if n <= L:
                break
            n = math.ceil(n / L)
            Ecur = P[:, L]

    def scan(self, f: torch.Tensor, x0: torch.Tensor, level: int = 0) -> torch.Tensor:
        """f (B, M, J, n) forcing, x0 (B, J, n) -> x (B, M + 1, J, n), x_0 = x0."""
        P, T = self.levels[level]
        L = self.L
        B, M, J, n = f.shape
        nb = max(1, math.ceil(M / L))
        pad = nb * L - M
        if pad:
            f = torch.cat([f, f.new_zeros(B, pad, J, n)], dim=1)
        fb = f.reshape(B, nb, L, J, n)
        # block-local responses from zero state: y[b, blk, j] = sum_{k<=j} E^{j-k} f_{blk, k}
        loc = torch.einsum("bjkpq,bckqn->bcjpn", T, fb)          # (B, nb, L, J, n)
        # carries: c_0 = x0, c_{blk+1} = E^L c_blk + loc[blk, L-1]
        if nb == 1:
            carries = x0[:, None]
        else:
            carries = self.scan(loc[:, :-1, L - 1], x0, level + 1)  # (B, nb, J, n)
        xb = loc + torch.einsum("bjpq,bcqn->bcjpn", P[:, 1:], carries)
        x = torch.cat([x0[:, None], xb.reshape(B, nb * L, J, n)[:, :M]], dim=1)
        return x


# ----------------------------------------------------------------------------------------------
# the scheme
# ----------------------------------------------------------------------------------------------

def _grad_along(landscape, theta: torch.Tensor) -> torch.Tensor:
    """g along a (B, N, n) trajectory -> (B, N, n); one batched call when parameters are shared."""
    B, N, n = theta.shape
    shared = all(not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[0] == 1
                 for v in (landscape.params() or {}).values()) if hasattr(landscape, "params") else False
    if shared:
        return landscape.grad(theta.reshape(B * N, n)).reshape(B, N, n)
    return torch.stack([landscape.grad(theta[:, i]) for i in range(N)], dim=1)


class ExactMemories:
    """The memories (m, v) of ``flow`` on the grid s_i = i h (h (B,), N points) as the exact
    convolutions of g, g^2 taken linear on each substep: x_{i+1} = E x_i + P1 g_i + P2 (g_{i+1} -
    g_i) through the kernels' realisations, by the blocked scan (O(N) per sweep, no Python loop
    per substep). Built once per solve (one matrix exponential per lane and kernel)."""

    def __init__(self, flow: NonlocalAdamFlow, h: torch.Tensor, N: int, *, block: int = BLOCK,
                 dtype: torch.dtype = torch.float64):
        dev = h.device
        self.kernels = []
        for R in (flow.kernel_m, flow.kernel_v):
            A_, b_, c_ = (t.to(dtype=dtype, device=dev) for t in (R.A, R.b, R.c))
            E, P1, P2 = phi_propagators(A_, b_, h[:, None])
            self.kernels.append((ScanPlan(E[:, 0], N - 1, block), P1[:, 0], P2[:, 0], c_))

    def memory(self, k: int, sig: torch.Tensor) -> torch.Tensor:
        """Kernel k (0: m, 1: v) convolved with sig (B, N, n)."""
        plan, P1, P2, c = self.kernels[k]
        B, _, n = sig.shape
        J = P1.shape[-1]
        dsig = sig[:, 1:] - sig[:, :-1]
        f = P1[:, None, :, None] * sig[:, :-1, None, :] + P2[:, None, :, None] * dsig[:, :, None, :]
        x = plan.scan(f, sig.new_zeros(B, J, n))                             # (B, N, J, n)
        return torch.einsum("bj,bijn->bin", c, x)

    def __call__(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, v) for the gradient samples g (B, N, n)."""
        return self.memory(0, g), self.memory(1, g * g)


class PaperSolution:
    """Raw result of :func:`paper_solve` on the substep grid."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def paper_solve(flow: NonlocalAdamFlow, theta0: torch.Tensor, N: int, *, substeps: int = SUBSTEPS,
                tol: float = 1e-12, max_sweeps: int = 500, relax: float = 0.5,
                block: int = BLOCK, quadrature: int | None = None,
                max_corrections: int = 20) -> PaperSolution:
    """Solve the paper scheme on N grid points s_i = i h (h = alpha/substeps) for all lanes.

    ``quadrature``: None evaluates the memories as the exact convolutions of g piecewise linear on
    each substep (realization propagation); an int Q evaluates them as published, by Q-node
    Gauss-Legendre quadrature on the cubic spline of theta (:mod:`flows.paper_quadrature`).

    The quadrature fixed point theta = G_Q(theta) is reached by defect correction: the quadrature
    memories differ from the exact ones by ~1e-6 relative, almost independently of theta, so the
    sweeps run on the cheap exact memories plus the frozen difference gl(theta_c) - exact(theta_c)
    at the latest iterate theta_c, which is refreshed (one quadrature evaluation, N x Q gradients)
    until theta_c moves by less than tol: 3-4 quadrature evaluations instead of one per sweep
    (25-100), and the same fixed point. ``residual`` is then the published stopping quantity
    max|G_Q(theta) - theta| of the result, evaluated with the quadrature.

    Returns a :class:`PaperSolution` with s (B, N), theta, m, v (B, N, n), u (order 2), sweeps (B,)
    long (relaxed sweeps in all), residual (B,) (last max|Δtheta|), converged (B,) (the last
    sweeps reached tol and, with a quadrature, the last refresh moved theta by < tol), history (list of (B,) max|Δtheta| per sweep) and corrections (quadrature refreshes; 0
    without a quadrature).
    """
    hp = flow.hp
    alpha = hp.alpha
    B, n = theta0.shape
    dtype, dev = theta0.dtype, theta0.device
    h = alpha / substeps                                                     # (B,)
    i = torch.arange(N, dtype=dtype, device=dev)
    s = h[:, None] * i[None, :]                                              # (B, N)
    q = 1.0 + i[None, :] / substeps
    c1 = one_minus_pow(hp.beta1[:, None], q)
    c2 = one_minus_pow(hp.beta2[:, None], q)
    eta = (torch.sqrt(c2) / c1)[..., None]                                   # (B, N, 1)
    epsq = (hp.eps[:, None] * torch.sqrt(c2))[..., None]

    memories = ExactMemories(flow, h, N, block=block, dtype=dtype)

    order = flow.order
    if order == 2:
        cu = (1.0 - 2.0 * h / alpha)                                         # (B,)
        uplan = ScanPlan(cu[:, None, None], N - 1, block)
        u0 = hp.u0.to(dtype)[:, None].expand(B, n)
        jlook = torch.clamp(torch.arange(N - 1, device=dev) + substeps, max=N - 1)

    def integrate(Adir):
        """Trajectory (theta, u) for a given direction sequence A (B, N, n)."""
        if order == 1:
            inc = -h[:, None, None] * Adir[:, :-1]
            theta = torch.cat([theta0[:, None], theta0[:, None] + torch.cumsum(inc, dim=1)], dim=1)
            return theta, None
        f = (-(2.0 * h / alpha))[:, None, None, None] * Adir[:, jlook][:, :, None, :]
        u = uplan.scan(f, u0[:, None, :].clone())[:, :, 0, :]               # (B, N, n)
        inc = h[:, None, None] * u[:, :-1]
        theta = torch.cat([theta0[:, None], theta0[:, None] + torch.cumsum(inc, dim=1)], dim=1)
        return theta, u

    def linear_memories(theta):
        return memories(_grad_along(flow.landscape, theta))

    def direction(m, v):
        return eta * m / (torch.sqrt(torch.clamp(v, min=0.0)) + epsq)

    def fixed_point(theta, u, corr):
        """Relaxed sweeps from (theta, u) to max|Δtheta| < tol with the exact-convolution memories
        plus the fixed correction ``corr`` = (dm, dv) (None: no correction)."""
        history = []
        sweeps = torch.zeros(B, dtype=torch.long, device=dev)
        residual = torch.full((B,), math.inf, dtype=dtype, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for it in range(1, max_sweeps + 1):
            m, v = linear_memories(theta)
            if corr is not None:
                m, v = m + corr[0], v + corr[1]
            th_new, u_new = integrate(direction(m, v))
            diff = (th_new - theta).abs().flatten(1)
            diff = torch.where(torch.isfinite(diff), diff, torch.full_like(diff, math.inf)).amax(1)
            history.append(diff.clone())
            conv = diff < tol
            keep = done[:, None, None]
            if conv.all() or it == max_sweeps:
                # accept the re-integrated trajectory (the fixed point to within tol)
                theta = torch.where(keep, theta, th_new)
                if u is not None:
                    u = torch.where(keep, u, u_new)
            else:
                theta = torch.where(keep, theta, relax * theta + (1.0 - relax) * th_new)
                if u is not None:
                    u = torch.where(keep, u, relax * u + (1.0 - relax) * u_new)
            residual = torch.where(done, residual, diff)
            sweeps = torch.where(done, sweeps, torch.full_like(sweeps, it))
            done = done | conv
            if bool(done.all()):
                break
        return theta, u, sweeps, residual, history, done

    theta, u = integrate(torch.zeros(B, N, n, dtype=dtype, device=dev))
    theta, u, sweeps, residual, history, done = fixed_point(theta, u, None)
    corrections = 0
    if quadrature is not None:
        # defect correction: the quadrature memories as the exact ones plus a correction
        # gl(theta) - exact(theta) frozen at the current iterate; re-solve, refresh, until the
        # iterate stops moving. Its fixed point is the published one, theta = G_gl(theta).
        for corrections in range(1, max_corrections + 1):
            m_gl, v_gl = gl_memories(flow, theta, h, quadrature)
            m_l, v_l = linear_memories(theta)
            th_new, u, sw, _, hist, done = fixed_point(theta, u, (m_gl - m_l, v_gl - v_l))
            change = (th_new - theta).abs().flatten(1)
            change = torch.where(torch.isfinite(change), change,
                                 torch.full_like(change, math.inf)).amax(1)
            theta = th_new
            sweeps = sweeps + sw
            history += hist
            done = done & (change < tol)
            if bool(done.all()):
                break
        m, v = gl_memories(flow, theta, h, quadrature)
        th_re, _ = integrate(direction(m, v))
        residual = (th_re - theta).abs().flatten(1)
        residual = torch.where(torch.isfinite(residual), residual,
                               torch.full_like(residual, math.inf)).amax(1)
    else:
        m, v = linear_memories(theta)
    return PaperSolution(s=s, theta=theta, m=m, v=v, u=u, sweeps=sweeps, residual=residual,
                         history=history, converged=done, corrections=corrections)


def run_paper_scheme(flow: NonlocalAdamFlow, theta0: torch.Tensor, *, steps: int | None = None,
                     epochs: int | None = None, every: int = 1, substeps: int = SUBSTEPS,
                     tol: float = 1e-12, max_sweeps: int = 500, params: dict | None = None,
                     meta: dict | None = None, quadrature: int | None = None) -> Trajectory:
    """The paper scheme sampled at t = k alpha (grid index i = substeps*k) as a Trajectory.

    Give ``epochs`` for the paper's grid N = substeps (epochs - 1) (rows k <= (N-1)/substeps), or
    ``steps`` = K for N = substeps K + 1 so that the last row is k = K (what ``RunSpec`` uses).
    All lanes share the grid length (lanes may differ in alpha). ``quadrature`` as in
    :func:`paper_solve` (None: exact piecewise-linear convolutions; Q: the published Q-node
    Gauss-Legendre rule).
    """
    if not isinstance(flow, (AdamFlow1, AdamFlow2)):
        raise TypeError("the paper scheme applies to adam-flow1 / adam-flow2")
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    N = substeps * steps + 1 if steps is not None else substeps * (epochs - 1)
    if N < 2:
        raise ValueError("the grid needs at least two points")
    sol = paper_solve(flow, theta0, N, substeps=substeps, tol=tol, max_sweeps=max_sweeps,
                      quadrature=quadrature)
    Kmax = (N - 1) // substeps
    ks = list(range(0, Kmax + 1, every))
    if ks[-1] != Kmax:
        ks.append(Kmax)
    idx = torch.tensor([k * substeps for k in ks], device=theta0.device)
    theta = sol.theta[:, idx]
    B = theta.shape[0]
    t = flow.hp.alpha[:, None] * torch.tensor(ks, dtype=theta.dtype, device=theta.device)[None]
    extras = {"m": sol.m[:, idx], "v": sol.v[:, idx]}
    if sol.u is not None:
        extras["u"] = sol.u[:, idx]
    f = trajectory_values(flow.landscape, theta)
    bad = ~torch.isfinite(theta).all(-1) | (theta.abs() > 1e12).any(-1)      # (B, T)
    first_bad = torch.where(bad.any(1), bad.float().argmax(1), torch.full((B,), len(ks),
                            device=theta.device, dtype=torch.long))
    status = torch.where(bad.any(1), torch.full((B,), int(Status.DIVERGED), dtype=torch.long),
                         torch.full((B,), int(Status.OK), dtype=torch.long)).to(theta.device)
    div_at = torch.where(bad.any(1), t.gather(1, first_bad.clamp(max=len(ks) - 1)[:, None])[:, 0],
                         torch.full((B,), math.nan, dtype=theta.dtype, device=theta.device))
    _ = diverged_mask  # noqa: F841 (same divergence rule as the integrators)
    return Trajectory(
        t=t, theta=theta, f=f, status=status, diverged_at=div_at, n_out=first_bad.long(),
        extras=extras, params=dict(params or {}),
        stats={"sweeps": sol.sweeps, "residual": sol.residual, "converged": sol.converged.long(),
               "corrections": torch.full_like(sol.sweeps, sol.corrections)},
        meta={"model": flow.name, "landscape": flow.landscape.spec(), "scheme": "paper",
              "substeps": substeps, "grid_points": N, "quadrature": quadrature_name(quadrature),
              "history": [hh.tolist() for hh in sol.history], **(meta or {})})
