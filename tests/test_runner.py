"""The one runner (runner.experiment): per-lane step counts in one batch, grouping that keeps lanes
and per-lane landscape parameters aligned, numerics shared by every study, descriptor-generated
gates and columns."""
from __future__ import annotations

import json

import pytest
import torch

from adamflow.cli import main as cli_main
from core.errors import ConfigError
from runner import experiment, registry
from runner.experiment import Numerics, run_lanes

C4 = "rosenbrock1d(c=4)"


def test_discrete_lanes_with_their_own_steps_match_separate_runs_bitwise():
    lanes = [{"theta0": [-1.5], "alpha": a, "beta1": 0.99, "beta2": 0.999}
             for a in (1e-3, 5e-3, 2e-2, 1e-1)]
    Ks = [300, 57, 120, 1]
    batch = run_lanes("adam", C4, lanes, Ks, every=7)
    for b, (ln, K) in enumerate(zip(lanes, Ks)):
        one = run_lanes("adam", C4, [ln], [K], every=7)
        n = int(one.n_out[0])
        assert int(batch.n_out[b]) == n and int(batch.stats["steps"][b]) == K
        assert torch.equal(batch.theta[b, :n], one.theta[0, :n])
        assert torch.equal(batch.f[b, :n], one.f[0, :n])
        assert torch.equal(batch.t[b, :n], one.t[0, :n])
        for name in ("m", "v"):
            assert torch.equal(batch.extras[name][b, :n], one.extras[name][0, :n])
        assert torch.isnan(batch.theta[b, n:]).all()
        assert batch.t[b, n - 1] == pytest.approx(K * ln["alpha"], rel=1e-15)
        assert int(batch.stats["oracle_grad"][b]) == K


def test_per_lane_landscape_parameters_survive_grouping(capsys):
    """The issue's example: c per lane, lanes with different alpha (and so different K)."""
    args = ["run", "--landscape", "rosenbrock1d(c=[1.5,4,1.5,4])", "--model", "adam", "adam-flow2",
            "--theta0", "-1.5", "0.5", "--alpha", "1e-3", "1e-1", "--horizon", "1", "--json", "-"]
    assert cli_main(args) == 0
    lanes = json.loads(capsys.readouterr().out)["lanes"]
    assert len(lanes) == 8
    cs = [1.5, 4, 1.5, 4]
    for i, rec in enumerate(lanes):
        c = cs[i % 4]
        ref = ["run", "--landscape", f"rosenbrock1d(c={c})", "--model", rec["model"], "--theta0",
               str(rec["theta0"][0]), "--alpha", str(rec["alpha"]), "--horizon", "1", "--json", "-"]
        assert cli_main(ref) == 0
        (one,) = json.loads(capsys.readouterr().out)["lanes"]
        assert rec["status"] == "ok" and one["status"] == "ok"
        assert rec["final_theta"] == pytest.approx(one["final_theta"], rel=0, abs=1e-9)
        assert len(rec["t"]) == len(one["t"]) == (1001 if rec["alpha"] == 1e-3 else 11)


def test_paper_scheme_groups_by_steps_and_restores_lane_order():
    lanes = [{"theta0": [-1.5], "alpha": a, "beta1": 0.99, "beta2": 0.999, "u0": 1.0}
             for a in (2e-2, 1e-2, 2e-2)]
    Ks = [20, 40, 30]
    num = Numerics(scheme="paper")
    batch = run_lanes("adam-flow2", "rosenbrock1d(c=[1.5,4,4])", lanes, Ks, numerics=num)
    for b, (ln, K, c) in enumerate(zip(lanes, Ks, (1.5, 4, 4))):
        one = run_lanes("adam-flow2", f"rosenbrock1d(c={c})", [ln], [K], numerics=num)
        n = int(one.n_out[0])
        assert int(batch.n_out[b]) == n == K + 1
        assert torch.equal(batch.theta[b, :n], one.theta[0, :n])


def test_scheme_gates_come_from_the_descriptors():
    assert experiment.scheme_models("paper") == ("adam-flow1", "adam-flow2")
    assert set(experiment.scheme_models("paper2024")) == {"adam-flow1", "rmsprop-flow",
                                                          "adagrad-flow"}
    with pytest.raises(ConfigError, match="does not apply to rmsprop-flow"):
        run_lanes("rmsprop-flow", C4, [{"theta0": [0.0], "alpha": 0.1}], [5],
                  numerics=Numerics(scheme="paper"))
    # discrete models run the same under any scheme
    run_lanes("adam", C4, [{"theta0": [0.0], "alpha": 0.1}], [5], numerics=Numerics(scheme="paper"))


def test_runspec_and_numerics_reject_bad_input():
    with pytest.raises(ConfigError, match="unknown option"):
        experiment.RunSpec(landscape=C4, models=["adam"], theta0=[[0.0]], alpha=[0.1], steps=1,
                           not_a_parameter=[1.0])
    for bad in (dict(integrator="rk4"), dict(scheme="euler"), dict(rtol=-1.0), dict(dtype="int8")):
        with pytest.raises(ConfigError):
            Numerics(**bad).validate()
    with pytest.raises(ConfigError, match="per-lane parameters for 3 lanes"):
        run_lanes("adam", "rosenbrock1d(c=[1,2,3])", [{"theta0": [0.0], "alpha": 0.1}] * 2, [3, 3])


def test_every_study_takes_the_shared_numerics_options():
    parser_runs = {}
    from adamflow.cli import build_parser

    parser = build_parser()
    for name, sub in parser.subcommands.items():
        flags = {f for a in sub._actions for f in a.option_strings}
        parser_runs[name] = flags
    for name in ("refine", "lyapunov", "rates", "basin", "velocity", "positivity", "run"):
        assert {"--integrator", "--rtol", "--atol", "--device", "--dtype", "--scheme"} <= \
            parser_runs[name], name


def test_integrator_option_reaches_the_study(capsys):
    base = ["refine", "--alpha", "5e-2", "2e-2", "--horizon", "1", "--models", "adam-flow1",
            "--json", "-", "--quiet"]
    out = {}
    for integ in ("exprb43", "etd4"):
        assert cli_main(base + ["--integrator", integ]) == 0
        out[integ] = json.loads(capsys.readouterr().out)["rows"]
    for a, b in zip(out["exprb43"], out["etd4"]):
        assert a["status"] == b["status"] == "ok"
        assert a["E_T"] == pytest.approx(b["E_T"], rel=1e-5)
    assert cli_main(base[:-3] + ["--quiet", "--integrator", "rk4"]) == 2
    assert "unknown integrator" in capsys.readouterr().err


def test_json_columns_from_descriptors(capsys):
    assert cli_main(["run", "--landscape", C4, "--model", "gd", "rmsprop", "adam-flow2",
                     "--theta0", "-1.5", "--alpha", "0.01", "--steps", "3", "--json", "-"]) == 0
    lanes = json.loads(capsys.readouterr().out)["lanes"]
    reported = [p.name for p in registry.hyper_params().values() if p.reported]
    assert reported == ["alpha", "beta1", "beta2", "u0"]
    for rec in lanes:
        for name in reported:
            assert name in rec
    gd, rms, flow2 = lanes
    assert gd["beta1"] is None and "m" not in gd and rms["beta"] == 0.99 and "v" in rms
    assert flow2["u0"] == 0.0 and "u" in flow2 and flow2["v_negative"] is False


def test_lanes_hyper_is_lane_hyper_of_every_lane():
    from runner.registry import get_model

    info = get_model("adam")
    lanes = [{"theta0": [0.0], "alpha": a, "beta1": b} for a, b in
             [(1e-3, 0.9), (1e-2, None), (1e-3, 0.5)]]
    assert info.lanes_hyper(lanes) == [info.lane_hyper(ln) for ln in lanes]
    defaults = {p.name: p.default for p in info.hyper}
    assert info.lanes_hyper(lanes)[1] == {**defaults, "alpha": 1e-2}     # missing -> default
    assert info.lanes_hyper(lanes)[2]["beta1"] == 0.5
    for bad, msg in [({"alpha": -1.0}, "alpha"), ({"beta1": 1.0}, "beta1")]:
        with pytest.raises(ConfigError, match=msg):
            info.lanes_hyper(lanes + [{"theta0": [0.0], "alpha": 1e-3, **bad}])
