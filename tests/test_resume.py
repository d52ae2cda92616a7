"""Kill and resume (issue 14): a figure set killed with SIGKILL in the middle and resumed with
``--resume`` is byte for byte the set of an uninterrupted run, and the modules finished before the
kill are not drawn again."""
import filecmp
import json
import os
import signal
import subprocess
import sys
import threading
import time

from paper_figs import build

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGS = ["loss-landscape", "basin", "refine"]


def _figs_cmd(out, resume=False):
    return [sys.executable, "-m", "adamflow", "figs", "--only", *FIGS, "--quick", "--quiet",
            "--out", out] + (["--resume"] if resume else [])


def _done(out):
    try:
        with open(os.path.join(out, ".figs-progress.json")) as fh:
            return list(json.load(fh)["done"])
    except (OSError, ValueError, KeyError):
        return []


def _tree(d):
    return sorted(os.listdir(d))


def test_figs_killed_and_resumed_is_byte_identical(tmp_path):
    ref, run = str(tmp_path / "ref"), str(tmp_path / "run")
    subprocess.run(_figs_cmd(ref), cwd=REPO, check=True, timeout=600)
    p = subprocess.Popen(_figs_cmd(run), cwd=REPO)
    t0 = time.time()
    while len(_done(run)) < 1 and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.05)
    assert p.poll() is None, "the run finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed_with = _done(run)
    assert 1 <= len(killed_with) < len(FIGS)
    first = killed_with[0]
    png = os.path.join(run, f"{first}.png")
    stamp = os.stat(png).st_mtime_ns
    subprocess.run(_figs_cmd(run, resume=True), cwd=REPO, check=True, timeout=600)
    assert os.stat(png).st_mtime_ns == stamp                # finished module not redrawn
    assert _tree(ref) == _tree(run)
    for name in _tree(ref):
        assert filecmp.cmp(os.path.join(ref, name), os.path.join(run, name), shallow=False), name
    assert _done(run) == FIGS or sorted(_done(run)) == sorted(FIGS)


def test_resume_redraws_a_module_whose_file_changed(tmp_path):
    out = str(tmp_path)
    build.main(out, only=["loss-landscape"], quick=True, quiet=True)
    png = os.path.join(out, "loss-landscape.png")
    good = open(png, "rb").read()
    with open(png, "ab") as fh:
        fh.write(b"corrupt")
    build.main(out, only=["loss-landscape"], quick=True, quiet=True, resume=True)
    assert open(png, "rb").read() == good
    # another configuration (not quick) does not reuse the quick run's files
    assert build._load_progress(out, {"scheme": "both", "quick": False}) == ({}, {})


def _basin_cmd(out, resume):
    # 2 maps x 24 x 24 lanes in chunks of 64 (the test sets MAP_CHUNK before the CLI runs)
    return [sys.executable, "-c",
            "import sys, analysis.basin as b; b.MAP_CHUNK = 64; from adamflow.cli import main; "
            "sys.exit(main(sys.argv[1:]))",
            "basin", "--landscape", "rosenbrock1d(c=4)", "--models", "adam", "adam-flow2",
            "--theta0", "-1.5", "--alpha", "0.01", "--steps", "200", "--u0", "1",
            "--map", "24", "--alpha-range", "0.01", "0.1", "--json", out, "--quiet"] + \
        (["--resume"] if resume else [])


def _chunks(out):
    d = out + ".partial"
    return len([f for f in os.listdir(d) if f.startswith("chunk-")]) if os.path.isdir(d) else 0


def test_basin_map_killed_and_resumed_is_byte_identical(tmp_path):
    ref, run = str(tmp_path / "ref.json"), str(tmp_path / "run.json")
    subprocess.run(_basin_cmd(ref, False), cwd=REPO, check=True, timeout=600)
    p = subprocess.Popen(_basin_cmd(run, False), cwd=REPO)
    t0 = time.time()
    while _chunks(run) < 3 and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.02)
    assert p.poll() is None, "the map finished before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.wait()
    n_before = _chunks(run)
    assert 3 <= n_before < 18                               # 2 maps x 576 lanes / 64
    assert not os.path.exists(run)
    first = os.path.join(run + ".partial", "chunk-000000.json")
    stamp = os.stat(first).st_mtime_ns
    seen = {}

    def watch():                                            # the chunk files while it resumes
        while not os.path.exists(run):
            if os.path.exists(first):
                seen["stamp"] = os.stat(first).st_mtime_ns
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    subprocess.run(_basin_cmd(run, True), cwd=REPO, check=True, timeout=600)
    t.join(timeout=5)
    assert filecmp.cmp(ref, run, shallow=False)
    assert seen.get("stamp") == stamp                       # the finished chunks were reused
    assert not os.path.exists(run + ".partial")             # and removed once the JSON is written
