"""`adamflow bench --only sweep`: speedup of `adamflow sweep` vs the number of local worker
processes (1, 2, 4) on a basin map, and the per-chunk overhead.

The map: rosenbrock1d(c=4), adam and adam-flow2 (u0 = 1), betas 0.99/0.999, theta0 in [-2, 2] x
log-spaced alpha in [1e-2, 1e-1], horizon ``HORIZON`` (K = round(T/alpha)); 2 x 224 x 224 = 100 352
lanes (quick: 2 x 64 x 64 = 8192). Each worker count runs the whole sweep from an empty output
folder (pool start-up included: what a user waits for) and the tables are checked to be the same
bytes; the pool's start-up (spawning and importing, timed on a sweep of 8 lanes) is reported
beside it. The per-chunk overhead is (t(many chunks) - t(one chunk)) / (chunks - 1) on one worker in
this process, at the same lanes.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

from analysis import sweep

HORIZON = 1.0


def _config(side: int) -> sweep.SweepConfig:
    return sweep.parse_config({
        "sweep": {"study": "basin", "landscape": "rosenbrock1d(c=4)",
                  "models": ["adam", "adam-flow2"], "horizon": HORIZON},
        "grid": {"theta0": {"start": -2.0, "stop": 2.0, "num": side},
                 "alpha": {"start": 1e-2, "stop": 1e-1, "num": side, "spacing": "log"},
                 "beta1": [0.99], "beta2": [0.999], "u0": [1.0]}})


def _timed_sweep(cfg, **kw) -> tuple[float, bytes, dict]:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = sweep.run_sweep(cfg, out=os.path.join(d, "s"), plot=False, **kw)
        wall = time.perf_counter() - t0
        with open(r["table"], "rb") as fh:
            return wall, fh.read(), r


def sweep_case(quick: bool = False, workers: tuple[int, ...] = (1, 2, 4)) -> list[dict[str, Any]]:
    """One row per worker count: {"name", "lanes", "workers", "chunks", "wall_s", "speedup",
    "same_table"}, then a row "sweep-chunk-overhead" with "per_chunk_s"."""
    side = 64 if quick else 224
    cfg = _config(side)
    lanes = 2 * side * side
    chunk = max(1, lanes // 32)                  # 32 chunks: enough to keep 4 workers busy
    sweep.run_sweep(_config(4), out=tempfile.mkdtemp(prefix="sweep-warm-"), plot=False)  # kernels
    rows, ref, base = [], None, None
    tiny = _config(2)                            # 8 lanes in 2 chunks: the pool's start-up
    for w in workers:
        startup, _, _ = _timed_sweep(tiny, executor="local", workers=w, chunk_lanes=4)
        wall, table, r = _timed_sweep(cfg, executor="local", workers=w, chunk_lanes=chunk)
        ref = table if ref is None else ref
        base = wall if base is None else base
        rows.append({"name": f"sweep-local-{w}", "lanes": lanes, "workers": w,
                     "chunks": r["chunks"], "chunk_lanes": chunk, "wall_s": wall,
                     "speedup": base / wall, "startup_s": startup, "same_table": table == ref,
                     "cpus": os.cpu_count()})
    small = _config(32)                          # 2048 lanes: overhead, not compute
    n_small = 2 * 32 * 32
    t_one, t1, _ = _timed_sweep(small, workers=1, chunk_lanes=n_small)
    many = 64
    t_many, t2, r = _timed_sweep(small, workers=1, chunk_lanes=n_small // many)
    rows.append({"name": "sweep-chunk-overhead", "lanes": n_small, "chunks": r["chunks"],
                 "one_chunk_per_model_s": t_one, "many_chunks_s": t_many,
                 "per_chunk_s": (t_many - t_one) / (r["chunks"] - 2), "same_table": t1 == t2})
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| case | lanes | workers | chunks | wall (s) | speedup | pool start-up (s) | same table |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "workers" in r:
            out.append(f"| {r['name']} | {r['lanes']} | {r['workers']} | {r['chunks']} | "
                       f"{r['wall_s']:.2f} | {r['speedup']:.2f}x | {r['startup_s']:.2f} | "
                       f"{r['same_table']} |")
        else:
            out.append(f"| {r['name']} | {r['lanes']} | 1 | {r['chunks']} vs 2 | "
                       f"{r['many_chunks_s']:.2f} vs {r['one_chunk_per_model_s']:.2f} | "
                       f"{1e3 * r['per_chunk_s']:.1f} ms per chunk | - | {r['same_table']} |")
    return "\n".join(out)


if __name__ == "__main__":     # python -m adamflow.bench_sweep [--quick]
    res = sweep_case(quick="--quick" in sys.argv)
    print(to_markdown(res))
