"""Peer integrators for the batched adam-flow2 benchmark.

Every peer solves the SAME initial value problem, one independent *lane* per (alpha, theta0) pair:

* landscape   f(x) = (1 - x)^2 + c (x^2 - 1)^2 with c = 4 (``rosenbrock1d(c=4)``), 1-D,
* model       the second-order nonlocal Adam flow ``adam-flow2`` (:class:`flows.adam.AdamFlow2`),
  state per lane z = (theta, u, m, m', v, v'), shifted time s in [0, T] (default T = 1)::

      theta' = u                      u'  = -(2/alpha) (u + A(s))
      m'     = m'                     m'' = -(2/alpha) m' + 2 (1 - b1)/alpha^2 (g - m)
      v'     = v'                     v'' = -(2/alpha) v' + 2 (1 - b2)/alpha^2 (g^2 - v)

  with g = f'(theta), A(s) = eta(s) m / (sqrt(max(v, 0)) + eps sqrt(1 - b2^q)),
  eta(s) = sqrt(1 - b2^q) / (1 - b1^q), q = s/alpha + 1; z(0) = (theta0, 0, 0, 0, 0, 0),
* hyper-parameters b1 = 0.9, b2 = 0.999, eps = 1e-8, float64 throughout,
* output      theta(T) per lane.

The problem is a dict built by :func:`grid` (flat (B,) arrays ``alpha`` and ``theta0``, the scalars
``c``, ``beta1``, ``beta2``, ``eps``, ``T`` and the mask ``accurate``). The peers:

* :func:`scipy_loop`      a Python loop of :func:`scipy.integrate.solve_ivp` (LSODA by default), one
  call per lane, on the independent numpy right-hand side :func:`flows.benchmark.numpy_rhs`.
* :func:`reference`       the same loop with LSODA at rtol 1e-12 / atol 1e-14: the reference theta(T).
* :func:`torchdiffeq_run` ``torchdiffeq.odeint`` (dopri5 by default) on the whole batch with the
  project's torch module ``AdamFlow2.forward``; torchdiffeq controls ONE step size for the whole
  batch (error norm over all lanes), so the stiffest lane sets the step for every lane.
* :func:`torchode_run`    ``torchode`` (Dopri5 / Tsit5, integral or PID controller) on the flattened
  (B, 6) state: per-lane step sizes and per-lane acceptance, but every lane is evaluated at every
  step until the last lane finishes. No torch.compile / TorchScript.
* :func:`diffrax_run`     JAX float64, a pure-jnp one-lane right-hand side, ``jax.vmap`` of
  ``diffrax.diffeqsolve`` over lanes with a stiff ESDIRK solver (Kvaerno5, PID controller) or the
  explicit Tsit5; jit-compiled, compile+first call and a second (warm) call timed separately.

Each peer returns a dict with at least ``theta_T`` (numpy float64 array, one entry per lane solved)
and ``seconds`` (wall time of the solve, :func:`time.perf_counter`). A peer whose package does not
import raises :class:`PeerUnavailable` with a one-line reason. :func:`max_error` compares results.

Lanes with |theta0 - 1| < 0.05 (theta0 near the global minimiser 1, where v stays ~0 and the Adam
direction is ill-conditioned) are flagged ``accurate = False`` and left out of accuracy comparisons.
"""
from __future__ import annotations

import importlib
import time

import numpy as np
import torch

import landscapes
from flows import benchmark as flows_benchmark
from flows.adam import AdamFlow2
from flows.fast.solve import solve_fast

MODEL = "adam-flow2"
LANDSCAPE = "rosenbrock1d(c={c:g})"

__all__ = ["PeerUnavailable", "diffrax_run", "grid", "max_error", "reference", "scipy_loop",
           "torchdiffeq_run", "torchode_run"]


class PeerUnavailable(Exception):
    """A peer integrator cannot run here (its package does not import)."""


def _need(module: str, what: str):
    """Import ``module`` or raise :class:`PeerUnavailable` naming the peer."""

    try:
        return importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001  (ImportError, or a broken install raising another)
        raise PeerUnavailable(f"{what}: cannot import {module} ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------------------------------
# problem
# --------------------------------------------------------------------------------------------------

def grid(n_alpha: int, n_theta: int) -> dict:
    """The benchmark problem: alpha-major cartesian product of alpha and theta0 grids.

    alpha = geomspace(1e-3, 5e-2, n_alpha), theta0 = linspace(-1.8, 1.8, n_theta); B = n_alpha * n_theta
    lanes, lane i = (alpha[i // n_theta], theta0[i % n_theta]). Returns flat float64 arrays
    ``alpha`` (B,), ``theta0`` (B,), the boolean mask ``accurate`` (B,) (False where
    |theta0 - 1| < 0.05) and the scalars ``c`` = 4, ``beta1`` = 0.9, ``beta2`` = 0.999,
    ``eps`` = 1e-8, ``T`` = 1.
    """
    if n_alpha < 1 or n_theta < 1:
        raise ValueError("n_alpha and n_theta must be >= 1")
    a = np.geomspace(1e-3, 5e-2, n_alpha)
    th = np.linspace(-1.8, 1.8, n_theta)
    alpha = np.repeat(a, n_theta).astype(np.float64)
    theta0 = np.tile(th, n_alpha).astype(np.float64)
    return {"alpha": alpha, "theta0": theta0, "accurate": np.abs(theta0 - 1.0) >= 0.05,
            "c": 4.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "T": 1.0}


def _lanes(problem: dict, lanes) -> np.ndarray:
    B = len(problem["alpha"])
    if lanes is None:
        return np.arange(B)
    idx = np.asarray(lanes, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -B or idx.max() >= B):
        raise IndexError(f"lane index out of range for {B} lanes")
    return idx


def make_flow(problem: dict):
    """The project's torch module (AdamFlow2, float64, CPU) for all lanes, and its y0 (B, 1, 6)."""
    alpha = torch.as_tensor(problem["alpha"], dtype=torch.float64)
    theta0 = torch.as_tensor(problem["theta0"], dtype=torch.float64)
    B = alpha.numel()
    land = landscapes.parse(LANDSCAPE.format(c=problem["c"]))
    flow = AdamFlow2(land, alpha=alpha, beta1=problem["beta1"], beta2=problem["beta2"],
                     eps=problem["eps"], n_lanes=B, u0=0.0)
    return flow, flow.initial_state(theta0[:, None])


def max_error(theta, ref, mask=None) -> float:
    """max |theta - ref| over the lanes where ``mask`` is True (default: all lanes).

    NaN if any compared lane is not finite; NaN if no lane is selected.
    """
    theta = np.asarray(theta, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if theta.shape != ref.shape:
        raise ValueError(f"shape mismatch {theta.shape} vs {ref.shape}")
    err = np.abs(theta - ref)
    if mask is not None:
        err = err[np.asarray(mask, dtype=bool)]
    if err.size == 0:
        return float("nan")
    return float(np.max(err)) if np.all(np.isfinite(err)) else float("nan")


# --------------------------------------------------------------------------------------------------
# scipy (per-lane loop) and the reference
# --------------------------------------------------------------------------------------------------

def scipy_loop(problem: dict, lanes=None, rtol: float = 1e-10, atol: float = 1e-12,
               method: str = "LSODA") -> dict:
    """One ``scipy.integrate.solve_ivp`` call per lane on the numpy right-hand side.

    Returns {"theta_T" (len(lanes),), "seconds" (the whole loop), "lanes": n, "nfev": total RHS
    evaluations, "failed": number of lanes whose solve did not succeed (theta_T NaN there)}.
    """
    integrate = _need("scipy.integrate", "scipy_loop")
    bench = flows_benchmark
    numpy_rhs, numpy_y0 = bench.numpy_rhs, bench.numpy_y0

    idx = _lanes(problem, lanes)
    T = float(problem["T"])
    out = np.full(idx.size, np.nan)
    nfev = failed = 0
    t0 = time.perf_counter()
    for k, i in enumerate(idx):
        f = numpy_rhs(MODEL, float(problem["alpha"][i]), float(problem["c"]),
                      float(problem["beta1"]), float(problem["beta2"]), float(problem["eps"]))
        y0 = numpy_y0(MODEL, float(problem["theta0"][i]), 0.0)
        sol = integrate.solve_ivp(f, (0.0, T), y0, method=method, t_eval=[T], rtol=rtol, atol=atol)
        nfev += int(sol.nfev)
        if sol.success:
            out[k] = sol.y[0, -1]
        else:
            failed += 1
    seconds = time.perf_counter() - t0
    return {"theta_T": out, "seconds": seconds, "lanes": int(idx.size), "nfev": nfev,
            "failed": failed}


def reference(problem: dict, lanes=None) -> np.ndarray:
    """Tight reference theta(T): :func:`scipy_loop` with LSODA, rtol 1e-12, atol 1e-14."""
    return scipy_loop(problem, lanes, rtol=1e-12, atol=1e-14, method="LSODA")["theta_T"]


# --------------------------------------------------------------------------------------------------
# torchdiffeq (one step size for the whole batch)
# --------------------------------------------------------------------------------------------------

class _Counting(torch.nn.Module):
    """Wraps a right-hand side module and counts its evaluations."""

    def __init__(self, f):
        super().__init__()
        self.f = f
        self.nfev = 0

    def forward(self, t, y):
        self.nfev += 1
        return self.f(t, y)


def torchdiffeq_run(problem: dict, rtol: float = 1e-8, atol: float = 1e-10,
                    method: str = "dopri5") -> dict:
    """``torchdiffeq.odeint(flow, y0, [0, T])`` on the whole batch (torch threads as set by caller).

    Returns {"theta_T" (B,), "seconds", "nfev", "steps"}; for dopri5 ``steps`` = attempted steps
    (nfev - 2) / 6 (2 evaluations for the initial step size, 6 per attempted step with FSAL),
    shared by all lanes; for other methods ``steps`` is None.
    """
    tde = _need("torchdiffeq", "torchdiffeq_run")
    flow, y0 = make_flow(problem)
    rhs = _Counting(flow)
    t = torch.tensor([0.0, float(problem["T"])], dtype=torch.float64)
    t0 = time.perf_counter()
    with torch.no_grad():
        ys = tde.odeint(rhs, y0, t, rtol=rtol, atol=atol, method=method)
    seconds = time.perf_counter() - t0
    steps = max(rhs.nfev - 2, 0) // 6 if method == "dopri5" else None
    return {"theta_T": ys[-1, :, 0, 0].numpy().copy(), "seconds": seconds, "nfev": rhs.nfev,
            "steps": steps}


# --------------------------------------------------------------------------------------------------
# torchode (per-lane step sizes)
# --------------------------------------------------------------------------------------------------

def torchode_run(problem: dict, rtol: float = 1e-8, atol: float = 1e-10, method: str = "dopri5",
                 controller: str = "integral", max_steps: int | None = 1_000_000) -> dict:
    """``torchode`` on the (B, 6) flattened state with per-lane t_start = 0, t_end = T.

    method: "dopri5" or "tsit5"; controller: "integral" (IntegralController) or "pid"
    (PIDController, pcoeff 0.2, icoeff 0.5, dcoeff 0). Returns {"theta_T" (B,), "seconds",
    "steps" (mean accepted steps per lane), "steps_max" (max accepted), "attempted_mean",
    "nfev" (batch evaluations: every lane is evaluated at every batch step), "status_ok" (lanes with
    status SUCCESS)}.
    """
    to = _need("torchode", "torchode_run")
    methods = {"dopri5": to.Dopri5, "tsit5": to.Tsit5}
    if method not in methods:
        raise ValueError(f"torchode_run: method must be one of {sorted(methods)}, got {method!r}")
    flow, y0 = make_flow(problem)
    B, n, d = y0.shape

    def f(t, y):
        return flow(t, y.view(B, n, d)).reshape(B, n * d)

    term = to.ODETerm(f)
    step = methods[method](term=term)
    if controller == "integral":
        ctrl = to.IntegralController(atol=atol, rtol=rtol, term=term)
    elif controller == "pid":
        ctrl = to.PIDController(atol=atol, rtol=rtol, pcoeff=0.2, icoeff=0.5, dcoeff=0.0, term=term)
    else:
        raise ValueError(f"torchode_run: controller must be 'integral' or 'pid', got {controller!r}")
    ctrl = ctrl.to(torch.float64)          # tolerance buffers in float64 (default dtype is float32)
    solver = to.AutoDiffAdjoint(step, ctrl, max_steps=max_steps)
    ivp = to.InitialValueProblem(
        y0=y0.reshape(B, n * d).clone(),
        t_start=torch.zeros(B, dtype=torch.float64),
        t_end=torch.full((B,), float(problem["T"]), dtype=torch.float64))
    t0 = time.perf_counter()
    with torch.no_grad():
        sol = solver.solve(ivp)
    seconds = time.perf_counter() - t0
    acc = sol.stats["n_accepted"].to(torch.float64)
    status = sol.status
    theta = sol.ys[:, -1, 0].numpy().copy()
    theta[(status != 0).numpy()] = np.nan
    return {"theta_T": theta, "seconds": seconds, "steps": float(acc.mean()),
            "steps_max": int(acc.max()), "attempted_mean": float(sol.stats["n_steps"].double().mean()),
            "nfev": int(sol.stats["n_f_evals"].max()) if "n_f_evals" in sol.stats else None,
            "status_ok": int((status == 0).sum())}


# --------------------------------------------------------------------------------------------------
# diffrax (JAX, vmapped per-lane solves)
# --------------------------------------------------------------------------------------------------

def _jax_rhs(jnp):
    """The one-lane adam-flow2 right-hand side in jnp; args = (alpha, c, b1, b2, eps)."""

    def rhs(s, y, args):
        alpha, c, b1, b2, eps = args
        th, u, m, dm, v, dv = y[0], y[1], y[2], y[3], y[4], y[5]
        g = -2.0 * (1.0 - th) + 4.0 * c * th * (th * th - 1.0)
        q = s / alpha + 1.0
        c1 = -jnp.expm1(q * jnp.log(b1))
        c2 = -jnp.expm1(q * jnp.log(b2))
        sq = jnp.sqrt(c2)
        # sqrt(max(v, 0)) with derivative 0 for v <= 0 (as the torch module's Jacobian): the plain
        # form has an infinite derivative at v = 0 = v(0), which makes the implicit solvers'
        # Newton/chord Jacobian NaN at the first step. Values are identical.
        pos = v > 0.0
        rv = jnp.where(pos, jnp.sqrt(jnp.where(pos, v, 1.0)), 0.0)
        A = (sq / c1) * m / (rv + eps * sq)
        k = 2.0 / alpha
        q1 = 2.0 * (1.0 - b1) / alpha ** 2
        q2 = 2.0 * (1.0 - b2) / alpha ** 2
        return jnp.stack([u, -k * (u + A), dm, -k * dm + q1 * (g - m),
                          dv, -k * dv + q2 * (g * g - v)])

    return rhs


def diffrax_run(problem: dict, rtol: float = 1e-8, atol: float = 1e-10, solver: str = "Kvaerno5",
                max_steps: int = 100_000, dt0: float | None = None,
                root_finder: str = "chord") -> dict:
    """``jax.vmap(diffrax.diffeqsolve)`` over lanes, jit-compiled, float64, saving only t1.

    solver: "Kvaerno5" (stiff ESDIRK) or "Tsit5" (explicit); always a ``PIDController(rtol, atol)``.
    root_finder (Kvaerno5 only): "chord" (diffrax's default ``VeryChord`` with the controller's
    tolerances: one Jacobian per step) or "newton" (``optimistix.Newton(rtol, atol)``, a fresh
    Jacobian every iteration; on this problem far fewer rejected steps). dt0 = None lets diffrax
    pick the initial step. Returns {"theta_T" (B,), "seconds" (second, warm call, block_until_ready),
    "compile_seconds" (first call incl. tracing and compilation), "steps" (mean accepted steps per
    lane), "steps_max", "rejected_mean", "status_ok" (lanes whose solve succeeded)}.
    Lanes that fail (e.g. max_steps reached) get NaN (throw=False).
    """
    jax = _need("jax", "diffrax_run")
    dfx = _need("diffrax", "diffrax_run")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    solvers = {"Kvaerno5": dfx.Kvaerno5, "Tsit5": dfx.Tsit5}
    if solver not in solvers:
        raise ValueError(f"diffrax_run: solver must be one of {sorted(solvers)}, got {solver!r}")
    term = dfx.ODETerm(_jax_rhs(jnp))
    if root_finder not in ("chord", "newton"):
        raise ValueError(f"diffrax_run: root_finder must be 'chord' or 'newton', got {root_finder!r}")
    if solver == "Kvaerno5" and root_finder == "newton":
        optx = _need("optimistix", "diffrax_run (Newton root finder)")
        slv = dfx.Kvaerno5(root_finder=optx.Newton(rtol=rtol, atol=atol))
    else:
        slv = solvers[solver]()
    ctrl = dfx.PIDController(rtol=rtol, atol=atol)
    T = float(problem["T"])
    c, b1, b2, eps = (float(problem[k]) for k in ("c", "beta1", "beta2", "eps"))

    def one(alpha, theta0):
        y0 = jnp.stack([theta0, 0.0 * theta0, 0.0 * theta0, 0.0 * theta0, 0.0 * theta0,
                        0.0 * theta0])
        sol = dfx.diffeqsolve(term, slv, t0=0.0, t1=T, dt0=dt0, y0=y0,
                              args=(alpha, c, b1, b2, eps), saveat=dfx.SaveAt(t1=True),
                              stepsize_controller=ctrl, max_steps=max_steps, throw=False)
        ok = sol.result == dfx.RESULTS.successful
        return (jnp.where(ok, sol.ys[-1, 0], jnp.nan), ok, sol.stats["num_accepted_steps"],
                sol.stats["num_rejected_steps"])

    fn = jax.jit(jax.vmap(one))
    alpha = jnp.asarray(np.asarray(problem["alpha"], dtype=np.float64))
    theta0 = jnp.asarray(np.asarray(problem["theta0"], dtype=np.float64))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(alpha, theta0))
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    th, ok, acc, rej = jax.block_until_ready(fn(alpha, theta0))
    seconds = time.perf_counter() - t0
    acc = np.asarray(acc, dtype=np.float64)
    return {"theta_T": np.asarray(th, dtype=np.float64).copy(), "seconds": seconds,
            "compile_seconds": compile_seconds, "steps": float(acc.mean()),
            "steps_max": int(acc.max()), "rejected_mean": float(np.asarray(rej).mean()),
            "status_ok": int(np.asarray(ok).sum())}


def adamflow_run(problem: dict, rtol: float = 1e-10, atol: float = 1e-12):
    """adamflow's compiled engine on the problem: a callable returning the
    :class:`flows.solve.Solution` (theta(T) = ``sol.ys[:, -1, 0, 0]``), so callers time it."""
    flow, y0 = make_flow(problem)
    t = torch.tensor([0.0, problem["T"]], dtype=torch.float64)

    def run():
        return solve_fast(flow, y0, t, rtol=rtol, atol=atol)

    return run
