"""Declarative sweeps (``adamflow sweep CONFIG.toml``): a grid of lanes split into chunks, each chunk
a pure function config -> result file, run on a local process pool or a Dask cluster.

Config (TOML; every key is checked before any work starts, see :func:`load_config`)::

    [sweep]
    study = "basin"                     # "basin" (final state + basin label) or "final_state"
    landscape = "rosenbrock1d(c=4)"     # or landscapes = ["...", "..."]
    models = ["adam", "adam-flow2"]
    horizon = 10.0                      # K = round(horizon/alpha) per lane; flows at t = K alpha
    # steps = 1000                      # instead of horizon: K updates for every lane
    eps = 1e-8                          # optional
    # minima = [[-0.8536], [1.0]]       # optional; default: the landscape's closed-form minimizers

    [grid]                              # per-lane axes: a list, or a range table
    theta0 = {start = -2.0, stop = 2.0, num = 128}                   # linear
    alpha = {start = 1e-3, stop = 1e-1, num = 128, spacing = "log"}  # geometric
    beta1 = [0.99]
    beta2 = [0.999]
    u0 = [1.0]                          # only for models that have u0 (second-order flows)

    [numerics]                          # optional: scheme, integrator, engine, rtol, atol,
    rtol = 1e-10                        # device, dtype

Grid order: landscapes, then models (as listed), then the cartesian product of the axes in the fixed
order ``beta1, beta2, u0, alpha, theta0`` (theta0 fastest); an axis a model lacks (u0 for Adam) is
dropped for that model. The lanes of one (landscape, model) are cut into chunks of ``chunk_lanes``
consecutive lanes; a chunk is one batched computation (:func:`analysis.basin.final_states`).

A chunk is described by a JSON-able *spec* (its lanes, landscape, model, numerics, minima and the
code version :data:`CODE_VERSION`). :func:`run_chunk` is a pure function of it; its result file is
``chunks/<sha256 of the canonical JSON of the spec>.json``, written atomically (temporary file,
fsync, rename), so a killed sweep leaves only whole chunk files. Without ``--resume`` every chunk
is computed again (files overwritten atomically; a duplicated or retried chunk writes the same
bytes). With ``--resume`` a chunk whose file exists and is valid is not run again.

The table (``table.csv``; ``table.json`` holds the config, the code version and the column
descriptions) is merged from the chunk files in grid order. Lanes are batch invariant
(``tests/test_batch_invariance.py``: a lane's result is the same bit for bit alone or inside any
batch), chunk results are read back from their files (JSON floats round-trip exactly) and floats are
written with ``repr``, so the table is the same bytes whatever the executor, the number of workers,
the chunk size or a resume.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import importlib
import importlib.util
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numba
import numpy as np
import torch

import landscapes
from analysis.basin import classify, final_states, minimizers
from core.errors import ConfigError
from core.hyper import check_alpha, check_beta, check_eps, check_finite
from core.output import atomic_write_text, dumps_json, save_figure
from core.validation import check_flow_alpha, steps_from_horizon
from runner.experiment import Numerics
from runner.registry import get_model

COMMAND = "sweep"
HELP = "declarative sweeps over lanes (basin maps, final states) on a process pool or a Dask cluster"

#: bump when a chunk's result for the same spec may change (it is part of every chunk's hash)
CHUNK_FORMAT = 1
STUDIES = ("basin", "final_state")
#: per-lane axes, outer to inner (theta0 fastest)
AXES = ("beta1", "beta2", "u0", "alpha", "theta0")
AXIS_DEFAULTS = {"beta1": [0.99], "beta2": [0.999], "u0": [0.0]}
SWEEP_KEYS = {"study", "landscape", "landscapes", "models", "horizon", "steps", "eps", "minima"}
NUMERIC_KEYS = {"scheme": str, "integrator": str, "engine": str, "rtol": float, "atol": float,
                "device": str, "dtype": str}
DEFAULT_CHUNK_LANES = 4096
#: test hook (fault injection): when set to a path, the first chunk computed by any process after
#: that file was created exclusively kills its process (os._exit) -- a worker dying mid-chunk
FAULT_ENV = "ADAMFLOW_SWEEP_FAULT"


def _code_version() -> str:
    try:
        v = metadata.version("adamflow")
    except metadata.PackageNotFoundError:
        v = "unknown"
    return f"adamflow-{v}/sweep-chunk-{CHUNK_FORMAT}"


CODE_VERSION = _code_version()


# -- config ----------------------------------------------------------------------------------------

@dataclass
class SweepConfig:
    study: str
    landscapes: list[str]
    models: list[str]
    axes: dict[str, list]
    horizon: float | None = None
    steps: int | None = None
    eps: float = 1e-8
    minima: list[list[float]] | None = None
    numerics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.study, "landscapes": self.landscapes, "models": self.models,
                "axes": self.axes, "horizon": self.horizon, "steps": self.steps, "eps": self.eps,
                "minima": self.minima, "numerics": self.numerics}


def _err(where: str, msg: str) -> ConfigError:
    return ConfigError(f"sweep config: {where}: {' '.join(str(msg).split())}")


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _axis(name: str, v) -> list:
    where = f"[grid] {name}"
    if isinstance(v, dict):
        unknown = set(v) - {"start", "stop", "num", "spacing"}
        if unknown:
            raise _err(where, f"unknown key {min(unknown)!r} (range keys: start, stop, num, "
                              "spacing)")
        for k in ("start", "stop", "num"):
            if k not in v:
                raise _err(where, f"range needs {k!r}")
        if not (_is_num(v["start"]) and _is_num(v["stop"])):
            raise _err(where, "start and stop must be numbers")
        if not (isinstance(v["num"], int) and not isinstance(v["num"], bool)) or v["num"] < 1:
            raise _err(where, f"num must be an integer >= 1, got {v['num']!r}")
        spacing = v.get("spacing", "linear")
        if spacing not in ("linear", "log"):
            raise _err(where, f"spacing must be 'linear' or 'log', got {spacing!r}")
        a, b = float(v["start"]), float(v["stop"])
        if not (math.isfinite(a) and math.isfinite(b)):
            raise _err(where, "start and stop must be finite")
        if spacing == "log":
            if a <= 0 or b <= 0:
                raise _err(where, "a log range needs start > 0 and stop > 0")
            vals = np.geomspace(a, b, v["num"]).tolist()
        else:
            vals = np.linspace(a, b, v["num"]).tolist()
    elif isinstance(v, list):
        if not v:
            raise _err(where, "empty axis")
        vals = []
        for x in v:
            if name == "theta0" and isinstance(x, list):
                if not x or not all(_is_num(c) for c in x):
                    raise _err(where, f"a point must be a non-empty list of numbers, got {x!r}")
                vals.append([float(c) for c in x])
            elif _is_num(x):
                vals.append(float(x))
            else:
                raise _err(where, f"values must be numbers, got {x!r}")
    elif _is_num(v):
        vals = [float(v)]
    else:
        raise _err(where, f"must be a list of numbers or a range table, got {type(v).__name__}")
    try:
        if name == "alpha":
            check_alpha(vals, "value")
        elif name in ("beta1", "beta2"):
            check_beta(vals, "value")
        else:
            for x in vals:
                check_finite(x if isinstance(x, list) else [x], "value")
    except ConfigError as exc:
        raise _err(where, exc) from None
    dims = {len(x) if isinstance(x, list) else 1 for x in vals}
    if len(dims) > 1:
        raise _err(where, "all points must have the same dimension")
    return vals


def parse_config(data: dict[str, Any]) -> SweepConfig:
    """Validate a parsed TOML document into a :class:`SweepConfig` (one-line ConfigError naming the
    key on any problem)."""
    unknown = set(data) - {"sweep", "grid", "numerics"}
    if unknown:
        raise _err(f"[{min(unknown)}]", "unknown table (tables: sweep, grid, numerics)")
    for t in ("sweep", "grid"):
        if not isinstance(data.get(t), dict):
            raise _err(f"[{t}]", "missing table")
    sw, grid = data["sweep"], data["grid"]
    num = data.get("numerics", {})
    if not isinstance(num, dict):
        raise _err("[numerics]", "must be a table")
    for k in sw:
        if k not in SWEEP_KEYS:
            raise _err(f"[sweep] {k}", f"unknown key (keys: {', '.join(sorted(SWEEP_KEYS))})")
    for k in grid:
        if k not in AXES:
            raise _err(f"[grid] {k}", f"unknown axis (axes: {', '.join(AXES)})")
    for k in num:
        if k not in NUMERIC_KEYS:
            raise _err(f"[numerics] {k}", f"unknown key (keys: {', '.join(NUMERIC_KEYS)})")

    study = sw.get("study", "basin")
    if study not in STUDIES:
        raise _err("[sweep] study", f"unknown study {study!r} (choose from: {', '.join(STUDIES)})")
    if ("landscape" in sw) == ("landscapes" in sw):
        raise _err("[sweep] landscape", "give exactly one of landscape or landscapes")
    lands = sw.get("landscapes", [sw.get("landscape")])
    key = "[sweep] landscapes" if "landscapes" in sw else "[sweep] landscape"
    if isinstance(lands, str) or not isinstance(lands, list) or not lands \
            or not all(isinstance(s, str) for s in lands):
        raise _err(key, "must be a spec string (landscapes: a non-empty list of them)")
    land_objs = []
    for s in lands:
        try:
            land_objs.append(landscapes.parse(s))
        except ConfigError as exc:
            raise _err(key, exc) from None
    models = sw.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise _err("[sweep] models", "must be a non-empty list of model names")
    for m in models:
        try:
            get_model(m)
        except ConfigError as exc:
            raise _err("[sweep] models", exc) from None
    if len(set(models)) != len(models):
        raise _err("[sweep] models", "duplicate model")
    if ("horizon" in sw) == ("steps" in sw):
        raise _err("[sweep] horizon", "give exactly one of horizon or steps")
    horizon = steps = None
    if "horizon" in sw:
        horizon = sw["horizon"]
        if not _is_num(horizon) or not (math.isfinite(horizon) and horizon > 0):
            raise _err("[sweep] horizon", f"must be a positive finite number, got {horizon!r}")
        horizon = float(horizon)
    else:
        steps = sw["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise _err("[sweep] steps", f"must be an integer >= 1, got {steps!r}")
    eps = sw.get("eps", 1e-8)
    if not _is_num(eps):
        raise _err("[sweep] eps", f"must be a number, got {eps!r}")
    try:
        check_eps(float(eps))
    except ConfigError as exc:
        raise _err("[sweep] eps", exc) from None
    minima = sw.get("minima")
    if minima is not None:
        if not isinstance(minima, list) or not minima or not all(
                isinstance(p, list) and p and all(_is_num(c) for c in p) for p in minima):
            raise _err("[sweep] minima", "must be a non-empty list of points (lists of numbers)")
        minima = [[float(c) for c in p] for p in minima]

    if "alpha" not in grid:
        raise _err("[grid] alpha", "missing axis")
    if "theta0" not in grid:
        raise _err("[grid] theta0", "missing axis")
    axes = {a: _axis(a, grid[a]) if a in grid else list(AXIS_DEFAULTS[a]) for a in AXES}
    dim = len(axes["theta0"][0]) if isinstance(axes["theta0"][0], list) else 1
    for land in land_objs:
        try:
            land.check_dim(dim)
        except ConfigError as exc:
            raise _err("[grid] theta0", exc) from None

    numerics = {}
    for k, typ in NUMERIC_KEYS.items():
        if k in num:
            v = num[k]
            ok = isinstance(v, str) if typ is str else _is_num(v)
            if not ok:
                raise _err(f"[numerics] {k}", f"must be a {'string' if typ is str else 'number'}, "
                                              f"got {v!r}")
            numerics[k] = float(v) if typ is float else v
    try:
        Numerics(**numerics).validate()
    except (ConfigError, TypeError) as exc:
        raise _err("[numerics]", exc) from None

    # per-model checks on the lanes' values (flows: alpha floor, eps > 0, the step count)
    for m in models:
        info = get_model(m)
        if info.kind == "flow":
            try:
                check_flow_alpha(axes["alpha"], m)
            except ConfigError as exc:
                raise _err("[grid] alpha", exc) from None
            if float(eps) <= 0:
                raise _err("[sweep] eps", f"must be > 0 for the flow {m}")
    if horizon is not None:
        for a in axes["alpha"]:
            try:
                steps_from_horizon(horizon, a)
            except ConfigError as exc:
                raise _err("[sweep] horizon", exc) from None
    if study == "basin":
        for s in lands:
            try:
                minimizers(s, minima)
            except ConfigError as exc:
                raise _err("[sweep] minima", exc) from None
    return SweepConfig(study=study, landscapes=list(lands), models=list(models), axes=axes,
                       horizon=horizon, steps=steps, eps=float(eps), minima=minima,
                       numerics=numerics, source=data)


def load_config(path: str) -> SweepConfig:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"sweep config: cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep config: {path}: invalid TOML: {exc}") from None
    return parse_config(data)


# -- grid and chunks -------------------------------------------------------------------------------

def _model_axes(model: str) -> list[str]:
    hp = get_model(model).hyperparameters
    return [a for a in AXES if a in ("alpha", "theta0") or a in hp]


def _steps(cfg: SweepConfig, alpha: float) -> int:
    return int(cfg.steps) if cfg.steps is not None else steps_from_horizon(cfg.horizon, alpha)


def groups(cfg: SweepConfig) -> list[dict[str, Any]]:
    """One entry per (landscape, model) in grid order: {"landscape", "model", "axes", "lanes"}."""
    out = []
    for land in cfg.landscapes:
        for m in cfg.models:
            names = _model_axes(m)
            lanes = []
            for combo in itertools.product(*(cfg.axes[a] for a in names)):
                ln = dict(zip(names, combo))
                th = ln["theta0"]
                ln["theta0"] = list(th) if isinstance(th, list) else [th]
                ln["steps"] = _steps(cfg, ln["alpha"])
                lanes.append(ln)
            out.append({"landscape": land, "model": m, "axes": names, "lanes": lanes})
    return out


def chunk_specs(cfg: SweepConfig, chunk_lanes: int) -> list[dict[str, Any]]:
    """The chunks in grid order (each a JSON-able spec for :func:`run_chunk`)."""
    if not (isinstance(chunk_lanes, int) and chunk_lanes >= 1):
        raise ConfigError(f"--chunk-lanes must be an integer >= 1, got {chunk_lanes!r}")
    specs = []
    for g in groups(cfg):
        mins = minimizers(g["landscape"], cfg.minima) if cfg.study == "basin" else None
        for c0 in range(0, len(g["lanes"]), chunk_lanes):
            specs.append({"code": CODE_VERSION, "study": cfg.study, "landscape": g["landscape"],
                          "model": g["model"], "eps": cfg.eps, "numerics": cfg.numerics,
                          "minima": mins, "lanes": g["lanes"][c0:c0 + chunk_lanes]})
    return specs


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def chunk_name(spec: dict[str, Any]) -> str:
    """The content address of a chunk: sha256 of its spec's canonical JSON (code version included)."""
    return hashlib.sha256(canonical(spec).encode()).hexdigest()


def run_chunk(spec: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """The chunk's result (pure: a function of ``spec`` only): per lane ``final_theta`` (None when
    the lane did not finish), ``status``, ``diverged_at``, ``steps``, and for the basin study
    ``label`` (index of the nearest minimizer, -1 = did not finish).

    ``threads``: numba threads of the compiled kernels (None: all; pool and Dask workers run one
    chunk per core with 1). The lanes are independent, so it changes no bit of the result."""
    t_torch, t_numba = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)        # small per-lane tensors: one intra-op thread
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        num = dict(spec["numerics"])
        res = final_states(spec["model"], spec["landscape"], [dict(ln) for ln in spec["lanes"]],
                           eps=spec["eps"], **num)
    finally:
        torch.set_num_threads(t_torch)
        numba.set_num_threads(t_numba)
    fin = res["final_theta"].cpu().tolist()
    out = {"final_theta": [None if not all(math.isfinite(x) for x in row) else row for row in fin],
           "status": list(res["status"]), "diverged_at": list(res["diverged_at"]),
           "steps": list(res["steps"])}
    if spec["study"] == "basin":
        out["label"] = classify(res["final_theta"], spec["minima"])
    return out


def _maybe_fault() -> None:
    marker = os.environ.get(FAULT_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os._exit(1)


def _read_chunk(path: str, name: str) -> dict[str, Any] | None:
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("chunk") != name or "result" not in doc:
        return None
    return doc["result"]


def compute_chunk_file(spec: dict[str, Any], directory: str, threads: int | None = None) -> str:
    """Run one chunk and write its result file atomically; returns the file's path. Safe to run
    twice or concurrently (the same bytes land under the same name)."""
    name = chunk_name(spec)
    path = os.path.join(directory, name + ".json")
    _maybe_fault()
    result = run_chunk(spec, threads)
    atomic_write_text(path, dumps_json({"chunk": name, "code": spec["code"], "result": result})
                      + "\n")
    return path


# -- executors -------------------------------------------------------------------------------------

def _init_worker() -> None:
    torch.set_num_threads(1)


def run_local(specs: list[dict], directory: str, workers: int, *, progress=None,
              retries: int = 2) -> None:
    """A process pool of ``workers`` (spawn; one numba thread each); ``workers == 1`` runs in this
    process (the compiled kernels on all cores). A pool that
    breaks (a worker died) is replaced and the chunks without a file are submitted again, up to
    ``retries`` times."""
    if workers == 1:
        for s in specs:
            compute_chunk_file(s, directory)
            if progress:
                progress(1)
        return
    todo = list(specs)
    for attempt in range(retries + 1):
        ctx = multiprocessing.get_context("spawn")
        failed = []
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                    initializer=_init_worker) as pool:
            futs = {pool.submit(compute_chunk_file, s, directory, 1): s for s in todo}
            for f in cf.as_completed(futs):
                try:
                    f.result()
                    if progress:
                        progress(1)
                except cf.process.BrokenProcessPool:
                    failed.append(futs[f])
        if not failed:
            return
        if attempt == retries:
            raise RuntimeError(f"{len(failed)} chunks failed: a worker process died "
                               f"{retries + 1} times")
        todo = failed


def run_dask(specs: list[dict], directory: str, workers: int, *, scheduler: str | None = None,
             gpu: bool = False, progress=None, retries: int = 2) -> None:
    """Submit every chunk to a Dask scheduler (``scheduler`` address), or to a LocalCluster of
    ``workers`` single-threaded worker processes on loopback when none is given. Chunks on a GPU
    device ask for ``resources={"GPU": 1}`` (workers started with ``--resources GPU=1`` take one at
    a time). A chunk whose worker dies is rescheduled by Dask; ``retries`` covers exceptions."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("--executor dask needs dask.distributed: pip install -e '.[dask]'") from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=":0",
                               resources={"GPU": 1} if gpu else None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    try:
        kw = {"resources": {"GPU": 1}} if gpu else {}
        futs = [client.submit(compute_chunk_file, s, directory, 1, retries=retries, pure=False,
                              **kw) for s in specs]
        for f in as_completed(futs):
            f.result()
            if progress:
                progress(1)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _has_distributed() -> bool:
    try:
        return importlib.util.find_spec("distributed") is not None
    except ValueError:          # a stubbed module without a spec
        return False


# -- merge -----------------------------------------------------------------------------------------

def _fmt(x) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return repr(x) if math.isfinite(x) else ""
    if isinstance(x, list):
        return ";".join(repr(float(c)) for c in x)
    return str(x)


COLUMNS = {
    "landscape": "landscape spec",
    "model": "model name",
    "beta1": "beta1 of the lane (empty where the model has none)",
    "beta2": "beta2 of the lane (empty where the model has none)",
    "u0": "initial velocity (second-order flows; empty elsewhere)",
    "alpha": "step size",
    "theta0": "initial point (coordinates joined by ';' for n > 1)",
    "steps": "K = round(horizon/alpha) updates (or the config's steps); flows compared at t = K alpha",
    "status": "lane status (ok, diverged, step_underflow, max_steps, ...)",
    "diverged_at": "time of divergence (empty when the lane did not diverge)",
    "final_theta": "theta_K (discrete) or theta(K alpha) (flow); empty when the lane did not finish",
    "label": "basin study: index of the nearest minimizer (see minima in table.json); -1 = did not "
             "finish",
    "basin": "basin study: kind of that minimizer (global/local), 'none' when label is -1",
}


def merge(cfg: SweepConfig, specs: list[dict], directory: str) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in COLUMNS if cfg.study == "basin" or c not in ("label", "basin")]
    rows = []
    for s in specs:
        name = chunk_name(s)
        res = _read_chunk(os.path.join(directory, name + ".json"), name)
        if res is None:
            raise RuntimeError(f"chunk {name} has no result file")
        for i, ln in enumerate(s["lanes"]):
            rec = {"landscape": s["landscape"], "model": s["model"], "beta1": ln.get("beta1"),
                   "beta2": ln.get("beta2"), "u0": ln.get("u0"), "alpha": ln["alpha"],
                   "theta0": ln["theta0"], "steps": res["steps"][i], "status": res["status"][i],
                   "diverged_at": res["diverged_at"][i], "final_theta": res["final_theta"][i]}
            if cfg.study == "basin":
                lab = res["label"][i]
                rec["label"] = lab
                rec["basin"] = s["minima"][lab]["kind"] if lab >= 0 else "none"
            rows.append([_fmt(rec[c]) for c in cols])
    return cols, rows


def _csv_text(cols: list[str], rows: list[list[str]]) -> str:
    def q(v: str) -> str:
        return f'"{v}"' if ("," in v or '"' in v) else v
    return "\n".join([",".join(cols)] + [",".join(q(v) for v in r) for r in rows]) + "\n"


# -- figure ----------------------------------------------------------------------------------------

def plot_sweep(cfg: SweepConfig, cols: list[str], rows: list[list[str]], path: str) -> bool:
    """Basin maps (label over theta0 x log10 alpha, one panel per landscape/model/u0/betas), as the
    map panels of :func:`analysis.basin.plot_basin`. Returns False (no figure) when the sweep is
    not a 1-D basin study with several alphas and starts."""
    th, al = cfg.axes["theta0"], cfg.axes["alpha"]
    if cfg.study != "basin" or isinstance(th[0], list) or len(th) < 2 or len(al) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    ix = {c: i for i, c in enumerate(cols)}
    panels: dict[tuple, dict] = {}
    for r in rows:
        key = (r[ix["landscape"]], r[ix["model"]], r[ix["u0"]], r[ix["beta1"]], r[ix["beta2"]])
        panels.setdefault(key, {})[(float(r[ix["alpha"]]), float(r[ix["theta0"]]))] = \
            int(r[ix["label"]])
    keys = list(panels)[:12]
    n = len(keys)
    ncol = min(n, 4)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.9 * nrow), squeeze=False)
    la = np.log10(al)
    dth = (th[-1] - th[0]) / max(1, len(th) - 1) / 2 or 0.5
    dla = (la[-1] - la[0]) / max(1, len(la) - 1) / 2 or 0.5
    for k, key in enumerate(keys):
        land = key[0]
        mins = minimizers(land, cfg.minima)
        cmap = ListedColormap(["0.2"] + [plt.cm.tab10(i) for i in range(len(mins))])
        img = np.array([[panels[key][(a, t)] for t in th] for a in al])
        ax = axes[k // ncol, k % ncol]
        ax.imshow(img, origin="lower", aspect="auto", cmap=cmap, vmin=-1.5,
                  vmax=len(mins) - 0.5, interpolation="nearest",
                  extent=[th[0] - dth, th[-1] + dth, la[0] - dla, la[-1] + dla])
        ax.set_xlabel("theta0")
        ax.set_ylabel("log10 alpha")
        title = f"basin map, {key[1]}" + (f" u0={float(key[2]):g}" if key[2] else "") + f"\n{land}"
        if len(cfg.axes["beta1"]) > 1 or len(cfg.axes["beta2"]) > 1:
            title += f" b1={key[3]} b2={key[4]}"
        ax.set_title(title, fontsize=8)
        handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(j + 1)) for j in range(len(mins))]
        handles.append(plt.Rectangle((0, 0), 1, 1, color=cmap(0)))
        labels = [f"{m['kind']} min {m['x'][0]:.4g}" for m in mins] + ["did not finish"]
        if len(cfg.landscapes) > 1:
            ax.legend(handles, labels, fontsize=6, loc="upper right")
    for k in range(n, nrow * ncol):
        axes[k // ncol, k % ncol].axis("off")
    if len(cfg.landscapes) == 1:        # one legend below the panels: no data hidden
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    else:
        fig.tight_layout()
    save_figure(fig, path)
    return True


# -- the sweep -------------------------------------------------------------------------------------

def run_sweep(config: str | SweepConfig, *, executor: str = "local", workers: int = 1,
              chunk_lanes: int = DEFAULT_CHUNK_LANES, resume: bool = False,
              out: str | None = None, scheduler: str | None = None, plot: bool = True,
              quiet: bool = True) -> dict[str, Any]:
    """Run a sweep; returns {"out", "table", "json", "figure", "chunks", "computed", "skipped",
    "rows", "wall_s"}. Everything is validated before any chunk runs."""
    cfg = load_config(config) if isinstance(config, str) else config
    if executor not in ("local", "dask"):
        raise ConfigError(f"--executor must be local or dask, got {executor!r}")
    if not (isinstance(workers, int) and workers >= 1):
        raise ConfigError(f"--workers must be an integer >= 1, got {workers!r}")
    if scheduler is not None and executor != "dask":
        raise ConfigError("--scheduler needs --executor dask")
    if executor == "dask" and not _has_distributed():
        raise ConfigError("--executor dask needs dask.distributed: pip install -e '.[dask]'")
    if out is None:
        stem = os.path.splitext(os.path.basename(config))[0] if isinstance(config, str) else "sweep"
        out = stem + ".sweep"
    specs = chunk_specs(cfg, chunk_lanes)
    cdir = os.path.join(out, "chunks")
    try:
        os.makedirs(cdir, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    t0 = time.perf_counter()
    todo = specs
    if resume:
        todo = [s for s in specs
                if _read_chunk(os.path.join(cdir, chunk_name(s) + ".json"), chunk_name(s)) is None]
    # the same chunk may appear twice (identical lanes); compute it once
    seen, uniq = set(), []
    for s in todo:
        n = chunk_name(s)
        if n not in seen:
            seen.add(n)
            uniq.append(s)
    done = [0]

    def progress(k):
        done[0] += k
        if not quiet:
            print(f"\rchunks {done[0]}/{len(uniq)}", end="", file=sys.stderr, flush=True)

    gpu = str(cfg.numerics.get("device", "cpu")).startswith("cuda")
    if uniq:
        if executor == "local":
            run_local(uniq, cdir, workers, progress=progress)
        else:
            run_dask(uniq, cdir, workers, scheduler=scheduler, gpu=gpu, progress=progress)
        if not quiet:
            print(file=sys.stderr)
    wall = time.perf_counter() - t0
    cols, rows = merge(cfg, specs, cdir)
    table = os.path.join(out, "table.csv")
    atomic_write_text(table, _csv_text(cols, rows))
    meta = {"config": cfg.as_dict(), "code": CODE_VERSION, "rows": len(rows),
            "columns": {c: COLUMNS[c] for c in cols},
            "grid_order": "landscapes, models, then " + ", ".join(AXES) + " (theta0 fastest); "
                          "axes a model lacks are dropped",
            "step_rule": ("K = round(horizon/alpha) per lane" if cfg.horizon is not None
                          else "K = steps for every lane") + "; flows at t = K alpha",
            "minima": {land: minimizers(land, cfg.minima) for land in cfg.landscapes}
            if cfg.study == "basin" else None}
    jpath = os.path.join(out, "table.json")
    atomic_write_text(jpath, dumps_json(meta, indent=1) + "\n")
    fig = None
    if plot:
        fpath = os.path.join(out, "basin.png")
        if plot_sweep(cfg, cols, rows, fpath):
            fig = fpath
    return {"out": out, "table": table, "json": jpath, "figure": fig, "chunks": len(specs),
            "computed": len(uniq), "skipped": len(specs) - len(uniq), "rows": len(rows),
            "wall_s": wall}


# -- CLI -------------------------------------------------------------------------------------------

def _pos_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {s!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.toml", help="the sweep (see analysis/sweep.py)")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="local process pool (default) or a Dask cluster")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Dask scheduler address (default: a LocalCluster on loopback)")
    p.add_argument("--workers", type=_pos_int, default=1, metavar="N",
                   help="worker processes (local pool or LocalCluster; default 1)")
    p.add_argument("--chunk-lanes", type=_pos_int, default=DEFAULT_CHUNK_LANES, metavar="N",
                   help=f"lanes per chunk (default {DEFAULT_CHUNK_LANES}); the table does not "
                        "depend on it")
    p.add_argument("--resume", action="store_true",
                   help="skip chunks whose result file exists (a killed sweep resumes)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: CONFIG's name + .sweep)")
    p.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    p.add_argument("--quiet", action="store_true", help="no progress")


def main(args: argparse.Namespace) -> int:
    r = run_sweep(args.config, executor=args.executor, workers=args.workers,
                  chunk_lanes=args.chunk_lanes, resume=args.resume, out=args.out,
                  scheduler=args.scheduler, plot=not args.no_plot, quiet=args.quiet)
    if not args.quiet:
        print(f"{r['rows']} lanes in {r['chunks']} chunks ({r['computed']} computed, "
              f"{r['skipped']} reused) in {r['wall_s']:.2f} s -> {r['table']}"
              + (f", {r['figure']}" if r["figure"] else ""))
    return 0


if __name__ == "__main__":     # python -m analysis.sweep CONFIG ... (before the CLI registers it)
    # run the imported module, so that chunks pickle as analysis.sweep.* (not __main__.*)
    _mod = importlib.import_module("analysis.sweep")
    _p = argparse.ArgumentParser(prog="adamflow sweep")
    _mod.add_arguments(_p)
    try:
        sys.exit(_mod.main(_p.parse_args()))
    except ConfigError as _exc:
        print(f"error: {_exc}", file=sys.stderr)
        sys.exit(2)
