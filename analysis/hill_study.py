"""The Hill-ADAM seed experiments (SPEC §7, issue 11): what the seed's claims turn out to be.

Four studies, each a plain result dict (figures and tables are drawn from these only,
:mod:`paper_figs.hill`), all on the lane engine (``hilladam``, one batched run per study):

* :func:`sextic_starts` -- the sextic x^6 + x^5 + 3x^3 + 4x^2 + x from the starts
  x0 = -0.6 + 2.6 i/(N-1) (i = 0..N-1; N = 27: every start lies right of the hill, in the local
  basin or above it), Adam vs the original vs the robust variant at each lr: per lane whether the
  best state lies in the global basin (best x < the hill -0.699511), the best loss, the first step
  k at which theta_k entered the global basin, and the counts of each switching event;
* :func:`delta_sweep` -- the same starts for delta in {1e-5, 1e-4, 1e-3, 1e-2}: plateau toggles,
  best loss, global-basin fraction;
* :func:`gamma_sweep` -- the dead-end sweep gamma in {100, 500, 1000} on ``cubic`` (x^3 - 3x: a
  local minimum at 1, a hill at -1, unbounded below as x -> -inf and above as x -> +inf), against
  Adam: dead-end excursions and the steps they cost, floor excursions, best loss, whether the lane
  got past the hill (best loss below the local minimum's -2);
* :func:`one_run` -- one trajectory per variant with its direction, events and resets per step.

Adam keeps no best state; its "best" is the lowest loss over its trajectory (every step sampled),
i.e. the same bookkeeping applied to its iterates. An excursion is a maximal run of consecutive
steps on which the same rule (dead end or floor) fired.
"""
from __future__ import annotations

import math
from typing import Any

import torch

import landscapes
from discrete.hill_adam import EVENTS, VARIANTS, best_state
from runner.experiment import Numerics, run_lanes

#: the sextic's hill: a best state left of it is in the global basin
SEXTIC_HILL = next(p.x for p in landscapes.sextic_critical_points() if p.kind == "max")
SEXTIC_MIN = min(p.f for p in landscapes.sextic_critical_points() if p.kind == "min")
#: the cubic's local minimum value: a best loss below it means the lane got past the hill
CUBIC_LOCAL_MIN = -2.0
METHODS = ("adam",) + VARIANTS
#: event name -> code (:data:`discrete.hill_adam.EVENTS`)
CODES = {name: code for code, name in EVENTS.items()}


def sextic_x0(n: int = 27) -> list[float]:
    """x0 = -0.6 + 2.6 i/(n-1), i = 0..n-1 (n = 27: the issue's starts)."""
    return [-0.6 + 2.6 * i / (n - 1) for i in range(n)] if n > 1 else [-0.6]


def _runs(rows: list[dict[str, Any]], spec: str, K: int) -> list[dict[str, Any]]:
    """Run every row ({"method", "x0", "lr", hyper...}) for K steps: Adam lanes in one batch and
    Hill-ADAM lanes in another; returns per row the trajectory summary of :func:`_summary`."""
    land = landscapes.parse(spec)
    out: list[dict[str, Any] | None] = [None] * len(rows)
    for model in ("adam", "hilladam"):
        idx = [i for i, r in enumerate(rows) if (r["method"] == "adam") == (model == "adam")]
        if not idx:
            continue
        lanes = []
        for i in idx:
            r = rows[i]
            ln = {"theta0": [r["x0"]], "alpha": r["lr"]}
            if model == "hilladam":
                ln.update(variant=float(VARIANTS.index(r["method"])),
                          **{k: r[k] for k in ("delta", "gamma", "gamma_low") if k in r})
            lanes.append(ln)
        traj = run_lanes(model, land, lanes, [K] * len(lanes), every=1, numerics=Numerics())
        for j, i in enumerate(idx):
            out[i] = _summary(traj, j, model)
    return [{**r, **s} for r, s in zip(rows, out)]


def _excursions(ev: torch.Tensor, code: int) -> int:
    hit = ev == code
    starts = hit[1:] & ~hit[:-1]
    return int(starts.sum()) + int(hit[0])


def _summary(traj, b: int, model: str) -> dict[str, Any]:
    """Per lane: best loss and x, the x path and the event counts."""
    n = int(traj.n_out[b])
    x = traj.theta[b, :n, 0]
    f = traj.f[b, :n]
    res: dict[str, Any] = {"status": int(traj.status[b]), "final_x": float(x[-1]),
                           "final_f": float(f[-1])}
    if model == "adam":
        j = int(torch.argmin(torch.nan_to_num(f, nan=math.inf)))
        res.update(best_f=float(f[j]), best_x=float(x[j]))
        for name in ("plateau", "crest", "dead end", "floor"):
            res[name] = 0
        res.update(dead_end_excursions=0, dead_end_steps=0, floor_excursions=0, resets=0)
    else:
        bf, bt = best_state(traj)
        ev = traj.extras["event"][b, 1:n, 0]
        res.update(best_f=float(bf[b]), best_x=float(bt[b, 0]),
                   resets=int(traj.extras["reset"][b, 1:n, 0].sum()),
                   dead_end_excursions=_excursions(ev, CODES["dead end"]),
                   dead_end_steps=int((ev == CODES["dead end"]).sum()),
                   floor_excursions=_excursions(ev, CODES["floor"]))
        for name in ("plateau", "crest", "dead end", "floor"):
            res[name] = int((ev == CODES[name]).sum())
    res["_x"] = x
    return res


def _first_below(x: torch.Tensor, level: float) -> int | None:
    hit = (x < level).nonzero()
    return int(hit[0, 0]) if hit.numel() else None


def _finish(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        r.pop("_x", None)
    return rows


def _group(rows, keys):
    out: dict[tuple, list] = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def _median(vals: list[float]) -> float | None:
    if not vals:
        return None
    s = sorted(vals)
    m = len(s) // 2
    return float(s[m]) if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


def sextic_starts(*, n_starts: int = 27, lrs=(0.1, 0.01), K: int = 15000,
                  delta: float = 1e-4, gamma: float = 200.0) -> dict[str, Any]:
    """Adam, original and robust Hill-ADAM on the sextic from :func:`sextic_x0` at each lr.

    Rows (one per method, lr, x0): ``in_global`` (best x < hill), ``best_f``, ``best_x``,
    ``steps_to_global`` (first k with theta_k < hill; None if never), event counts. Summary per
    (method, lr): ``global_fraction``, ``global_count``, ``best_f_mean``, ``best_f_max`` (the worst
    lane's best), ``steps_median`` (over the lanes that reached the global basin), ``plateau_mean``.
    ``claim``: per lr, global counts and whether robust >= original >= adam holds.
    """
    x0s = sextic_x0(n_starts)
    rows = [{"method": m, "lr": lr, "x0": x, **({} if m == "adam" else
                                                 {"delta": delta, "gamma": gamma})}
            for lr in lrs for m in METHODS for x in x0s]
    rows = _runs(rows, "sextic", K)
    for r in rows:
        r["in_global"] = bool(r["best_x"] < SEXTIC_HILL)
        r["steps_to_global"] = _first_below(r["_x"], SEXTIC_HILL)
    summary = []
    for (m, lr), rs in _group(rows, ("method", "lr")).items():
        steps = [r["steps_to_global"] for r in rs if r["steps_to_global"] is not None]
        summary.append({
            "method": m, "lr": lr, "lanes": len(rs),
            "global_count": sum(r["in_global"] for r in rs),
            "global_fraction": sum(r["in_global"] for r in rs) / len(rs),
            "best_f_mean": sum(r["best_f"] for r in rs) / len(rs),
            "best_f_max": max(r["best_f"] for r in rs),
            "best_f_min": min(r["best_f"] for r in rs),
            "steps_median": _median(steps), "steps_max": max(steps) if steps else None,
            "plateau_mean": sum(r["plateau"] for r in rs) / len(rs),
            "dead_end_excursions_mean": sum(r["dead_end_excursions"] for r in rs) / len(rs),
        })
    claim = {}
    for lr in lrs:
        c = {s["method"]: s["global_count"] for s in summary if s["lr"] == lr}
        claim[lr] = {**c, "holds": c["robust"] >= c["original"] >= c["adam"]}
    return {"landscape": "sextic", "hill": SEXTIC_HILL, "f_min": SEXTIC_MIN, "K": K,
            "lrs": list(lrs), "x0": x0s, "delta": delta, "gamma": gamma,
            "rows": _finish(rows), "summary": summary, "claim": claim}


def delta_sweep(*, deltas=(1e-5, 1e-4, 1e-3, 1e-2), n_starts: int = 27, lrs=(0.1, 0.01),
                K: int = 15000) -> dict[str, Any]:
    """Both variants on the sextic from :func:`sextic_x0` for each delta and lr.

    Summary per (variant, lr, delta): ``global_fraction``, ``plateau_mean`` (plateau toggles per
    lane), ``best_f_mean``, ``best_f_max``."""
    x0s = sextic_x0(n_starts)
    rows = [{"method": m, "lr": lr, "delta": d, "x0": x}
            for d in deltas for lr in lrs for m in VARIANTS for x in x0s]
    rows = _runs(rows, "sextic", K)
    for r in rows:
        r["in_global"] = bool(r["best_x"] < SEXTIC_HILL)
    summary = []
    for (m, lr, d), rs in _group(rows, ("method", "lr", "delta")).items():
        summary.append({"method": m, "lr": lr, "delta": d, "lanes": len(rs),
                        "global_fraction": sum(r["in_global"] for r in rs) / len(rs),
                        "plateau_mean": sum(r["plateau"] for r in rs) / len(rs),
                        "crest_mean": sum(r["crest"] for r in rs) / len(rs),
                        "best_f_mean": sum(r["best_f"] for r in rs) / len(rs),
                        "best_f_max": max(r["best_f"] for r in rs)})
    return {"landscape": "sextic", "hill": SEXTIC_HILL, "K": K, "lrs": list(lrs),
            "deltas": list(deltas), "x0": x0s, "rows": _finish(rows), "summary": summary}


def cubic_x0(n: int = 9) -> list[float]:
    """x0 = -0.5 + 3.5 i/(n-1): between the hill (-1) and far right of the local minimum (1)."""
    return [-0.5 + 3.5 * i / (n - 1) for i in range(n)] if n > 1 else [2.0]


def gamma_sweep(*, gammas=(100.0, 500.0, 1000.0), n_starts: int = 9, lrs=(0.1, 0.01),
                K: int = 15000, gamma_low: float = -1e4) -> dict[str, Any]:
    """The dead-end sweep on ``cubic``: both variants for each gamma and lr, and Adam.

    Summary per (method, lr, gamma): ``dead_end_excursions_mean``, ``dead_end_steps_mean``,
    ``floor_excursions_mean``, ``escaped_fraction`` (best loss < -2: the lane crossed the hill and
    found the unbounded side), ``best_f_mean``, ``best_f_max``. For the robust variant gamma is
    relative: the dead end is L > best + gamma max(1, |best|) (at best = -2: L > 2 gamma - 2)."""
    x0s = cubic_x0(n_starts)
    rows = [{"method": m, "lr": lr, "gamma": g, "gamma_low": gamma_low, "x0": x}
            for g in gammas for lr in lrs for m in VARIANTS for x in x0s]
    rows += [{"method": "adam", "lr": lr, "gamma": None, "x0": x} for lr in lrs for x in x0s]
    rows = _runs(rows, "cubic", K)
    for r in rows:
        r["escaped"] = bool(r["best_f"] < CUBIC_LOCAL_MIN - 1e-6)
    summary = []
    for (m, lr, g), rs in _group(rows, ("method", "lr", "gamma")).items():
        n = len(rs)
        summary.append({"method": m, "lr": lr, "gamma": g, "lanes": n,
                        "dead_end_excursions_mean": sum(r["dead_end_excursions"] for r in rs) / n,
                        "dead_end_steps_mean": sum(r["dead_end_steps"] for r in rs) / n,
                        "floor_excursions_mean": sum(r["floor_excursions"] for r in rs) / n,
                        "escaped_fraction": sum(r["escaped"] for r in rs) / n,
                        "best_f_mean": sum(r["best_f"] for r in rs) / n,
                        "best_f_max": max(r["best_f"] for r in rs),
                        "diverged": sum(r["status"] != 0 for r in rs)})
    return {"landscape": "cubic", "K": K, "lrs": list(lrs), "gammas": list(gammas),
            "gamma_low": gamma_low, "x0": x0s, "local_min_f": CUBIC_LOCAL_MIN,
            "rows": _finish(rows), "summary": summary}


def one_run(*, spec: str = "sextic", x0: float = 1.0, lr: float = 0.1, K: int = 1500,
            **hyper) -> dict[str, Any]:
    """One trajectory per variant (and Adam) from ``x0``: per step k, x_k, f_k, the direction
    sigma of the update that produced x_k, its event code and reset flag, the best loss so far."""
    land = landscapes.parse(spec)
    out: dict[str, Any] = {"landscape": spec, "x0": x0, "lr": lr, "K": K, "hyper": hyper,
                           "events": {str(k): v for k, v in EVENTS.items()}}
    lanes = [{"theta0": [x0], "alpha": lr, "variant": float(i), **hyper}
             for i in range(len(VARIANTS))]
    traj = run_lanes("hilladam", land, lanes, [K] * len(lanes), every=1, numerics=Numerics())
    for b, name in enumerate(VARIANTS):
        n = int(traj.n_out[b])
        out[name] = {"k": list(range(n)), "x": traj.theta[b, :n, 0].tolist(),
                     "f": traj.f[b, :n].tolist(),
                     "sigma": traj.extras["sigma"][b, :n, 0].tolist(),
                     "event": [int(e) for e in traj.extras["event"][b, :n, 0].tolist()],
                     "reset": [int(e) for e in traj.extras["reset"][b, :n, 0].tolist()],
                     "best_f": traj.extras["best_f"][b, :n, 0].tolist()}
    adam = run_lanes("adam", land, [{"theta0": [x0], "alpha": lr}], [K], every=1,
                     numerics=Numerics())
    n = int(adam.n_out[0])
    out["adam"] = {"k": list(range(n)), "x": adam.theta[0, :n, 0].tolist(),
                   "f": adam.f[0, :n].tolist()}
    return out


__all__ = ["sextic_starts", "delta_sweep", "gamma_sweep", "one_run", "sextic_x0", "cubic_x0",
           "SEXTIC_HILL", "SEXTIC_MIN", "CUBIC_LOCAL_MIN", "METHODS"]
