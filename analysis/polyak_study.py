"""The Polyak root step seed experiments (SPEC §7; seeds/polyak_root_step.md): measured, not assumed.

The five experiments of the seed, each run in float32 and float64 with the lane model ``polyak``
(:class:`discrete.polyak.PolyakLanes`, lr = 1, f_target = 0 unless a variant says otherwise):

1. f = (x - 3)^2 from x0 = 10 and x0 = -7.3;
2. f = (x - 1)^2 + (y - 2)^2 from (10, 10);
3. f = (x - 1)^2 + 100 (y - 2)^2 from (10, 10) (the seed's key case);
4. ``linreg(noise=0)``: MSE of y = w x + b, theta = (w, b) from (0, 0) (f* = 0 at (2, -1)); plus the
   noisy default ``linreg`` (noise 0.1, f* = 7.8e-3 > 0) with f_target = 0 (the seed's rule, target
   below the minimum) and f_target = f*;
5. ``mlp``: the 1-4-1 network with x^2 activation (13 parameters, teacher data, f* = 0) from
   ``starts`` seeded N(0, 1) initial points.

Experiments 3-5 also run the scopes of :mod:`discrete.polyak`: tensor, layer, element, and element
with lr = 1/m (m = number of coordinates: the step that is consistent with the linear model). On
experiment 3 the tensors are x and y (so tensor = element, layer = global); on 4 the landscape's
partition is w | b (tensor = element, layer = global); only the network has distinct scopes.

Measures (one lane; all from the data, the gap evaluated in float64 at the iterates of either dtype)
----------------------------------------------------------------------------------------------------
* error e_k = sqrt(f_k - f*) (|x_k - 3| on experiment 1, the energy norm on quadratics);
* **window**: k = 0 .. k_end, k_end = the first k with e_k / e_0 <= 1e-10 (float64) or 1e-5
  (float32), or with e_k <= 10 min_j e_j where that least value is a rounding floor (least gap
  <= 1e3 eps (|f*| + gap_0)), past which rounding dominates; else the last sample (a diverging
  lane: the last finite one);
* **rate** q: exp(slope) of the least-squares line of log e_k against k over the window (the
  contraction of e per step; the seed's "rate 1/2" is q = 1/2, its starved "rate 1/(2c)" is
  1 - q_x = 1/(2c) for the coordinate error |x_k - 1|); per coordinate (where theta* is known) the
  fitted rate of |theta_i - theta*_i| over the window, and the early rates q_i = |d_i,k+1 / d_i,k|
  averaged (geometric mean) over the early phase (the leading steps with gradient-norm ratio
  < 0.1);
* **steps to tolerance**: the first k with e_k / e_0 <= 1e-3 and <= 1e-6 (None: not reached);
* **zig-zag**: an *up-step* is a k in the window with f_{k+1} > f_k (1 + 64 eps) (eps of the run's
  dtype: above rounding); the loss zig-zags when there is at least one (every up-step is a sign change
  of successive loss differences, down-up, and the next descent changes it back). Reported: the
  number of up-steps, the first, and the largest one-step increase f_{k+1}/f_k;
* **gradient-norm ratio** r_k = ||g_A|| / ||g_B|| of the two halves A | B of the problem (x | y;
  w | b; hidden | output layer) and the **kink** = the first k at which r_k crosses 1 (None: never);
* **ejection**: the first k after the window at which e_k / e_0 climbs back above 1e-3 (a lane
  that had converged and is thrown away again: a block whose gradient vanishes before f - f* does);
  ``final`` is the last finite gap;
* **float32 departure**: the first k with max_i |theta32_k - theta64_k| > 1e-6 max(1, |theta64_k|)
  (about 8 float32 rounding units), and each dtype's **floor** = the least gap reached.

Every function returns plain dicts; figures and the results table (:func:`results_markdown`) are
drawn from them only (:mod:`paper_figs.polyak`).
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import torch

import landscapes
from core.threading_policy import small_batch_threads
from core.trajectory import Status
from discrete.polyak import SCOPES, Blocks, PolyakLanes

DTYPES = {"float64": torch.float64, "float32": torch.float32}
#: end of the rate / zig-zag window: e_k / e_0 below this (rounding dominates past it)
WINDOW_END = {"float64": 1e-10, "float32": 1e-5}
#: steps-to-tolerance levels on e_k / e_0
TOLS = (1e-3, 1e-6)
#: an up-step must exceed rounding: f_{k+1} > f_k (1 + UP_ULPS eps)
UP_ULPS = 64
#: float32 departs from float64 where the iterates differ by more than this (relative, inf-norm)
DEPART = 1e-6
#: early phase of experiment 3: the leading steps with gradient-norm ratio below this
EARLY_RATIO = 0.1
#: the window also ends where e comes within this factor of the least e of the run (its floor),
#: when that floor is rounding: least gap <= ROUND_FLOOR eps (|f*| + gap_0)
FLOOR_FACTOR = 10.0
ROUND_FLOOR = 1e3

XY = (("xy", (("x", 1), ("y", 1))),)      # x and y of the 2-D quadratics as two tensors


def _variants(m: int) -> list[dict[str, Any]]:
    """The scope variants of experiments 3-5 (m coordinates)."""
    return ([{"label": s, "scope": s, "lr": 1.0} for s in SCOPES]
            + [{"label": f"element, lr 1/{m}", "scope": "element", "lr": 1.0 / m}])


def experiments(*, quick: bool = False, starts: int | None = None) -> list[dict[str, Any]]:
    """The experiment definitions: id, title, landscape, f*, theta*, starts, variants, K, the
    partition of the run (None: the landscape's), the halves of the gradient-norm ratio."""
    nstart = starts if starts is not None else (3 if quick else 8)
    gen = torch.Generator().manual_seed(20240)
    mlp0 = torch.randn(nstart, 13, generator=gen, dtype=torch.float64).tolist()
    one = [{"label": "global", "scope": "global", "lr": 1.0}]
    return [
        {"id": 1, "title": "Experiment 1: f = (x - 3)^2", "spec": "quadratic(center=[3])",
         "f_star": 0.0, "theta_star": [3.0], "starts": [[10.0], [-7.3]],
         "start_labels": ["x0 = 10", "x0 = -7.3"], "variants": one, "K": 70, "partition": None,
         "ratio": None},
        {"id": 2, "title": "Experiment 2: f = (x - 1)^2 + (y - 2)^2",
         "spec": "quadratic(center=[1,2])", "f_star": 0.0, "theta_star": [1.0, 2.0],
         "starts": [[10.0, 10.0]], "start_labels": ["(10, 10)"], "variants": one, "K": 70,
         "partition": XY, "ratio": (XY, "tensor", ("x", "y"))},
        {"id": 3, "title": "Experiment 3: f = (x - 1)^2 + 100 (y - 2)^2",
         "spec": "quadratic(diag=[1,100],center=[1,2])", "f_star": 0.0, "theta_star": [1.0, 2.0],
         "starts": [[10.0, 10.0]], "start_labels": ["(10, 10)"], "variants": _variants(2),
         "K": 300 if quick else 800, "partition": XY, "ratio": (XY, "tensor", ("x", "y"))},
        {"id": 4, "title": "Experiment 4: linear model y = w x + b, MSE (linreg, noise 0)",
         "spec": "linreg(noise=0)", "f_star": 0.0, "theta_star": [2.0, -1.0],
         "starts": [[0.0, 0.0]], "start_labels": ["(w, b) = (0, 0)"], "variants": _variants(2),
         "K": 100 if quick else 300, "partition": None, "ratio": (None, "tensor", ("w", "b"))},
        {"id": "4n", "title": "Experiment 4, noisy data (linreg, noise 0.1): f* > 0",
         "spec": "linreg", "f_star": None, "theta_star": None,
         "starts": [[0.0, 0.0]], "start_labels": ["(w, b) = (0, 0)"],
         "variants": [{"label": "global, f_target 0", "scope": "global", "lr": 1.0, "f_target": 0.0},
                      {"label": "global, f_target f*", "scope": "global", "lr": 1.0,
                       "f_target": "f*"}],
         "K": 100 if quick else 300, "partition": None, "ratio": (None, "tensor", ("w", "b"))},
        {"id": 5, "title": "Experiment 5: 1-4-1 network with x^2 activation (mlp), teacher data",
         "spec": "mlp", "f_star": 0.0, "theta_star": None, "starts": mlp0,
         "start_labels": [f"start {i}" for i in range(nstart)], "variants": _variants(13),
         "K": 300 if quick else 3000, "partition": None,
         "ratio": (None, "layer", ("hidden", "output"))},
    ]


# ----------------------------------------------------------------------------- measures
def _fin(x) -> bool:
    """x is a finite number."""
    return x is not None and math.isfinite(x)


def _gap(land, theta64: torch.Tensor, f_star: float) -> list[float]:
    ok = torch.isfinite(theta64).all(dim=-1)
    f = land.value(torch.where(ok[:, None], theta64, torch.zeros_like(theta64)))
    return torch.where(ok, f - f_star, torch.full_like(f, math.nan)).tolist()


def lsq_rate(e: list[float], lo: int, hi: int) -> float | None:
    """exp(slope) of the least-squares line of log e_k on k over lo <= k <= hi (e > 0)."""
    pts = [(k, math.log(e[k])) for k in range(lo, hi + 1) if k < len(e) and _fin(e[k]) and e[k] > 0]
    if len(pts) < 3:
        return None
    n = len(pts)
    mk = sum(k for k, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((k - mk) ** 2 for k, _ in pts)
    sxy = sum((k - mk) * (y - my) for k, y in pts)
    return math.exp(sxy / sxx)


def window_end(e: list[float], tol: float, eps: float, f_scale: float) -> int:
    """The first k with e_k / e_0 <= tol, or (where the run's least e is a rounding floor:
    min e^2 <= ROUND_FLOOR eps f_scale) with e_k <= FLOOR_FACTOR min e; else the last finite
    sample."""
    fin = [x for x in e if _fin(x)]
    least = min(fin) if fin else 0.0
    floor = FLOOR_FACTOR * least if least * least <= ROUND_FLOOR * eps * f_scale else -1.0
    last = 0
    for k, x in enumerate(e):
        if not _fin(x):
            break
        last = k
        if x <= tol * e[0] or x <= floor:
            return k
    return last


def first_below(e: list[float], tol: float) -> int | None:
    for k, x in enumerate(e):
        if _fin(x) and x <= tol * e[0]:
            return k
    return None


def up_steps(f: list[float], end: int, eps: float) -> list[int]:
    """The k < end with f_{k+1} > f_k (1 + UP_ULPS eps) (module docstring: zig-zag)."""
    return [k for k in range(min(end, len(f) - 1))
            if _fin(f[k + 1]) and _fin(f[k]) and f[k + 1] > f[k] * (1 + UP_ULPS * eps)]


def crossing(r: list[float]) -> int | None:
    """The first k at which r_k crosses 1 (from the side of r_0); None if never."""
    if not r or not _fin(r[0]) or r[0] == 1.0:
        return None
    below = r[0] < 1
    for k, x in enumerate(r):
        if _fin(x) and ((x >= 1) if below else (x <= 1)):
            return k
    return None


def departure(th32: torch.Tensor, th64: torch.Tensor) -> int | None:
    """First k with max_i |theta32 - theta64| > DEPART max(1, |theta64|_inf), or where exactly one
    of the two is no longer finite (None: never, or both stop together)."""
    T = min(th32.shape[0], th64.shape[0])
    a, b = th32[:T], th64[:T]
    fa, fb = torch.isfinite(a).all(dim=-1), torch.isfinite(b).all(dim=-1)
    both = fa & fb
    scale = torch.clamp(torch.where(both[:, None], b, 0.0).abs().amax(dim=-1), min=1.0)
    far = both & ((torch.where(both[:, None], a - b, 0.0)).abs().amax(dim=-1) > DEPART * scale)
    hit = far | (fa != fb)
    stop = ~both & ~(fa != fb)                        # both non-finite: nothing to compare after
    idx = torch.nonzero(hit | stop)
    if idx.numel() == 0:
        return None
    k = int(idx[0, 0])
    return k if bool(hit[k]) else None


def _geo(xs: list[float]) -> float | None:
    xs = [x for x in xs if _fin(x) and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def measure(land, exp: dict, theta: torch.Tensor, scale: torch.Tensor, n_out: int, status: int,
            dtype: str, f_star: float) -> dict[str, Any]:
    """The measures of the module docstring for one lane: theta (T, n) and scale (T, n) samples."""
    th = theta[:n_out].to(torch.float64)
    gap = _gap(land, th, f_star)
    e = [math.sqrt(max(g, 0.0)) if _fin(g) else math.nan for g in gap]
    eps = torch.finfo(DTYPES[dtype]).eps
    end = window_end(e, WINDOW_END[dtype], eps, abs(f_star) + abs(gap[0]))
    ups = up_steps(gap, end, eps)
    out: dict[str, Any] = {
        "k": list(range(n_out)), "gap": gap, "theta": th.tolist(),
        "scale": scale[:n_out].mean(dim=-1).tolist(), "status": Status.label(status),
        "window_end": end, "rate": lsq_rate(e, 0, end),
        "steps_to": {f"{t:g}": first_below(e, t) for t in TOLS},
        "up_steps": len(ups), "first_up": ups[0] if ups else None,
        "max_up": max((gap[k + 1] / gap[k] for k in ups), default=None),
        "floor": min((g for g in gap if _fin(g)), default=None),
        "final": next((g for g in reversed(gap) if _fin(g)), None),
        "ejected_at": next((k for k in range(end + 1, len(e))
                            if _fin(e[k]) and e[end] <= TOLS[0] * e[0] < e[k]), None),
    }
    if exp["theta_star"] is not None:
        d = th - torch.tensor(exp["theta_star"], dtype=torch.float64)
        out["coord_error"] = d.abs().tolist()
        out["coord_rates"] = [lsq_rate(d[:, i].abs().tolist(), 0, end) for i in range(th.shape[1])]
    if exp["ratio"] is not None:
        part, by, _ = exp["ratio"]
        blocks = Blocks(part if part is not None else land.partition())
        ok = torch.isfinite(th).all(dim=-1)
        g = land.grad(torch.where(ok[:, None], th, torch.zeros_like(th)))
        r = torch.where(ok, blocks.ratio(g, by=by), torch.full((th.shape[0],), math.nan,
                                                               dtype=torch.float64))
        out["ratio"] = r.tolist()
        out["kink"] = crossing(out["ratio"][: end + 1])
        early = []
        for k, x in enumerate(out["ratio"][:end]):
            if not (_fin(x) and x < EARLY_RATIO):
                break
            early.append(k)
        out["early_steps"] = early
        if "coord_error" in out and early:
            ce = out["coord_error"]
            out["first_rates"] = [ce[1][i] / ce[0][i] if ce[0][i] > 0 and len(ce) > 1 else None
                                  for i in range(th.shape[1])]
            out["early_rates"] = [
                _geo([ce[k + 1][i] / ce[k][i] for k in early if k + 1 < len(ce) and ce[k][i] > 0])
                for i in range(th.shape[1])]
    return out


# ----------------------------------------------------------------------------- runs
def run_experiment(exp: dict[str, Any], dtype: str) -> dict[str, Any]:
    """Every (variant, start) lane of ``exp`` in ``dtype``: one batched run, per-lane measures."""
    land = landscapes.parse(exp["spec"])
    f_star = exp["f_star"] if exp["f_star"] is not None else float(land.minimum_value())
    lanes = [(v, s) for v in exp["variants"] for s in range(len(exp["starts"]))]
    targets = [f_star if v.get("f_target") == "f*" else float(v.get("f_target", 0.0))
               for v, _ in lanes]
    opt = PolyakLanes(alpha=[v["lr"] for v, _ in lanes], scope=[v["scope"] for v, _ in lanes],
                      f_target=targets, partition=exp["partition"])
    theta0 = torch.tensor([exp["starts"][s] for _, s in lanes], dtype=DTYPES[dtype])
    traj = opt.run(land, theta0, steps=exp["K"])
    same: dict[str, str] = {}                # variant -> an earlier variant with the same iterates
    labels = [v["label"] for v in exp["variants"]]
    ns = len(exp["starts"])
    for i, lab in enumerate(labels):
        for j in range(i):
            if all(torch.equal(traj.theta[i * ns + s].nan_to_num(), traj.theta[j * ns + s].nan_to_num())
                   for s in range(ns)):
                same[lab] = labels[j]
                break
    out = []
    for b, (v, s) in enumerate(lanes):
        m = measure(land, exp, traj.theta[b], traj.extras["scale"][b], int(traj.n_out[b]),
                    int(traj.status[b]), dtype, f_star)
        m.update(variant=v["label"], same_as=same.get(v["label"]), dtype=dtype, start=s,
                 start_label=exp["start_labels"][s], lr=v["lr"], scope=v["scope"],
                 f_target=targets[b])
        out.append(m)
    return {"dtype": dtype, "f_star": f_star, "lanes": out}


def study(*, quick: bool = False, starts: int | None = None) -> dict[str, Any]:
    """All experiments in both dtypes, the float32 departures, and the seed's predictions checked
    (:func:`verdicts`). Plain dicts."""
    with small_batch_threads(torch.zeros(1)):       # every tensor here is small (see the policy)
        return _study(quick, starts)


def _study(quick: bool, starts: int | None) -> dict[str, Any]:
    res = []
    for exp in experiments(quick=quick, starts=starts):
        runs = {name: run_experiment(exp, name) for name in DTYPES}
        for l32, l64 in zip(runs["float32"]["lanes"], runs["float64"]["lanes"]):
            k = departure(torch.tensor(l32["theta"], dtype=torch.float64),
                          torch.tensor(l64["theta"], dtype=torch.float64))
            l32["departs"] = l64["departs"] = k
            l32["gap_at_departure"] = l64["gap"][k] if k is not None and k < len(l64["gap"]) else None
        res.append({**{k: v for k, v in exp.items() if k != "ratio"},
                    "ratio_halves": list(exp["ratio"][2]) if exp["ratio"] else None,
                    "f_star": runs["float64"]["f_star"], "runs": runs})
    out = {"quick": quick, "experiments": res}
    out["verdicts"] = verdicts(out)
    return out


# ----------------------------------------------------------------------------- the seed's claims
def exact_halving(x0: float, n: int, a: int = 3) -> Fraction:
    """x_n = a + (x0 - a)/2^n in exact arithmetic (x0 the stored float)."""
    return a + (Fraction(x0) - a) / 2 ** n


def ulp(x: float, dtype: str) -> float:
    return float(torch.finfo(DTYPES[dtype]).eps) * 2.0 ** math.floor(math.log2(abs(x))) if x else 0.0


def hessian_condition(spec: str, theta: list[float]) -> float:
    """Condition number of the Hessian of ``spec`` at ``theta`` (constant on a quadratic)."""
    H = landscapes.parse(spec).hessian(torch.tensor([theta], dtype=torch.float64))[0]
    ev = torch.linalg.eigvalsh(H)
    return float(ev.max() / ev.min())


def _exp(res: dict, i) -> dict:
    return next(e for e in res["experiments"] if e["id"] == i)


def _lane(exp: dict, dtype: str, variant: str = "global", start: int = 0) -> dict:
    return next(ln for ln in exp["runs"][dtype]["lanes"]
                if ln["variant"] == variant and ln["start"] == start)


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def verdicts(res: dict) -> list[dict[str, str]]:
    """The seed's predictions, each with the measured numbers and a verdict computed from them."""
    out = []
    e1 = _exp(res, 1)
    worst = {}
    for dt in DTYPES:
        w = 0.0
        for s, x0 in enumerate(e1["starts"]):
            ln = _lane(e1, dt, start=s)
            x00 = float(torch.tensor(x0[0], dtype=DTYPES[dt]))
            for n, th in enumerate(ln["theta"][: ln["window_end"] + 1]):
                w = max(w, abs(th[0] - float(exact_halving(x00, n))) / ulp(3.0, dt))
        worst[dt] = w
    q1 = [_lane(e1, "float64", start=s)["rate"] for s in range(len(e1["starts"]))]
    ups1 = sum(_lane(e1, dt, start=s)["up_steps"] for dt in DTYPES for s in range(len(e1["starts"])))
    dep = _lane(e1, "float64")["departs"]
    out.append({"claim": "exp 1: x_n = 3 + (x0 - 3)/2^n, rate 1/2, monotonic",
                "verdict": "holds" if max(worst.values()) <= 1.0 and ups1 == 0 else "fails",
                "numbers": (f"max |x_n - exact| over the window: {worst['float64']:.2g} ulp(3) "
                            f"(float64), {worst['float32']:.2g} ulp(3) (float32); fitted q = "
                            + ", ".join(_fmt(q, 6) for q in q1) + f"; up-steps: {ups1}")})
    l32, l64 = _lane(e1, "float32"), _lane(e1, "float64")
    x32, x64 = [t[0] for t in l32["theta"]], [t[0] for t in l64["theta"]]
    same = next((k for k, (u, v) in enumerate(zip(x32, x64)) if u != v), None)
    gap_ulp = max(abs(u - v) for u, v in zip(x32, x64)) / ulp(3.0, "float32")
    out.append({"claim": "exp 1: float32 agrees with float64 until its precision limit",
                "verdict": "holds" if gap_ulp <= 1.0 else "fails",
                "numbers": (f"x0 = 10: float32 equals float64 bit for bit up to step "
                            f"{_fmt(same - 1 if same is not None else len(x32) - 1)} "
                            f"(|x - 3| = 7/2^n, {_fmt(abs(x64[same] - 3.0) if same is not None else None, 3)}"
                            f" at the first difference), then within {gap_ulp:.2g} float32 ulp(3); "
                            f"departure > 1e-6: {_fmt(dep)}; least f: float32 {_fmt(l32['floor'], 3)}, "
                            f"float64 {_fmt(l64['floor'], 3)}")})
    e2 = _exp(res, 2)
    l2 = _lane(e2, "float64")
    th = torch.tensor(l2["theta"][: l2["window_end"] + 1], dtype=torch.float64)
    d = th - torch.tensor([1.0, 2.0], dtype=torch.float64)
    u = torch.tensor([9.0, 8.0], dtype=torch.float64) / math.hypot(9.0, 8.0)
    off = float((d[:, 0] * u[1] - d[:, 1] * u[0]).abs().max())
    out.append({"claim": "exp 2: both coordinates at rate 1/2, straight line, monotonic",
                "verdict": "holds" if all(abs((q or 0) - 0.5) < 1e-6 for q in
                                          [l2["rate"], *l2["coord_rates"]])
                and l2["up_steps"] == 0 and off < 1e-12 else "fails",
                "numbers": (f"q = {_fmt(l2['rate'], 8)}, per coordinate x, y: "
                            f"{', '.join(_fmt(r, 8) for r in l2['coord_rates'])}; "
                            f"largest distance from the line (10, 10)-(1, 2): {off:.2g}; "
                            f"up-steps {l2['up_steps']}; gradient ratio |g_x|/|g_y| = "
                            f"{_fmt(l2['ratio'][0], 6)} constant (kink: {_fmt(l2['kink'])})")})
    e3 = _exp(res, 3)
    l3 = _lane(e3, "float64")
    c = 100.0
    qx, qy = (l3.get("early_rates") or [None, None])[:2]
    fx, fy = (l3.get("first_rates") or [None, None])[:2]
    ok0 = fx is not None and abs((1 - fx) * 2 * c - 1) < 0.05 and abs(fy - 0.5) < 0.025
    out.append({"claim": "exp 3: early y rate ~1/2, x starved at rate ~1/(2c) = 1/200",
                "verdict": (f"holds at the start ({len(l3['early_steps'])} steps with |g_x|/|g_y|"
                            f" < {EARLY_RATIO}), then the shared scale grows" if ok0 else "fails"),
                "numbers": (f"step 0: 1 - q_x = {_fmt(1 - fx if fx is not None else None, 4)} "
                            f"(1/(2c) = 0.005), q_y = {_fmt(fy, 4)}; early phase (steps "
                            f"{l3['early_steps']}): 1 - q_x = {_fmt(1 - qx if qx else None, 4)}, "
                            f"q_y = {_fmt(qy, 4)}")})
    out.append({"claim": "exp 3: |g_x|/|g_y| starts near 9/1600 and grows toward 1; a kink",
                "verdict": (("starts at 9/800 (the seed's 9/1600 is a factor-2 slip)"
                             if abs(l3["ratio"][0] - 9 / 800) < 1e-12 else "other start ratio")
                            + ("; crosses 1 at the kink" if l3["kink"] is not None
                               else "; never crosses 1")),
                "numbers": (f"r_0 = {_fmt(l3['ratio'][0], 5)} (9/800 = 0.01125); first crossing of "
                            f"1 at step {_fmt(l3['kink'])}")})
    out.append({"claim": "exp 3: no zig-zag (quadratic), loss decreases monotonically",
                "verdict": "fails" if l3["up_steps"] else "holds",
                "numbers": (f"float64: {l3['up_steps']} up-steps in {l3['window_end']} steps, the "
                            f"first at step {_fmt(l3['first_up'])}, largest f_(k+1)/f_k = "
                            f"{_fmt(l3['max_up'], 4)} (bound (1+c)^2/(16c) = "
                            f"{(1 + c) ** 2 / (16 * c):.4g}); fitted q = {_fmt(l3['rate'], 5)}, "
                            f"steps to 1e-6: {_fmt(l3['steps_to']['1e-06'])}")})
    e4 = _exp(res, 4)
    l4 = _lane(e4, "float64")
    lt = _lane(e4, "float64", "tensor")
    twins = [x["variant"] for x in e4["runs"]["float64"]["lanes"] if x.get("same_as") == "tensor"]
    kappa = hessian_condition(e4["spec"], e4["theta_star"])
    bound = (1 + kappa) ** 2 / (16 * kappa)
    out.append({"claim": "exp 4: mild zig-zag from the w-b coupling (still a quadratic)",
                "verdict": ("zig-zag" if l4["up_steps"] else "no zig-zag")
                + (" (monotone by the bound)" if bound < 1 else ""),
                "numbers": (f"global: {l4['up_steps']} up-steps (first {_fmt(l4['first_up'])}, "
                            f"largest ratio {_fmt(l4['max_up'], 4)}), q = {_fmt(l4['rate'], 4)}; "
                            f"cond(H) = {kappa:.4g}, one-step loss ratio <= (1+k)^2/(16k) = "
                            f"{bound:.3g}; tensor"
                            + (f" (= {', '.join(twins)})" if twins else "")
                            + f": q = {_fmt(lt['rate'], 4)}, {lt['up_steps']} up-steps")})
    e4n = _exp(res, "4n")
    a, b = (_lane(e4n, "float64", v) for v in ("global, f_target 0", "global, f_target f*"))
    out.append({"claim": "exp 4 with noisy data: the rule L/||g||^2 assumes min f = 0",
                "verdict": ("f_target 0 " + ("zig-zags and never settles" if a["up_steps"]
                                             and a["steps_to"]["1e-06"] is None else "settles")
                            + "; f_target f* " + ("converges" if b["steps_to"]["1e-06"] is not None
                                                  else "does not reach 1e-6")),
                "numbers": (f"f* = {_fmt(e4n['f_star'], 4)}; f_target 0: {a['up_steps']} up-steps, "
                            f"least gap {_fmt(a['floor'], 3)}, status {a['status']}; f_target f*: "
                            f"q = {_fmt(b['rate'], 4)}, {b['up_steps']} up-steps, floor "
                            f"{_fmt(b['floor'], 3)}")})
    e5 = _exp(res, 5)
    g5 = [ln for ln in e5["runs"]["float64"]["lanes"] if ln["variant"] == "global"]
    zz = sum(1 for ln in g5 if ln["up_steps"])
    out.append({"claim": "exp 5: non-convexity + shared scale -> zig-zag",
                "verdict": f"zig-zag on {zz} of {len(g5)} starts",
                "numbers": _summary(g5)})
    for exp in (e3, e4, e5):
        for v in [x["label"] for x in exp["variants"] if x["label"] != "global"]:
            lanes = [ln for ln in exp["runs"]["float64"]["lanes"] if ln["variant"] == v]
            div = sum(1 for ln in lanes if ln["status"] != "ok")
            conv = sum(1 for ln in lanes if ln["steps_to"]["1e-06"] is not None)
            zz = sum(1 for ln in lanes if ln["up_steps"])
            twin = lanes[0].get("same_as")
            ej = sum(1 for ln in lanes if ln["ejected_at"] is not None)
            out.append({"claim": f"exp {exp['id']}: the fix '{v}' (seed: fix directions)"
                                 + (f" (iterates identical to '{twin}' here)" if twin else ""),
                        "verdict": (f"diverges ({div}/{len(lanes)})" if div == len(lanes) else
                                    f"converges on {conv}/{len(lanes)}, zig-zag on "
                                    f"{zz}/{len(lanes)}"
                                    + (f", thrown away after converging on {ej}/{len(lanes)}"
                                       if ej else "")),
                        "numbers": _summary(lanes)})
    return out


def _summary(lanes: list[dict]) -> str:
    """Medians over lanes (float64) for a verdict line."""
    return (f"median q {_fmt(_median([ln['rate'] for ln in lanes]), 4)}, steps to 1e-6 "
            f"{_fmt(_median([ln['steps_to']['1e-06'] for ln in lanes]))}, up-steps "
            f"{_fmt(_median([ln['up_steps'] for ln in lanes]))}; reached 1e-6: "
            f"{sum(1 for ln in lanes if ln['steps_to']['1e-06'] is not None)}/{len(lanes)}, "
            f"diverged {sum(1 for ln in lanes if ln['status'] != 'ok')}/{len(lanes)}")


def _median(xs: list) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


# ----------------------------------------------------------------------------- table
def table_rows(res: dict) -> list[dict[str, Any]]:
    """One row per (experiment, variant, start, dtype) (experiment 5: the median over starts)."""
    rows = []
    for exp in res["experiments"]:
        for dt in DTYPES:
            lanes = exp["runs"][dt]["lanes"]
            for v in exp["variants"]:
                sel = [ln for ln in lanes if ln["variant"] == v["label"]]
                groups = [sel] if exp["id"] == 5 else [[ln] for ln in sel]
                for grp in groups:
                    med = (lambda key, g=grp: _median([ln[key] for ln in g]))
                    ln0 = grp[0]
                    rows.append({
                        "experiment": exp["id"], "variant": v["label"] + (
                            f" (= {ln0['same_as']})" if ln0.get("same_as") else ""),
                        "start": (f"median of {len(grp)} starts" if len(grp) > 1
                                  else ln0["start_label"]),
                        "dtype": dt, "rate": med("rate"),
                        "steps_1e-3": _median([ln["steps_to"]["0.001"] for ln in grp]),
                        "steps_1e-6": _median([ln["steps_to"]["1e-06"] for ln in grp]),
                        "up_steps": med("up_steps"), "first_up": med("first_up"),
                        "zigzag_starts": sum(1 for ln in grp if ln["up_steps"]),
                        "kink": med("kink") if "kink" in ln0 else None,
                        "departs": med("departs"), "floor": med("floor"),
                        "ejected": sum(1 for ln in grp if ln["ejected_at"] is not None),
                        "ejected_at": med("ejected_at"), "final": med("final"),
                        "not_ok": sum(1 for ln in grp if ln["status"] != "ok"), "n": len(grp)})
    return rows


def results_markdown(res: dict) -> str:
    """The generated results table and verdicts (markdown), from :func:`study`'s result only."""
    lines = ["# Polyak root step: measured results (generated by analysis/polyak_study.py)", "",
             "lr = 1 and f_target = 0 unless the variant says otherwise. q: fitted contraction of "
             "e = sqrt(f - f*) per step; steps: first k with e/e0 <= tol; up-steps: loss increases "
             "above rounding (zig-zag), first: the step of the first; kink: first step where the "
             "gradient-norm ratio crosses 1; f32 departs: first step where float32 iterates leave "
             "float64's by > 1e-6 (relative); floor: least f - f* reached; ejected at: first step "
             "after convergence at which e/e0 climbs back above 1e-3; final: last f - f*; not ok: "
             "lanes that diverged. Experiment 5: medians over the seeded starts.", ""]
    if res.get("quick"):
        lines += ["*Quick mode (reduced steps and starts): numbers are not the published ones.*", ""]
    lines += ["| exp | variant | start | dtype | q | steps 1e-3 | steps 1e-6 | up-steps | first up "
              "| kink | f32 departs | floor | ejected at | final | not ok |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table_rows(res):
        zz = (f"{_fmt(r['up_steps'])} ({r['zigzag_starts']}/{r['n']} zig-zag)" if r["n"] > 1
              else _fmt(r["up_steps"]))
        lines.append(
            f"| {r['experiment']} | {r['variant']} | {r['start']} | {r['dtype']} | "
            f"{_fmt(r['rate'], 5)} | {_fmt(r['steps_1e-3'])} | {_fmt(r['steps_1e-6'])} | {zz} | "
            f"{_fmt(r['first_up'])} | {_fmt(r['kink'])} | {_fmt(r['departs'])} | "
            f"{_fmt(r['floor'], 3)} | "
            + (f"{_fmt(r['ejected_at'])} ({r['ejected']}/{r['n']})" if r["n"] > 1
               else _fmt(r["ejected_at"]))
            + f" | {_fmt(r['final'], 3)} | {r['not_ok']}/{r['n']} |")
    lines += ["", "## The seed's predictions", "", "| prediction | verdict | measured |",
              "|---|---|---|"]
    for v in res["verdicts"]:
        lines.append(f"| {v['claim']} | {v['verdict']} | {v['numbers']} |")
    return "\n".join(lines) + "\n"


__all__ = ["study", "experiments", "run_experiment", "measure", "verdicts", "table_rows",
           "results_markdown", "exact_halving", "lsq_rate", "up_steps", "crossing", "departure",
           "first_below", "window_end", "ulp"]
