"""Integrator benchmark: exact exponential integrators vs explicit dopri5, against an LSODA reference.

Problem: rosenbrock1d(c=1.5), theta0 = -1.5, betas (0.9, 0.999), eps = 1e-8, u0 = 0, one lane per run,
horizon T (shifted time s in [0, T]) for a range of alpha. For every (model, alpha) four integrators
are run on the same initial value problem:

* ``exact``       :func:`flows.solve.solve` with its default method (exponential Rosenbrock exprb43,
  full Jacobian), rtol 1e-10, atol 1e-12, outputs only at [0, T];
* ``etd-doubling`` the same loop with step doubling of :class:`flows.solvers.HochbruckOstermann4`
  (exponential RK with the constant linear part treated exactly), same tolerances;
* ``dopri5``      ``torchdiffeq.odeint(flow, y0, [0, T], method='dopri5')`` on the same module
  (rtol 1e-10, atol 1e-12), the right-hand side wrapped in a counting module;
* ``lsoda``       :func:`scipy.integrate.solve_ivp` (LSODA, rtol 1e-11, atol 1e-13) on an
  independent numpy right-hand side written below: the reference theta(T).

Per run: steps (accepted/rejected for the adamflow integrators; dopri5 attempted steps
(nfev - 2)/6, LSODA internal steps are not exposed by solve_ivp: its nfev/njev are reported), RHS
evaluations, wall time (time.perf_counter, torch and BLAS on one thread) and |theta(T) - theta_LSODA(T)|.
The ratios (dopri5 / exact steps, dopri5 / exact wall time, ...) are taken within the same run.

dopri5 steps grow like 1/alpha (the linear part is stiff on the alpha time scale), so dopri5 is
skipped at smaller alpha once a larger alpha took more than ``dopri_skip_after_s`` seconds for the
same model, and aborted in flight past ``dopri_abort_s`` seconds.

Usage: ``python -m flows.benchmark [--quick] [--json PATH] [--md PATH] [--quiet]``.
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

import flows
import landscapes
from core.output import atomic_write_text, write_json
from flows.simulate import simulate
from flows.solvers import HochbruckOstermann4

PROBLEM = {"landscape": "rosenbrock1d(c=1.5)", "c": 1.5, "theta0": -1.5, "beta1": 0.9,
           "beta2": 0.999, "eps": 1e-8, "u0": 0.0}
FULL = {"T": 2.0, "alphas": [1e-1, 3e-2, 1e-2, 3e-3, 1e-3]}
QUICK = {"T": 1.0, "alphas": [1e-1, 1e-2, 1e-3]}
MODELS = ("adam-flow1", "adam-flow2")
METHODS = ("exact", "etd-doubling", "dopri5", "lsoda")
TOL = {"rtol": 1e-10, "atol": 1e-12}
REF_TOL = {"rtol": 1e-11, "atol": 1e-13}


# --------------------------------------------------------------------------------------------------
# independent numpy right-hand side (reference)
# --------------------------------------------------------------------------------------------------

def _grad(x: float, c: float) -> float:
    return -2.0 * (1.0 - x) + 4.0 * c * x * (x * x - 1.0)


def _adam_direction(s: float, m: float, v: float, alpha: float, b1: float, b2: float,
                    eps: float) -> float:
    q = s / alpha + 1.0
    c1 = -math.expm1(q * math.log(b1))
    c2 = -math.expm1(q * math.log(b2))
    eta = math.sqrt(c2) / c1
    epsq = eps * math.sqrt(c2)
    return eta * m / (math.sqrt(max(v, 0.0)) + epsq)


def numpy_rhs(model: str, alpha: float, c: float, b1: float, b2: float, eps: float):
    """f(s, y) of the model in plain numpy/math, independent of the torch implementation.

    adam-flow1: y = (theta, m, v); adam-flow2: y = (theta, u, m, m', v, v').
    """
    if model == "adam-flow1":
        lam1, lam2 = (1.0 - b1) / alpha, (1.0 - b2) / alpha

        def f1(s, y):
            th, m, v = y
            g = _grad(th, c)
            return np.array([-_adam_direction(s, m, v, alpha, b1, b2, eps),
                             lam1 * (g - m), lam2 * (g * g - v)])
        return f1
    if model == "adam-flow2":
        k = 2.0 / alpha
        q1, q2 = 2.0 * (1.0 - b1) / alpha ** 2, 2.0 * (1.0 - b2) / alpha ** 2

        def f2(s, y):
            th, u, m, dm, v, dv = y
            g = _grad(th, c)
            A = _adam_direction(s, m, v, alpha, b1, b2, eps)
            return np.array([u, -k * (u + A), dm, -k * dm + q1 * (g - m),
                             dv, -k * dv + q2 * (g * g - v)])
        return f2
    raise ValueError(f"unknown model {model!r}")


def numpy_y0(model: str, theta0: float, u0: float) -> np.ndarray:
    if model == "adam-flow1":
        return np.array([theta0, 0.0, 0.0])
    return np.array([theta0, u0, 0.0, 0.0, 0.0, 0.0])


# --------------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------------

class _Abort(Exception):
    pass


class CountingRHS(torch.nn.Module):
    """Wraps a flow's forward(t, y): counts evaluations and aborts past a wall-clock deadline."""

    def __init__(self, flow: torch.nn.Module, deadline: float | None = None):
        super().__init__()
        self.flow = flow
        self.nfev = 0
        self.deadline = deadline

    def forward(self, t, y):
        self.nfev += 1
        if self.deadline is not None and (self.nfev & 63) == 0 and time.perf_counter() > self.deadline:
            raise _Abort()
        return self.flow(t, y)


def make_flow(model: str, alpha: float, problem: dict = PROBLEM):
    land = landscapes.parse(problem["landscape"])
    cls = flows.get(model)
    kw = dict(alpha=alpha, beta1=problem["beta1"], beta2=problem["beta2"], eps=problem["eps"],
              n_lanes=1, dtype=torch.float64)
    if model == "adam-flow2":
        kw["u0"] = problem["u0"]
    return cls(land, **kw)


def _run_adamflow(model: str, alpha: float, T: float, problem: dict, doubling: bool) -> dict:
    flow = make_flow(model, alpha, problem)
    theta0 = torch.tensor([[problem["theta0"]]], dtype=torch.float64)
    t_out = torch.tensor([[0.0, T]], dtype=torch.float64)
    kw = {"solver": HochbruckOstermann4()} if doubling else {}
    t0 = time.perf_counter()
    traj = simulate(flow, theta0, t_out, torch.tensor([2]), **TOL, **kw)
    wall = time.perf_counter() - t0
    acc = int(traj.stats["accepted"][0])
    rej = int(traj.stats["rejected"][0])
    out = {"status": "ok" if int(traj.n_out[0]) == 2 else f"failed (status {int(traj.status[0])})",
           "theta_T": float(traj.theta[0, -1, 0]), "steps": acc, "accepted": acc, "rejected": rej,
           "nfev": int(traj.stats["nfev"][0]), "wall_s": wall}
    if not doubling:
        out["jacobians"] = acc + rej           # exprb43: one Jacobian per attempted step
    return out


def _run_dopri5(model: str, alpha: float, T: float, problem: dict, abort_s: float) -> dict:
    # lazy: torchdiffeq loads scipy.integrate (~0.3 s for every command)
    from torchdiffeq import odeint

    flow = make_flow(model, alpha, problem)
    theta0 = torch.tensor([[problem["theta0"]]], dtype=torch.float64)
    y0 = flow.initial_state(theta0)
    t = torch.tensor([0.0, T], dtype=torch.float64)
    t0 = time.perf_counter()
    rhs = CountingRHS(flow, deadline=t0 + abort_s)
    try:
        with torch.no_grad():
            ys = odeint(rhs, y0, t, method="dopri5", **TOL, options={"max_num_steps": 50_000_000})
    except _Abort:
        wall = time.perf_counter() - t0
        return {"status": f"aborted (>{abort_s:g} s)", "theta_T": math.nan, "nfev": rhs.nfev,
                "steps": max(rhs.nfev - 2, 0) // 6, "wall_s": wall}
    wall = time.perf_counter() - t0
    # torchdiffeq dopri5: 2 evaluations for the initial step, then 6 per attempted step (FSAL)
    return {"status": "ok", "theta_T": float(ys[-1, 0, 0, 0]), "nfev": rhs.nfev,
            "steps": max(rhs.nfev - 2, 0) // 6, "wall_s": wall}


def _run_lsoda(model: str, alpha: float, T: float, problem: dict) -> dict:
    from scipy.integrate import solve_ivp

    f = numpy_rhs(model, alpha, problem["c"], problem["beta1"], problem["beta2"], problem["eps"])
    y0 = numpy_y0(model, problem["theta0"], problem["u0"])
    t0 = time.perf_counter()
    sol = solve_ivp(f, (0.0, T), y0, method="LSODA", t_eval=[T], **REF_TOL)
    wall = time.perf_counter() - t0
    return {"status": "ok" if sol.success else f"failed ({sol.message})",
            "theta_T": float(sol.y[0, -1]) if sol.success else math.nan,
            "steps": None, "nfev": int(sol.nfev), "njev": int(sol.njev), "wall_s": wall}


def _ratio(a, b):
    if a is None or b is None or not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return None
    if b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


def run_benchmark(alphas=None, T: float | None = None, models=MODELS, *, quick: bool = False,
                  problem: dict | None = None, methods=METHODS, dopri_skip_after_s: float = 30.0,
                  dopri_abort_s: float = 60.0, threads: int | None = 1, warmup: bool = True,
                  progress: bool = True) -> dict:
    """Run the benchmark; returns {"config", "runs", "ratios"} (JSON-ready; NaN for missing values).

    ``runs`` has one record per (model, alpha, method) with keys model, alpha, method, status,
    theta_T, err_vs_lsoda, steps, nfev, wall_s (+ accepted, rejected, jacobians, njev where defined).
    ``ratios`` has one record per (model, alpha): dopri5 / exact and etd-doubling / exact steps and
    wall times.
    """
    from tqdm.auto import tqdm

    size = QUICK if quick else FULL
    alphas = [float(a) for a in (size["alphas"] if alphas is None else alphas)]
    T = float(size["T"] if T is None else T)
    problem = {**PROBLEM, **(problem or {})}
    methods = tuple(methods)
    if "lsoda" not in methods:
        methods = methods + ("lsoda",)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        if warmup:   # first-call overheads (imports, kernels, caches) out of the timings
            for model in models:
                if "exact" in methods:
                    _run_adamflow(model, 0.1, 0.05, problem, doubling=False)
                if "etd-doubling" in methods:
                    _run_adamflow(model, 0.1, 0.05, problem, doubling=True)
                if "dopri5" in methods:
                    _run_dopri5(model, 0.1, 0.05, problem, abort_s=dopri_abort_s)
        runs: list[dict] = []
        jobs = [(m, a) for m in models for a in sorted(alphas, reverse=True)]
        dopri_slow: dict[str, float] = {}
        bar = tqdm(total=len(jobs) * len(methods), disable=not progress, desc="benchmark",
                   file=sys.stderr, leave=False)
        for model, alpha in jobs:
            res: dict[str, dict] = {}
            for method in ("lsoda",) + tuple(x for x in methods if x != "lsoda"):
                bar.set_postfix_str(f"{model} alpha={alpha:g} {method}")
                if method == "lsoda":
                    r = _run_lsoda(model, alpha, T, problem)
                elif method == "exact":
                    r = _run_adamflow(model, alpha, T, problem, doubling=False)
                elif method == "etd-doubling":
                    r = _run_adamflow(model, alpha, T, problem, doubling=True)
                elif method == "dopri5":
                    if model in dopri_slow:
                        r = {"status": f"skipped (>{dopri_abort_s:g} s)", "theta_T": math.nan,
                             "steps": None, "nfev": None, "wall_s": None}
                    else:
                        r = _run_dopri5(model, alpha, T, problem, abort_s=dopri_abort_s)
                        if r["wall_s"] > dopri_skip_after_s:
                            dopri_slow[model] = r["wall_s"]
                else:
                    raise ValueError(f"unknown method {method!r}")
                res[method] = r
                bar.update(1)
            ref = res["lsoda"]["theta_T"]
            for method in methods:
                r = res[method]
                err = (abs(r["theta_T"] - ref) if method != "lsoda"
                       and math.isfinite(r["theta_T"]) and math.isfinite(ref) else math.nan)
                if method == "lsoda":
                    err = 0.0 if math.isfinite(ref) else math.nan
                runs.append({"model": model, "alpha": alpha, "T": T, "method": method,
                             **r, "err_vs_lsoda": err})
        bar.close()
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)

    ratios = []
    for model, alpha in jobs:
        by = {r["method"]: r for r in runs if r["model"] == model and r["alpha"] == alpha}
        ex = by.get("exact", {})
        row = {"model": model, "alpha": alpha}
        for other in ("dopri5", "etd-doubling", "lsoda"):
            o = by.get(other)
            if o is None:
                continue
            ok = o["status"] == "ok"
            if other != "lsoda":
                row[f"{other}/exact steps"] = _ratio(o["steps"], ex.get("steps")) if ok else None
                row[f"{other}/exact nfev"] = _ratio(o["nfev"], ex.get("nfev")) if ok else None
            row[f"{other}/exact wall"] = _ratio(o["wall_s"], ex.get("wall_s")) if ok else None
        ratios.append(row)

    config = {"problem": problem, "T": T, "alphas": alphas, "models": list(models),
              "methods": list(methods), "tolerances": {"adamflow+dopri5": TOL, "lsoda": REF_TOL},
              "torch_threads": threads if threads is not None else old_threads,
              "dopri_skip_after_s": dopri_skip_after_s, "dopri_abort_s": dopri_abort_s,
              "warmup": warmup, "quick": quick, "dtype": "float64", "device": "cpu",
              "torch": torch.__version__, "python": platform.python_version(),
              "machine": platform.machine(), "processor": platform.processor() or None}
    return {"config": config, "runs": runs, "ratios": ratios}


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------

def _fmt(x: Any, kind: str = "g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    if kind == "int":
        return str(int(x))
    if kind == "e":
        return f"{x:.1e}"
    if kind == "s":
        return f"{x:.3f}" if x < 10 else f"{x:.1f}"
    if kind == "x":
        if x < 1:
            return f"{x:.2g}x"
        return f"{x:.1f}x" if x < 100 else f"{x:.0f}x"
    return f"{x:g}"


def to_markdown(result: dict) -> str:
    cfg = result["config"]
    p = cfg["problem"]
    lines = [
        f"### Integrator benchmark: {p['landscape']}, theta0 = {p['theta0']}, "
        f"betas ({p['beta1']}, {p['beta2']}), eps = {p['eps']}, T = {cfg['T']:g}",
        "",
        f"rtol/atol {TOL['rtol']:g}/{TOL['atol']:g} (exact, etd-doubling, dopri5); reference LSODA "
        f"{REF_TOL['rtol']:g}/{REF_TOL['atol']:g}; torch threads = {cfg['torch_threads']}, float64, CPU; "
        f"warm-up {'on' if cfg['warmup'] else 'off'}. steps: accepted (rej) for exact/etd, attempted "
        f"(nfev-2)/6 for dopri5; LSODA: nfev/njev only. 'J' = Jacobian evaluations. The LSODA "
        f"reference is itself accurate to ~1e-10 only (rtol 1e-11): smaller errors are at its floor.",
        "",
        "| model | alpha | method | steps (rej) | RHS evals | wall [s] | \\|theta(T) - LSODA\\| | status |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        if r["method"] in ("exact", "etd-doubling"):
            steps = f"{r['accepted']} ({r['rejected']})"
        else:
            steps = _fmt(r["steps"], "int")
        nfev = _fmt(r["nfev"], "int")
        if r["method"] == "exact" and "jacobians" in r:
            nfev += f" + {r['jacobians']} J"
        if r["method"] == "lsoda" and r.get("njev") is not None:
            nfev += f" + {r['njev']} J"
        err = "(ref)" if r["method"] == "lsoda" else _fmt(r["err_vs_lsoda"], "e")
        lines.append(f"| {r['model']} | {r['alpha']:g} | {r['method']} | {steps} | {nfev} | "
                     f"{_fmt(r['wall_s'], 's')} | {err} | {r['status']} |")
    lines += ["", "Ratios within the same run (relative to the exact integrator):", "",
              "| model | alpha | dopri5/exact steps | dopri5/exact wall | etd/exact steps | "
              "etd/exact wall | lsoda/exact wall |", "|---|---|---|---|---|---|---|"]
    for q in result["ratios"]:
        lines.append(
            f"| {q['model']} | {q['alpha']:g} | {_fmt(q.get('dopri5/exact steps'), 'x')} | "
            f"{_fmt(q.get('dopri5/exact wall'), 'x')} | {_fmt(q.get('etd-doubling/exact steps'), 'x')} | "
            f"{_fmt(q.get('etd-doubling/exact wall'), 'x')} | {_fmt(q.get('lsoda/exact wall'), 'x')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.benchmark", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 1, alphas {1e-1, 1e-2, 1e-3}")
    ap.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    ap.add_argument("--md", metavar="PATH", help="write the markdown tables")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, for fairness)")
    args = ap.parse_args(argv)
    result = run_benchmark(quick=args.quick, threads=args.threads, progress=not args.quiet)
    md = to_markdown(result)
    sys.stdout.write(md)
    sys.stdout.flush()
    if args.md:
        atomic_write_text(args.md, md)
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
