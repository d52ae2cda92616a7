"""Every figure module runs at reduced size and writes a PNG and its data file."""
import os

import pytest

from core.errors import ConfigError
from paper_figs import build

MODS = build.figure_modules()


@pytest.mark.parametrize("name", list(MODS))
def test_figure_module_quick(name, tmp_path):
    mod = MODS[name]
    assert mod.NAME == name and mod.TITLE
    msgs = []
    files = mod.make(str(tmp_path), progress=msgs.append,
                     **build.make_kwargs(mod, scheme="exact", quick=True))
    assert any(f.endswith(".png") for f in files)
    assert any(f.endswith((".csv", ".json")) for f in files)
    for f in files:
        assert os.path.getsize(f) > 0
    assert msgs


def test_all_spec_figures_registered():
    assert set(MODS) >= {"trajectories", "trajectories-global", "basin", "refine", "velocity",
                         "pl", "positivity", "heredia2024-convex"}


def test_build_rejects_bad_scheme_and_figure(tmp_path):
    with pytest.raises(ConfigError):
        build.main(out=str(tmp_path), scheme="nope", quiet=True)
    with pytest.raises(ConfigError):
        build.main(out=str(tmp_path), only=["nope"], quiet=True)


def test_figs_cli_unknown_scheme_one_line(capsys):
    from adamflow.cli import main

    assert main(["figs", "--scheme", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_trajectories_paper_scheme_quick(tmp_path):
    mod = MODS["trajectories"]
    files = mod.make(str(tmp_path), **build.make_kwargs(mod, scheme="both", quick=True))
    names = {os.path.basename(f) for f in files}
    assert {"trajectories.png", "trajectories-paper.png", "trajectories-paper.csv",
            "trajectories-both.png"} <= names
    rows = open(os.path.join(str(tmp_path), "trajectories-paper.csv")).read().splitlines()
    assert len(rows) > 1 and rows[0].startswith("model")


def test_velocity_paper_scheme_small(tmp_path):
    from analysis.velocity import velocity
    from paper_figs import _common

    pr = _common.problem("heredia2026-velocity", "velocity", "paper", alpha=[5e-2, 1e-1])
    res = velocity(pr, delta=1.0, horizon=3.0)
    assert res["scheme"] == "paper" and len(res["rows"]) == 6
    assert all(r["sup_theta"] is not None and r["converged"] for r in res["rows"])


def test_basin_paper_scheme_small():
    from analysis.basin import basin_study

    res = basin_study(landscape="rosenbrock1d(c=4)", models=["adam", "adam-flow2"],
                      theta0=[-1.5], alpha=[1e-2, 5e-2], epochs=[60, 40], u0=[1.0],
                      scheme="paper")
    assert res["scheme"] == "paper"
    flow = [r for r in res["rows"] if r["model"] == "adam-flow2"]
    assert len(flow) == 2 and all(r["status"] == "ok" and r["basin"] >= 0 for r in flow)


def test_build_writes_report(tmp_path):
    files = build.main(out=str(tmp_path), only=["trajectories"], scheme="exact", quick=True,
                       quiet=True)
    assert files[-1].endswith("REPORT.md") and os.path.getsize(files[-1]) > 0


def test_heredia2024_convex_quick_both(tmp_path):
    import json

    mod = MODS["heredia2024-convex"]
    files = mod.make(str(tmp_path), **build.make_kwargs(mod, scheme="both", quick=True))
    names = {os.path.basename(f) for f in files}
    assert names == {"heredia2024-convex.png", "heredia2024-convex.csv",
                     "heredia2024-convex.json"}
    data = json.load(open(os.path.join(str(tmp_path), "heredia2024-convex.json")))
    assert data["schemes"] == ["exact", "paper"] and len(data["lanes"]) == 16
    rows = open(os.path.join(str(tmp_path), "heredia2024-convex.csv")).read().splitlines()
    assert rows[0].startswith("optimizer") and any(",paper2024," in r for r in rows)
    if data["published_source"]:
        adam = [ln for ln in data["lanes"] if ln["optimizer"] == "adam"]
        assert all(ln["max_distance"]["published_nonlocal_vs_paper2024"] < 1e-4 for ln in adam)


def test_pl_alpha_sweep_quick(tmp_path):
    import json

    mod = MODS["pl"]
    files = mod.make(str(tmp_path), **build.make_kwargs(mod, scheme="exact", quick=True))
    assert os.path.join(str(tmp_path), "pl-alpha.png") in files
    sweep = json.load(open(os.path.join(str(tmp_path), "pl.json")))["alpha_sweep"]
    assert sweep["horizon"] == 6.0 and len(sweep["rows"]) == 4
    assert all(r["ok"] and r["omega"] > 0 for r in sweep["rows"])


@pytest.mark.parametrize("name", ["heredia2024-mse", "heredia2024-doublewell"])
def test_heredia2024_mse_doublewell_quick_both(name, tmp_path):
    import json

    mod = MODS[name]
    files = mod.make(str(tmp_path), quick=True, scheme="both")
    assert {os.path.basename(f) for f in files} == {f"{name}.{e}" for e in ("png", "csv", "json")}
    assert all(os.path.getsize(f) > 0 for f in files)
    doc = json.load(open(os.path.join(str(tmp_path), f"{name}.json")))
    assert doc["quick"] and doc["skipped_paper2024"] and doc["lanes"]
