"""Conditioning diagnostics (issue 14): the forward-sensitivity estimate |d theta(T)/d theta0| per
lane (central differences over a batch of perturbed lanes), checked against closed forms, and the
flag it sets: the lane started at the global minimizer of rosenbrock1d(c=4) (where the Adam flow at
v ~ 0 turns rounding into O(1) changes) is ill-conditioned, a lane from -1.5 is not; the refine
study lists such rows and keeps them out of its slope fits."""
import json
import math

import pytest
import torch

import landscapes
from adamflow.cli import main
from analysis.cli_options import Problem
from analysis.refine import refine
from runner.experiment import (
    Numerics,
    RunSpec,
    conditioning_label,
    conditioning_threshold,
    final_sensitivity,
    lane_records,
    run,
)
from runner.registry import get_model


def test_discrete_gd_sensitivity_is_the_closed_form():
    """GD on (x - c)^2: theta_K - c = (1 - 2 alpha)^K (theta0 - c), so S = |1 - 2 alpha|^K."""
    info = get_model("gd")
    land = landscapes.parse("shifted(center=0.5)")
    lanes = [{"theta0": [t], "alpha": a} for t, a in ((-1.5, 0.1), (3.0, 0.3), (0.2, 0.9))]
    Ks = [10, 7, 5]
    S = final_sensitivity(info, land, lanes, steps=Ks)
    for s, ln, K in zip(S.tolist(), lanes, Ks):
        assert s == pytest.approx(abs(1 - 2 * ln["alpha"]) ** K, rel=1e-6)


def test_flow_sensitivity_is_the_closed_form():
    """gd-flow theta' = -g on (x - c)^2: theta(T) - c = e^{-2T}(theta0 - c), S = e^{-2T}."""
    info = get_model("gd-flow")
    land = landscapes.parse("shifted(center=0.5)")
    lanes = [{"theta0": [t], "alpha": 0.01} for t in (-1.5, 2.0)]
    S = final_sensitivity(info, land, lanes, times=[0.5, 2.0])
    assert S[0] == pytest.approx(math.exp(-1.0), rel=1e-5)
    assert S[1] == pytest.approx(math.exp(-4.0), rel=1e-5)


def test_multidimensional_lane_uses_the_diagonal_direction():
    """GD on sum (x_i - c)^2 in 3-D: every coordinate contracts by (1 - 2 alpha)^K, so the
    diagonal direction does too."""
    info = get_model("gd")
    land = landscapes.parse("shifted(center=0.0)")
    S = final_sensitivity(info, land, [{"theta0": [1.0, -2.0, 0.5], "alpha": 0.2}], steps=[6])
    assert float(S[0]) == pytest.approx(0.6 ** 6, rel=1e-6)


def test_diverged_lane_has_infinite_sensitivity():
    info = get_model("gd")
    land = landscapes.parse("shifted(center=0.0)")
    S = final_sensitivity(info, land, [{"theta0": [1.0], "alpha": 5.0}], steps=[400])
    assert math.isinf(float(S[0]))
    assert conditioning_label(float(S[0]), 1e5) == "ill-conditioned"


def test_thresholds():
    num = Numerics()
    assert conditioning_threshold(get_model("adam-flow2"), num, torch.float64) == \
        pytest.approx(1e5)                                            # 1/sqrt(rtol = 1e-10)
    assert conditioning_threshold(get_model("adam"), num, torch.float64) == \
        pytest.approx(1 / math.sqrt(torch.finfo(torch.float64).eps))


def test_the_minimizer_lane_is_flagged_and_a_regular_lane_is_not():
    spec = RunSpec("rosenbrock1d(c=4)", ["adam-flow2"], [[1.0], [-1.5]], steps=100, alpha=[1e-2],
                   beta1=[0.9], beta2=[0.999], eps=[1e-8], u0=[0.0], sensitivity=True)
    recs = {tuple(r["theta0"]): r for r in lane_records(run(spec))}
    assert recs[(1.0,)]["conditioning"] == "ill-conditioned"
    assert recs[(1.0,)]["sensitivity"] > 1e5
    assert recs[(-1.5,)]["conditioning"] == "ok"
    assert recs[(-1.5,)]["sensitivity"] < 10
    plain = lane_records(run(RunSpec("rosenbrock1d(c=4)", ["adam-flow2"], [[1.0]], steps=10,
                                     alpha=[1e-2], u0=[0.0])))
    assert "sensitivity" not in plain[0] and "conditioning" not in plain[0]


def _problem(theta0):
    return Problem(landscape="rosenbrock1d(c=4)", theta0=[[theta0]], alpha=[1e-2, 2e-2, 5e-2],
                   models=["adam-flow2"], beta1=0.9, beta2=0.999, eps=1e-8, u0=[0.0])


def test_refine_keeps_ill_conditioned_rows_out_of_the_fits():
    bad = refine(_problem(1.0), horizon=1.0)
    assert all(r["conditioning"] == "ill-conditioned" for r in bad["rows"])
    assert len(bad["ill_conditioned"]) == 3
    assert all(s["n"] == 0 or s["p_T"] is None for s in bad["slopes"])
    good = refine(_problem(-1.5), horizon=1.0)
    assert all(r["conditioning"] == "ok" for r in good["rows"])
    assert good["ill_conditioned"] == []
    assert good["slopes"][0]["p_T"] is not None
    off = refine(_problem(-1.5), horizon=1.0, conditioning=False)
    assert all(r["conditioning"] == "not estimated" for r in off["rows"])
    assert [r["E_T"] for r in off["rows"]] == [r["E_T"] for r in good["rows"]]


def test_cli_run_sensitivity(capsys):
    code = main(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow2", "adam",
                 "--theta0", "1", "-1.5", "--alpha", "0.01", "--beta1", "0.9", "--steps", "100",
                 "--u0", "0", "--sensitivity", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lanes = {(r["model"], r["theta0"][0]): r for r in json.loads(out)["lanes"]}
    assert lanes[("adam-flow2", 1.0)]["conditioning"] == "ill-conditioned"
    assert lanes[("adam-flow2", -1.5)]["conditioning"] == "ok"
    assert lanes[("adam", -1.5)]["conditioning"] == "ok"


def test_cli_refine_no_conditioning(capsys):
    base = ["refine", "--landscape", "rosenbrock1d(c=4)", "--theta0", "-1.5", "--alpha", "0.02",
            "0.05", "--models", "adam-flow2", "--beta1", "0.9", "--horizon", "1", "--json", "-"]
    assert main(base + ["--no-conditioning"]) == 0
    off = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    on = json.loads(capsys.readouterr().out)
    assert {r["conditioning"] for r in off["rows"]} == {"not estimated"}
    assert {r["conditioning"] for r in on["rows"]} == {"ok"}
    assert [r["E_T"] for r in off["rows"]] == [r["E_T"] for r in on["rows"]]
