"""Basin selection (SPEC §5, §6 preset ``basin``): final state vs alpha, the threshold alpha* by
bisection, and 2-D basin maps over (theta0, alpha).

Step-count convention
---------------------
Per alpha the number of discrete updates K is given by one rule:

* ``epochs`` (one per alpha, the paper's tables): a run of E epochs has rows theta_0..theta_{E-1},
  so the final iterate is theta_{E-1}: **K = E - 1 updates**, and the flow is compared at the
  same time s = (E - 1) * alpha.
* ``steps`` K: K updates for every alpha (flows: horizon K*alpha).
* ``horizon`` T: K = round(T/alpha) (flows: K*alpha).

Bisection and map points (alphas not in an ``epochs`` table) use the horizon T(alpha) interpolated
linearly in (log alpha, log T) between the table's points T_i = (E_i - 1) alpha_i, constant beyond
its ends; K = max(1, round(T(alpha)/alpha)).

Discrete rows are the discrete model's final iterate theta_K; flow rows are theta(K*alpha). All lanes
of one model (alphas x u0, or the N x N map, or the points of one bisection round) run as one batched
computation: discrete lanes step together and each lane is frozen after its own K updates; flows
are integrated to their per-lane horizons in one call of the exact-mode solver.

Classification: a final state belongs to the basin of the nearest minimizer (Euclidean distance;
minimizers from the landscape's closed-form critical points, e.g. rosenbrock1d(c=4): x = 1 and
x = -(2+sqrt2)/4, or given by the user). Diverged / non-finite lanes get label -1.

Bisection: on [lo, hi], geometric (log-alpha) points; each round evaluates ``points`` interior
points of the current bracket for every (model, u0) at once, keeps the sub-bracket around the first
label change from the lo side, and stops when (hi - lo) <= tol * hi. alpha* is the geometric mean of
the final bracket. When lo and hi end in the same basin there is no threshold (alpha_star None).
"""
from __future__ import annotations

import math
import shutil
from typing import Any

import numpy as np
import torch

import landscapes
from analysis.study import Study
from core.checkpoint import ChunkStore
from core.errors import ConfigError
from core.grid import output_indices
from core.hyper import (
    check_alpha,
    check_beta,
    check_eps,
    check_finite,
)
from core.output import save_figure
from core.trajectory import DIVERGENCE_BOUND, Status
from core.validation import (
    check_flow_alpha,
    check_flow_eps,
    check_horizon,
    check_magnitude,
    check_memory,
    check_points,
    check_steps,
    run_bytes,
    steps_from_horizon,
)
from runner.experiment import Numerics, run_lanes
from runner.options import parse_float as _float
from runner.options import parse_int as _int
from runner.options import parse_vector as _vector
from runner.registry import get_model

DEFAULT_MODELS = ["adam", "adam-flow2"]
#: SPEC §6 preset ``basin``: alpha -> epochs
SPEC_EPOCHS = [(1e-4, 12000), (5e-4, 5000), (1e-3, 3000), (5e-3, 1500), (1e-2, 1500),
               (5e-2, 1000), (1e-1, 1000)]


# -- step rules --------------------------------------------------------------------------------------

class StepRule:
    """K(alpha) from ``epochs`` (table), ``steps`` or ``horizon`` (see the module docstring)."""

    def __init__(self, *, alphas: list[float] | None = None, epochs: list[int] | None = None,
                 steps: int | None = None, horizon: float | None = None):
        given = sum(x is not None for x in (epochs, steps, horizon))
        if given != 1:
            raise ConfigError("give exactly one of --epochs, --steps or --horizon")
        self.table: list[tuple[float, int]] = []
        if epochs is not None:
            alphas = list(alphas or [])
            if len(epochs) != len(alphas):
                raise ConfigError(f"--epochs needs one count per alpha: got {len(epochs)} epochs "
                                  f"for {len(alphas)} alphas")
            for a, e in zip(alphas, epochs):
                if int(e) != e or e < 2:
                    raise ConfigError(f"epochs must be integers >= 2, got {e}")
            self.table = sorted((float(a), int(e)) for a, e in zip(alphas, epochs))
            if len({a for a, _ in self.table}) != len(self.table):
                raise ConfigError("alphas must be distinct when --epochs is given")
        if steps is not None and (int(steps) != steps or steps < 1):
            raise ConfigError(f"steps must be an integer >= 1, got {steps}")
        if horizon is not None and not (math.isfinite(horizon) and horizon > 0):
            raise ConfigError(f"horizon must be a positive finite number, got {horizon}")
        self.epochs, self.steps, self.horizon = epochs, steps, horizon

    @property
    def mode(self) -> str:
        return "epochs" if self.epochs is not None else ("steps" if self.steps is not None
                                                         else "horizon")

    def horizon_at(self, alpha: float) -> float:
        """T(alpha) (interpolated in the epochs mode)."""
        if self.steps is not None:
            return self.steps * alpha
        if self.horizon is not None:
            return self.horizon
        la = [math.log(a) for a, _ in self.table]
        lt = [math.log((e - 1) * a) for a, e in self.table]
        return math.exp(float(np.interp(math.log(alpha), la, lt)))

    def __call__(self, alpha: float) -> int:
        if self.steps is not None:
            return int(self.steps)
        for a, e in self.table:
            if a == alpha:
                return e - 1
        K = int(round(self.horizon_at(alpha) / alpha))
        if self.horizon is not None and K < 1:
            raise ConfigError(f"horizon {self.horizon} is shorter than one step of alpha={alpha}")
        return max(1, K)

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "epochs": self.epochs, "steps": self.steps,
                "horizon": self.horizon,
                "convention": "epochs E -> K = E-1 updates (final row theta_{E-1}); flows at K*alpha"}


# -- minimizers and classification ---------------------------------------------------------------------

def minimizers(landscape, minima: list[list[float]] | None = None) -> list[dict[str, Any]]:
    """[{"x": [..], "f": f, "kind": "global"|"local"}] from ``minima`` or closed-form critical points."""

    land = landscapes.parse(landscape) if isinstance(landscape, str) else landscape
    if minima:
        pts = [list(map(float, m)) for m in minima]
        fs = [float(land.value(torch.tensor([p], dtype=torch.float64))[0]) for p in pts]
    elif land.critical_points() is not None:
        cps = [cp for cp in land.critical_points() if cp.kind == "min"]
        pts, fs = [[float(cp.x)] for cp in cps], [float(cp.f) for cp in cps]
    else:
        raise ConfigError(f"minimizers of {land.spec()} are not known in closed form; give --minima")
    if not pts:
        raise ConfigError("no minimizer to classify against")
    fmin = min(fs)
    return [{"x": p, "f": f, "kind": "global" if f <= fmin + 1e-12 * max(1.0, abs(fmin)) else "local"}
            for p, f in zip(pts, fs)]


def barriers(landscape) -> list[float]:
    """Closed-form maxima (1-D), for the figure; [] when unknown."""

    land = landscapes.parse(landscape) if isinstance(landscape, str) else landscape
    return [float(cp.x) for cp in land.critical_points() or [] if cp.kind == "max"]


def classify(final_theta, minima: list[list[float]] | list[dict]) -> list[int]:
    """Index of the nearest minimizer per final state ((B, n) or (B,)); -1 for non-finite states."""
    pts = np.array([m["x"] if isinstance(m, dict) else m for m in minima], dtype=float)
    if pts.ndim == 1:
        pts = pts[:, None]
    th = np.asarray(final_theta.cpu() if isinstance(final_theta, torch.Tensor) else final_theta,
                    dtype=float)
    if th.ndim == 1:
        th = th[:, None]
    if th.shape[1] != pts.shape[1]:
        raise ConfigError(f"minimizers have dimension {pts.shape[1]}, states {th.shape[1]}")
    d = np.linalg.norm(th[:, None, :] - pts[None, :, :], axis=-1)
    lab = d.argmin(axis=1)
    lab[~np.isfinite(th).all(axis=1)] = -1
    return [int(x) for x in lab]


# -- batched final states ------------------------------------------------------------------------------

def final_states(model: str, landscape: str, lanes: list[dict[str, Any]], *, eps: float = 1e-8,
                 device: str = "cpu", dtype: str = "float64", rtol: float | None = None,
                 atol: float | None = None, scheme: str = "exact", integrator: str = "auto",
                 engine: str = "auto"
                 ) -> dict[str, Any]:
    """Final state of each lane {"theta0": [..], "alpha", "beta1", "beta2", "u0", "steps": K}.

    One batched computation through :func:`runner.experiment.run_lanes`: discrete lanes step
    together, lane b stopping after its own K_b updates (or at divergence); flows integrated to
    t = K_b * alpha_b, or, with ``scheme`` "paper" (flows that support it), solved by the published
    scheme on h = alpha/5 with 5K + 1 grid points (lanes with the same K share one solve). Returns
    {"final_theta": (B, n) tensor (NaN where the lane did not finish), "status": [labels],
    "steps": [K]} plus "sweeps" and "converged" under the paper scheme.
    """
    info = get_model(model)
    num = Numerics(scheme=scheme if info.kind == "flow" else "exact", integrator=integrator, engine=engine,
                   rtol=rtol, atol=atol, device=device, dtype=dtype)
    Ks = [int(ln["steps"]) for ln in lanes]
    every = max(max(Ks), 1)
    run = [{"eps": eps, **{k: v for k, v in ln.items() if k != "steps" and v is not None}}
           for ln in lanes]
    traj = run_lanes(info, landscape, run, Ks, every=every, numerics=num)
    expected = torch.tensor([len(output_indices(K, every)) for K in Ks], device=traj.n_out.device)
    fin = traj.final_theta().clone()
    ok = (traj.n_out == expected) & (traj.status == Status.OK)
    fin[~ok.to(fin.device)] = math.nan
    out = {"final_theta": fin, "status": [traj.status_label(b) for b in range(len(lanes))],
           "steps": Ks, "diverged_at": [traj.diverged_time(b) for b in range(len(lanes))]}
    if info.kind == "flow" and scheme == "paper":
        out["sweeps"] = [int(x) for x in traj.stats["sweeps"].tolist()]
        out["converged"] = [bool(x) for x in traj.stats["converged"].tolist()]
    return out


def _u0_list(model: str, u0: list[float]) -> list[float | None]:
    return list(u0) if "u0" in get_model(model).hyperparameters else [None]


def _lane(theta0, alpha, beta1, beta2, u0, K) -> dict[str, Any]:
    ln = {"theta0": list(theta0), "alpha": float(alpha), "beta1": beta1, "beta2": beta2,
          "steps": int(K)}
    if u0 is not None:
        ln["u0"] = float(u0)
    return ln


# -- bisection -----------------------------------------------------------------------------------------

def bisect_threshold(classifier, lo: float, hi: float, *, tol: float = 1e-3, points: int = 3,
                     keys: list | None = None, max_rounds: int = 200,
                     progress=None) -> dict[Any, dict[str, Any]]:
    """Threshold of a basin label along alpha for several keys at once.

    ``classifier(list of (key, alpha)) -> list of labels`` evaluates one batch (one round). Each round
    asks for ``points`` log-spaced interior points of every unfinished bracket. Returns per key
    {"alpha_star", "bracket": [lo, hi], "label_lo", "label_hi", "rounds", "evaluations"}.
    """
    if not (0 < lo < hi and math.isfinite(hi)):
        raise ConfigError(f"--bisect needs 0 < LO < HI, got {lo} {hi}")
    if not (tol > 0 and math.isfinite(tol)):
        raise ConfigError(f"tol must be a positive finite number, got {tol}")
    if points < 1:
        raise ConfigError(f"points must be >= 1, got {points}")
    keys = list(keys if keys is not None else [None])
    labs = classifier([(k, a) for k in keys for a in (lo, hi)])
    st = {}
    for i, k in enumerate(keys):
        st[k] = {"lo": lo, "hi": hi, "label_lo": labs[2 * i], "label_hi": labs[2 * i + 1],
                 "rounds": 0, "evaluations": 2}
    def active(k):
        s = st[k]
        return s["label_lo"] != s["label_hi"] and (s["hi"] - s["lo"]) > tol * s["hi"]
    for _ in range(max_rounds):
        todo = [k for k in keys if active(k)]
        if not todo:
            break
        batch = []
        for k in todo:
            s = st[k]
            r = math.log(s["hi"] / s["lo"])
            batch += [(k, s["lo"] * math.exp(r * j / (points + 1))) for j in range(1, points + 1)]
        labs = classifier(batch)
        for i, k in enumerate(todo):
            s = st[k]
            pts = [a for _, a in batch[i * points:(i + 1) * points]]
            ls = labs[i * points:(i + 1) * points]
            grid = [(s["lo"], s["label_lo"])] + list(zip(pts, ls)) + [(s["hi"], s["label_hi"])]
            for j in range(len(grid) - 1):
                if grid[j + 1][1] != s["label_lo"]:
                    s["lo"], s["hi"], s["label_hi"] = grid[j][0], grid[j + 1][0], grid[j + 1][1]
                    break
            s["rounds"] += 1
            s["evaluations"] += points
        if progress is not None:
            progress.update(1)
    out = {}
    for k in keys:
        s = st[k]
        found = s["label_lo"] != s["label_hi"]
        out[k] = {"alpha_star": math.sqrt(s["lo"] * s["hi"]) if found else None,
                  "bracket": [s["lo"], s["hi"]], "label_lo": s["label_lo"],
                  "label_hi": s["label_hi"], "rounds": s["rounds"],
                  "evaluations": s["evaluations"]}
    return out


# -- the study -----------------------------------------------------------------------------------------

#: lanes per chunk of a basin map (the unit of ``--resume``)
MAP_CHUNK = 4096


def basin_study(*, landscape: str = "rosenbrock1d(c=4)", models: list[str] | None = None,
                theta0: list[float] | None = None, alpha: list[float] | None = None,
                epochs: list[int] | None = None, steps: int | None = None,
                horizon: float | None = None, beta1: float = 0.99, beta2: float = 0.999,
                eps: float = 1e-8, u0: list[float] | None = None,
                minima: list[list[float]] | None = None, bisect: tuple[float, float] | None = None,
                tol: float = 1e-3, points: int = 3, map_n: int | None = None,
                theta0_range: tuple[float, float] = (-2.0, 2.0),
                alpha_range: tuple[float, float] | None = None, device: str = "cpu",
                dtype: str = "float64", rtol: float | None = None, atol: float | None = None,
                progress: bool = False, scheme: str = "exact", integrator: str = "auto",
                engine: str = "auto", checkpoint: str | None = None, resume: bool = False,
                chunk_lanes: int | None = None
                ) -> dict[str, Any]:
    """Final state vs alpha (+ optional bisection and map). Without alpha and a step rule the SPEC
    §6 preset table is used. Returns {"rows", "threshold", "map", "minima", "barriers", ...}."""
    from tqdm.auto import tqdm

    models = list(models or DEFAULT_MODELS)
    for m in models:
        get_model(m)
    if alpha is None and epochs is None and steps is None and horizon is None:
        alpha = [a for a, _ in SPEC_EPOCHS]
        epochs = [e for _, e in SPEC_EPOCHS]
    if not alpha:
        raise ConfigError("alpha is required")
    check_alpha(alpha)
    check_beta(beta1, "beta1")
    check_beta(beta2, "beta2")
    check_eps(eps)
    u0 = list(u0 if u0 is not None else [1.0])
    check_finite(u0, "u0")
    theta0 = list(theta0 if theta0 is not None else [-1.5])
    check_finite(theta0, "theta0")
    check_magnitude(theta0, "theta0", DIVERGENCE_BOUND)
    check_magnitude(u0, "u0", DIVERGENCE_BOUND)
    if steps is not None:
        check_steps(steps, "steps")
    for e in epochs or []:
        check_steps(e, "epochs")
    if horizon is not None:
        for a in alpha:
            steps_from_horizon(horizon, a, minimum=0)
    rule = StepRule(alphas=alpha, epochs=epochs, steps=steps, horizon=horizon)
    if minima is not None:
        check_points(minima, "minima")
        if len({len(m) for m in minima}) > 1:
            raise ConfigError("all --minima must have the same dimension")
    infos = [get_model(m) for m in models]
    for info in infos:
        if info.kind == "flow" and "eps" in info.hyperparameters:
            check_flow_eps(eps, info.name)
    if bisect is not None:
        lo, hi = bisect
        if not (0 < lo < hi and math.isfinite(hi)):
            raise ConfigError(f"--bisect needs 0 < LO < HI, got {lo} {hi}")
        if not (tol > 0 and math.isfinite(tol)):
            raise ConfigError(f"tol must be a positive finite number, got {tol}")
        if points < 1:
            raise ConfigError(f"points must be >= 1, got {points}")
    if map_n is not None:
        if map_n < 1:
            raise ConfigError(f"--map needs N >= 1, got {map_n}")
        a, b = theta0_range
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise ConfigError(f"--theta0-range needs A < B, got {a} {b}")
        ar = alpha_range or (min(alpha), max(alpha))
        if not (0 < ar[0] <= ar[1] and math.isfinite(ar[1])):
            raise ConfigError(f"--alpha-range needs 0 < A <= B, got {ar[0]} {ar[1]}")
        if len(theta0) != 1:
            raise ConfigError("--map needs a 1-D landscape (scalar theta0)")
    # every alpha a run can visit (the table, the bracket ends, the map's range): K bounded and
    # K * alpha finite; the lanes of the rows, one bisection round and the map within memory
    visit = list(alpha) + (list(bisect) if bisect is not None else [])
    if map_n is not None:
        visit += list(alpha_range or (min(alpha), max(alpha)))
    K_max = 1
    for a in visit:
        K = rule(a) if rule.mode != "epochs" or a in dict(rule.table) else \
            steps_from_horizon(rule.horizon_at(a), a, minimum=0)
        check_steps(K, "steps", minimum=0)
        check_horizon(a, K)
        K_max = max(K_max, K)
    n_u0 = max(1, len(u0))
    lanes = len(models) * n_u0 * (len(alpha) + (points if bisect is not None else 0)
                                  + (map_n * map_n if map_n is not None else 0))
    check_memory(run_bytes(lanes, 2, 2 + 3 * len(theta0)),
                 f"this basin study ({lanes} lanes)", hint="use a smaller --map N or fewer points")
    for info in infos:
        if info.kind == "flow":
            check_flow_alpha(visit, info.name)
    land = landscapes.parse(landscape)
    land.check_dim(len(theta0))
    if minima is not None and len(minima[0]) != len(theta0):
        raise ConfigError(f"theta0 has dimension {len(theta0)}, --minima {len(minima[0])}")
    mins = minimizers(land, minima)
    if len(mins[0]["x"]) != len(theta0):
        raise ConfigError(f"theta0 has dimension {len(theta0)}, minimizers {len(mins[0]['x'])}")
    if scheme not in ("exact", "paper"):
        raise ConfigError(f"unknown scheme {scheme!r} (choose from: exact, paper)")
    for m in models:
        get_model(m).check_scheme(scheme)
    kw = dict(eps=eps, device=device, dtype=dtype, rtol=rtol, atol=atol, scheme=scheme,
              integrator=integrator, engine=engine)
    n_jobs = len(models) * (1 + (map_n is not None)) + (1 if bisect is not None else 0)
    bar = tqdm(total=n_jobs, desc="basin", unit="run", disable=not progress)

    # 1. final state vs alpha
    rows = []
    for m in models:
        lanes = [_lane(theta0, a, beta1, beta2, u, rule(a)) for u in _u0_list(m, u0) for a in alpha]
        res = final_states(m, landscape, lanes, **kw)
        labs = classify(res["final_theta"], mins)
        for j, (ln, th, lab, stt) in enumerate(zip(lanes, res["final_theta"].tolist(), labs,
                                                   res["status"])):
            done = all(math.isfinite(x) for x in th)
            row = {"alpha": ln["alpha"], "model": m, "u0": ln.get("u0"),
                   "final_theta": th if done else None, "steps": ln["steps"],
                   "time": ln["steps"] * ln["alpha"], "basin": lab,
                   "minimizer": mins[lab]["x"] if lab >= 0 else None,
                   "basin_kind": mins[lab]["kind"] if lab >= 0 else None, "status": stt,
                   "diverged_at": res["diverged_at"][j]}
            if "sweeps" in res:
                row.update(sweeps=res["sweeps"][j], converged=res["converged"][j])
            rows.append(row)
        bar.update(1)

    # 2. bisection: one batched run per model per round (all u0 and all points together)
    threshold = []
    if bisect is not None:
        keys = [(m, u) for m in models for u in _u0_list(m, u0)]

        def classifier(batch):
            out = [None] * len(batch)
            for m in models:
                idx = [i for i, (k, _) in enumerate(batch) if k[0] == m]
                if not idx:
                    continue
                lanes = [_lane(theta0, batch[i][1], beta1, beta2, batch[i][0][1],
                               rule(batch[i][1])) for i in idx]
                labs = classify(final_states(m, landscape, lanes, **kw)["final_theta"], mins)
                for i, lab in zip(idx, labs):
                    out[i] = lab
            return out

        res = bisect_threshold(classifier, bisect[0], bisect[1], tol=tol, points=points,
                               keys=keys)
        for (m, u), r in res.items():
            threshold.append({"model": m, "u0": u, "alpha_star": r["alpha_star"],
                              "bracket": r["bracket"],
                              "basin_below": _basin_name(mins, r["label_lo"]),
                              "basin_above": _basin_name(mins, r["label_hi"]),
                              "rounds": r["rounds"], "evaluations": r["evaluations"]})
        bar.update(1)

    # 3. map over (theta0, alpha)
    bmap = None
    if map_n is not None:
        ar = alpha_range or (min(alpha), max(alpha))
        th_grid = np.linspace(theta0_range[0], theta0_range[1], map_n).tolist()
        a_grid = np.geomspace(ar[0], ar[1], map_n).tolist()
        maps = []
        # the map's lanes in chunks of chunk_lanes, each kept in the checkpoint store beside the
        # output as soon as it is done (a killed run resumes at the first missing chunk; lanes are
        # batch invariant, so the chunking does not change a lane's result)
        chunk_lanes = int(chunk_lanes or MAP_CHUNK)
        store = None
        if checkpoint is not None:
            store = ChunkStore(checkpoint, {
                "study": "basin-map", "landscape": landscape, "models": models, "u0": u0,
                "theta0": th_grid, "alpha": a_grid, "steps": [rule(a) for a in a_grid],
                "beta1": beta1, "beta2": beta2, "minima": mins, "chunk_lanes": chunk_lanes,
                **kw}, resume=resume)
        chunk_id = 0
        for m in models:
            for u in _u0_list(m, u0):
                lanes = [_lane([t], a, beta1, beta2, u, rule(a)) for a in a_grid for t in th_grid]
                labs, fin = [], []
                for c0 in range(0, len(lanes), chunk_lanes):
                    part = store.get(chunk_id) if (store is not None and resume) else None
                    if part is None:
                        res = final_states(m, landscape, lanes[c0:c0 + chunk_lanes], **kw)
                        part = {"label": classify(res["final_theta"], mins),
                                "final_theta": res["final_theta"][:, 0].tolist()}
                        if store is not None:
                            part = store.put(chunk_id, part)
                    labs += part["label"]
                    fin += [math.nan if x is None else x for x in part["final_theta"]]
                    chunk_id += 1
                maps.append({"model": m, "u0": u,
                             "label": [labs[i * map_n:(i + 1) * map_n] for i in range(map_n)],
                             "final_theta": [fin[i * map_n:(i + 1) * map_n]
                                             for i in range(map_n)]})
            bar.update(1)
        bmap = {"theta0": th_grid, "alpha": a_grid, "steps": [rule(a) for a in a_grid],
                "layout": "label[i][j]: alpha[i], theta0[j]; -1 = diverged", "maps": maps}
    bar.close()
    return {"rows": rows, "threshold": threshold, "map": bmap, "minima": mins,
            "barriers": barriers(landscape), "landscape": landscape, "theta0": theta0,
            "beta1": beta1, "beta2": beta2, "eps": eps, "scheme": scheme,
            "step_rule": rule.describe(),
            "tol": tol if bisect is not None else None}


def _basin_name(mins, lab):
    return None if lab is None or lab < 0 else {"x": mins[lab]["x"], "kind": mins[lab]["kind"]}


# -- figure --------------------------------------------------------------------------------------------

def plot_basin(result: dict[str, Any], path: str) -> None:
    """Final theta vs alpha (log x) with minima/barrier marked and alpha* per model; the basin
    maps (imshow of the label over theta0 x log10 alpha) as extra panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    maps = (result.get("map") or {}).get("maps", [])
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(6.4 + 4.2 * len(maps), 4.6), squeeze=False)
    ax = axes[0, 0]
    groups: dict[tuple, list] = {}
    for r in result["rows"]:
        groups.setdefault((r["model"], r["u0"]), []).append(r)
    colors = {}
    for (m, u), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["alpha"])
        lab = m + (f" u0={u:g}" if u is not None else "")
        ln, = ax.plot([r["alpha"] for r in rs],
                      [r["final_theta"][0] if r["final_theta"] is not None
                       and r["final_theta"][0] is not None else np.nan
                       for r in rs], "o-", label=lab)
        colors[(m, u)] = ln.get_color()
    for mn in result["minima"]:
        ax.axhline(mn["x"][0], color="k" if mn["kind"] == "global" else "0.45", lw=1, ls="-",
                   zorder=0)
        ax.annotate(f"{mn['kind']} min {mn['x'][0]:.4g}", (0.01, mn["x"][0]),
                    xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
    for x in result.get("barriers", []):
        ax.axhline(x, color="0.6", lw=1, ls="--", zorder=0)
        ax.annotate(f"barrier {x:.4g}", (0.01, x), xycoords=("axes fraction", "data"),
                    fontsize=7, va="bottom")
    for t in result.get("threshold") or []:
        if t["alpha_star"] is not None:
            ax.axvline(t["alpha_star"], color=colors.get((t["model"], t["u0"]), "r"), ls=":",
                       lw=1.2, label=f"alpha* {t['model']} = {t['alpha_star']:.4g}")
    finite = [r["alpha"] for r in result["rows"] if r["final_theta"] is not None]
    if result["rows"] and not finite:       # every lane diverged: no data sets the alpha range
        als = [r["alpha"] for r in result["rows"]]
        ax.set_xlim(min(als) / 1.5, max(als) * 1.5)
    ax.set_xscale("log")
    ax.set_xlabel("alpha")
    ax.set_ylabel("final theta")
    ax.set_title(f"basin selection, {result['landscape']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if maps:
        mp = result["map"]
        n_min = len(result["minima"])
        cmap = ListedColormap(["0.2"] + [plt.cm.tab10(i) for i in range(n_min)])
        la = np.log10(mp["alpha"])
        th = mp["theta0"]
        dth = (th[-1] - th[0]) / max(1, len(th) - 1) / 2 or 0.5
        dla = (la[-1] - la[0]) / max(1, len(la) - 1) / 2 or 0.5
        for i, mm in enumerate(maps):
            a = axes[0, i + 1]
            a.imshow(np.array(mm["label"]), origin="lower", aspect="auto", cmap=cmap,
                     vmin=-1.5, vmax=n_min - 0.5, interpolation="nearest",
                     extent=[th[0] - dth, th[-1] + dth, la[0] - dla, la[-1] + dla])
            a.set_xlabel("theta0")
            a.set_ylabel("log10 alpha")
            a.set_title(mm["model"] + (f" u0={mm['u0']:g}" if mm["u0"] is not None else ""),
                        fontsize=9)
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(j + 1)) for j in range(n_min)]
        axes[0, -1].legend(handles, [f"{m['kind']} {m['x'][0]:.3g}" for m in result["minima"]],
                           fontsize=7, loc="upper right")
    fig.tight_layout()

    save_figure(fig, path)


# -- CLI -----------------------------------------------------------------------------------------------

class BasinStudy(Study):
    command = "basin"
    help = "final state vs alpha, basin threshold alpha* by bisection, (theta0, alpha) basin maps"
    summary_only_without_json = True

    def add_options(self, p) -> None:
        p.add_argument("--landscape", default="rosenbrock1d(c=4)",
                       help="landscape spec (default rosenbrock1d(c=4): the SPEC basin preset)")
        p.add_argument("--theta0", type=_vector, default=[-1.5], help="initial point (default -1.5)")
        p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="models")
        p.add_argument("--alpha", nargs="+", type=_float, default=None,
                       help="step sizes (default: the SPEC basin table with its epochs)")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--epochs", nargs="+", type=_int, default=None,
                       help="epochs per alpha (final iterate theta_{E-1}: E-1 updates)")
        g.add_argument("--steps", type=_int, default=None, help="K updates for every alpha")
        g.add_argument("--horizon", type=_float, default=None, help="time T (K = round(T/alpha))")
        p.add_argument("--beta1", type=_float, default=0.99, help="Adam beta1 (default 0.99)")
        p.add_argument("--beta2", type=_float, default=0.999, help="Adam beta2 (default 0.999)")
        p.add_argument("--eps", type=_float, default=1e-8,
                       help="epsilon (default 1e-8; > 0 for flows, which divide by sqrt(v) + eps)")
        p.add_argument("--u0", nargs="+", type=_float, default=[1.0],
                       help="initial velocities of second-order flows (default 1, the SPEC basin "
                            "preset; other commands default to 0)")
        p.add_argument("--minima", nargs="+", type=_vector, default=None,
                       help="minimizers for classification (default: closed-form critical points)")
        p.add_argument("--bisect", nargs=2, type=_float, metavar=("LO", "HI"), default=None,
                       help="find alpha* in [LO, HI] by batched bisection")
        p.add_argument("--tol", type=_float, default=1e-3, help="bisection: stop at (hi-lo) <= tol*hi")
        p.add_argument("--points", type=_int, default=3, help="bisection points per round")
        p.add_argument("--map", type=_int, default=None, metavar="N", dest="map_n",
                       help="N x N basin map over (theta0, alpha)")
        p.add_argument("--theta0-range", nargs=2, type=_float, default=[-2.0, 2.0], metavar=("A", "B"),
                       help="theta0 range of the map (default -2 2)")
        p.add_argument("--alpha-range", nargs=2, type=_float, default=None, metavar=("A", "B"),
                       help="log-spaced alpha range of the map (default: min/max of --alpha)")
        p.add_argument("--resume", action="store_true",
                       help="continue a killed --map run: the map's finished chunks of "
                            f"{MAP_CHUNK} lanes, kept in JSON.partial/ beside --json, are not "
                            "run again (default: start afresh; needs --json PATH)")

    def _checkpoint(self, args) -> str | None:
        """The map's chunks are kept beside --json (a file) while it runs."""
        if args.map_n is None or not args.json or args.json == "-":
            if args.resume:
                raise ConfigError("--resume needs --map N and --json PATH (the partial results "
                                  "are kept beside the JSON file)")
            return None
        return args.json

    def main(self, args) -> int:
        rc = super().main(args)
        path = self._checkpoint(args)
        if path is not None:                 # the output is written: the chunks are not needed
            shutil.rmtree(path + ".partial", ignore_errors=True)
        return rc

    def compute(self, args, numerics):
        return basin_study(
            landscape=args.landscape, models=args.models, theta0=args.theta0, alpha=args.alpha,
            epochs=args.epochs, steps=args.steps, horizon=args.horizon, beta1=args.beta1,
            beta2=args.beta2, eps=args.eps, u0=args.u0, minima=args.minima,
            bisect=tuple(args.bisect) if args.bisect else None, tol=args.tol, points=args.points,
            map_n=args.map_n, theta0_range=tuple(args.theta0_range),
            alpha_range=tuple(args.alpha_range) if args.alpha_range else None,
            device=numerics.device, dtype=numerics.dtype, rtol=numerics.rtol, atol=numerics.atol,
            progress=not args.quiet, scheme=numerics.scheme, integrator=numerics.integrator,
            engine=numerics.engine, checkpoint=self._checkpoint(args), resume=args.resume)

    def plot(self, result, path) -> None:
        plot_basin(result, path)

    def summary(self, result) -> None:
        for r in result["rows"]:
            u = f" u0={r['u0']:g}" if r["u0"] is not None else ""
            print(f"{r['model']:<12}{u} alpha={r['alpha']:<8g} steps={r['steps']:<6} "
                  f"final_theta={r['final_theta']} basin={r['basin_kind']} status={r['status']}")
        for t in result["threshold"]:
            u = f" u0={t['u0']:g}" if t["u0"] is not None else ""
            print(f"alpha* {t['model']}{u}: {t['alpha_star']} bracket={t['bracket']}")


STUDY = BasinStudy()
COMMAND, HELP, add_arguments, main = STUDY.command, STUDY.help, STUDY.add_arguments, STUDY.main
