"""The scripts in examples/ run as a user would run them (``python examples/NAME.py``) and print
what they promise."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_examples_exist():
    assert {p.stem for p in EXAMPLES} >= {"quickstart", "custom_landscape", "refinement", "events"}


def _run(path: Path) -> str:
    r = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _floats(pattern: str, text: str) -> list[float]:
    return [float(x) for x in re.findall(pattern, text)]


def test_quickstart():
    out = _run(ROOT / "examples" / "quickstart.py")
    assert out.count("status=ok") == 4          # adam, flow1, flow2 u0=0, flow2 u0=1
    gaps = _floats(r"theta_adam\| = ([0-9.e+-]+)", out)
    assert gaps[0] == 0.0 and all(0 < g < 1e-1 for g in gaps[1:])


def test_custom_landscape():
    out = _run(ROOT / "examples" / "custom_landscape.py")
    sups = _floats(r"theta_flow\| = ([0-9.e+-]+)", out)
    assert len(sups) == 4 and all(0 < s < 0.5 for s in sups)


def test_refinement():
    out = _run(ROOT / "examples" / "refinement.py")
    slopes = _floats(r"p_T=([0-9.e+-]+)", out)
    assert len(slopes) == 3 and all(0.3 < p < 3.5 for p in slopes)


def test_events():
    out = _run(ROOT / "examples" / "events.py")
    err = _floats(r"switch time error ([0-9.e+-]+)", out)
    assert err and all(e < 1e-10 for e in err)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_has_a_docstring_and_run_line(path):
    text = path.read_text()
    assert text.startswith('"""') and f"python examples/{path.name}" in text
