"""Moment positivity counter (SPEC §3.2) and `adamflow positivity` on the SPEC §6 preset."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adamflow.cli import main as cli_main
from analysis import positivity as pos
from tests.figure_checks import check_png


def test_threshold_ratio():
    assert pos.threshold_ratio(0.2) == pytest.approx(math.exp(-math.pi / math.sqrt(0.6)))
    assert pos.threshold_ratio(0.0) == pytest.approx(math.exp(-math.pi))
    assert pos.threshold_ratio(0.5) is None and pos.threshold_ratio(0.999) is None


def test_condition_counter_synthetic():
    # b2 = 0.2: ratio 0.01732, so with max g^2 = 1 the condition needs |g| >= 0.1316
    s = np.arange(7) * 0.5
    g = np.array([1.0, 0.9, 0.5, 0.2, 0.1, 0.3, 1.0])
    r = pos.positivity_condition(s, g, 0.2)
    assert r["applicable"]
    assert r["holds"].tolist() == [True] * 4 + [False] * 3
    assert r["holds_count"] == 4 and r["n_samples"] == 7
    assert r["first_failure_s"] == pytest.approx(2.0)
    # elementwise over coordinates: a second, well-behaved coordinate changes nothing, and a
    # coordinate that fails earlier moves the first failure
    g2 = np.stack([g, np.ones_like(g)], axis=1)
    assert pos.positivity_condition(s, g2, 0.2)["holds_count"] == 4
    g3 = np.stack([g, [1.0, 0.05, 1, 1, 1, 1, 1]], axis=1)
    r3 = pos.positivity_condition(s, g3, 0.2)
    assert r3["holds_count"] == 1 and r3["first_failure_s"] == pytest.approx(0.5)
    # never fails
    r4 = pos.positivity_condition(s, np.full(7, 2.0), 0.2)
    assert r4["holds_count"] == 7 and r4["first_failure_s"] is None
    # not applicable for b2 >= 1/2
    r5 = pos.positivity_condition(s, g, 0.9)
    assert not r5["applicable"] and r5["holds_count"] is None and r5["first_failure_s"] is None


def test_lane_positivity_min_v():
    s = np.arange(4) * 0.1
    r = pos.lane_positivity(s, np.ones(4), np.array([0.0, 0.3, -0.2, 0.1]), 0.2)
    assert r["min_v"] == pytest.approx(-0.2) and r["v_negative"] is True
    assert r["min_v_after_start"] == pytest.approx(-0.2)


def test_cli_positivity_spec_setting(tmp_path, capsys):
    """SPEC §6 preset: c = 1.5, theta0 = -1.5, betas .5/.2, alpha = 1e-2, 270 steps (defaults)."""
    j, png = tmp_path / "pos.json", tmp_path / "pos.png"
    assert cli_main(["positivity", "--json", str(j), "--plot", str(png), "--quiet"]) == 0
    check_png(png)
    doc = json.loads(j.read_text())
    lanes = doc["lanes"]
    assert [(r["model"], r["u0"]) for r in lanes] == [
        ("adam", None), ("adam-flow1", None), ("adam-flow2", 0.0), ("adam-flow2", 1.0)]
    keys = {"model", "u0", "min_v", "v_negative", "condition_applicable",
            "condition_holds_count", "n_samples", "first_failure_s"}
    for rec in lanes:
        assert keys <= set(rec)
        assert rec["n_samples"] == 271
        assert isinstance(rec["min_v"], float)
        assert rec["v_negative"] == (rec["min_v"] < 0)
        assert rec["condition_applicable"] is True
        assert 1 <= rec["condition_holds_count"] < 271
        assert rec["first_failure_s"] is not None and 0 < rec["first_failure_s"] < 2.7
        # v(0) = 0 for every model; v stays positive at the later samples in this setting
        assert rec["min_v"] == 0.0
        assert rec["min_v_after_start"] > 0


def test_cli_positivity_not_applicable_and_bad_input(tmp_path, capsys):
    j = tmp_path / "p.json"
    assert cli_main(["positivity", "--models", "adam", "--beta2", "0.9", "--steps", "20",
                     "--json", str(j), "--quiet"]) == 0
    rec = json.loads(j.read_text())["lanes"][0]
    assert rec["condition_applicable"] is False and rec["condition_holds_count"] is None
    for argv in (["positivity", "--beta2", "1.0"], ["positivity", "--steps", "-3"],
                 ["positivity", "--landscape", "nosuch"], ["positivity", "--alpha", "nan"]):
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
