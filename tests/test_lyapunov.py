"""Energy monitors, dV/ds episodes and the PL bound check (SPEC §5); `adamflow lyapunov`."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import discrete
import landscapes
from adamflow.cli import main as cli_main
from analysis import lyapunov
from analysis.pl_bound import pl_bound, sliding_max, violation_indices
from runner import experiment
from tests.figure_checks import check_png

# -- PL bound -----------------------------------------------------------------------------------

def test_pl_bound_spec_check_value():
    """SPEC §5: discrete Adam, c = 0, theta0 = -1.5, alpha = 1e-3, 6000 iterates."""
    land = landscapes.parse("rosenbrock1d(c=0)")
    opt = discrete.get("adam")(alpha=1e-3, beta1=0.99, beta2=0.999, eps=1e-8)
    traj = opt.run(land, torch.tensor([[-1.5]], dtype=torch.float64), steps=5999)
    assert int(traj.n_out[0]) == 6000
    e = lyapunov.energy(traj, 0)
    assert e["fstar"] == 0.0 and e["fstar_source"] == "landscape"
    r = pl_bound(e["s"], e["phi"], delta=1.0, window=0.1, tail=1.7)
    assert r["ok"]
    assert r["B"] == pytest.approx(1.352e-3, rel=5e-3)
    assert r["omega"] == pytest.approx(2.333, rel=5e-3)
    assert r["A"] == pytest.approx(13.05, rel=5e-3)
    assert abs(r["violation"]) <= 1e-12
    assert len(violation_indices(r)) == 0


def test_pl_bound_exact_exponential_with_flat_tail():
    """phi = 3 exp(-2 s) + 0.01, flat 0.01 after s = 4: env - B is exactly exponential."""
    s = np.arange(6001) * 1e-3
    phi = np.where(s < 4.0, 3.0 * np.exp(-2.0 * s) + 0.01, 0.01)
    r = pl_bound(s, phi)
    assert r["B"] == pytest.approx(0.01, rel=1e-12)
    assert r["omega"] == pytest.approx(2.0, rel=1e-8)
    assert r["A"] == pytest.approx(3.0 * math.exp(-2.0 * 0.9), rel=1e-8)
    assert abs(r["violation"]) <= 1e-12
    # env(s) = phi(s - 0.1) on the decreasing part (left window end included)
    i = np.flatnonzero((s >= 0.1) & (s < 4.0))
    np.testing.assert_allclose(r["env"][i], 3.0 * np.exp(-2.0 * (s[i] - 0.1)) + 0.01, rtol=1e-12)


def test_pl_bound_plain_exponential():
    s = np.arange(6001) * 1e-3
    r = pl_bound(s, 3.0 * np.exp(-2.0 * s) + 0.01)
    assert r["B"] == pytest.approx(0.01 + 3.0 * math.exp(-2.0 * 4.2), rel=1e-9)   # env at T_end-1.7
    assert 2.0 <= r["omega"] <= 2.5          # the subtraction of B steepens the fit slightly
    assert abs(r["violation"]) <= 1e-12


def test_pl_bound_too_short_series():
    s = np.arange(200) * 1e-2                  # T_end - 1.7 < delta
    r = pl_bound(s, np.exp(-s))
    assert not r["ok"] and math.isnan(r["omega"]) and r["reason"]


def test_sliding_max_matches_brute_force_on_irregular_grid():
    rng = np.random.default_rng(0)
    s = np.cumsum(rng.uniform(0.0, 0.03, 700))
    s[100] = s[99]                             # repeated time
    x = rng.normal(size=s.size)
    env = sliding_max(s, x, 0.1)
    ref = np.array([x[(s >= si - 0.1 - 1e-9 * max(1, abs(si))) & (s <= si)].max() for si in s])
    np.testing.assert_array_equal(env, ref)


# -- energy ---------------------------------------------------------------------------------------

def _run(models, landscape, theta0, alpha, steps, **kw):
    spec = experiment.RunSpec(landscape=landscape, models=models, theta0=theta0, alpha=[alpha],
                              steps=steps, **kw)
    return experiment.run(spec)


def test_energy_quadratic_discrete_adam_matches_direct_computation():
    alpha, b1, b2, eps = 0.05, 0.9, 0.99, 1e-8
    (info, traj), = _run(["adam"], "quadratic(center=[3, -1])", [[0.0, 1.0]], alpha, 40,
                         beta1=[b1], beta2=[b2], eps=[eps])
    e = lyapunov.energy(traj, 0)
    assert e["kind"] == "discrete"
    th = traj.theta[0].numpy()
    # Phi = f - f* with f* = 0 for the quadratic
    np.testing.assert_allclose(e["phi"], ((th - [3.0, -1.0]) ** 2).sum(1), rtol=1e-13)
    # kinetic: (alpha/4) |(theta_k - theta_{k-1})/alpha|^2, 0 at k = 0
    kin = np.zeros(len(th))
    kin[1:] = alpha / 4 * (((th[1:] - th[:-1]) / alpha) ** 2).sum(1)
    np.testing.assert_allclose(e["kinetic"], kin, rtol=1e-12)
    # memory: sum_i eta/(sqrt v_i + epsq) m_i^2 / (2 lam1), bias index q = k + 1
    m, v = traj.extras["m"][0].numpy(), traj.extras["v"][0].numpy()
    mem = []
    for k in range(len(th)):
        q = k + 1
        eta = math.sqrt(1 - b2 ** q) / (1 - b1 ** q)
        epsq = eps * math.sqrt(1 - b2 ** q)
        lam1 = (1 - b1) / alpha
        mem.append(sum(eta / (math.sqrt(v[k, i]) + epsq) * m[k, i] ** 2 / (2 * lam1)
                       for i in range(2)))
    np.testing.assert_allclose(e["memory"], mem, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(e["V"], e["phi"] + e["kinetic"] + e["memory"], rtol=1e-15)


def test_energy_flows_kinetic_terms():
    alpha = 0.05
    res = _run(["adam-flow1", "adam-flow2"], "quadratic(center=[3])", [[0.0]], alpha, 30,
               beta1=[0.9], beta2=[0.99], u0=[0.5])
    (_, t1), (_, t2) = res
    e1, e2 = lyapunov.energy(t1, 0), lyapunov.energy(t2, 0)
    assert e1["kind"] == "first" and e2["kind"] == "second"
    assert np.all(e1["kinetic"] == 0.0)
    u = t2.extras["u"][0, :, 0].numpy()
    np.testing.assert_allclose(e2["kinetic"], alpha / 4 * u ** 2, rtol=1e-14)
    assert e2["kinetic"][0] == pytest.approx(alpha / 4 * 0.25)
    assert e1["memory"][0] == 0.0 and np.all(e1["memory"][1:] > 0)


def test_energy_without_moments_and_observed_fstar():
    # gd has no moments: memory term 0; an explicitly given f* is used as is
    (_, traj), = _run(["gd"], "quadratic(center=[1])", [[0.0]], 0.1, 10)
    e = lyapunov.energy(traj, 0, fstar=-1.0)
    assert e["fstar_source"] == "given"
    np.testing.assert_allclose(e["phi"], traj.f[0].numpy() + 1.0)
    assert np.all(e["memory"] == 0.0)


def test_episodes_synthetic():
    s = np.arange(501) * 0.01
    V = np.exp(-s)
    V = V + np.where((s >= 2.0) & (s <= 2.5), 0.2 * (s - 2.0), 0.0)   # rises on (2, 2.5]
    V = V + np.where((s >= 0.2) & (s <= 0.4), 0.5 * (s - 0.2), 0.0)   # before delta: ignored
    ep = lyapunov.episodes(s, V, delta=1.0)
    assert ep["count"] == 1
    assert ep["first_start"] == pytest.approx(2.0)
    # V' = 0.2 - exp(-s) > 0 for s > ln 5 = 1.609, so the whole ramp (2, 2.5] rises
    assert ep["total_duration"] == pytest.approx(0.5, abs=1e-9)
    assert ep["max_increase"] == pytest.approx(V[250] - V[200], rel=1e-12)
    assert lyapunov.episodes(s, np.exp(-s))["count"] == 0


def test_rho_and_stability_flag():
    assert lyapunov.rho(1e-3, 0.99, 0.999) == pytest.approx(1.0)
    assert lyapunov.rho(1e-2, 0.5, 0.2) == pytest.approx(max(1e-2, (0.02) ** 2, 1e-2 / 0.8))
    assert lyapunov.stable(0.99, 0.999) and lyapunov.stable(0.5, 0.25)
    assert not lyapunov.stable(0.9, 0.5)


# -- CLI --------------------------------------------------------------------------------------------

def test_cli_lyapunov_json_and_plot(tmp_path, capsys):
    j, png = tmp_path / "ly.json", tmp_path / "ly.png"
    rc = cli_main(["lyapunov", "--models", "adam", "adam-flow2", "--alpha", "1e-2", "--steps",
                   "300", "--u0", "1", "--pl", "--json", str(j), "--plot", str(png), "--quiet"])
    assert rc == 0
    check_png(png)
    doc = json.loads(j.read_text())
    assert [r["model"] for r in doc["lanes"]] == ["adam", "adam-flow2"]
    for rec in doc["lanes"]:
        for key in ("model", "u0", "alpha", "rho", "stable_b1_le_sqrt_b2", "episodes", "pl"):
            assert key in rec
        assert set(rec["episodes"]) >= {"count", "total_duration", "max_increase"}
        assert set(rec["pl"]) >= {"B", "omega", "A", "violation"}
        assert rec["rho"] == pytest.approx(10.0)
        assert rec["stable_b1_le_sqrt_b2"] is True
    assert doc["lanes"][1]["u0"] == 1.0 and doc["lanes"][0]["u0"] is None


def test_cli_lyapunov_without_pl_gives_null(tmp_path):
    j = tmp_path / "ly.json"
    assert cli_main(["lyapunov", "--models", "adam", "--alpha", "1e-2", "--horizon", "0.5",
                     "--delta", "0.1", "--json", str(j), "--quiet"]) == 0
    assert json.loads(j.read_text())["lanes"][0]["pl"] is None


@pytest.mark.parametrize("argv", [
    ["lyapunov", "--delta", "-1", "--steps", "5"],
    ["lyapunov", "--alpha", "0", "--steps", "5"],
    ["lyapunov", "--models", "nope", "--steps", "5"],
    ["lyapunov", "--steps", "5", "--horizon", "1"],
    ["lyapunov", "--steps", "0"],
    ["lyapunov", "--beta1", "1.5", "--steps", "5"],
])
def test_cli_lyapunov_bad_input(argv, capsys):
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
