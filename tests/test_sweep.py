"""`adamflow sweep` (analysis/sweep.py): config errors before any work, the same table bit for bit
whatever the executor, workers or chunk size, a dead worker's chunk retried, SIGKILL and resume."""
from __future__ import annotations

import copy
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis import sweep
from core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SMALL = str(ROOT / "examples" / "basin_map_small.toml")
HAS_DASK = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAS_DASK, reason="dask.distributed is not installed "
                                                     "(pip install -e '.[dask]')")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small basin map in this process, one worker, chunks of 64 lanes."""
    out = tmp_path_factory.mktemp("ref")
    r = sweep.run_sweep(SMALL, workers=1, chunk_lanes=64, out=str(out))
    return Path(r["table"]).read_bytes(), r


def _table(tmp_path, name, **kw) -> bytes:
    r = sweep.run_sweep(SMALL, out=str(tmp_path / name), plot=False, **kw)
    return Path(r["table"]).read_bytes()


# -- config ----------------------------------------------------------------------------------------

GOOD = {"sweep": {"study": "basin", "landscape": "rosenbrock1d(c=4)", "models": ["adam"],
                  "horizon": 1.0},
        "grid": {"theta0": [-1.0, 1.0], "alpha": [0.1]}}


def _with(table, key, value):
    d = copy.deepcopy(GOOD)
    if value is None:
        d[table].pop(key)
    else:
        d.setdefault(table, {})[key] = value
    return d


BAD = [
    (_with("sweep", "modles", ["adam"]), "[sweep] modles"),
    (_with("grid", "gamma", [1.0]), "[grid] gamma"),
    (_with("grid", "alpha", []), "[grid] alpha"),
    (_with("grid", "alpha", [-1.0]), "[grid] alpha"),
    (_with("grid", "alpha", "0.1"), "[grid] alpha"),
    (_with("grid", "alpha", {"start": 1e-3, "stop": 1e-1}), "[grid] alpha"),
    (_with("grid", "theta0", {"start": 0, "stop": 1, "num": 0}), "[grid] theta0"),
    (_with("grid", "beta1", [1.5]), "[grid] beta1"),
    (_with("grid", "theta0", None), "[grid] theta0"),
    (_with("sweep", "models", ["adamm"]), "[sweep] models"),
    (_with("sweep", "models", "adam"), "[sweep] models"),
    (_with("sweep", "landscape", "nope(c=1)"), "[sweep] landscape"),
    (_with("sweep", "study", "basins"), "[sweep] study"),
    (_with("sweep", "horizon", -1.0), "[sweep] horizon"),
    (_with("sweep", "horizon", "10"), "[sweep] horizon"),
    (_with("sweep", "steps", 10), "[sweep] horizon"),          # both horizon and steps
    (_with("numerics", "rtol", "tight"), "[numerics] rtol"),
    (_with("numerics", "integrator", "euler"), "[numerics]"),
    (_with("numerics", "tolerance", 1e-8), "[numerics] tolerance"),
]


@pytest.mark.parametrize("doc,key", BAD, ids=[k + f"-{i}" for i, (_, k) in enumerate(BAD)])
def test_malformed_config_one_line_naming_the_key(doc, key):
    with pytest.raises(ConfigError) as e:
        sweep.parse_config(doc)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"sweep config: {key}"), msg


def test_good_config_and_grid_order():
    cfg = sweep.parse_config(GOOD)
    specs = sweep.chunk_specs(cfg, 1)
    assert [s["lanes"][0]["theta0"] for s in specs] == [[-1.0], [1.0]]
    assert specs[0]["lanes"][0]["steps"] == 10                  # K = round(horizon / alpha)
    assert sweep.chunk_name(specs[0]) != sweep.chunk_name(specs[1])


def test_cli_error_before_any_work(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(Path(SMALL).read_text().replace("num = 16 }", "num = 0 }", 1))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "analysis.sweep", str(cfg), "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("error: sweep config: [grid] theta0: num must be"), r.stderr
    assert not out.exists()


def test_example_basin_map_is_the_issue_grid():
    cfg = sweep.load_config(str(ROOT / "examples" / "basin_map.toml"))
    assert cfg.models == ["adam", "adam-flow2"] and cfg.landscapes == ["rosenbrock1d(c=4)"]
    assert len(cfg.axes["theta0"]) == 128 and len(cfg.axes["alpha"]) == 128
    assert cfg.axes["alpha"][0] == pytest.approx(1e-3) and cfg.axes["alpha"][-1] == pytest.approx(1e-1)
    assert cfg.horizon == 10.0 and cfg.axes["u0"] == [1.0]
    specs = sweep.chunk_specs(cfg, sweep.DEFAULT_CHUNK_LANES)
    assert sum(len(s["lanes"]) for s in specs) == 2 * 128 * 128
    assert specs[0]["lanes"][0]["steps"] == 10000


# -- determinism -----------------------------------------------------------------------------------

def test_reference_table_and_figure(reference):
    table, r = reference
    lines = table.decode().splitlines()
    assert len(lines) == 1 + 2 * 16 * 16 and r["figure"] and os.path.getsize(r["figure"]) > 0
    labels = {ln.split(",")[-1] for ln in lines[1:]}
    assert labels == {"global", "local"}          # the map crosses the basin boundary


def test_chunk_size_does_not_change_the_table(reference, tmp_path):
    assert _table(tmp_path, "c7", workers=1, chunk_lanes=7) == reference[0]


def test_resume_reuses_chunks(reference, tmp_path):
    out = tmp_path / "r"
    sweep.run_sweep(SMALL, chunk_lanes=64, out=str(out), plot=False)
    r = sweep.run_sweep(SMALL, chunk_lanes=64, out=str(out), plot=False, resume=True)
    assert r["computed"] == 0 and r["skipped"] == r["chunks"]
    assert Path(r["table"]).read_bytes() == reference[0]


def test_local_pool_two_workers(reference, tmp_path):
    assert _table(tmp_path, "l2", executor="local", workers=2, chunk_lanes=64) == reference[0]


@pytest.mark.slow       # two pools of spawned processes: about 25 s on 2 cores
def test_local_pool_two_workers_one_killed_mid_chunk(reference, tmp_path, monkeypatch):
    """Two pool processes, one of which dies (os._exit) in its first chunk: the pool is replaced,
    the chunks without a file are run again, and the table is the one-worker table."""
    marker = tmp_path / "fault"
    monkeypatch.setenv(sweep.FAULT_ENV, str(marker))
    assert _table(tmp_path, "lf", executor="local", workers=2, chunk_lanes=64) == reference[0]
    assert marker.exists()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """One LocalCluster (2 single-threaded worker processes on loopback) for the Dask tests. Its
    workers inherit the fault hook, disarmed while the marker file exists."""
    from distributed import LocalCluster

    marker = tmp_path_factory.mktemp("fault") / "marker"
    marker.write_text("disarmed")
    old = os.environ.get(sweep.FAULT_ENV)
    os.environ[sweep.FAULT_ENV] = str(marker)
    try:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=":0")
    finally:
        if old is None:
            os.environ.pop(sweep.FAULT_ENV)
        else:
            os.environ[sweep.FAULT_ENV] = old
    yield cluster, marker
    cluster.close()


@needs_dask
def test_dask_two_workers_same_table(reference, tmp_path, dask_cluster):
    cluster, _ = dask_cluster
    assert _table(tmp_path, "d2", executor="dask", scheduler=cluster.scheduler_address,
                  chunk_lanes=7) == reference[0]


@needs_dask
def test_dask_worker_killed_mid_chunk(reference, tmp_path, dask_cluster):
    """A Dask worker process dies in its first chunk; the nanny restarts it, the scheduler gives
    the chunk to a live worker, and the table is the same."""
    cluster, marker = dask_cluster
    marker.unlink()                              # armed: the next chunk to start kills its worker
    assert _table(tmp_path, "df", executor="dask", scheduler=cluster.scheduler_address,
                  chunk_lanes=64) == reference[0]
    assert marker.exists() and marker.read_text() != "disarmed"


@needs_dask
def test_dask_local_cluster_started_by_the_sweep(reference, tmp_path):
    """No --scheduler: the sweep starts (and closes) its own LocalCluster on loopback."""
    assert _table(tmp_path, "dl", executor="dask", workers=1, chunk_lanes=256) == reference[0]


def test_sigkill_and_resume(reference, tmp_path):
    out = tmp_path / "k"
    chunks = out / "chunks"
    p = subprocess.Popen([sys.executable, "-m", "analysis.sweep", SMALL, "--out", str(out),
                          "--chunk-lanes", "4", "--quiet", "--no-plot"], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            if chunks.is_dir() and len(list(chunks.glob("*.json"))) >= 3:
                break
            time.sleep(0.02)
        assert p.poll() is None, "the sweep finished before it could be killed"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    done = {f.name: f.stat().st_mtime_ns for f in chunks.glob("*.json")}
    total = 2 * 16 * 16 // 4
    assert 3 <= len(done) < total
    assert not (out / "table.csv").exists()
    r = sweep.run_sweep(SMALL, chunk_lanes=4, out=str(out), plot=False, resume=True)
    assert r["skipped"] == len(done) and r["computed"] == total - len(done)
    assert {f: (chunks / f).stat().st_mtime_ns for f in done} == done   # not recomputed
    assert Path(r["table"]).read_bytes() == reference[0]


def test_dask_missing_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)          # import distributed fails
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[dask\]'"):
        sweep.run_sweep(SMALL, executor="dask", out=str(tmp_path / "x"), plot=False)
    assert not (tmp_path / "x").exists()


def test_bad_options_before_any_work(tmp_path):
    for kw, key in [({"executor": "ray"}, "--executor"), ({"workers": 0}, "--workers"),
                    ({"chunk_lanes": 0}, "--chunk-lanes"), ({"scheduler": "tcp://x:1"}, "--scheduler")]:
        with pytest.raises(ConfigError, match=key):
            sweep.run_sweep(SMALL, out=str(tmp_path / "y"), **kw)
    assert not (tmp_path / "y").exists()
