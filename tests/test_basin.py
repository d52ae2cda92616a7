"""Basin selection (analysis.basin): nearest-minimizer classification, batched bisection, per-lane
step counts (checked against experiment.run), maps, CLI JSON schema, figure, error paths."""
import json
import math

import pytest
import torch

from adamflow.cli import main
from analysis.basin import (
    StepRule,
    basin_study,
    bisect_threshold,
    classify,
    final_states,
    minimizers,
)
from core.errors import ConfigError
from runner import experiment
from tests.figure_checks import check_png

C4 = "rosenbrock1d(c=4)"
X_LOC = -(2 + math.sqrt(2)) / 4


def test_minimizers_closed_form():
    mins = minimizers(C4)
    assert [m["kind"] for m in mins] == ["local", "global"]
    assert mins[0]["x"][0] == pytest.approx(X_LOC, abs=1e-15)
    assert mins[0]["f"] == pytest.approx(3.7303932, abs=1e-7)
    assert mins[1]["x"] == [1.0] and mins[1]["f"] == 0.0
    with pytest.raises(ConfigError):
        minimizers("rosenbrock", None)  # no closed-form critical points: --minima needed
    assert minimizers("shifted", [[4.0]])[0]["kind"] == "global"
    assert minimizers("shifted")[0]["x"] == [4.0]     # closed form (Landscape.critical_points)


def test_classify_nearest_minimizer():
    mins = minimizers(C4)
    mid = (X_LOC + 1) / 2
    labs = classify([-1.5, -0.2, mid - 1e-9, mid + 1e-9, 2.0, float("nan")], mins)
    assert labs == [0, 0, 0, 1, 1, -1]
    assert classify(torch.tensor([[0.9], [-0.9]]), [[-1.0], [1.0]]) == [1, 0]


@pytest.mark.parametrize("points", [1, 3])
def test_bisection_synthetic(points):
    thr = {"a": 0.0123, "b": 0.0456}
    calls = []

    def classifier(batch):
        calls.append(len(batch))
        return [int(alpha > thr[key]) for key, alpha in batch]

    res = bisect_threshold(classifier, 1e-3, 1e-1, tol=1e-4, points=points, keys=["a", "b"])
    for key, t in thr.items():
        lo, hi = res[key]["bracket"]
        assert lo <= t <= hi and (hi - lo) <= 1e-4 * hi
        assert res[key]["alpha_star"] == pytest.approx(t, rel=1e-4)
        assert (res[key]["label_lo"], res[key]["label_hi"]) == (0, 1)
    # both keys share every round's batch
    assert all(n == 2 * points for n in calls[1:])
    # each round shrinks log(hi/lo) by points + 1
    rounds = math.ceil(math.log(math.log(100) / 1e-4) / math.log(points + 1))
    assert len(calls) - 1 <= rounds + 1
    # no change in the bracket -> no threshold
    none = bisect_threshold(lambda b: [0] * len(b), 1e-3, 1e-1)
    assert none[None]["alpha_star"] is None and none[None]["bracket"] == [1e-3, 1e-1]


def test_step_rule():
    r = StepRule(alphas=[1e-3, 1e-1], epochs=[3000, 1001])
    assert r(1e-3) == 2999 and r(1e-1) == 1000
    # in between: log-log interpolation of T = (E-1) alpha; constant beyond the ends
    assert r.horizon_at(1e-2) == pytest.approx(math.sqrt(2.999 * 100), rel=1e-12)
    assert r(1.0) == 100 and r(1e-4) == round(2.999 / 1e-4)
    assert StepRule(steps=7)(0.3) == 7
    assert StepRule(horizon=2.0)(0.1) == 20
    with pytest.raises(ConfigError):
        StepRule(alphas=[1e-3, 1e-2], epochs=[100])
    with pytest.raises(ConfigError):
        StepRule(steps=3, horizon=1.0)


def test_c4_small_alpha_local_large_alpha_global():
    """Discrete Adam from -1.5: alpha 1e-3 stays in the local basin, 1e-1 crosses the barrier;
    the batched per-lane-K run equals experiment.run bit for bit."""
    lanes = [{"theta0": [-1.5], "alpha": 1e-3, "beta1": 0.99, "beta2": 0.999, "steps": 300},
             {"theta0": [-1.5], "alpha": 1e-1, "beta1": 0.99, "beta2": 0.999, "steps": 200}]
    res = final_states("adam", C4, lanes)
    assert classify(res["final_theta"], minimizers(C4)) == [0, 1]
    for ln, fin in zip(lanes, res["final_theta"][:, 0].tolist()):
        spec = experiment.RunSpec(landscape=C4, models=["adam"], theta0=[[-1.5]],
                                  alpha=[ln["alpha"]], beta1=[0.99], beta2=[0.999],
                                  steps=ln["steps"], every=10 ** 6)
        [(_, traj)] = experiment.run(spec)
        assert fin == float(traj.final_theta()[0, 0])


def test_study_epochs_convention_and_map():
    res = basin_study(landscape=C4, models=["adam"], alpha=[1e-3, 1e-1], epochs=[301, 201],
                      map_n=3, alpha_range=(1e-3, 1e-1), theta0_range=(-1.5, 1.5))
    rows = res["rows"]
    assert [r["steps"] for r in rows] == [300, 200]        # E epochs -> E-1 updates
    assert [r["basin_kind"] for r in rows] == ["local", "global"]
    assert rows[0]["u0"] is None and rows[0]["status"] == "ok"
    assert res["threshold"] == []
    mp = res["map"]
    assert len(mp["theta0"]) == 3 and len(mp["alpha"]) == 3
    assert mp["alpha"][0] == pytest.approx(1e-3) and mp["alpha"][-1] == pytest.approx(1e-1)
    [m] = mp["maps"]
    assert len(m["label"]) == 3 and all(len(r) == 3 for r in m["label"])
    assert all(x in (-1, 0, 1) for r in m["label"] for x in r)
    assert m["label"][0][2] == 1                            # theta0 = 1.5 -> global basin
    # the map lane (alpha 1e-3, theta0 -1.5) is the row lane: same K, same final theta
    assert m["final_theta"][0][0] == rows[0]["final_theta"][0]


def test_cli_json_bisect_plot(tmp_path, capsys):
    png = tmp_path / "basin.png"
    code = main(["basin", "--models", "adam", "adam-flow2", "--alpha", "0.001", "0.1",
                 "--steps", "150", "--bisect", "0.001", "0.1", "--tol", "0.1",
                 "--map", "2", "--alpha-range", "0.01", "0.1", "--quiet", "--json", "-",
                 "--plot", str(png)])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert {"rows", "threshold", "map"} <= set(data)
    for r in data["rows"]:
        assert {"alpha", "model", "u0", "final_theta"} <= set(r)
    assert {(r["model"], r["u0"]) for r in data["rows"]} == {("adam", None), ("adam-flow2", 1.0)}
    assert len(data["threshold"]) == 2           # one per (model, u0); the loop must not be empty
    for t in data["threshold"]:
        assert {"model", "u0", "alpha_star", "bracket"} <= set(t)
        lo, hi = t["bracket"]
        assert t["alpha_star"] is not None and lo < t["alpha_star"] < hi
        assert hi - lo <= 0.1 * hi
    assert len(data["map"]["maps"]) == 2
    check_png(png)


@pytest.mark.parametrize("args", [
    ["--alpha", "0.001", "0.01", "--epochs", "100"],
    ["--alpha", "0.001", "--steps", "10", "--bisect", "0.1", "0.01"],
    ["--alpha", "0.001", "--steps", "10", "--bisect", "0.01", "0.01"],
    ["--alpha", "0.001", "--steps", "10", "--map", "0"],
    ["--alpha", "0.001"],                                   # no step rule
    ["--alpha", "0.001", "--steps", "10", "--tol", "0", "--bisect", "0.001", "0.01"],
    ["--alpha", "0.001", "--steps", "10", "--theta0-range", "1", "-1", "--map", "2"],
    ["--models", "nope"],
])
def test_cli_bad_input(args, capsys):
    code = main(["basin", "--quiet"] + args)
    out, err = capsys.readouterr()
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
