"""`adamflow bench` at toy sizes: the JSON contract, matched accuracy, skipped peers, bad input."""
import json

import pytest

from adamflow import bench, bench_peers
from adamflow.cli import main

KEYS = {"name", "lanes", "ours_s", "ours_cold_s", "peer", "peer_s", "speedup", "ours_error",
        "peer_error"}


def test_batch_cases_contract_and_matching(monkeypatch):
    def unavailable(*a, **k):
        raise bench_peers.PeerUnavailable("diffrax_run: cannot import jax (test)")

    monkeypatch.setattr(bench_peers, "diffrax_run", unavailable)
    cases = bench.batch_cases(True, 1, only_peers=("scipy", "diffrax"), side=3)
    by = {c["name"]: c for c in cases}
    sc = by["batch4096-vs-scipy"]
    assert KEYS <= set(sc) and sc["lanes"] == 9
    # matched accuracy: ours is at least as accurate as the peer, or below the reference's floor
    ladder = by["batch9-ours-ladder"]
    assert sc["ours_error"] <= max(sc["peer_error"], ladder["error_floor"])
    assert sc["speedup"] == pytest.approx(sc["peer_s"] / sc["ours_s"])
    for name in ("batch4096-vs-diffrax", "batch4096-vs-diffrax-tsit5"):
        assert "cannot import jax" in by[name]["skipped"]


def test_discrete_and_quadrature_cases():
    d = bench.discrete_case(True, 0)
    # the torch engine's arithmetic, to a few ulps: torch's CPU sqrt (SLEEF) is not correctly
    # rounded on AVX512 machines in about 1% of arguments (tests/test_fast_engine.py); 0.0 on AVX2
    assert KEYS <= set(d) and d["ours_error"] <= 1e-14
    assert d["peer_error"] < 1e-12                           # torch.optim: same formula, ulps
    q = bench.quadrature_case(True, 0)
    # the published rule differs from the exact piecewise-linear convolution by its own
    # discretisation (~1e-7 of max|m|, max|v| here), and costs N x 1000 gradients against O(N)
    assert KEYS <= set(q) and 1e-12 < q["peer_error"] < 1e-5 and q["speedup"] > 1


def test_markdown_and_roofline_model():
    fs = bench.flops_per_step()
    # adam-flow2 on rosenbrock1d, by hand: rhs = 84 (phi' 8, memories 4, direction 6, L z 16 for
    # its 8 entries, bg 2, bgg 3, bias factors 45), 12 per step; stages 754 (50 tableau entries
    # x 6 components x 2 + 11 x 14), solution 108, error 246, control 25
    assert fs["flops"] == 12 * 84 + 754 + 108 + 246 + 25 and fs["bytes"] > 0
    md = bench.to_markdown({"cases": [
        {"name": "x", "lanes": 1, "peer": "p", "skipped": "no p"},
        {"name": "y", "lanes": 2, "ours_s": 1.0, "ours_cold_s": 2.0, "peer": "q", "peer_s": 3.0,
         "speedup": 3.0, "ours_error": 1e-9, "peer_error": 2e-9}]})
    assert "skipped: no p" in md and "3.0x" in md


def test_cli_bad_device(capsys):
    assert main(["bench", "--device", "tpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_cli_json(tmp_path, capsys):
    path = tmp_path / "b.json"
    assert main(["bench", "--quick", "--only", "quadrature", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert {"device", "threads", "cases"} <= set(data)
    assert data["cases"][0]["name"] == "paper-scheme-vs-quadrature"


def test_throughput_pairs_roofline_and_runs():
    probe = bench._Roofline(n=128, copy_doubles=2 ** 16)
    c = bench.throughput_case(True, repeats=3, lanes=1500, probe=probe)
    assert c["name"] == "throughput-flow2" and c["lanes"] == 1500 and len(c["pairs"]) == 3
    fs = bench.flops_per_step()
    for p in c["pairs"]:
        # each pair's bound is the roofline model on the timings taken just before that run
        assert p["roofline_lane_steps_per_s"] == min(
            p["machine_flops_per_s"] / fs["flops"], p["machine_bytes_per_s"] / c["bytes_per_step"])
    fractions = sorted(c["steps"] / p["ours_s"] / p["roofline_lane_steps_per_s"]
                       for p in c["pairs"])
    assert c["fraction_of_roofline"] == fractions[1]
    assert c["ours_s"] == sorted(p["ours_s"] for p in c["pairs"])[1]
    # the best timings give the largest bound, so the strictest fraction
    assert 0 < c["fraction_of_best_roofline"] <= c["lane_steps_per_s"] / min(
        p["roofline_lane_steps_per_s"] for p in c["pairs"])
    assert "of its best timings" in bench.to_markdown({"cases": [c]})
