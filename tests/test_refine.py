"""alpha-refinement study (analysis.refine, analysis.slopes): slope fits, protocol arithmetic,
agreement with errors computed independently from experiment.run, CLI schema and error paths."""
import json
import math

import numpy as np
import pytest
import torch

from adamflow.cli import main
from analysis.cli_options import Problem
from analysis.refine import (
    _lane_grid,
    model_hyper,
    protocol_times,
    refine,
    resolve_jump_rate,
)
from analysis.slopes import fit_loglog
from core.errors import ConfigError
from runner.registry import get_model
from tests.figure_checks import check_png

LAND = "rosenbrock1d(c=1.5)"
SMALL = dict(alpha=[0.05, 0.02, 0.01], epochs=[100, 250, 500])


def problem(alpha, models=("adam-flow1",), u0=(0.0,), landscape=LAND, theta0=(-1.5,)):
    return Problem(landscape=landscape, theta0=[list(theta0)], alpha=list(alpha),
                   models=list(models), beta1=0.99, beta2=0.999, eps=1e-8, u0=list(u0))


# -- slopes --------------------------------------------------------------------------------------

def test_fit_recovers_known_slope_and_ci_covers_it():
    rng = np.random.default_rng(0)
    x = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    y = [2.5 * a ** 1.7 * math.exp(0.05 * rng.standard_normal()) for a in x]
    fit = fit_loglog(x, y)
    assert fit["n"] == 6
    assert abs(fit["p"] - 1.7) < 0.05
    lo, hi = fit["ci"]
    assert lo < 1.7 < hi and hi - lo < 0.3
    exact = fit_loglog(x, [3.0 * a ** 2 for a in x])
    assert exact["p"] == pytest.approx(2.0, abs=1e-12)
    assert exact["ci"][0] == pytest.approx(2.0, abs=1e-9) and exact["ci"][1] == pytest.approx(2.0, abs=1e-9)


def test_fit_ci_width_matches_t_distribution():
    # 3 points: 1 dof, t_{0.975,1} = 12.7062
    x = [1.0, math.e, math.e ** 2]
    y = [1.0, math.e ** 1.1, math.e ** 1.9]          # log y = 0, 1.1, 1.9
    fit = fit_loglog(x, y)
    assert fit["p"] == pytest.approx(0.95)
    resid = np.array([0, 1.1, 1.9]) - (fit["intercept"] + 0.95 * np.arange(3))
    se = math.sqrt((resid ** 2).sum() / 1 / 2.0)
    assert fit["se"] == pytest.approx(se)
    assert fit["ci"][1] - 0.95 == pytest.approx(12.7062047 * se, rel=1e-6)


def test_fit_needs_three_points_for_ci_and_skips_bad_values():
    assert fit_loglog([1e-2, 1e-1], [1e-4, 1e-2])["ci"] is None
    assert fit_loglog([1e-2, 1e-1], [1e-4, 1e-2])["p"] == pytest.approx(2.0)
    fit = fit_loglog([1e-3, 1e-2, 1e-1, 1.0], [1e-6, None, 0.0, 1.0])
    assert fit["n"] == 2 and fit["p"] == pytest.approx(2.0) and fit["ci"] is None
    assert fit_loglog([1e-2], [1e-4])["p"] is None


# -- protocol arithmetic -------------------------------------------------------------------------------

def test_paper_and_clean_times_hand_computed():
    # alpha = 5e-4, 9000 epochs: (epochs-1) alpha = 4.4995, (n-1) h = 44994 * 1e-4 = 4.4994
    T, K = protocol_times(5e-4, protocol="paper", epochs=9000, horizon=10)
    assert T == pytest.approx(4.4994, abs=1e-12) and K == 8999
    T, K = protocol_times(5e-4, protocol="clean", epochs=9000, horizon=10)
    assert T == pytest.approx(4.4995, abs=1e-12) and K == 8999
    # alpha = 0.1, 30 epochs, T = 2: horizon binds both; K = 20
    assert protocol_times(0.1, protocol="paper", epochs=30, horizon=2.0) == (2.0, 20)
    assert protocol_times(0.1, protocol="clean", epochs=30, horizon=2.0) == (2.0, 20)
    # alpha = 0.1, 11 epochs: paper T_used = (49) * 0.02 = 0.98, K = round(9.8) = 10; clean 1.0, 10
    T, K = protocol_times(0.1, protocol="paper", epochs=11)
    assert T == pytest.approx(0.98) and K == 10
    T, K = protocol_times(0.1, protocol="clean", epochs=11)
    assert T == pytest.approx(1.0) and K == 10
    # alpha = 0.3, 4 epochs: paper (n-1) h = 14 * 0.06 = 0.84 -> K = round(2.8) = 3
    T, K = protocol_times(0.3, protocol="paper", epochs=4)
    assert T == pytest.approx(0.84) and K == 3
    # clean without epochs: K = round(T/alpha)
    assert protocol_times(0.03, protocol="clean", horizon=1.0) == (1.0, 33)


def test_protocol_errors():
    with pytest.raises(ConfigError):
        protocol_times(0.1, protocol="paper", horizon=1.0)          # paper needs epochs
    with pytest.raises(ConfigError):
        protocol_times(0.1, protocol="bogus", horizon=1.0)
    with pytest.raises(ConfigError):
        protocol_times(0.1, protocol="clean")                        # neither T nor epochs
    with pytest.raises(ConfigError):
        protocol_times(0.1, protocol="clean", horizon=0.01)          # K = 0
    with pytest.raises(ConfigError):
        protocol_times(0.1, protocol="paper", epochs=1)


def test_lane_grid_inserts_T_used():
    times, rows, trow = _lane_grid(0.1, 10, 0.98)
    assert len(times) == 12 and times[trow] == 0.98
    assert [times[r] for r in rows] == [k * 0.1 for k in range(11)]
    assert all(a < b for a, b in zip(times, times[1:]))
    times, rows, trow = _lane_grid(0.1, 10, 10 * 0.1)
    assert len(times) == 11 and trow == 10


# -- refine against an independent path (experiment.run) ----------------------------------------------

def _direct_errors(alpha, K, T_used, model, u0):
    """E_T, E_f, E_sup from runner.experiment.run (its own grids, no refine code)."""
    from runner import experiment

    spec = experiment.RunSpec(landscape=LAND, models=["adam", model], theta0=[[-1.5]],
                              alpha=[alpha], beta1=[0.99], beta2=[0.999], u0=[u0], steps=K)
    (_, d), (_, c) = experiment.run(spec)
    th_d, f_d = d.theta[0, :, 0], d.f[0]
    th_c, f_c = c.theta[0, :, 0], c.f[0]
    e_sup = float((th_d - th_c).abs().max())
    if abs(T_used - K * alpha) < 1e-12:
        return float(abs(th_d[K] - th_c[K])), float(abs(f_d[K] - f_c[K])), e_sup
    # flow at T_used: a separate run stopping exactly there (its last output time)
    import landscapes
    from flows.adam import AdamFlow1, AdamFlow2
    from flows.simulate import simulate

    land = landscapes.parse(LAND)
    cls = AdamFlow1 if model == "adam-flow1" else AdamFlow2
    kw = {"u0": u0} if model == "adam-flow2" else {}
    flow = cls(land, alpha=alpha, beta1=0.99, beta2=0.999, n_lanes=1, dtype=torch.float64, **kw)
    tr = simulate(flow, torch.tensor([[-1.5]], dtype=torch.float64),
                  torch.tensor([[0.0, T_used]], dtype=torch.float64))
    return (float(abs(th_d[K] - tr.theta[0, 1, 0])), float(abs(f_d[K] - tr.f[0, 1])), e_sup)


@pytest.mark.parametrize("protocol", ["clean", "paper"])
def test_refine_rows_match_direct_computation(protocol):
    alphas, epochs = [0.05, 0.1], [40, 25]
    res = refine(problem(alphas, models=["adam-flow1", "adam-flow2"], u0=[1.0]),
                 protocol=protocol, epochs=epochs, horizon=10.0)
    assert len(res["rows"]) == 4
    for r in res["rows"]:
        i = alphas.index(r["alpha"])
        T_used, K = protocol_times(r["alpha"], protocol=protocol, epochs=epochs[i], horizon=10.0)
        assert (r["T"], r["K"]) == (T_used, K)
        assert r["u0"] == (1.0 if r["model"] == "adam-flow2" else None)
        e_T, e_f, e_sup = _direct_errors(r["alpha"], K, T_used, r["model"], 1.0)
        assert r["E_T"] == pytest.approx(e_T, rel=1e-5, abs=1e-12)
        assert r["E_f"] == pytest.approx(e_f, rel=1e-5, abs=1e-12)
        assert r["E_sup"] == pytest.approx(e_sup, rel=1e-5, abs=1e-12)


def test_refine_error_decreases_with_alpha_on_rosenbrock():
    res = refine(problem(SMALL["alpha"], models=["adam-flow1"]), protocol="clean",
                 epochs=SMALL["epochs"], horizon=10.0)
    rows = sorted(res["rows"], key=lambda r: r["alpha"])
    E = [r["E_T"] for r in rows]
    assert E[0] < E[1] < E[2]
    assert all(r["E_sup"] >= r["E_T"] for r in rows)
    (s,) = res["slopes"]
    assert s["model"] == "adam-flow1" and s["u0"] is None and s["p_T"] > 0
    assert s["ci_T"] is not None and s["ci_T"][0] < s["p_T"] < s["ci_T"][1]


def test_refine_other_reference_and_bad_models():
    # any discrete method can be the reference; flows only as models, discrete only as reference
    res = refine(problem([0.1, 0.05], models=["adam-flow1"]), protocol="clean", horizon=1.0,
                 reference="gd")
    assert res["reference"] == "gd" and all(r["E_T"] > 0 for r in res["rows"])
    with pytest.raises(ConfigError):
        refine(problem([0.1]), horizon=1.0, reference="adam-flow1")
    with pytest.raises(ConfigError):
        refine(problem([0.1], models=["adam"]), horizon=1.0)


# -- CLI -----------------------------------------------------------------------------------------

def _cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_schema_and_plot(tmp_path, capsys):
    png = tmp_path / "refine.png"
    code, out, err = _cli(["refine", "--landscape", LAND, "--theta0", "-1.5", "--alpha", "0.1",
                           "0.05", "0.04", "--epochs", "25", "40", "50", "--u0", "0", "2",
                           "--protocol", "paper", "--json", "-", "--plot", str(png), "--quiet"],
                          capsys)
    assert code == 0, err
    res = json.loads(out)
    # the default models are the reference method's flows: Adam's nonlocal flows (adam-flow2 once
    # per u0) and its modified-equation flows
    assert len(res["rows"]) == 3 * (1 + 2 + 2)
    for r in res["rows"]:
        assert set(r) >= {"alpha", "model", "u0", "T", "E_T", "E_f", "E_sup"}
        assert isinstance(r["E_T"], float) and isinstance(r["E_sup"], float)
    keys = {(s["model"], s["u0"]) for s in res["slopes"]}
    assert keys == {("adam-flow1", None), ("adam-flow2", 0.0), ("adam-flow2", 2.0),
                    ("adam-sign-flow", None), ("adam-modified-flow", None)}
    for s in res["slopes"]:
        assert set(s) >= {"model", "u0", "p_T", "p_f", "p_sup", "ci_T", "ci_sup"}
        assert len(s["ci_T"]) == 2
    check_png(png)


@pytest.mark.parametrize("args, needle", [
    (["--alpha", "0.1", "0.05", "--epochs", "20"], "epochs"),
    (["--alpha", "0.1", "--horizon", "1", "--protocol", "exactish"], "protocol"),
    (["--alpha", "0", "--horizon", "1"], "alpha"),
    (["--alpha", "-0.1", "--horizon", "1"], "alpha"),
    (["--alpha", "0.1", "--horizon", "1", "--protocol", "paper"], "epochs"),
    (["--alpha", "0.1", "--horizon", "1", "--scheme", "magic"], "scheme"),
    (["--alpha", "0.1", "--horizon", "1", "--reference", "nope"], "nope"),
])
def test_cli_bad_input_one_line_exit_2(args, needle, capsys):
    code, out, err = _cli(["refine", "--quiet"] + args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_refine_paper_scheme_small():
    """--scheme paper: the published scheme on the h = alpha/5 grid; both protocols run, the
    paper protocol's T_used is a grid row, and the fixed point converged."""
    from analysis.cli_options import Problem
    from analysis.refine import refine

    prob = Problem(landscape="rosenbrock1d(c=1.5)", theta0=[[-1.5]], alpha=[0.05, 0.02],
                   models=["adam-flow1", "adam-flow2"], beta1=0.99, beta2=0.999, eps=1e-8,
                   u0=[0.0, 1.0], scheme="paper")
    for protocol in ("paper", "clean"):
        res = refine(prob, protocol=protocol, epochs=[60, 150], horizon=2.0)
        assert len(res["rows"]) == 2 * 3
        for r in res["rows"]:
            assert r["status"] == "ok" and r["E_T"] is not None and r["E_T"] < 0.5
            assert r["residual"] < 1e-12 and r["sweeps"] > 1
    exact = refine(Problem(**{**prob.__dict__, "scheme": "exact"}), protocol="paper", epochs=[60, 150],
                   horizon=2.0)
    paper = refine(prob, protocol="paper", epochs=[60, 150], horizon=2.0)
    # the schemes differ (O(h) solver error of the published scheme) but not wildly
    for re_, rp in zip(exact["rows"], paper["rows"]):
        assert (re_["alpha"], re_["model"], re_["u0"]) == (rp["alpha"], rp["model"], rp["u0"])
        assert re_["T"] == rp["T"] and re_["K"] == rp["K"]
        assert abs(re_["E_T"] - rp["E_T"]) < 0.1


# -- Jump Adam against its secant-jump limit flows (SPEC §3.4) -------------------------------------

def test_refine_jumpadam_converges_to_its_limit_flows_at_order_one():
    # convex start, trust large: the gate opens at the first secant and stays open, so Jump Adam
    # with jump_lr = alpha is Euler on the (diagonal) Newton flow after an O(alpha) Adam start
    prob = problem([0.04, 0.02, 0.01], models=(), landscape="rosenbrock1d(c=4)", theta0=(1.4,))
    prob.hyper = {"trust_coefficient": 1e6}
    res = refine(prob, horizon=1.0, reference="jumpadam")
    assert res["jump_rate"] == 1.0 and res["hyper"] == {"trust_coefficient": 1e6}
    assert [s["model"] for s in res["slopes"]] == ["newton-flow", "diag-newton-flow", "jump-flow"]
    for s in res["slopes"]:
        assert 0.95 < s["p_T"] < 1.05 and 0.95 < s["p_sup"] < 1.05, s
    for r in res["rows"]:
        assert r["status"] == "ok" and 1e-3 < r["E_T"] < 3e-2


def test_refine_jump_rate_sets_jump_lr_per_alpha():
    ja, adam = get_model("jumpadam"), get_model("adam")
    hp = model_hyper(ja, alpha=0.02, beta1=0.9, beta2=0.999, eps=1e-8, hyper={"h_min": 0.5},
                     jump_rate=0.5)
    assert hp["jump_lr"] == 0.01 and hp["h_min"] == 0.5 and hp["alpha"] == 0.02
    assert "jump_lr" not in model_hyper(adam, alpha=0.02, beta1=0.9, beta2=0.999, eps=1e-8,
                                        hyper={"h_min": 0.5}, jump_rate=0.5)
    assert resolve_jump_rate([ja], {}, None) == 1.0
    assert resolve_jump_rate([adam], {}, None) is None
    assert resolve_jump_rate([ja], {"jump_lr": 0.1}, None) is None
    with pytest.raises(ConfigError, match="not both"):
        resolve_jump_rate([ja], {"jump_lr": 0.1}, 1.0)
    with pytest.raises(ConfigError, match="jump rate"):
        resolve_jump_rate([ja], {}, 0.0)
    # a slower jump (R = 0.5) is another limit flow, still reached at order one
    prob = problem([0.04, 0.02, 0.01], models=("diag-newton-flow",), landscape="rosenbrock1d(c=4)",
                   theta0=(1.4,))
    prob.hyper = {"trust_coefficient": 1e6}
    res = refine(prob, horizon=1.0, reference="jumpadam", jump_rate=0.5)
    assert res["jump_rate"] == 0.5 and 0.95 < res["slopes"][0]["p_T"] < 1.05


def test_cli_refine_jumpadam(capsys):
    code, out, err = _cli(["refine", "--reference", "jumpadam", "--landscape", "rosenbrock1d(c=4)",
                           "--theta0", "1.4", "--alpha", "0.04", "0.02", "--horizon", "0.5",
                           "--models", "jump-flow", "--trust-coefficient", "3", "--jump-rate", "1",
                           "--json", "-", "--quiet"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["reference"] == "jumpadam" and res["hyper"] == {"trust_coefficient": 3.0}
    assert [r["model"] for r in res["rows"]] == ["jump-flow"] * 2
    for args, needle in ((["--jump-rate", "-1"], "jump rate"),
                         (["--trust-coefficient", "0"], "trust_coefficient"),
                         (["--h-min", "-1"], "h_min")):
        code, out, err = _cli(["refine", "--reference", "jumpadam", "--alpha", "0.05",
                               "--horizon", "0.5", "--quiet", *args], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
