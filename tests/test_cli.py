"""CLI contract: `adamflow run` JSON schema, cartesian lanes, agreement with an independent
implementation of SPEC §2, error paths (one line, exit 2), atomic outputs."""
import json
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from adamflow.cli import _nothing_left_running, main

PY = sys.executable


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(args, capsys):
    code, out, err = run_cli(args + ["--json", "-"], capsys)
    assert code == 0, err
    return json.loads(out)["lanes"]


# -- independent reference (numpy, plain loops; SPEC §2) -------------------------------------------

def f_rb1d(x, c):
    return (1 - x) ** 2 + c * (x * x - 1) ** 2


def g_rb1d(x, c):
    return -2 * (1 - x) + 4 * c * x * (x * x - 1)


def ref_adam(x, c, a, b1, b2, eps, K):
    m = v = 0.0
    xs = [x]
    for k in range(1, K + 1):
        g = g_rb1d(x, c)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - a * (m / (1 - b1 ** k)) / (math.sqrt(v / (1 - b2 ** k)) + eps)
        xs.append(x)
    return np.array(xs)


def ref_rmsprop(x, c, a, b, eps, K):
    v = 0.0
    xs = [x]
    for _ in range(K):
        g = g_rb1d(x, c)
        v = b * v + (1 - b) * g * g
        x = x - a * g / (math.sqrt(v) + eps)
        xs.append(x)
    return np.array(xs)


def ref_adagrad(x, c, a, eps, K):
    G = 0.0
    xs = [x]
    for _ in range(K):
        g = g_rb1d(x, c)
        G = G + g * g
        x = x - a * g / (math.sqrt(G) + eps)
        xs.append(x)
    return np.array(xs)


def ref_heavyball(x, c, a, mu, K):
    buf = None
    xs = [x]
    for _ in range(K):
        g = g_rb1d(x, c)
        buf = g if buf is None else mu * buf + g
        x = x - a * buf
        xs.append(x)
    return np.array(xs)


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_settings_match_reference(capsys, seed):
    rng = np.random.default_rng(seed)
    c = float(rng.uniform(0, 5))
    x0 = float(rng.uniform(-2, 2))
    alphas = [float(a) for a in 10 ** rng.uniform(-4, -1.5, size=2)]
    b1, b2 = float(rng.uniform(0, 0.99)), float(rng.uniform(0.5, 0.9999))
    K = int(rng.integers(5, 400))
    lanes = run_json(["run", "--landscape", f"rosenbrock1d(c={c!r})", "--model", "adam", "rmsprop",
                      "adagrad", "heavyball", "gd", "--theta0", repr(x0), "--alpha", *map(repr, alphas),
                      "--beta1", repr(b1), "--beta2", repr(b2), "--beta", repr(b2),
                      "--momentum", repr(b1), "--steps", str(K)], capsys)
    assert len(lanes) == 5 * 2
    assert {(ln["model"], ln["alpha"]) for ln in lanes} == {
        (m, a) for m in ("adam", "rmsprop", "adagrad", "heavyball", "gd") for a in alphas}
    for lane in lanes:
        a = lane["alpha"]
        # every lane ran to the end: no divergence, K + 1 finite samples (the settings are stable)
        assert lane["status"] == "ok" and lane["diverged_at"] is None, lane["model"]
        assert len(lane["t"]) == K + 1 and len(lane["theta"]) == K + 1 and len(lane["f"]) == K + 1
        theta = np.array(lane["theta"], dtype=float)[:, 0]
        assert np.all(np.isfinite(theta)) and np.all(np.isfinite(np.array(lane["f"], dtype=float)))
        assert lane["t"][-1] == pytest.approx(K * a)
        assert lane["t"] == pytest.approx([k * a for k in range(K + 1)], rel=1e-12, abs=1e-15)
        if lane["model"] == "adam":
            ref = ref_adam(x0, c, a, b1, b2, 1e-8, K)
        elif lane["model"] == "rmsprop":
            ref = ref_rmsprop(x0, c, a, b2, 1e-8, K)
        elif lane["model"] == "adagrad":
            ref = ref_adagrad(x0, c, a, 1e-8, K)
        elif lane["model"] == "heavyball":
            ref = ref_heavyball(x0, c, a, b1, K)
        else:
            ref = ref_heavyball(x0, c, a, 0.0, K)
        assert ref.shape == theta.shape and np.all(np.isfinite(ref))
        assert theta[0] == x0 and theta[-1] != x0              # the lane moved
        assert rel(theta, ref) <= 1e-12, lane["model"]
        assert lane["final_theta"] == [theta[-1]]
        assert lane["final_f"] == pytest.approx(f_rb1d(ref[-1], c), rel=1e-12, abs=1e-300)


def test_json_schema_and_cartesian_product(capsys):
    lanes = run_json(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam",
                      "--theta0", "-1.5", "2", "--alpha", "1e-3", "1e-2", "--beta1", "0.9", "0.99",
                      "--beta2", "0.999", "--steps", "10"], capsys)
    assert len(lanes) == 2 * 2 * 2
    keys = {"model", "landscape", "alpha", "beta1", "beta2", "theta0", "u0", "status",
            "diverged_at", "t", "theta", "f", "final_theta", "final_f"}
    for lane in lanes:
        assert keys <= set(lane)
        assert lane["status"] == "ok" and lane["diverged_at"] is None
        assert len(lane["t"]) == 11 and len(lane["theta"]) == 11 and len(lane["theta"][0]) == 1
        assert lane["m"][0] == [0.0] and lane["v"][0] == [0.0]
    combos = {(ln["theta0"][0], ln["alpha"], ln["beta1"]) for ln in lanes}
    assert len(combos) == 8


def test_spec_fact_first_step(capsys):
    (lane,) = run_json(["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam", "--theta0",
                        "-1.5", "--alpha", "1e-3", "--beta1", "0.99", "--beta2", "0.999",
                        "--steps", "1"], capsys)
    assert lane["theta"][1][0] == pytest.approx(-1.499, abs=1e-12)
    assert lane["m"][1][0] == pytest.approx(-0.35, rel=1e-12)
    assert lane["v"][1][0] == pytest.approx(1.225, rel=1e-12)
    assert lane["f"][0] == pytest.approx(12.5)


def test_horizon_and_every(capsys):
    lanes = run_json(["run", "--landscape", "quadratic(diag=[1,100],center=[1,2])", "--model", "adam",
                      "--theta0", "-1.2,1", "--alpha", "0.01", "0.03", "--horizon", "1", "--every", "7"],
                     capsys)
    assert sorted(ln["alpha"] for ln in lanes) == [0.01, 0.03]
    for lane in lanes:
        assert lane["status"] == "ok" and all(math.isfinite(x) for row in lane["theta"] for x in row)
        K = round(1 / lane["alpha"])
        ks = [round(t / lane["alpha"]) for t in lane["t"]]
        assert ks[0] == 0 and ks[-1] == K and all(k % 7 == 0 for k in ks[:-1])
        assert len(lane["theta"][0]) == 2


def test_diverging_lane_does_not_poison_others(capsys):
    lanes = run_json(["run", "--landscape", "quadratic(diag=[1])", "--model", "gd", "--theta0", "1",
                      "--alpha", "0.1", "50", "--steps", "200"], capsys)
    ok = [ln for ln in lanes if ln["alpha"] == 0.1][0]
    bad = [ln for ln in lanes if ln["alpha"] == 50][0]
    assert ok["status"] == "ok" and abs(ok["final_theta"][0]) < 1e-8
    assert bad["status"] == "diverged" and bad["diverged_at"] is not None
    assert bad["diverged_at"] <= 200 * 50
    alone = run_json(["run", "--landscape", "quadratic(diag=[1])", "--model", "gd", "--theta0", "1",
                      "--alpha", "0.1", "--steps", "200"], capsys)[0]
    assert alone["theta"] == ok["theta"]


def test_csv_and_json_files_are_written(tmp_path, capsys):
    js, cs = tmp_path / "o.json", tmp_path / "o.csv"
    code, _, err = run_cli(["run", "--landscape", "sextic", "--model", "adam", "rmsprop",
                            "--theta0", "0.5", "--alpha", "0.01", "--steps", "20", "--json", str(js),
                            "--csv", str(cs)], capsys)
    assert code == 0, err
    data = json.loads(js.read_text())
    assert len(data["lanes"]) == 2
    lines = cs.read_text().strip().splitlines()
    assert lines[0].startswith("model,lane,alpha")
    assert len(lines) == 1 + 2 * 21
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


@pytest.mark.parametrize("args, needle", [
    (["--alpha", "0"], "alpha"),
    (["--alpha", "-1e-3"], "alpha"),
    (["--alpha", "nan"], "alpha"),
    (["--alpha", "inf"], "alpha"),
    (["--beta1", "1.0"], "beta1"),
    (["--beta2", "-0.1"], "beta2"),
    (["--steps", "0"], "steps"),
    (["--model", "adamw"], "unknown model"),
    (["--landscape", "rosenbrok(c=4)"], "unknown landscape"),
    (["--landscape", "rosenbrock1d(c=)"], ""),
    (["--theta0", "1,,2"], "vector"),
    (["--alpha", "abc"], "number"),
    (["--dtype", "float16"], "dtype"),
    (["--every", "0"], "every"),
])
def test_bad_input_one_line_exit_2(capsys, args, needle):
    base = {"--landscape": "rosenbrock1d(c=4)", "--model": "adam", "--theta0": "-1.5",
            "--alpha": "1e-3", "--steps": "5"}
    over = dict(zip(args[::2], args[1::2]))
    argv = ["run"]
    for k, v in {**base, **over}.items():
        argv += [k, v]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert needle in lines[0]


def test_missing_required_option_is_one_line(capsys):
    code, _, err = run_cli(["run", "--model", "adam"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_console_script_error_path_no_traceback():
    proc = subprocess.run([PY, "-m", "adamflow", "run", "--landscape", "nope", "--model", "adam",
                           "--theta0", "0", "--alpha", "0.1", "--steps", "3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: ") and "Traceback" not in proc.stderr


_ENTRY = "import sys; from adamflow.cli import entry; sys.argv[1:] = {args!r}; entry()"


def test_console_script_entry_fast_exit(tmp_path):
    """The console script (adamflow.cli:entry) ends with os._exit after flushing: its output and
    result files are whole, its exit codes those of main()."""
    out = tmp_path / "r.json"
    args = ["run", "--landscape", "rosenbrock1d(c=4)", "--model", "adam", "--theta0", "0.5",
            "--alpha", "0.01", "--steps", "20", "--json", str(out)]
    proc = subprocess.run([PY, "-c", _ENTRY.format(args=args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(out.read_text())["lanes"]) == 1
    proc = subprocess.run([PY, "-c", _ENTRY.format(args=["models"])], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "adam-flow2" in proc.stdout and proc.stdout.endswith("\n")
    proc = subprocess.run([PY, "-c", _ENTRY.format(args=["run", "--model", "adam"])],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_console_script_waits_for_what_is_left_running():
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)           # a non-daemon thread: exit must wait
    worker.start()
    try:
        assert not _nothing_left_running()
    finally:
        stop.set()
        worker.join()


def test_listing_commands(capsys):
    code, out, _ = run_cli(["models"], capsys)
    assert code == 0
    for name in ("gd", "heavyball", "adam", "rmsprop", "adagrad", "adam-flow1", "adam-flow2",
                 "rmsprop-flow", "adagrad-flow"):
        assert name in out
    code, out, _ = run_cli(["landscapes"], capsys)
    assert code == 0
    for name in ("rosenbrock1d", "rosenbrock", "quadratic", "shifted", "doublewell", "sextic"):
        assert name in out


def test_categorical_options_take_names_or_codes(capsys):
    # a categorical hyper-parameter (HyperParam.choices) takes its name or its code on the CLI
    for args, key, code in ((["--model", "polyak", "--scope", "element"], "scope", 3.0),
                            (["--model", "jumpadam", "--sign-rule", "gradient"], "sign_rule", 1.0),
                            (["--model", "hilladam", "--variant", "robust"], "variant", 1.0),
                            (["--model", "hilladam", "--variant", "1"], "variant", 1.0)):
        rc = main(["run", "--landscape", "sextic", "--theta0", "1", "--alpha", "0.01",
                       "--steps", "5", "--json", "-", *args])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert json.loads(out)["lanes"][0][key] == code
    rc = main(["run", "--landscape", "sextic", "--theta0", "1", "--alpha", "0.01", "--steps", "5",
                   "--model", "polyak", "--scope", "nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "global, tensor, layer, element" in err[0]
