"""Issue 14: every bad input is refused up front, with one line ``error: ...`` and exit code 2,
before any computation (each refusal here takes well under a second), never a traceback."""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import time

import pytest

import landscapes
from adamflow.cli import build_parser
from adamflow.cli import main as cli_main
from core import validation as V
from core.errors import ConfigError
from core.grid import output_indices

RUN = ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam", "--theta0", "-1.5",
       "--alpha", "1e-3"]
FORTY = [str(0.001 * (i + 1)) for i in range(40)]
BETAS = [str(0.5 + 0.01 * i) for i in range(40)]

#: (id, argv) -- "{tmp}" is a fresh folder, "{file}" an existing file in it
CASES = [
    # output paths (refused before the run, not after it)
    ("run-json-proc", RUN + ["--steps", "10", "--json", "/proc/x/y.json"]),
    ("run-json-dir", RUN + ["--steps", "10", "--json", "{tmp}"]),
    ("run-csv-dir", RUN + ["--steps", "10", "--csv", "{tmp}"]),
    ("run-csv-proc", RUN + ["--steps", "10", "--csv", "/proc/x/y.csv"]),
    ("run-json-empty", RUN + ["--steps", "10", "--json", ""]),
    ("run-json-under-file", RUN + ["--steps", "10", "--json", "{file}/y.json"]),
    ("run-json-and-csv-stdout", RUN + ["--steps", "10", "--json", "-", "--csv", "-"]),
    ("velocity-plot-proc", ["velocity", "--alpha", "1e-2", "--plot", "/proc/x/y.png", "--quiet"]),
    ("velocity-plot-stdout", ["velocity", "--alpha", "1e-2", "--plot", "-", "--quiet"]),
    ("refine-json-proc", ["refine", "--alpha", "5e-2", "2e-2", "--horizon", "2", "--json",
                          "/proc/x/y.json", "--quiet"]),
    ("basin-json-dir", ["basin", "--alpha", "1e-3", "--steps", "10", "--json", "{tmp}", "--quiet"]),
    ("lyapunov-plot-dir", ["lyapunov", "--steps", "10", "--plot", "{tmp}", "--quiet"]),
    ("positivity-json-proc", ["positivity", "--json", "/proc/x/y.json", "--quiet"]),
    ("rates-plot-empty", ["rates", "--plot", "", "--quiet"]),
    ("figs-out-file", ["figs", "--out", "{file}", "--quiet"]),
    ("figs-out-proc", ["figs", "--out", "/proc/x/figs", "--quiet"]),
    ("figs-out-empty", ["figs", "--out", "", "--quiet"]),
    ("bench-json-proc", ["bench", "--json", "/proc/x/y.json"]),
    # sizes
    ("run-steps-1e12", RUN + ["--steps", "1000000000000"]),
    ("run-steps-1e12-float", RUN + ["--steps", "1e12"]),
    ("run-horizon-1e12", RUN + ["--horizon", "1e12"]),
    ("run-horizon-overflow", RUN[:-1] + ["1e-300", "--horizon", "1e300"]),
    ("run-every-0", RUN + ["--steps", "10", "--every", "0"]),
    ("run-linreg-huge", ["run", "--landscape", "linreg(n_points=1000000000000)", "--model", "gd",
                         "--theta0", "0,0", "--alpha", "1e-3", "--steps", "2"]),
    ("run-1e8-lanes", ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow2",
                       "--theta0", "-1.5", "--alpha", *FORTY, "--beta1", *BETAS, "--beta2", *BETAS,
                       "--eps", *FORTY, "--u0", *FORTY, "--steps", "10"]),
    ("basin-map-1e5", ["basin", "--map", "100000", "--alpha", "1e-3", "1e-2", "--steps", "10",
                       "--quiet"]),
    ("basin-steps-1e12", ["basin", "--steps", "1000000000000", "--alpha", "1e-3", "--quiet"]),
    ("basin-epochs-1e12", ["basin", "--alpha", "1e-3", "--epochs", "1000000000000", "--quiet"]),
    ("refine-horizon-huge", ["refine", "--alpha", "1e-3", "--horizon", "1e12", "--quiet"]),
    ("velocity-tiny-alpha", ["velocity", "--alpha", "1e-12", "--quiet"]),
    ("lyapunov-steps-1e12", ["lyapunov", "--steps", "1000000000000", "--quiet"]),
    ("rates-steps-1e12", ["rates", "--steps", "1000000000000", "--quiet"]),
    ("positivity-horizon-huge", ["positivity", "--horizon", "1e15", "--quiet"]),
    # hangs: infinite horizons
    ("run-flow-alpha-1e308", ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow2",
                              "--theta0", "-1.5", "--alpha", "1e308", "--steps", "10"]),
    ("run-flow-alpha-1e308-torch", ["run", "--landscape", "rosenbrock1d(c=4)", "--model",
                                    "adam-flow2", "--theta0", "-1.5", "--alpha", "1e308",
                                    "--steps", "10", "--engine", "torch"]),
    # accepted but wrong before
    ("run-flow-eps-0", ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam-flow1",
                        "--theta0", "-1.5", "--alpha", "1e-3", "--eps", "0", "--steps", "10"]),
    ("velocity-eps-0", ["velocity", "--alpha", "1e-2", "--eps", "0", "--quiet"]),
    ("refine-eps-0", ["refine", "--alpha", "5e-2", "2e-2", "--horizon", "2", "--eps", "0",
                      "--quiet"]),
    ("basin-eps-0", ["basin", "--alpha", "1e-3", "--steps", "10", "--eps", "0", "--quiet"]),
    ("rates-eps-0", ["rates", "--eps", "0", "--quiet"]),
    ("basin-minima-nan", ["basin", "--minima", "nan", "--alpha", "1e-3", "--steps", "10",
                          "--quiet"]),
    ("basin-minima-inf", ["basin", "--minima", "-1", "inf", "--alpha", "1e-3", "--steps", "10",
                          "--quiet"]),
    ("lyapunov-delta-1e9", ["lyapunov", "--delta", "1e9", "--steps", "10", "--quiet"]),
    ("lyapunov-pl-short", ["lyapunov", "--pl", "--steps", "5", "--quiet"]),
    ("velocity-delta-1e9", ["velocity", "--alpha", "1e-2", "--delta", "1e9", "--quiet"]),
    ("run-alpha-minus-inf", RUN[:-1] + ["-inf", "--steps", "10"]),
    ("run-alpha-minus-nan", RUN[:-1] + ["-nan", "--steps", "10"]),
    ("run-theta0-inf", ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam",
                        "--theta0", "-inf", "--alpha", "1e-3", "--steps", "10"]),
    ("velocity-theta0-nan", ["velocity", "--alpha", "1e-2", "--theta0", "nan", "--quiet"]),
    ("run-landscape-100k", ["run", "--landscape", "x" * 100_000, "--model", "adam",
                            "--theta0", "1", "--alpha", "1e-3", "--steps", "10"]),
    ("run-landscape-param-100k", ["run", "--landscape", f"rosenbrock1d({'y' * 100_000}=1)",
                                  "--model", "adam", "--theta0", "1", "--alpha", "1e-3",
                                  "--steps", "10"]),
    ("run-model-100k", ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "m" * 100_000,
                        "--theta0", "1", "--alpha", "1e-3", "--steps", "10"]),
    ("run-alpha-text-100k", RUN[:-1] + ["a" * 100_000, "--steps", "10"]),
    ("rates-horizon-short", ["rates", "--alpha", "1e-2", "--horizon", "0.5", "--models", "adam",
                             "--quiet", "--json", "-"]),
    ("rates-s0-negative", ["rates", "--s0", "-1", "--quiet"]),
]


def _fill(argv, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    return [a.replace("{tmp}", str(tmp_path)).replace("{file}", str(f)) for a in argv]


@pytest.mark.parametrize("argv", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_up_front(argv, tmp_path, capsys):
    argv = _fill(argv, tmp_path)
    t0 = time.perf_counter()
    rc = cli_main(argv)
    elapsed = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert rc == 2, (out[-500:], err[-500:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-500:]
    assert "Traceback" not in err and len(lines[0]) <= 1100
    assert out == ""
    assert elapsed < 1.0, f"refused after {elapsed:.2f} s: not before the computation"
    # nothing was written: no stray temporary files of the probe or the writers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_echoed_names_are_truncated(capsys):
    assert cli_main(["run", "--landscape", "x" * 100_000, "--model", "adam", "--theta0", "1",
                     "--alpha", "1e-3", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err) < 400 and "..." in err


def test_alpha_minus_inf_is_a_value_not_a_flag(capsys):
    assert cli_main(RUN[:-1] + ["-inf", "--steps", "1"]) == 2
    assert "alpha must be a positive finite number" in capsys.readouterr().err


def test_lyapunov_delta_refused_like_velocity(capsys):
    assert cli_main(["lyapunov", "--delta", "1e9", "--steps", "10", "--quiet"]) == 2
    ly = capsys.readouterr().err
    assert cli_main(["velocity", "--alpha", "1e-2", "--delta", "1e9", "--quiet"]) == 2
    ve = capsys.readouterr().err
    assert "exceeds the horizon" in ly and "exceeds the horizon" in ve


# -- the outputs still work where they should ----------------------------------------------------

def test_output_into_a_new_folder_still_works(tmp_path, capsys):
    j = tmp_path / "new" / "sub" / "r.json"
    assert cli_main(RUN + ["--steps", "3", "--json", str(j)]) == 0
    assert json.loads(j.read_text())["lanes"][0]["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "new" / "sub").iterdir()) == ["r.json"]


# -- final_theta of diverged lanes: null plus diverged_at, in run and basin --------------------

def _strict(text):
    def bad(c):
        raise ValueError(c)
    return json.loads(text, parse_constant=bad)


def test_diverged_lane_final_theta_null_in_run_and_basin(capsys):
    assert cli_main(["run", "--landscape", "quadratic", "--model", "gd", "--theta0", "1",
                     "--alpha", "3", "--steps", "100", "--json", "-"]) == 0
    lane = _strict(capsys.readouterr().out)["lanes"][0]
    assert lane["status"] == "diverged" and lane["diverged_at"] is not None
    assert lane["final_theta"] is None and lane["final_f"] is None
    assert any(x is not None for row in lane["theta"] for x in row)   # the path before it stays
    assert cli_main(["basin", "--landscape", "quadratic", "--models", "gd", "--minima", "0",
                     "--theta0", "1", "--alpha", "3", "--steps", "100", "--quiet",
                     "--json", "-"]) == 0
    row = _strict(capsys.readouterr().out)["rows"][0]
    assert row["status"] == "diverged" and row["final_theta"] is None
    assert row["diverged_at"] == lane["diverged_at"] and row["basin"] == -1


def test_rates_null_rate_has_a_reason(capsys):
    assert cli_main(["rates", "--models", "adam", "--alpha", "1e-2", "--horizon", "1.02",
                     "--quiet", "--json", "-"]) == 0
    for r in _strict(capsys.readouterr().out)["rows"]:
        assert (r["rate"] is None) == (r["reason"] is not None)


# -- help: every option shows its default -------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "refine", "velocity", "lyapunov", "positivity",
                                     "rates", "basin", "figs"])
def test_help_shows_defaults(command):
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = subs.choices[command]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        if action.nargs == 0 or action.default in (None, False):
            continue
        assert "default" in formatter._get_help_string(action).lower(), \
            f"{command} {action.option_strings[0]}: help without its default"
    assert "default" in sub.format_help()


# -- broken pipe --------------------------------------------------------------------------------

class _ClosedPipe(io.StringIO):
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("fileno")


def test_broken_pipe_exits_quietly(monkeypatch, capsys):
    import sys

    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    rc = cli_main(["models"])
    monkeypatch.undo()
    assert rc == 141
    assert "Traceback" not in capsys.readouterr().err


# -- the primitives ---------------------------------------------------------------------------------

def test_clip():
    assert V.clip("abc") == "abc"
    s = V.clip("x" * 1000)
    assert len(s) < 110 and s.endswith("(1000 characters)")
    assert "\n" not in V.clip("a\nb")


@pytest.mark.parametrize("K,every", [(0, 1), (1, 1), (10, 3), (9, 3), (7, 10), (100, 7)])
def test_n_samples_matches_output_indices(K, every):
    assert V.n_samples(K, every) == len(output_indices(K, every))


def test_check_output_path(tmp_path):
    V.check_output_path(None, "--json")
    V.check_output_path("-", "--json")
    V.check_output_path(str(tmp_path / "a.json"), "--json")
    V.check_output_path(str(tmp_path / "new" / "a.json"), "--json")
    V.check_output_path(str(tmp_path), "--out", stdout_ok=False, directory=True)
    V.check_output_path(str(tmp_path / "new"), "--out", stdout_ok=False, directory=True)
    for bad, kw in [("", {}), (str(tmp_path), {}), ("-", {"stdout_ok": False}),
                    ("/proc/x/y", {}), ("a\0b", {}), (str(tmp_path / ("n" * 300)), {}),
                    (str(tmp_path) + os.sep + "d" + os.sep, {})]:
        with pytest.raises(ConfigError):
            V.check_output_path(bad, "--json", **kw)
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(ConfigError):
        V.check_output_path(str(f), "--out", directory=True)
    with pytest.raises(ConfigError):
        V.check_output_path(str(f / "x.json"), "--json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_sizes_and_values():
    assert V.check_steps(10) == 10
    assert V.steps_from_horizon(1.0, 0.1) == 10
    for bad in (lambda: V.check_steps(V.MAX_STEPS + 1), lambda: V.check_steps(0),
                lambda: V.check_steps(math.nan), lambda: V.check_steps(True),
                lambda: V.steps_from_horizon(1e300, 1e-300), lambda: V.steps_from_horizon(-1, 1),
                lambda: V.check_horizon(1e308, 10), lambda: V.check_flow_eps(0.0, "f"),
                lambda: V.check_points([[math.nan]], "minima"),
                lambda: V.check_delta(2.0, 1.0), lambda: V.check_delta(math.inf, 1.0),
                lambda: V.check_memory(math.inf, "x"), lambda: V.check_memory(1e30, "x")):
        with pytest.raises(ConfigError):
            bad()
    assert V.available_memory() is None or V.available_memory() > 0
    V.check_memory(1024, "a small run")


@pytest.mark.parametrize("spec", ["linreg(n_points=1000000000000)",
                                  "mlp(n_points=100000000000, width=8)"])
def test_library_refuses_landscape_data_beyond_memory(spec):
    """landscapes.parse checks the data size before drawing it (not only the CLI)."""
    with pytest.raises(ConfigError, match="would need about .* of memory"):
        landscapes.parse(spec)
