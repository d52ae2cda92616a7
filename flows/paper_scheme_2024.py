"""The published nonlocal (IDE) solver of arXiv 2411.09734 ("paper2024" scheme), re-implemented.

The traces of the first-order paper (Heredia 2024, notebooks of
``carlosherediapimienta/numerical_simulations_nonlocal``, solver ``Solver/NonlocalSolver.py`` at
commit aa9a613) were produced by a Picard-type fixed-point iteration on a uniform grid. This module
implements that numerical method (independently, vectorised with numpy/scipy) so that the published
curves can be reproduced and compared with the exact flows of :mod:`flows.adam`:

grid
    ``t_i = T0 + i alpha``, ``i = 0..K`` with ``T0 = 1e-12`` (the notebooks integrate on
    ``arange(1e-12, K alpha, alpha)``; here K is the last index, so ``K + 1`` points). The small
    shift ``T0`` keeps the bias factors finite at the first node; :func:`run_paper2024` reports the
    samples at the nominal times ``t = k alpha`` (the shift is 1e-12, far below every tolerance).
re-integration (one sweep ``G``)
    given an iterate ``y`` on the grid, build the not-a-knot cubic interpolant of ``y`` (its end
    polynomials extended outside the grid), evaluate the memories at every ``t_i`` with an
    ``n = 1000`` point Gauss-Legendre rule and integrate ``theta' = -D(t)`` with explicit Euler,
    ``theta_{i+1} = theta_i - alpha D(t_i)``. ``D`` depends on the *previous* iterate only, so a
    sweep is a cumulative sum.
memories / directions (``q = t/alpha``, bias factors at q, not q + 1)
    adam-flow1: ``m(t) = int_0^t k1(t-s) g(y(s)) ds``, ``v(t) = int_0^t k2(t-s) g(y(s))^2 ds``,
    ``k_j(s) = (1-beta_j)/alpha exp(-(1-beta_j) s/alpha)``,
    ``D = sqrt(1-beta2^q)/(1-beta1^q) m / (sqrt(v) + 1e-8 sqrt(1-beta2^q))``.
    rmsprop-flow: ``v(t) = int_0^{t+alpha} k(r) g(y(t-r))^2 dr`` (window one step longer than t:
    ``y`` is extrapolated to negative times), ``D = g(y(t)) / (sqrt(v) + eps)``.
    adagrad-flow: ``v(t) = int_0^{t+alpha} g(y(s))^2 / alpha ds`` (extrapolated beyond t),
    ``D = g(y(t)) / sqrt(v)`` (no eps).
fixed point
    start from the constant ``theta0``; ``y_guess = G(y)``; while ``||y - y_guess||_2 > tol``
    (L2 over the grid, tol 1e-4): ``y <- s y + (1-s) y_guess``, ``y_guess = G(y)`` with relaxation
    ``s = 0.5``, raised to the next of ``linspace(0.5, 0.9999, 1000)`` whenever the error grows
    (stop when it has reached the top and the error still grows). The result is the last
    re-integrated trajectory ``y_guess``; m, v are the memories of that final sweep.

All quantities are elementwise in the coordinates of theta (multi-dimensional theta is handled as
independent coordinates coupled through the gradient only); the L2 error is over grid x coordinates.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from core.trajectory import Status, Trajectory
from flows.simulate import trajectory_values

#: first grid time of the published solver
T0 = 1e-12
#: Gauss-Legendre nodes per memory integral (scipy fixed_quad n = 1000 in the notebooks)
NODES = 1000
#: published stopping rule: L2 distance between two iterates
TOL = 1e-4
#: published Adam epsilon (scaled by sqrt(1 - beta2^q))
ADAM_EPS = 1e-8
MODELS = ("adam-flow1", "rmsprop-flow", "adagrad-flow")

_GL_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    if n not in _GL_CACHE:
        _GL_CACHE[n] = np.polynomial.legendre.leggauss(n)
    return _GL_CACHE[n]


class _Interpolant:
    """Not-a-knot cubic spline of y (N, n) on the uniform grid, evaluated by direct index."""

    def __init__(self, t: np.ndarray, y: np.ndarray, alpha: float):
        self.t0, self.h, self.N = float(t[0]), float(alpha), len(t)
        self.t = t
        if self.N >= 2:
            from scipy.interpolate import CubicSpline

            sp = CubicSpline(t, y, axis=0, bc_type="not-a-knot", extrapolate=True)
            self.c = sp.c                                       # (4, N-1, n)
        else:
            self.c = None
            self.y0 = y[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> (..., n); outside the grid the end cubics are extended."""
        if self.c is None:
            return np.broadcast_to(self.y0, x.shape + self.y0.shape).copy()
        i = np.floor((x - self.t0) / self.h).astype(np.int64)
        np.clip(i, 0, self.N - 2, out=i)
        dx = (x - self.t[i])[..., None]
        c = self.c
        return ((c[0, i] * dx + c[1, i]) * dx + c[2, i]) * dx + c[3, i]


class _Problem:
    """Memories and direction of one model at all grid times, for a given iterate."""

    def __init__(self, model: str, landscape, alpha: float, t: np.ndarray, hyper: dict,
                 nodes: int, chunk_points: int):
        if model not in MODELS:
            raise ValueError(f"paper2024 applies to {', '.join(MODELS)}, not {model!r}")
        self.model, self.landscape, self.alpha, self.t = model, landscape, float(alpha), t
        self.hyper = hyper
        self.x, self.w = _gauss_legendre(nodes)
        self.rows = max(1, chunk_points // nodes)

    def grad(self, theta: np.ndarray) -> np.ndarray:
        """g at points theta (..., n) (numpy in, numpy out; torch only at this interface)."""
        shp = theta.shape
        th = torch.from_numpy(np.ascontiguousarray(theta.reshape(-1, shp[-1])))
        return self.landscape.grad(th).detach().cpu().numpy().reshape(shp)

    def _quad(self, ti: np.ndarray, a: np.ndarray, b: np.ndarray):
        """Nodes (R, Q) and weights (R, Q) of the Gauss rule on [a_r, b_r] (as fixed_quad)."""
        half = (b - a)[:, None] / 2.0
        nodes = half * (self.x[None, :] + 1.0) + a[:, None]
        return nodes, half * self.w[None, :]

    def evaluate(self, y: np.ndarray, idx: np.ndarray):
        """Direction D, and memories m, v at t[idx] for the iterate y (N, n)."""
        ip = _Interpolant(self.t, y, self.alpha)
        a, h = self.alpha, self.hyper
        n = y.shape[1]
        D = np.empty((len(idx), n))
        m = np.zeros((len(idx), n))
        v = np.empty((len(idx), n))
        for s in range(0, len(idx), self.rows):
            sel = idx[s:s + self.rows]
            ti = self.t[sel]
            if self.model == "adam-flow1":
                b1, b2 = h["beta1"], h["beta2"]
                X, W = self._quad(ti, np.zeros_like(ti), ti)
                g = self.grad(ip(X))                                   # (R, Q, n)
                lag = (ti[:, None] - X)
                k1 = (1 - b1) / a * np.exp(-(1 - b1) / a * lag)
                k2 = (1 - b2) / a * np.exp(-(1 - b2) / a * lag)
                mm = np.einsum("rq,rqn->rn", W * k1, g)
                vv = np.einsum("rq,rqn->rn", W * k2, g * g)
                q = ti / a
                c2 = np.sqrt(1.0 - b2 ** q)
                scale = (c2 / (1.0 - b1 ** q))[:, None]
                D[s:s + len(sel)] = scale * mm / (np.sqrt(vv) + ADAM_EPS * c2[:, None])
                m[s:s + len(sel)], v[s:s + len(sel)] = mm, vv
            elif self.model == "rmsprop-flow":
                lam = (1 - h["beta"]) / a
                R, W = self._quad(ti, np.zeros_like(ti), ti + a)       # lag r in [0, t + alpha]
                g = self.grad(ip(ti[:, None] - R))
                vv = np.einsum("rq,rqn->rn", W * lam * np.exp(-lam * R), g * g)
                g_t = self.grad(ip(ti))
                D[s:s + len(sel)] = g_t / (np.sqrt(vv) + h["eps"])
                v[s:s + len(sel)] = vv
            else:                                                      # adagrad-flow
                X, W = self._quad(ti, np.zeros_like(ti), ti + a)
                g = self.grad(ip(X))
                vv = np.einsum("rq,rqn->rn", W / a, g * g)
                g_t = self.grad(ip(ti))
                decay = h.get("lr_decay", 0.0)
                D[s:s + len(sel)] = g_t / np.sqrt(vv) / (1.0 + ti[:, None] * decay / a)
                v[s:s + len(sel)] = vv
        return D, m, v

    def sweep(self, y: np.ndarray, theta0: np.ndarray, with_last: bool = False):
        """One re-integration G(y); memories at t_0..t_{N-2} (and t_{N-1} when with_last)."""
        N = len(self.t)
        idx = np.arange(N if with_last else N - 1)
        D, m, v = self.evaluate(y, idx)
        out = np.empty_like(y)
        out[0] = theta0
        if N > 1:
            out[1:] = theta0 - self.alpha * np.cumsum(D[:N - 1], axis=0)
        return out, m, v


def paper2024_solve(model: str, landscape, theta0, alpha: float, K: int, *, tol: float = TOL,
                    max_iterations: int = 10_000, nodes: int = NODES,
                    chunk_points: int = 2_000_000, **hyper) -> dict:
    """Solve the nonlocal flow ``model`` with the published fixed-point scheme (see module doc).

    theta0: (n,) starting point (array-like or tensor); grid ``t_i = 1e-12 + i alpha``, i = 0..K.
    hyper: beta1, beta2 (adam-flow1, defaults 0.9, 0.999), beta (rmsprop-flow, default 0.99),
    eps (rmsprop-flow, default 1e-8; Adam uses the published 1e-8 sqrt(1 - beta2^q)),
    lr_decay (adagrad-flow, default 0).

    Returns numpy arrays ``t`` (K+1,), ``theta`` (K+1, n), ``m``, ``v`` (K+1, n) (the memories of
    the final sweep at every t_i; m is zero for the accumulator models), ``iterations`` (number of
    relaxed sweeps, the notebooks' "Last iteration"), ``error`` (final L2 error), ``converged``
    (error <= tol), ``smoothing`` (final relaxation factor) and ``history`` (error per sweep).
    """
    if K < 0:
        raise ValueError("K must be >= 0")
    alpha = float(alpha)
    if model == "adam-flow1":
        hyper = {"beta1": float(hyper.get("beta1", 0.9)), "beta2": float(hyper.get("beta2", 0.999))}
    elif model == "rmsprop-flow":
        hyper = {"beta": float(hyper.get("beta", 0.99)), "eps": float(hyper.get("eps", 1e-8))}
    elif model == "adagrad-flow":
        hyper = {"lr_decay": float(hyper.get("lr_decay", 0.0))}
    if isinstance(theta0, torch.Tensor):
        theta0 = theta0.detach().cpu().numpy()
    theta0 = np.atleast_1d(np.asarray(theta0, dtype=np.float64)).reshape(-1)
    t = T0 + alpha * np.arange(K + 1, dtype=np.float64)
    prob = _Problem(model, landscape, alpha, t, hyper, nodes, chunk_points)

    y_cur = np.broadcast_to(theta0, (K + 1, theta0.size)).copy()     # Euler of theta' = 0
    y_guess, m, v = prob.sweep(y_cur, theta0)
    err = float(np.sqrt(np.sum((y_cur - y_guess) ** 2)))
    history = [err]
    steps = np.linspace(0.5, 0.9999, 1000)
    s, at_max, it, last = 0.5, False, 0, err
    while err > tol and it < max_iterations:
        y_new = s * y_cur + (1.0 - s) * y_guess
        y_guess, m, v = prob.sweep(y_new, theta0)
        err = float(np.sqrt(np.sum((y_new - y_guess) ** 2)))
        history.append(err)
        y_cur = y_new
        it += 1
        if not math.isfinite(err):
            break
        if err > last:
            if at_max:
                break
            j = int(np.searchsorted(steps, s, side="right"))
            if j >= len(steps):
                s, at_max = steps[-1], True
            else:
                s = min(steps[-1], float(steps[j]))
        last = err
    # memories of the final sweep, also at the last grid time (not needed by the Euler step)
    _, m_last, v_last = prob.evaluate(y_cur, np.array([K]))
    m = np.concatenate([m, m_last])
    v = np.concatenate([v, v_last])
    return {"t": t, "theta": y_guess, "m": m, "v": v, "iterations": it, "error": err,
            "converged": bool(err <= tol), "smoothing": s, "history": history}


def run_paper2024(model: str, landscape, theta0, alpha: float, K: int, *, every: int = 1,
                  params: dict | None = None, dtype=torch.float64, **kw) -> Trajectory:
    """:func:`paper2024_solve` as a one-lane Trajectory sampled at k = 0..K (every ``every``).

    The solver grid is t_i = 1e-12 + i alpha; the Trajectory reports the nominal times t = k alpha
    (the 1e-12 shift is dropped). Extras: ``v`` (all models) and ``m`` (adam-flow1).
    Stats: ``iterations``, ``error`` (final L2 fixed-point error), ``converged`` (1/0).
    """
    sol = paper2024_solve(model, landscape, theta0, alpha, K, **kw)
    ks = list(range(0, K + 1, every))
    if ks[-1] != K:
        ks.append(K)
    idx = np.array(ks)
    theta = torch.tensor(sol["theta"][idx], dtype=dtype)[None]            # (1, T, n)
    t = torch.tensor([k * float(alpha) for k in ks], dtype=dtype)[None]
    extras = {"v": torch.tensor(sol["v"][idx], dtype=dtype)[None]}
    if model == "adam-flow1":
        extras["m"] = torch.tensor(sol["m"][idx], dtype=dtype)[None]
    f = trajectory_values(landscape, theta).to(dtype)
    bad = ~torch.isfinite(theta).all(-1)[0] | (theta.abs() > 1e12).any(-1)[0]
    if bool(bad.any()):
        first = int(bad.float().argmax())
        status, div_at, n_out = int(Status.DIVERGED), float(t[0, first]), first
    else:
        status, div_at, n_out = int(Status.OK), math.nan, theta.shape[1]
    return Trajectory(
        t=t, theta=theta, f=f, status=torch.tensor([status], dtype=torch.long),
        diverged_at=torch.tensor([div_at], dtype=dtype), n_out=torch.tensor([n_out]),
        extras=extras, params=dict(params or {}),
        stats={"iterations": torch.tensor([sol["iterations"]]),
               "error": torch.tensor([sol["error"]], dtype=dtype),
               "converged": torch.tensor([int(sol["converged"])])},
        meta={"model": model, "landscape": landscape.spec(), "scheme": "paper2024", "t0_shift": T0,
              "fixed_point_tol": kw.get("tol", TOL)})
