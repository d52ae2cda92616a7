"""Presets (`--preset NAME`) and `adamflow presets`."""
import json

import pytest

from adamflow.cli import main
from core.errors import ConfigError
from runner import presets


def run_cli(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", presets.names())
def test_every_preset_resolves_for_its_commands(name):
    p = presets.get(name)
    assert p["description"] and p["commands"]
    for command in p["commands"]:
        d = presets.command_defaults(name, command)
        assert d["landscape"] and d["models"] and d["alpha"]


def test_spec_presets_present():
    for short in ("trajectories", "trajectories-global", "basin", "refine", "velocity", "pl",
                  "positivity"):
        assert f"heredia2026-{short}" in presets.PRESETS
    for short in ("convex-adam", "convex-rmsprop", "convex-adagrad", "doublewell", "mse"):
        assert f"heredia2024-{short}" in presets.PRESETS


def test_trajectories_preset_values():
    d = presets.command_defaults("heredia2026-trajectories", "run")
    assert d["landscape"] == "rosenbrock1d(c=4)" and d["theta0"] == [[-1.5]]
    assert d["alpha"] == [1e-3] and d["steps"] == 2999 and d["u0"] == [-1.0, 0.0, 1.0]


def test_presets_command_lists_all(capsys):
    code, out, _ = run_cli(["presets"], capsys)
    assert code == 0
    for name in presets.names():
        assert name in out
    assert len(out.strip().splitlines()) == len(presets.names())


def test_run_preset_end_to_end(capsys):
    code, out, _ = run_cli(["run", "--preset", "heredia2026-trajectories", "--steps", "50",
                            "--json", "-"], capsys)
    assert code == 0
    lanes = json.loads(out)["lanes"]
    assert [ln["model"] for ln in lanes] == ["adam", "adam-flow1"] + ["adam-flow2"] * 3
    assert all(ln["alpha"] == 1e-3 and ln["theta0"] == [-1.5] for ln in lanes)
    assert all(len(ln["t"]) == 51 and ln["status"] == "ok" for ln in lanes)
    assert lanes[0]["beta1"] == 0.99 and lanes[0]["beta2"] == 0.999


def test_explicit_options_override_preset(capsys):
    code, out, _ = run_cli(["run", "--preset=heredia2026-trajectories", "--model", "adam",
                            "--theta0", "-1.2", "--horizon", "0.01", "--json", "-"], capsys)
    assert code == 0
    lanes = json.loads(out)["lanes"]
    assert len(lanes) == 1 and lanes[0]["model"] == "adam"
    assert lanes[0]["theta0"] == [-1.2] and len(lanes[0]["t"]) == 11   # horizon replaced steps


def test_study_preset_with_override(capsys):
    code, out, _ = run_cli(["positivity", "--preset", "heredia2026-positivity", "--steps", "20",
                            "--models", "adam", "--quiet", "--json", "-"], capsys)
    assert code == 0
    lanes = json.loads(out)["lanes"]
    assert len(lanes) == 1 and lanes[0]["beta2"] == 0.2 and lanes[0]["n_samples"] == 21


def test_basin_preset_with_override(capsys):
    code, out, _ = run_cli(["basin", "--preset", "heredia2026-basin", "--alpha", "0.1",
                            "--steps", "30", "--quiet", "--json", "-"], capsys)
    assert code == 0
    rows = json.loads(out)["rows"]
    assert {r["model"] for r in rows} == {"adam", "adam-flow2"}
    assert all(r["steps"] == 30 for r in rows)


@pytest.mark.parametrize("argv, needle", [
    (["run", "--preset", "nope", "--steps", "5"], "unknown preset 'nope'"),
    (["run", "--preset", "heredia2026-basin"], "makes no sense for `run`"),
    (["velocity", "--preset", "heredia2024-convex-adam"], "makes no sense for `velocity`"),
    (["rates", "--preset", "heredia2026-refine"], "takes no --preset"),
    (["run", "--preset"], "--preset"),
])
def test_bad_preset_is_one_line_exit_2(argv, needle, capsys):
    code, _, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert needle in lines[0]


def test_command_defaults_errors():
    with pytest.raises(ConfigError):
        presets.command_defaults("heredia2026-trajectories", "figs")
    with pytest.raises(ConfigError):
        presets.get("heredia2099")


@pytest.mark.parametrize("name", [n for n in presets.names() if "run" in presets.get(n)["commands"]])
def test_every_run_preset_end_to_end_reduced(name, capsys):
    """Each preset, through `adamflow run`, at reduced size (5 steps, one step size)."""
    alpha = str(presets.get(name)["alpha"][-1])
    code, out, err = run_cli(["run", "--preset", name, "--alpha", alpha, "--steps", "5", "--json", "-"],
                             capsys)
    assert code == 0, err
    lanes = json.loads(out)["lanes"]
    assert lanes and all(ln["status"] == "ok" and len(ln["t"]) == 6 for ln in lanes)
    assert {ln["model"] for ln in lanes} == set(presets.command_defaults(name, "run")["models"])
