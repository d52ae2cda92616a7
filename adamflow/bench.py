"""``adamflow bench``: the simulator against the tools a researcher would otherwise use, measured
side by side in one process (warm-up, median of repeats), each side's error against a tight
reference, written as JSON (the contract below), a table and, with ``--plot``, three figures.

JSON: ``{"device", "threads", "machine", "quick", "cases": [{"name", "lanes", "ours_s",
"ours_cold_s", "peer", "peer_s", "speedup", "ours_error", "peer_error", "note", ...}]}``;
``speedup = peer_s / ours_s``; a case whose peer does not install has ``"skipped": reason``.

Cases (names are a contract):

* ``refine-vs-scipy``: ``adamflow refine --preset heredia2026-refine --scheme exact
  --no-conditioning`` in-process (the
  whole study: its discrete Adam runs, 25 flow lanes with outputs at every k alpha, the slopes) vs a
  scipy loop doing the same (numpy Adam loop, ``solve_ivp(LSODA)`` per flow lane with ``t_eval`` at
  every k alpha); errors: max |theta - LSODA(rtol 1e-12)| over the flow lanes' grids.
* ``batch4096-vs-scipy``, ``-vs-torchdiffeq``, ``-vs-torchode``, ``-vs-diffrax``: adam-flow2 on
  rosenbrock1d(c=4), 64 alphas in [1e-3, 5e-2] x 64 theta0 in [-1.8, 1.8] (betas .9/.999), T = 1
  (:mod:`adamflow.bench_peers`); the scipy loop is timed on a 256-lane subset and scaled to 4096
  (said in the note); errors against LSODA(1e-12) on a strided subset, theta0 = 1 lanes left out.
* ``paper-scheme-vs-quadrature``: the memories (m, v) of one refine lane on the paper scheme's grid
  (alpha = 5e-4, h = alpha/5, N = 45k points) by the exact realization propagation that the paper
  scheme uses (O(N)) vs the published rule, 1000-node Gauss-Legendre quadrature on the cubic
  spline of theta (O(N x 1000), our compiled implementation; ``--quadrature gl1000``).
* ``discrete-adam-vs-torch-optim``: 1e5 lanes x 1e4 Adam steps on rosenbrock1d(c=4) (compiled
  engine) vs ``torch.optim.Adam(foreach=True)`` on the same (B,) parameter with the landscape's
  gradient; errors against adamflow's torch engine (spec arithmetic).
* ``throughput-flow2``: lane-steps/s of adam-flow2 at 1e6 lanes beside this machine's measured
  roofline (float64 GEMM flop/s and copy bandwidth, the flops and bytes one DOP853 step of
  the kernel evaluates: :func:`flops_per_step`), the two measured in alternation, each the
  median of its repeats (:func:`throughput_case`).

``--quick`` shrinks every case (about a minute in all); the names stay, ``lanes`` says the size.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import numba
import numpy as np
import torch

import landscapes
from adamflow import bench_peers as peers
from adamflow import bench_plots, bench_refine, bench_sweep
from core.errors import ConfigError
from core.output import write_json
from flows.adam import AdamFlow1
from flows.fast import kernel
from flows.fast.rhs import row_layout
from flows.fast.solve import compiled_problem
from flows.paper_quadrature import PUBLISHED_NODES, gl_memories
from flows.paper_scheme import ExactMemories
from runner.experiment import Numerics, run_lanes

REF_TOL = (1e-12, 1e-14)
#: our tolerances in the batch cases (atol = rtol / 100): matched to each peer's accuracy
LADDER = (1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 3e-9, 1e-9, 3e-10, 1e-10, 3e-11, 1e-11)


def _seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds one call of ``fn`` took, its result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(cold seconds: the first call, warm seconds: median of ``repeats`` later calls, result)."""
    cold, out = _seconds(fn)
    warm = []
    for _ in range(repeats):
        sec, out = _seconds(fn)
        warm.append(sec)
    return cold, statistics.median(warm) if warm else cold, out


def _case(name, lanes, ours_s, ours_cold_s, peer, peer_s, ours_error, peer_error, note="", **kw):
    sp = peer_s / ours_s if ours_s and peer_s else None
    return {"name": name, "lanes": int(lanes), "ours_s": ours_s, "ours_cold_s": ours_cold_s,
            "peer": peer, "peer_s": peer_s, "speedup": sp, "ours_error": ours_error,
            "peer_error": peer_error, "note": note, **kw}


def _skipped(name, lanes, peer, reason):
    return {"name": name, "lanes": int(lanes), "peer": peer, "skipped": reason}


# -- batch cases -------------------------------------------------------------------------------------

def flow2_batch(problem: dict, rtol: float, atol: float):
    """Our compiled engine on the bench problem (:func:`adamflow.bench_peers.adamflow_run`)."""
    return peers.adamflow_run(problem, rtol, atol)


def _subset(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def batch_cases(quick: bool, repeats: int, only_peers=None, side: int | None = None) -> list[dict]:
    """The batch4096 cases (``side`` x ``side`` lanes: 64, quick 32; ``only_peers``: a subset of
    scipy, torchdiffeq, torchode, diffrax)."""
    side = side or (32 if quick else 64)
    prob = peers.grid(side, side)
    B = prob["alpha"].size
    sub = _subset(B, 64 if quick else 256)
    mask = prob["accurate"][sub]
    # the reference: LSODA at rtol 1e-13; its own error is estimated against rtol 1e-12, and
    # errors below twice that cannot be told apart (the matching floor)
    ref = peers.scipy_loop(prob, sub, rtol=1e-13, atol=1e-15)["theta_T"]
    floor = 2.0 * peers.max_error(peers.reference(prob, sub), ref, mask)
    # ours on a ladder of tolerances; each peer is compared with the loosest rung that is at least
    # as accurate as the peer (matched accuracy), or the tightest rung when none is
    ladder = []
    cold = None
    for rtol in LADDER:
        c, warm, sol = _timed(flow2_batch(prob, rtol, rtol * 1e-2), 1 if quick else 2)
        cold = c if cold is None else cold
        err = peers.max_error(sol.ys[sub, -1, 0, 0].numpy(), ref, mask)
        ladder.append({"rtol": rtol, "seconds": warm, "error": err,
                       "steps_median": float(np.median(sol.stats["accepted"].numpy()))})
    out = []
    name = f"batch{B}"

    def ours_for(peer_error):
        target = max(peer_error, floor)
        rung = next((r for r in ladder if r["error"] <= target), ladder[-1])
        return rung["seconds"], rung["error"], {"ours_rtol": rung["rtol"],
                                                "ours_steps_median": rung["steps_median"]}

    # scipy loop on the subset, scaled
    if only_peers is None or "scipy" in only_peers:
        r = peers.scipy_loop(prob, sub, rtol=1e-10, atol=1e-12)
        scale = B / len(sub)
        perr = peers.max_error(r["theta_T"], ref, mask)
        o_s, o_err, o_info = ours_for(perr)
        out.append(_case("batch4096-vs-scipy", B, o_s, cold, "scipy solve_ivp(LSODA) loop, rtol "
                         "1e-10", r["seconds"] * scale, o_err, perr,
                         note=f"scipy timed on {len(sub)} of {B} lanes and scaled x{scale:g}; "
                              f"{name}", **o_info))
    # diffrax's stiff Kvaerno5 under vmap runs every lane in lockstep until the slowest finishes
    # (~19 s for 256 lanes here): timed on a strided subset and scaled; Tsit5 runs the whole grid
    ksub = _subset(B, 64 if quick else 512)
    tol = {"rtol": 1e-8, "atol": 1e-10}
    for label, fn, kwargs, pname, lanes in [
            ("batch4096-vs-torchdiffeq", peers.torchdiffeq_run, tol,
             "torchdiffeq.odeint(dopri5)", None),
            ("batch4096-vs-torchode", peers.torchode_run, tol,
             "torchode dopri5 (per-sample steps)", None),
            ("batch4096-vs-diffrax", peers.diffrax_run, {**tol, "solver": "Kvaerno5"},
             "diffrax jax.vmap(diffeqsolve(Kvaerno5))", ksub),
            ("batch4096-vs-diffrax-tsit5", peers.diffrax_run, {**tol, "solver": "Tsit5"},
             "diffrax jax.vmap(diffeqsolve(Tsit5)), explicit", None)]:
        key = label.split("-vs-")[1].split("-")[0]
        if only_peers is not None and key not in only_peers:
            continue
        part = prob if lanes is None else _sub_problem(prob, lanes)
        try:
            r = fn(part, **kwargs)
        except peers.PeerUnavailable as exc:
            out.append(_skipped(label, B, pname, str(exc)))
            continue
        extra = {k: r[k] for k in ("compile_seconds", "steps") if k in r}
        if lanes is None:
            peer_s, peer_err, note = r["seconds"], peers.max_error(r["theta_T"][sub], ref, mask), name
        else:
            scale = B / len(lanes)
            peer_s = r["seconds"] * scale
            lref = peers.scipy_loop(prob, lanes, rtol=1e-13, atol=1e-15)["theta_T"]
            peer_err = peers.max_error(r["theta_T"], lref, prob["accurate"][lanes])
            note = (f"{name}; timed on {len(lanes)} strided lanes and scaled x{scale:g} "
                    "(lockstep vmap: the cost follows the slowest lane and the lane count)")
        o_s, o_err, o_info = ours_for(peer_err)
        out.append(_case(label, B, o_s, cold, pname, peer_s, o_err, peer_err, note=note,
                         **o_info, **{f"peer_{k}": v for k, v in extra.items()}))
    out.append({"name": f"{name}-ours-ladder", "lanes": B, "ladder": ladder, "error_floor": floor,
                "note": "adamflow compiled engine at each rtol (atol = rtol/100); errors against "
                        "LSODA(1e-13) on the subset; error_floor = twice the difference between "
                        "LSODA(1e-12) and LSODA(1e-13): errors below it count as equal"})
    return out


def _sub_problem(prob: dict, idx: np.ndarray) -> dict:
    return {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in prob.items()}


# -- refine ------------------------------------------------------------------------------------------

def refine_case(repeats: int, cli_main: Callable[[list[str]], int]) -> dict:
    """``cli_main``: the app's entry point (:func:`adamflow.cli.main`)."""
    # the work the scipy loop does: no conditioning estimates (they run every lane twice more)
    argv = ["refine", "--preset", "heredia2026-refine", "--scheme", "exact", "--quiet",
            "--no-conditioning", "--json", os.devnull]

    def ours():
        with contextlib.redirect_stdout(io.StringIO()):
            if cli_main(list(argv)) != 0:
                raise RuntimeError("adamflow refine failed")

    cold, warm, _ = _timed(ours, repeats)
    lanes = bench_refine.refine_lanes()
    peer_s, peer = _seconds(lambda: bench_refine.refine_scipy(lanes, rtol=1e-10, atol=1e-12))
    ref = bench_refine.refine_scipy(lanes, rtol=REF_TOL[0], atol=REF_TOL[1], discrete=False)
    ours_theta = bench_refine.refine_ours(lanes)
    ours_err = max(float(np.abs(a - b).max()) for a, b in zip(ours_theta, ref["flows"]))
    peer_err = max(float(np.abs(a - b).max()) for a, b in zip(peer["flows"], ref["flows"]))
    return _case("refine-vs-scipy", len(lanes), warm, cold, "scipy solve_ivp(LSODA) loop + numpy "
                 "Adam", peer_s, ours_err, peer_err,
                 note="whole study in-process (CLI entry point, JSON to /dev/null)")


# -- paper scheme memories ---------------------------------------------------------------------------

def quadrature_case(quick: bool, repeats: int) -> dict:
    """The memories (m, v) of one adam-flow1 refine lane (alpha = 5e-4, h = alpha/5) along a
    trajectory on the paper scheme's grid: the exact propagation the paper scheme uses (O(N))
    against the published rule, 1000-node Gauss-Legendre quadrature on the cubic spline of theta
    (O(N x 1000); our compiled implementation, :mod:`flows.paper_quadrature`)."""
    alpha, K = 5e-4, (2000 if quick else 9000)
    N = 5 * (K - 1) + 1
    a = torch.tensor([alpha], dtype=torch.float64)
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    flow = AdamFlow1(land, alpha=a, beta1=0.99, beta2=0.999, n_lanes=1)
    s = torch.linspace(0.0, (N - 1) * alpha / 5, N, dtype=torch.float64)
    theta = (-1.5 + 2.5 * (1.0 - torch.exp(-0.8 * s)))[None, :, None]   # a refine-like path
    g = land.grad(theta.reshape(-1, 1)).reshape(1, N, 1)
    mem = ExactMemories(flow, a / 5, N)
    cold, warm, (m, v) = _timed(lambda: mem(g), repeats)
    m, v = m[..., 0], v[..., 0]
    gl_memories(flow, theta[:, :50], a / 5, PUBLISHED_NODES)                # compile / load
    tq, (mq, vq) = _seconds(lambda: gl_memories(flow, theta, a / 5, PUBLISHED_NODES))
    err_q = max(float(((mq[0, :, 0] - m[0]).abs() / m[0].abs().max()).max()),
                float(((vq[0, :, 0] - v[0]).abs() / v[0].abs().max()).max()))
    return _case("paper-scheme-vs-quadrature", 1, warm, cold,
                 f"published rule: Gauss-Legendre ({PUBLISHED_NODES} nodes) on the cubic spline",
                 tq, 0.0, err_q,
                 note=f"N = {N} grid points, m and v; errors relative to max|m|, max|v|, against "
                      "the exact propagation of g linear between samples (the difference is the "
                      "two rules' discretisation difference, not an error of either code)")


# -- discrete Adam -----------------------------------------------------------------------------------

def discrete_case(quick: bool, repeats: int) -> dict:
    B, K = (10_000, 1_000) if quick else (100_000, 10_000)
    gen = torch.Generator().manual_seed(0)
    theta0 = (torch.rand(B, generator=gen, dtype=torch.float64) * 3.6 - 1.8)[:, None]
    land = landscapes.parse("rosenbrock1d(c=4)")
    lanes = [{"theta0": [float(x)], "alpha": 1e-3} for x in theta0[:, 0].tolist()]
    num = Numerics(engine="compiled")
    cold, warm, traj = _timed(lambda: run_lanes("adam", land, lanes, [K] * B, every=K,
                                                numerics=num), repeats)
    ours = traj.theta[:, -1, 0]

    def torch_optim():
        p = theta0[:, 0].clone().requires_grad_(True)
        opt = torch.optim.Adam([p], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, foreach=True)
        for _ in range(K):
            with torch.no_grad():
                p.grad = land.grad(p.detach()[:, None])[:, 0]
            opt.step()
        return p.detach()

    peer_s, peer = _seconds(torch_optim)
    ref = run_lanes("adam", land, lanes[:2000], [K] * min(B, 2000), every=K,
                    numerics=Numerics(engine="torch")).theta[:, -1, 0]
    n = ref.shape[0]
    return _case("discrete-adam-vs-torch-optim", B, warm, cold,
                 "torch.optim.Adam(foreach=True), landscape gradient", peer_s,
                 float((ours[:n] - ref).abs().max()), float((peer[:n] - ref).abs().max()),
                 note=f"{K} steps; errors against adamflow's torch engine on the first {n} lanes")


# -- throughput and roofline -------------------------------------------------------------------------

class _Roofline:
    """This machine's compute and bandwidth bounds, measured on demand: float64 matrix products
    (BLAS, every core) and a 512 MB copy. The operands are made once; :meth:`sample` times them
    again, so a bound can be measured beside each timing of ours, under the same load (on a shared
    VM the same matrix product varied by 9% within a minute, and our runs by 30%)."""

    def __init__(self, n: int = 2048, copy_doubles: int = 2 ** 26):
        self.n = n
        self.a = np.random.default_rng(0).random((n, n))
        self.x = np.ones(copy_doubles)                               # 512 MB
        self.y = np.empty_like(self.x)
        self.a @ self.a
        np.copyto(self.y, self.x)

    def sample(self, timings: int = 3) -> dict:
        """{"flops_per_s", "bytes_per_s"}: each the median of ``timings`` timings."""
        def median_time(fn):
            return statistics.median(_seconds(fn)[0] for _ in range(timings))
        gemm = median_time(lambda: self.a @ self.a)
        copy = median_time(lambda: np.copyto(self.y, self.x))
        return {"flops_per_s": 2 * self.n ** 3 / gemm, "bytes_per_s": 2 * self.x.nbytes / copy}


#: flops charged for one expm1: what one needs (a range reduction and fdlibm's rational form, about
#: 20 operations), not the 45 that core.numba_math.expm1 evaluates (a branch-free degree-17 Taylor
#: polynomial, chosen for SIMD): the count under-charges our step, the conservative side; a
#: division or a square root is charged 1, as in the usual flop counts
EXPM1_FLOPS = 20


def flops_per_step(row: np.ndarray | None = None, d: int = 6, n: int = 1,
                   grad_flops: int = 8) -> dict:
    """Floating-point work of one accepted DOP853 step of one Adam-form lane, counted from what the
    kernel evaluates (:mod:`flows.fast.kernel`, :func:`flows.fast.rhs.adam_form`), not from dense
    formulas: ``row`` the lane's packed model row (:func:`flows.fast.rhs.pack_adam_form`; default:
    adam-flow2's), ``grad_flops`` the landscape's phi' (rosenbrock1d: 8).

    Right-hand side, per lane: the bias factors (s/alpha + 1, two products, two expm1, a square
    root, a quotient, a product) and, per coordinate, phi', the memories c_m . z + wg g and
    c_v . z, the direction (square root, sum, product, quotient, kA product and sum), the sparse
    L z and the bg g, bgg g^2 terms: 2 flops per stored entry. Step: 12 evaluations (FSAL), the
    stage combinations over the tableau's nonzero entries, the solution, the error sums over the
    nonzero error weights with their scales, and the step-size update (one power).
    Bytes: the state lives in registers/L1 during a lane's loop, so the memory traffic per step is
    the lane's data (y0, its model row, outputs) divided by its steps: tiny; the bound is compute."""
    if row is None:
        row = _flow2_row()
    nL, _, ncm, _, ncv, _, nbg, _, nbgg = (int(v) for v in row_layout(row))
    wg = row[5] != 0.0
    bias = row[7] != 0.0
    N = n * d
    per_coord = (grad_flops + 2 * ncm + 2 * ncv + (2 if wg else 0) + 6 + 2 * nL + 2 * nbg
                 + (1 + 2 * nbgg if nbgg else 0))
    rhs = n * per_coord + ((5 + 2 * EXPM1_FLOPS) if bias else 0)
    stages = sum(2 * (kernel.A_PTR[s + 1] - kernel.A_PTR[s]) * N + 2 * N + 2
                 for s in range(1, kernel.NS))
    solution = 2 * kernel.B_VAL.shape[0] * N + 2 * N
    error = N * (2 + 4 * kernel.E_IDX.shape[0] + 6) + 6
    control = EXPM1_FLOPS + 5
    per_step = kernel.NS * rhs + stages + solution + error + control
    return {"flops": int(per_step), "bytes": 8 * (2 * N + row.shape[0] + 4)}


def _flow2_row() -> np.ndarray:
    """adam-flow2's packed row on rosenbrock1d (alpha = 0.02, the bench's betas)."""
    prob = {"alpha": np.array([0.02]), "theta0": np.array([0.5]), "c": 4.0, "beta1": 0.9,
            "beta2": 0.999, "eps": 1e-8, "T": 0.1}
    flow, _ = peers.make_flow(prob)
    return compiled_problem(flow)[4][0]


def throughput_case(quick: bool, repeats: int | None = None, lanes: int | None = None,
                    probe: _Roofline | None = None) -> dict:
    """Lane-steps/s of adam-flow2 at 1e6 lanes (quick: 1e5) against this machine's roofline, both
    measured the same way: ``repeats`` (default 5, quick 1) warm runs of ours, each just after a
    measurement of the roofline (:class:`_Roofline`, medians of 3 timings); the fraction is the
    median over those pairs of rate / bound, each pair's two sides taken under the same load.
    ``fraction_of_best_roofline`` divides the median rate by the bound from the fastest
    timings of the case, the strictest reading. ``lanes``, ``probe``: smaller ones (tests)."""
    B = lanes or (100_000 if quick else 1_000_000)
    repeats = (1 if quick else 5) if repeats is None else repeats
    gen = np.random.default_rng(1)
    prob = {"alpha": np.exp(gen.uniform(np.log(1e-2), np.log(5e-2), B)),
            "theta0": gen.uniform(-1.8, 1.8, B), "c": 4.0, "beta1": 0.9, "beta2": 0.999,
            "eps": 1e-8, "T": 0.1}
    run = flow2_batch(prob, 1e-10, 1e-12)
    cold, sol = _seconds(run)
    steps = float((sol.stats["accepted"] + sol.stats["rejected"]).sum())
    fs = flops_per_step()
    bytes_per_step = fs["bytes"] * B / steps
    probe = probe or _Roofline()

    def bound(roof):
        return min(roof["flops_per_s"] / fs["flops"], roof["bytes_per_s"] / bytes_per_step)

    pairs = []
    for _ in range(repeats):
        roof = probe.sample()
        pairs.append({"ours_s": _seconds(run)[0], "roofline_lane_steps_per_s": bound(roof),
                      "machine_flops_per_s": roof["flops_per_s"],
                      "machine_bytes_per_s": roof["bytes_per_s"]})
    warm = statistics.median(p["ours_s"] for p in pairs)
    rate = steps / warm
    best = {"flops_per_s": max(p["machine_flops_per_s"] for p in pairs),
            "bytes_per_s": max(p["machine_bytes_per_s"] for p in pairs)}
    med = lambda key: statistics.median(p[key] for p in pairs)                 # noqa: E731
    return {"name": "throughput-flow2", "lanes": B, "ours_s": warm, "ours_cold_s": cold,
            "peer": "measured roofline", "peer_s": None, "speedup": None, "ours_error": None,
            "peer_error": None, "lane_steps_per_s": rate,
            "roofline_lane_steps_per_s": med("roofline_lane_steps_per_s"),
            "fraction_of_roofline": statistics.median(
                steps / p["ours_s"] / p["roofline_lane_steps_per_s"] for p in pairs),
            "fraction_of_best_roofline": rate / bound(best),
            "flops_per_step": fs["flops"], "bytes_per_step": bytes_per_step,
            "machine_flops_per_s": med("machine_flops_per_s"),
            "machine_bytes_per_s": med("machine_bytes_per_s"), "steps": steps, "pairs": pairs,
            "note": f"T = 0.1, alpha in [1e-2, 5e-2]; {steps / B:.1f} steps per lane; median of "
                    f"{repeats} (roofline, ours) pairs"}


# -- compile cost ------------------------------------------------------------------------------------

_COMPILE_PROBE = """
import time
t0 = time.perf_counter()
from adamflow import bench_peers as peers
t1 = time.perf_counter()
peers.adamflow_run(peers.grid(2, 2))()
t2 = time.perf_counter()
from runner.experiment import Numerics, run_lanes
run_lanes("adam", "rosenbrock1d(c=4)", [{"theta0": [0.5], "alpha": 1e-3}], [10],
          numerics=Numerics(engine="compiled"))
t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def compile_cost() -> dict:
    """First-use cost of the compiled kernels in a fresh process: with an empty numba cache (the
    compile) and with the cache just written (what every later run pays)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for key in ("empty_cache", "warm_cache"):
            r = subprocess.run([sys.executable, "-c", _COMPILE_PROBE], env=env, capture_output=True,
                               text=True, check=True)
            imp, flow, disc = (float(x) for x in r.stdout.split())
            out[key] = {"import_s": imp, "flow_first_call_s": flow, "discrete_first_call_s": disc}
    return out


# -- the command -------------------------------------------------------------------------------------

CASES = ("refine", "batch", "quadrature", "discrete", "throughput", "sweep")


def run_bench(*, quick: bool = False, device: str = "cpu", only: list[str] | None = None,
              progress: bool = True, cli_main: Callable[[list[str]], int] | None = None) -> dict:
    """Every case group in ``only`` (default all); ``cli_main`` runs the refine case's command."""
    if device != "cpu":
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device on this machine")
        raise ConfigError(f"the compiled engine runs on the CPU; --device {device} has no cases yet")
    repeats = 1 if quick else 3
    cases: list[dict] = []
    todo = [c for c in CASES if only is None or c in only]
    for c in todo:
        t0 = time.perf_counter()
        if c == "refine":
            if cli_main is None:
                raise ConfigError("the refine case needs the CLI entry point (cli_main)")
            cases.append(refine_case(repeats, cli_main))
        elif c == "batch":
            cases += batch_cases(quick, repeats)
        elif c == "quadrature":
            cases.append(quadrature_case(quick, repeats))
        elif c == "discrete":
            cases.append(discrete_case(quick, repeats))
        elif c == "sweep":
            cases += bench_sweep.sweep_case(quick)
        else:
            cases.append(throughput_case(quick))
        if progress:
            print(f"[bench] {c}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    compile_info = compile_cost() if not quick and only is None else None
    return {"device": device, "compile": compile_info, "threads": {"numba": numba.get_num_threads(),
                                          "torch": torch.get_num_threads()},
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "numba": numba.__version__},
            "quick": quick, "cases": cases}


def _fmt(x, spec=".3g"):
    return "-" if x is None else format(x, spec)


def to_markdown(result: dict) -> str:
    sweeps = [c for c in result["cases"] if c["name"].startswith("sweep-")]
    cases = [c for c in result["cases"] if "ladder" not in c and c not in sweeps]
    rows = ["| case | lanes | ours (s) | ours cold (s) | peer | peer (s) | speedup | ours error | "
            "peer error |", "|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        if "skipped" in c:
            rows.append(f"| {c['name']} | {c['lanes']} | - | - | {c['peer']} | skipped: "
                        f"{c['skipped']} | - | - | - |")
            continue
        if c["name"] == "throughput-flow2":
            rows.append(f"| {c['name']} | {c['lanes']} | {_fmt(c['ours_s'])} | "
                        f"{_fmt(c['ours_cold_s'])} | roofline {_fmt(c['roofline_lane_steps_per_s'])} "
                        f"lane-steps/s | - | {c['fraction_of_roofline']:.1%} of roofline "
                        f"({_fmt(c['lane_steps_per_s'])} lane-steps/s; "
                        f"{c['fraction_of_best_roofline']:.1%} of its best "
                        f"timings) | - | - |")
            continue
        rows.append(f"| {c['name']} | {c['lanes']} | {_fmt(c['ours_s'])} | {_fmt(c['ours_cold_s'])} "
                    f"| {c['peer']} | {_fmt(c['peer_s'])} | {_fmt(c['speedup'], '.1f')}x | "
                    f"{_fmt(c['ours_error'], '.1e')} | {_fmt(c['peer_error'], '.1e')} |")
    text = "\n".join(rows)
    if sweeps:
        text += "\n\n" + bench_sweep.to_markdown(sweeps)
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller cases (about a minute)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--json", metavar="PATH", help="write the JSON result ('-' = stdout)")
    p.add_argument("--plot", metavar="DIR", help="write the three figures into DIR")
    p.add_argument("--only", nargs="+", choices=CASES, help="run some case groups only")


def main(args: argparse.Namespace, cli_main: Callable[[list[str]], int] | None = None) -> int:
    """``adamflow bench`` (``cli_main``: :func:`adamflow.cli.main`, for the refine case)."""
    result = run_bench(quick=args.quick, device=args.device, only=args.only, cli_main=cli_main)
    if args.json:
        write_json(result, args.json)
    if args.json != "-":
        print(to_markdown(result))
    if args.plot:
        bench_plots.make_all(args.plot, quick=args.quick)
    return 0


