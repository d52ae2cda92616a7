"""Velocity-independence study (analysis.velocity)."""
import json

import pytest
import torch

from adamflow.cli import main
from analysis.cli_options import Problem
from analysis.velocity import horizon_for, velocity
from tests.figure_checks import check_png

LAND = "rosenbrock1d(c=1.5)"


def problem(alpha, u0=(-1.0, 1.0), models=("adam-flow2",)):
    return Problem(landscape=LAND, theta0=[[-1.5]], alpha=list(alpha), models=list(models),
                   beta1=0.99, beta2=0.999, eps=1e-8, u0=list(u0))


def test_horizon_arithmetic():
    assert horizon_for(0.1, horizon=2.0) == (2.0, 20)
    T, K = horizon_for(0.05, epochs=30, horizon=10.0)
    assert T == pytest.approx(1.45) and K == 29
    assert horizon_for(0.01) == (10.0, 1000)


def test_zero_row_and_shrinking_sups():
    res = velocity(problem([0.1, 0.05, 0.02], u0=[0.0, 1.0, -1.0]), delta=1.0, horizon=3.0)
    rows = res["rows"]
    assert len(rows) == 9
    for r in rows:
        if r["u0"] == 0.0:
            assert r["sup_theta"] == 0.0 and r["sup_f"] == 0.0
        else:
            assert r["sup_theta"] > 0 and r["sup_f"] > 0
    for u in (1.0, -1.0):
        sel = sorted((r for r in rows if r["u0"] == u), key=lambda r: r["alpha"])
        sups = [r["sup_theta"] for r in sel]
        assert sups[0] < sups[1] < sups[2]
    slopes = {s["u0"]: s for s in res["slopes"]}
    assert slopes[0.0]["p_theta"] is None
    assert slopes[1.0]["p_theta"] > 0 and slopes[1.0]["ci_theta"] is not None


def test_sup_window_matches_direct_simulation():
    """sup over [delta, T] against separate single-lane runs (independent of the batched path)."""
    import landscapes
    from flows.adam import AdamFlow2
    from flows.simulate import simulate

    alpha, T, delta = 0.05, 2.0, 0.5
    res = velocity(problem([alpha], u0=[2.0]), delta=delta, horizon=T, every=2)
    (row,) = res["rows"]
    land = landscapes.parse(LAND)
    ks = list(range(0, 41, 2))
    t = torch.tensor([[k * alpha for k in ks]], dtype=torch.float64)
    th = {}
    for u in (0.0, 2.0):
        flow = AdamFlow2(land, alpha=alpha, beta1=0.99, beta2=0.999, u0=u, n_lanes=1)
        th[u] = simulate(flow, torch.tensor([[-1.5]], dtype=torch.float64), t)
    win = t[0] >= delta
    d = (th[2.0].theta[0, :, 0] - th[0.0].theta[0, :, 0]).abs()[win].max()
    df = (th[2.0].f[0] - th[0.0].f[0]).abs()[win].max()
    assert row["sup_theta"] == pytest.approx(float(d), rel=1e-6)
    assert row["sup_f"] == pytest.approx(float(df), rel=1e-6)


def test_cli_json_plot_and_errors(tmp_path, capsys):
    png = tmp_path / "v.png"
    code = main(["velocity", "--alpha", "0.1", "0.05", "--horizon", "2", "--json", "-",
                 "--plot", str(png), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(out)
    assert {r["u0"] for r in res["rows"]} == {-1.0, 1.0, 2.0}
    for r in res["rows"]:
        assert set(r) >= {"alpha", "u0", "sup_theta", "sup_f"}
    assert {s["u0"] for s in res["slopes"]} == {-1.0, 1.0, 2.0}
    check_png(png)
    for bad in (["--alpha", "0.1", "--horizon", "2", "--models", "adam-flow1"],
                ["--alpha", "0.1", "--horizon", "2", "--delta", "5"],
                ["--alpha", "0", "--horizon", "2"]):
        code = main(["velocity", "--quiet"] + bad)
        out, err = capsys.readouterr()
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
