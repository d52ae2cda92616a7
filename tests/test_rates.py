"""Convergence-rate fits (analysis.rates): synthetic series with known rates, discrete GD on f = x^2
(exact rate -2 log(1 - 2 alpha)/alpha), the window rule, CLI JSON schema, figure, error paths."""
import json
import math

import numpy as np
import pytest

from adamflow.cli import main
from analysis.rates import fit_rate, fit_window, rate_study
from tests.figure_checks import check_png


def test_exp_fit_synthetic():
    s = np.linspace(0, 30, 3001)
    r = fit_rate(s, 5 * np.exp(-0.7 * s), fit="exp")
    assert r["fit"] == "exp"
    assert r["rate"] == pytest.approx(0.7, rel=1e-10)
    assert r["r2"] == pytest.approx(1.0, abs=1e-12)
    assert r["window"][0] == 1.0
    # window ends where the gap first falls below max(1e-12, 10 * plateau)
    assert 5 * math.exp(-0.7 * r["window"][1]) >= r["floor"]
    assert r["floor"] >= 1e-12


def test_power_fit_synthetic_and_auto():
    s = np.linspace(0.02, 100, 5000)
    gap = s ** -2.0
    r = fit_rate(s, gap, fit="power")
    assert r["rate"] == pytest.approx(2.0, rel=1e-10)
    auto = fit_rate(s, gap, fit="auto")
    assert auto["fit"] == "power" and auto["rate"] == pytest.approx(2.0, rel=1e-10)
    auto_e = fit_rate(s, 5 * np.exp(-0.7 * s), fit="auto")
    assert auto_e["fit"] == "exp" and auto_e["rate"] == pytest.approx(0.7, rel=1e-10)


def test_floor_and_envelope():
    s = np.linspace(0, 40, 4001)
    gap = np.exp(-2 * s)                      # falls below 1e-12 at s = 13.8
    r = fit_rate(s, gap, fit="exp")
    assert r["window"][1] < 13.9 and r["rate"] == pytest.approx(2.0, rel=1e-10)
    # oscillating decay: the suffix-max envelope follows the peaks
    osc = np.exp(-0.5 * s) * np.cos(3 * s) ** 2
    r = fit_rate(s, osc, fit="exp")
    assert r["rate"] == pytest.approx(0.5, rel=0.05)
    raw = fit_window(s, osc, envelope="none")
    env = fit_window(s, osc)
    assert raw["idx"].size < env["idx"].size / 2   # raw gap: window ends at a deep dip
    # too short: no rate
    assert fit_rate(s[:3], gap[:3])["rate"] is None


def test_gd_quadratic_exact_rate():
    alphas = [0.01, 0.1, 0.3]
    res = rate_study(landscape="quadratic(diag=[1])", models=["gd"], theta0=[1.0], alpha=alphas,
                     horizon=10.0, fit="exp")
    assert [r["alpha"] for r in res["rows"]] == alphas
    for r in res["rows"]:
        a = r["alpha"]
        assert r["rate"] == pytest.approx(-2 * math.log(1 - 2 * a) / a, rel=1e-9)
        assert r["beta1"] is None and r["u0"] is None and r["model"] == "gd"


def test_cli_json_schema_and_plot(tmp_path, capsys):
    png = tmp_path / "rates.png"
    code = main(["rates", "--models", "adam", "adam-flow1", "--alpha", "0.01", "0.05",
                 "--horizon", "4", "--quiet", "--json", "-", "--plot", str(png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    rows = data["rows"]
    assert len(rows) == 4 and {r["model"] for r in rows} == {"adam", "adam-flow1"}
    for r in rows:
        for key in ("model", "u0", "alpha", "beta1", "beta2", "fit", "rate", "r2", "window"):
            assert key in r
        assert r["fit"] in ("exp", "power") and len(r["window"]) == 2
        assert r["beta1"] == 0.99 and r["beta2"] == 0.999
    assert data["sweep"] == "alpha" and data["fstar"] == 0.0
    # discrete and flow rates agree roughly at small alpha
    a = {(r["model"], r["alpha"]): r["rate"] for r in rows}
    assert a[("adam", 0.01)] == pytest.approx(a[("adam-flow1", 0.01)], rel=0.2)
    check_png(png)


def test_cli_beta_sweep(capsys):
    code = main(["rates", "--models", "adam", "--sweep", "beta1", "--beta1", "0.9", "0.99",
                 "--alpha", "0.01", "--steps", "300", "--quiet", "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["beta1"] for r in rows] == [0.9, 0.99]


@pytest.mark.parametrize("args", [
    ["--fit", "linear"],
    ["--sweep", "eps"],
    ["--alpha", "-1"],
    ["--beta1", "1.5"],
    ["--models", "nope"],
    ["--floor", "0"],
    ["--fstar", "nan"],
    ["--s0", "0", "--fit", "power"],
])
def test_cli_bad_input(args, capsys):
    code = main(["rates", "--quiet", "--steps", "10"] + args)
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
