"""Every figure module runs at reduced size and writes a PNG and its data file.

The PNGs are checked to be real images (PNG signature, plausible size, not blank: several colours,
ink on the canvas, coloured curves drawn) and the data beside them (CSV/JSON) to hold the numbers
the figure shows: finite, the right number of lanes/rows/alphas, and consistent with the problem
(initial values, f(theta) on the landscape, distances and slopes recomputed from the rows).
"""
import csv
import json
import math
import os
from collections import defaultdict

import pytest
import torch

import landscapes
from adamflow.cli import main as cli_main
from core import text_layout
from core.errors import ConfigError
from paper_figs import build
from runner import presets
from tests.figure_checks import check_png

MODS = build.figure_modules()


# -- checks of the written files -------------------------------------------------------------------

def read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows, f"{path}: no data rows"
    return rows


def num(x):
    """A CSV/JSON value that must be a finite number (non-finite values are written empty)."""
    v = float(x)
    assert math.isfinite(v), x
    return v


def load_json(path):
    with open(path) as fh:
        return json.load(fh)


def rb1d(x, c):
    return (1 - x) ** 2 + c * (x * x - 1) ** 2


def slope(rows, key):
    (a1, e1), (a2, e2) = sorted((r["alpha"], r[key]) for r in rows)
    return math.log(e2 / e1) / math.log(a2 / a1)


def check_trajectory_csv(path, *, theta0, c, alpha, steps, u0s=(-1.0, 0.0, 1.0), tol=0.02):
    """Long CSV of trajectories.py / trajectories_global.py: one lane of discrete Adam, the
    first-order flow and the second-order model per u0, k = 0..steps, f = f(theta), starting at
    theta0 with m = v = 0, the flows within ``tol`` of the iterates."""
    lanes = defaultdict(list)
    for r in read_csv(path):
        lanes[(r["model"], float(r["u0"]) if r["u0"] else None)].append(r)
    assert set(lanes) == ({("adam", None), ("adam-flow1", None)}
                          | {("adam-flow2", u) for u in u0s}), sorted(lanes, key=str)
    ref = [num(r["theta"]) for r in lanes[("adam", None)]]
    for key, rows in lanes.items():
        assert [int(r["k"]) for r in rows] == list(range(steps + 1)), key
        for r in rows:
            th, f = num(r["theta"]), num(r["f"])
            num(r["m"]), num(r["v"])
            assert num(r["t"]) == pytest.approx(int(r["k"]) * alpha, rel=1e-9, abs=1e-12)
            assert f == pytest.approx(rb1d(th, c), rel=1e-9, abs=1e-12)
        assert num(rows[0]["theta"]) == theta0 and num(rows[0]["m"]) == 0 == num(rows[0]["v"])
        th = [num(r["theta"]) for r in rows]
        assert abs(th[-1] - theta0) > 0.05, key                        # the lane moved
        assert max(abs(a - b) for a, b in zip(th, ref)) < tol, key     # flows track Adam


def check_curves_csv(path, lanes, *, value, curves_of, lead):
    """Long CSV of the first-paper figures against their JSON lanes: every computed curve of every
    lane has exactly K finite points k = 0..K-1 (t = k alpha); returns {(lane key, curve): values}.
    """
    got = defaultdict(list)
    for r in read_csv(path):
        key = tuple(r[f] for f in lead) + (r["lane"] if "lane" in r else "", r["curve"])
        got[key].append(r)
    out = {}
    for ln in lanes:
        lk = tuple(str(ln[f]) for f in lead) + (ln.get("label", ""),)
        for curve in curves_of(ln):
            rows = got.get(lk + (curve,))
            assert rows, (lk, curve)
            assert [int(r["k"]) for r in rows] == list(range(ln["K"])), (lk, curve)
            for r in rows:
                assert num(r["t"]) == pytest.approx(int(r["k"]) * ln["alpha"], rel=1e-9,
                                                    abs=1e-12)
            out[lk + (curve,)] = [num(r[value]) for r in rows]
    return out


# -- the data each figure writes (quick presets, exact scheme unless stated) -----------------------

def data_trajectories(files, scheme="exact"):
    mod = MODS["trajectories"]
    csv_ = [f for f in files if f.endswith(f"trajectories{'' if scheme == 'exact' else '-paper'}.csv")]
    check_trajectory_csv(csv_[0], theta0=mod.THETA0, c=4.0, alpha=mod.ALPHA,
                         steps=mod.QUICK_STEPS, u0s=mod.U0S)


def data_trajectories_global(files):
    mod = MODS["trajectories-global"]
    d = presets.command_defaults(mod.PRESET, "run")
    (csv_,) = [f for f in files if f.endswith(".csv")]
    check_trajectory_csv(csv_, theta0=2.0, c=4.0, alpha=d["alpha"][0], steps=mod.QUICK_STEPS,
                         u0s=tuple(d["u0"]))


def data_basin(files):
    (js,) = [f for f in files if f.endswith(".json")]
    res = load_json(js)
    d = presets.command_defaults(res["preset"], "basin")
    epochs = res["step_rule"]["epochs"]
    assert len(epochs) == 2 and res["landscape"] == "rosenbrock1d(c=4)"
    x_loc = -(2 + math.sqrt(2)) / 4
    assert [m["kind"] for m in res["minima"]] == ["local", "global"]
    assert res["minima"][0]["x"][0] == pytest.approx(x_loc, abs=1e-12)
    assert res["minima"][1]["x"] == [1.0]
    assert res["barriers"] == [pytest.approx(-(2 - math.sqrt(2)) / 4, abs=1e-12)]
    rows = res["rows"]
    assert len(rows) == len(d["models"]) * len(epochs)
    assert {r["model"] for r in rows} == set(d["models"])
    alphas = sorted({r["alpha"] for r in rows})
    assert len(alphas) == len(epochs)
    for r in rows:
        assert r["status"] == "ok"
        x = num(r["final_theta"][0])
        E = epochs[alphas.index(r["alpha"])]
        assert r["steps"] == E - 1 and r["time"] == pytest.approx((E - 1) * r["alpha"])
        nearest = min(range(2), key=lambda i: abs(x - res["minima"][i]["x"][0]))
        assert r["basin"] == nearest and r["minimizer"] == res["minima"][nearest]["x"]
        assert r["basin_kind"] == res["minima"][nearest]["kind"]


def data_refine(files):
    (js,) = [f for f in files if f.endswith(".json")]
    res = load_json(js)
    d = presets.command_defaults(res["preset"], "refine")
    n_alpha = len(res["epochs"])
    lanes = [(m, None) for m in d["models"] if m == "adam-flow1"] + \
        [(m, u) for m in d["models"] if m == "adam-flow2" for u in d["u0"]]
    assert len(res["rows"]) == len(lanes) * n_alpha == 10
    assert {(r["model"], r["u0"]) for r in res["rows"]} == set(lanes)
    for r in res["rows"]:
        assert r["status"] == "ok"
        assert r["K"] == res["epochs"][sorted({x["alpha"] for x in res["rows"]}).index(r["alpha"])] - 1
        for key in ("E_T", "E_f", "E_sup"):
            assert 0 < num(r[key]) < 1, (key, r)
        assert r["E_sup"] >= r["E_T"] * (1 - 1e-12)        # sup over k <= K includes k = K
    assert len(res["slopes"]) == len(lanes)
    for s in res["slopes"]:
        rows = [r for r in res["rows"] if (r["model"], r["u0"]) == (s["model"], s["u0"])]
        assert s["n"] == len(rows) == 2
        assert s["p_T"] == pytest.approx(slope(rows, "E_T"), rel=1e-9)
        assert s["p_f"] == pytest.approx(slope(rows, "E_f"), rel=1e-9)
        assert s["p_sup"] == pytest.approx(slope(rows, "E_sup"), rel=1e-9)
        assert 0.3 < s["p_T"] < 2.0                           # first order in alpha, roughly


def data_velocity(files):
    (js,) = [f for f in files if f.endswith(".json")]
    res = load_json(js)
    d = presets.command_defaults(res["preset"], "velocity")
    n_alpha = len(res["epochs"])
    assert len(res["rows"]) == len(d["u0"]) * n_alpha == 6
    assert {r["u0"] for r in res["rows"]} == set(d["u0"])
    for r in res["rows"]:
        assert r["status"] == "ok" and r["model"] == "adam-flow2"
        assert 0 < num(r["sup_theta"]) < 1 and 0 < num(r["sup_f"]) < 10
    assert len(res["slopes"]) == len(d["u0"])
    for s in res["slopes"]:
        rows = [r for r in res["rows"] if r["u0"] == s["u0"]]
        assert s["p_theta"] == pytest.approx(slope(rows, "sup_theta"), rel=1e-9)
        assert s["p_f"] == pytest.approx(slope(rows, "sup_f"), rel=1e-9)


def data_pl(files):
    (js,) = [f for f in files if f.endswith(".json")]
    res = load_json(js)
    d = presets.command_defaults(res["preset"], "lyapunov")
    assert len(res["lanes"]) == len(d["models"]) == 2
    for ln in res["lanes"]:
        assert ln["status"] == "ok" and ln["fstar"] == 0.0
        assert ln["pl"]["ok"] and num(ln["pl"]["omega"]) > 0 and ln["pl"]["n_fit"] > 10
        assert num(ln["pl"]["A"]) >= 0 and num(ln["pl"]["B"]) >= 0
        assert all(num(v) >= 0 for v in ln["final"].values())
    sweep = res["alpha_sweep"]
    assert sweep["horizon"] == 6.0 and len(sweep["rows"]) == 2 * len(MODS["pl"].QUICK_ALPHAS)
    for r in sweep["rows"]:
        assert r["ok"] and num(r["omega"]) > 0
        assert r["steps"] == round(sweep["horizon"] / r["alpha"]) - 1


def data_positivity(files):
    (js,) = [f for f in files if f.endswith(".json")]
    res = load_json(js)
    n = MODS["positivity"].QUICK_STEPS + 1
    assert [(ln["model"], ln["u0"]) for ln in res["lanes"]] == [
        ("adam", None), ("adam-flow1", None), ("adam-flow2", 0.0), ("adam-flow2", 1.0)]
    for ln in res["lanes"]:
        assert ln["status"] == "ok" and ln["n_samples"] == n
        assert (ln["beta1"], ln["beta2"]) == (0.5, 0.2)
        assert 0 <= ln["condition_holds_count"] <= n
        assert num(ln["min_v"]) <= num(ln["min_v_after_start"])
        assert ln["min_v_after_start"] > 0
        assert isinstance(ln["v_negative"], bool)
        assert ln["v_negative"] == (ln["min_v"] < 0)
    assert res["lanes"][0]["min_v"] >= 0 and not res["lanes"][0]["v_negative"]   # discrete Adam


def data_heredia2024_convex(files, schemes=("exact",)):
    mod = MODS["heredia2024-convex"]
    (js,) = [f for f in files if f.endswith(".json")]
    (csv_,) = [f for f in files if f.endswith(".csv")]
    res = load_json(js)
    assert res["quick"] and res["schemes"] == list(schemes)
    n_lanes = sum(len(g[3]) for g in mod.GROUPS.values()) * len(mod.ALPHAS)
    assert len(res["lanes"]) == n_lanes == 16
    for ln in res["lanes"]:
        T = mod.GROUPS[ln["optimizer"]][2]
        assert ln["K"] == round(T * mod.QUICK_HORIZON_SCALE / ln["alpha"])

    def curves_of(ln):
        return ["discrete"] + [s for s in ("exact",) if s in schemes] + (
            ["paper2024"] if "paper" in schemes else [])

    cur = check_curves_csv(csv_, res["lanes"], value="theta", curves_of=curves_of,
                           lead=("optimizer", "alpha"))
    for ln in res["lanes"]:
        lk = (ln["optimizer"], str(ln["alpha"]), ln["label"])
        disc = cur[lk + ("discrete",)]
        assert disc[0] == mod.THETA0 and abs(disc[-1] - mod.THETA0) > 0.01
        assert all(mod.THETA0 - 1e-9 <= x <= 4.5 for x in disc)      # towards the minimum 4
        if "exact" in schemes:
            ex = cur[lk + ("exact",)]
            assert ex[0] == mod.THETA0
            gap = max(abs(a - b) for a, b in zip(ex, disc))
            assert ln["max_distance"]["exact_vs_discrete"] == pytest.approx(gap, rel=1e-9)
            assert gap < 0.5
        if res["published_source"] and ln["optimizer"] in mod.PUBLISHED_FIG:
            # the discrete optimizers reproduce the published discrete traces
            assert ln["max_distance"]["published_discrete_vs_discrete"] < 1e-9
    return res


def data_heredia2024_mse(files, schemes=("exact",)):
    mod = MODS["heredia2024-mse"]
    (js,) = [f for f in files if f.endswith(".json")]
    (csv_,) = [f for f in files if f.endswith(".csv")]
    res = load_json(js)
    assert res["quick"] and res["schemes"] == list(schemes)
    assert len(res["lanes"]) == len(mod.FIGURES) * len(mod.ALPHAS) * len(mod.OPTIMIZERS) == 12
    for ln in res["lanes"]:
        K = mod.FIGURES[ln["figure"]][1][ln["alpha"]]
        assert ln["K"] == max(4, round(K * mod.QUICK_SCALE))

    def curves_of(ln):
        out = ["discrete"] + (["exact"] if "exact" in schemes else [])
        if "paper" in schemes and ln["alpha"] in mod.PAPER_ALPHAS:
            out.append("paper2024")
        return out

    cur = check_curves_csv(csv_, res["lanes"], value="loss", curves_of=curves_of,
                           lead=("figure", "optimizer", "alpha"))
    f0 = {v[0] for v in cur.values()}
    assert len(f0) == 1 and f0.pop() > 0                  # every curve starts at f(theta0 = 0)
    for key, ys in cur.items():
        assert all(y >= 0 for y in ys) and ys[-1] < ys[0], key    # a loss, decreasing overall
    for ln in res["lanes"]:
        lk = (str(ln["figure"]), ln["optimizer"], str(ln["alpha"]), ln["label"])
        if "exact" in schemes:
            gap = max(abs(a - b) for a, b in zip(cur[lk + ("exact",)], cur[lk + ("discrete",)]))
            assert ln["max_loss_difference"]["exact_vs_discrete"] == pytest.approx(gap, rel=1e-9)
        if res["published_source"]:
            assert ln["max_loss_difference"]["published_discrete_vs_discrete"] < 1e-9
    return res


def data_heredia2024_doublewell(files, schemes=("exact",)):
    mod = MODS["heredia2024-doublewell"]
    (js,) = [f for f in files if f.endswith(".json")]
    (csv_,) = [f for f in files if f.endswith(".csv")]
    res = load_json(js)
    assert res["quick"] and res["schemes"] == list(schemes)
    assert [ln["alpha"] for ln in res["lanes"]] == list(mod.ALPHAS)
    rows = defaultdict(list)
    for r in read_csv(csv_):
        rows[(float(r["alpha"]), r["curve"])].append(r)
    for ln in res["lanes"]:
        a, K = ln["alpha"], ln["K"]
        assert K == round(mod.HORIZON * mod.QUICK_HORIZON_SCALE / a)
        curves = ["discrete"] + (["exact"] if "exact" in schemes else []) + (
            ["paper2024"] if "paper" in schemes and a in mod.PAPER_ALPHAS else [])
        assert sorted(c for (al, c) in rows if al == a) == sorted(curves)
        disc = [num(r["theta"]) for r in rows[(a, "discrete")]]
        for c in curves:
            rs = rows[(a, c)]
            assert [int(r["k"]) for r in rs] == list(range(K))
            th = [num(r["theta"]) for r in rs]
            assert th[0] == mod.THETA0
            for r, x in zip(rs, th):
                assert num(r["f"]) == pytest.approx((x * x - 1) ** 2 / 4, rel=1e-9, abs=1e-15)
            assert ln["final"][c]["theta"] == pytest.approx(th[-1], rel=1e-12)
            if c != "discrete":
                dist = [num(r["distance_to_discrete"]) for r in rs]
                assert dist == pytest.approx([abs(x - y) for x, y in zip(th, disc)], abs=1e-12)
                assert ln["max_distance_to_discrete"][c] == pytest.approx(max(dist), rel=1e-9)
                assert max(dist) < 0.2
        assert 0.9 < disc[-1] < 1.3                          # in the well at theta = 1
    return res


def data_jump(files):
    by = {os.path.basename(f): f for f in files}
    with open(by["jump-phases.json"]) as fh:
        ph = json.load(fh)
    T = 10.0
    for prob in ph["problems"]:
        ja = prob["jumpadam"]
        n = len(ja["k"])
        assert len(ja["gate"]) == len(ja["multiplier"]) == len(prob["adam"]["k"]) == n
        assert all(0.0 <= g <= 1.0 for g in ja["gate"])
        assert all(0.0 <= m <= T * (1 + 1e-12) for m in ja["multiplier"])
        spans = ja["spans"]
        assert spans[0]["start"] == 0 and spans[-1]["end"] == n
        assert all(a["end"] == b["start"] for a, b in zip(spans, spans[1:]))
    rosen2d = next(p for p in ph["problems"] if p["landscape"] == "rosenbrock")
    assert rosen2d["jumpadam"]["gap"][-1] < rosen2d["adam"]["gap"][-1]
    with open(by["jump-conditioning.json"]) as fh:
        cond = json.load(fh)
    rows = {(r["problem"], r["cond"]): r for r in cond["rows"]}
    for kind in ("separable", "rotated"):
        assert rows[(f"quadratic {kind}", 1.0)]["gd"] == 1        # alpha = 1/L is exact at cond 1
    for c in (1.0, 10.0, 100.0):
        r = rows[("quadratic separable", c)]
        assert r["aitkengd"] <= 2 and r["jumpadam"] is not None
        assert r["jumpadam"] < (r["adam"] or math.inf)             # None: not within the budget
    sx = rows[("sextic (x0 = 1)", None)]
    assert sx["jumpadam"] is not None and sx["jumpadam"] < (sx["adam"] or math.inf)
    with open(by["jump-gate-map.json"]) as fh:
        gm = json.load(fh)
    n = len(gm["axis"])
    for key in ("coupled", "separable"):
        assert len(gm[key]["adam"]) == len(gm[key]["jumpadam"]) == n * n
        assert all(0.0 <= x <= 1.0 for row in gm[key]["open_fraction"] for x in row)
    return gm


def data_polyak(files):
    """The Polyak seed experiments: the data behind each figure recomputed from the iterates (the
    formula of experiment 1, f - f* on the landscape, the gradient-norm ratio and its kink), and the
    generated table holding the JSON's numbers."""
    by = {os.path.basename(f): f for f in files}
    assert {f"polyak-exp{i}.png" for i in range(1, 6)} <= set(by)
    res = load_json(by["polyak-results.json"])
    exps = {str(e["id"]): e for e in res["experiments"]}
    assert set(exps) == {"1", "2", "3", "4", "4n", "5"}
    e1 = exps["1"]["runs"]["float64"]["lanes"][0]
    assert e1["start_label"] == "x0 = 10"
    assert [t[0] for t in e1["theta"][:21]] == [3 + 7 / 2 ** n for n in range(21)]
    for key in ("1", "2", "3", "4", "4n"):
        exp = exps[key]
        land = landscapes.parse(exp["spec"])
        for dt in ("float64", "float32"):
            for ln in exp["runs"][dt]["lanes"]:
                th = torch.tensor(ln["theta"], dtype=torch.float64)
                ok = torch.isfinite(th).all(dim=1) & (th.abs() < 1e6).all(dim=1)
                f = land.value(th[ok]) - exp["f_star"]
                gap = torch.tensor(ln["gap"], dtype=torch.float64)[ok]
                assert torch.allclose(gap, f, rtol=1e-12, atol=1e-300), (key, ln["variant"])
                assert all(s is None or s >= 0 for s in ln["scale"])
    g3 = next(ln for ln in exps["3"]["runs"]["float64"]["lanes"] if ln["variant"] == "global")
    th = torch.tensor(g3["theta"], dtype=torch.float64)
    ratio = (2 * (th[:, 0] - 1)).abs() / (200 * (th[:, 1] - 2)).abs()
    end = g3["window_end"]
    assert torch.allclose(ratio[:end + 1], torch.tensor(g3["ratio"][:end + 1], dtype=torch.float64),
                          rtol=1e-12)
    r0 = float(ratio[0])
    kink = next(k for k in range(end + 1) if float(ratio[k]) >= 1)
    assert r0 == pytest.approx(9 / 800) and g3["kink"] == kink
    assert g3["up_steps"] > 0 and g3["max_up"] <= 101 ** 2 / 1600 * (1 + 1e-9)
    with open(by["polyak-results.md"]) as fh:
        md = fh.read()
    assert f"| 3 | global | (10, 10) | float64 | {g3['rate']:.5g} |" in md
    assert md.count("\n| ") >= 5 + len(res["verdicts"])
    rows = read_csv(by["polyak-series.csv"])
    want = sum(len(ln["k"]) for e in res["experiments"] for dt in ("float64", "float32")
               for ln in e["runs"][dt]["lanes"] if "k" in ln and not ln.get("same_as"))
    assert len(rows) == want
    return res


def data_hill(files):
    by = {os.path.basename(f): f for f in files}
    sextic = lambda x: x ** 6 + x ** 5 + 3 * x ** 3 + 4 * x ** 2 + x  # noqa: E731
    sx = load_json(by["hill-sextic.json"])
    n = len(sx["x0"])
    assert sx["hill"] == pytest.approx(-0.699511, abs=1e-6)
    assert len(sx["rows"]) == n * len(sx["lrs"]) * 3 == len(read_csv(by["hill-sextic.csv"]))
    for r in sx["rows"]:
        assert num(r["best_f"]) == pytest.approx(sextic(r["best_x"]), rel=1e-12, abs=1e-15)
        assert r["best_f"] <= sextic(r["x0"]) + 1e-15               # the first loss is recorded
        assert r["in_global"] == (r["best_x"] < sx["hill"])
        assert r["best_f"] >= sx["f_min"] - 1e-9
    for s in sx["summary"]:
        rs = [r for r in sx["rows"] if r["method"] == s["method"] and r["lr"] == s["lr"]]
        assert s["global_count"] == sum(r["in_global"] for r in rs) == s["global_fraction"] * n
    c = sx["claim"]["0.1"]
    assert c["holds"] and c["robust"] >= c["original"] >= c["adam"] == 0
    dl = load_json(by["hill-delta.json"])
    assert len(dl["summary"]) == len(dl["deltas"]) * len(dl["lrs"]) * 2
    assert all(0.0 <= s["global_fraction"] <= 1.0 and s["plateau_mean"] >= 0 for s in dl["summary"])
    gm = load_json(by["hill-gamma.json"])
    summ = {(s["method"], s["lr"], s["gamma"]): s for s in gm["summary"]}
    for lr in gm["lrs"]:
        assert summ[("adam", lr, None)]["best_f_mean"] == pytest.approx(-2.0, abs=1e-6)
        assert summ[("adam", lr, None)]["escaped_fraction"] == 0.0
        for g in gm["gammas"]:
            assert summ[("robust", lr, g)]["escaped_fraction"] >= \
                summ[("original", lr, g)]["escaped_fraction"]
    run = load_json(by["hill-run.json"])
    for name in ("original", "robust"):
        d = run[name]
        assert len(d["x"]) == len(d["f"]) == len(d["sigma"]) == len(d["event"]) == run["K"] + 1
        assert set(d["sigma"]) <= {1.0, -1.0} and set(d["event"]) <= {0, 1, 2, 3, 4}
        assert all(f == pytest.approx(sextic(x), rel=1e-12, abs=1e-14)
                   for x, f in zip(d["x"], d["f"]))
        best = [b if b is not None else math.inf for b in d["best_f"]]
        assert all(a >= b for a, b in zip(best, best[1:]))
    rb = run["robust"]                       # the robust variant records every loss
    assert all(b == min(rb["f"][:k]) for k, b in enumerate(rb["best_f"]) if k)
    text = open(by["hill-results.md"]).read()
    assert "Claim robust >= original >= Adam" in text and "| method | lr | gamma |" in text
    return sx


def data_modified(files):
    by = {os.path.basename(f): f for f in files}
    res = load_json(by["modified.json"])
    assert [r["family"] for r in res] == ["gd", "heavyball"]           # quick: two families
    for fam in res:
        models = {o["model"] for o in fam["orders"]}
        alphas = sorted({r["alpha"] for r in fam["rows"]})
        assert len(fam["rows"]) == len(models) * len(alphas) == len(models) * 3
        # the principal flow does not exist where alpha phi''(theta0) >= 1 (36.5 alpha at -1.5)
        bad = [(r["model"], r["alpha"]) for r in fam["rows"] if r["status"] != "ok"]
        assert bad == ([("gd-principal-flow", 0.032)] if fam["family"] == "gd" else []), bad
        for o in fam["orders"]:
            assert len(o["local"]) == len(alphas) - 1
            assert o["range"] is None or o["range"][0] == alphas[0]
    # at the smallest alpha the higher-order GD flows are closer to GD
    gd = res[0]
    a0 = min(r["alpha"] for r in gd["rows"])
    e = {r["model"]: r["E_sup"] for r in gd["rows"] if r["alpha"] == a0}
    assert e["gd-flow3"] < e["gd-flow2"] < e["gd-flow"]
    text = open(by["modified-table.md"]).read()
    assert text.startswith("| setting | flow | metric | predicted |")
    assert text.count("\n") == 2 + sum(len(f["orders"]) for f in res)
    with open(by["modified.csv"]) as fh:
        assert len(fh.readlines()) == 1 + sum(len(f["rows"]) for f in res)


def data_loss_landscape(files):
    by = {os.path.basename(f): f for f in files}
    doc = load_json(by["loss-landscape.json"])
    pts = doc["critical_points"]
    assert [p["kind"] for p in pts["4"]] == ["min", "max", "min"]     # bistable
    assert pts["4"][0]["theta"] == pytest.approx(-0.8535534, abs=1e-6)  # SPEC §8.1
    assert pts["4"][0]["f"] == pytest.approx(3.7303932, abs=1e-6)
    assert [p["kind"] for p in pts["0"]] == ["min"]
    with open(by["loss-landscape.csv"]) as fh:
        rows = list(csv.reader(fh))[1:]
    land = landscapes.parse("rosenbrock1d(c=1.5)")
    for c, x, y in rows:
        if float(c) == 1.5 and float(x) == -1.5:
            assert float(y) == pytest.approx(8.59375, rel=1e-14)           # SPEC §8.1
    assert len(rows) == len(doc["cs"]) * 101 and land is not None


def data_dynamics(files):
    by = {os.path.basename(f): f for f in files}
    doc = load_json(by["dynamics.json"])
    assert doc["status"] == ["ok", "ok"] and doc["setting"]["theta0"] == 2.0
    with open(by["dynamics.csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == doc["setting"]["steps"] + 1
    first = rows[0]
    assert float(first["theta"]) == 2.0 and float(first["u"]) == 1.0 and float(first["m"]) == 0.0
    # the acceleration is the model's equation: (alpha/2) theta'' + theta' = -A; check it against
    # a central difference of the sampled velocity away from the initial layer
    a = doc["setting"]["alpha"]
    for j in (150, 300):
        du = (float(rows[j + 1]["u"]) - float(rows[j - 1]["u"])) / (2 * a)
        assert float(rows[j]["acceleration"]) == pytest.approx(du, rel=1e-3, abs=1e-3)
    assert all(float(r["scale"]) >= 0 for r in rows)


def data_refine_errors(files):
    by = {os.path.basename(f): f for f in files}
    res = load_json(by["refine-errors.json"])
    assert res["protocol"] == "paper" and res["preset"] == "heredia2026-refine"
    keys = {(s["model"], s["u0"]) for s in res["slopes"]}
    assert ("adam-flow1", None) in keys and len(keys) == 5
    for s in res["slopes"]:
        rows = sorted((r["alpha"], r["E_T"], r["E_f"]) for r in res["rows"]
                      if (r["model"], r["u0"]) == (s["model"], s["u0"]))
        (a0, t0, f0), (a1, t1, f1) = rows          # quick: two step sizes, the slope is exact
        assert s["p_T"] == pytest.approx(math.log(t1 / t0) / math.log(a1 / a0), rel=1e-9)
        assert s["p_f"] == pytest.approx(math.log(f1 / f0) / math.log(a1 / a0), rel=1e-9)


def _lanes_of(path, *keys):
    """Long CSV rows grouped by the values of ``keys`` (as written)."""
    out = defaultdict(list)
    for r in read_csv(path):
        out[tuple(r[k] for k in keys)].append(r)
    return out


def data_velocity_independence(files):
    by = {os.path.basename(f): f for f in files}
    doc = load_json(by["velocity-independence.json"])
    st = doc["setting"]
    delta, u0s = st["delta"], st["u0s"]
    assert delta == 1.0 and u0s == [-1.0, 0.0, 1.0, 2.0] and st["model"] == "adam-flow2"
    assert st["fstar"] == 0.0 and st["theta0"] == [-1.5]
    alphas = [a["alpha"] for a in doc["alphas"]]
    if st["quick"]:
        assert alphas == MODS["velocity-independence"].QUICK["alpha"]
    else:
        assert alphas == presets.command_defaults(st["preset"], "velocity")["alpha"]
    lanes = _lanes_of(by["velocity-independence.csv"], "alpha", "u0")
    assert len(lanes) == len(doc["lanes"]) == len(alphas) * len(u0s)
    summary = {(ln["alpha"], ln["u0"]): ln for ln in doc["lanes"]}
    curves = {}
    for (a, u0), rows in lanes.items():
        a, u0 = float(a), float(u0)
        ln = summary[(a, u0)]
        assert ln["status"] == "ok"
        ks = [int(r["k"]) for r in rows]
        assert ks[0] == 0 and ks[-1] == ln["K"] and all(x < y for x, y in zip(ks, ks[1:]))
        t, th, u, ph = ([num(r[c]) for r in rows] for c in ("t", "theta", "u", "phi"))
        for k, tk, x, p in zip(ks, t, th, ph):
            assert tk == pytest.approx(k * a, rel=1e-9, abs=1e-12)
            assert p == pytest.approx(rb1d(x, 1.5), rel=1e-9, abs=1e-12)
        assert th[0] == -1.5 and u[0] == u0
        curves[(a, u0)] = (t, th, u, ph)
    for (a, u0), ln in summary.items():
        t, th, u, ph = curves[(a, u0)]
        _, th0, uu0, ph0 = curves[(a, 0.0)]
        after = [j for j, x in enumerate(t) if x >= delta - 1e-12]
        dth = [abs(x - y) for x, y in zip(th, th0)]
        du = [abs(x - y) for x, y in zip(u, uu0)]
        assert ln["sup_theta_all"] == pytest.approx(max(dth), abs=1e-15)
        assert ln["sup_theta_after"] == pytest.approx(max(dth[j] for j in after), abs=1e-15)
        assert ln["sup_u_after"] == pytest.approx(max(du[j] for j in after), abs=1e-15)
        if u0 == 0.0:
            continue
        # the initial velocity is forgotten after the layer: theta' differs by |u0| at t = 0 and
        # by a few percent of it after delta; theta keeps an O(alpha u0) shift
        assert ln["sup_u_all"] == pytest.approx(abs(u0), rel=1e-12)
        assert ln["sup_u_after"] < 0.1 * abs(u0)
        assert 0 < ln["sup_theta_after"] <= ln["sup_theta_all"] <= 4 * a * abs(u0)
    for u0 in (-1.0, 1.0, 2.0):                 # the shift shrinks with alpha (largest vs smallest)
        assert summary[(alphas[0], u0)]["sup_theta_after"] < \
            summary[(alphas[-1], u0)]["sup_theta_after"]
    return doc


#: SPEC §5: the PL numbers of discrete Adam on c = 0, theta0 = -1.5, alpha = 1e-3, 6000 iterates
SPEC_PL_ADAM = {"B": 1.352e-3, "omega": 2.333, "A": 13.05}


def data_pl_check(files):
    by = {os.path.basename(f): f for f in files}
    doc = load_json(by["pl-check.json"])
    st = doc["setting"]
    delta = st["delta"]
    assert delta == 1.0 and st["alpha"] == 1e-3
    assert st["steps"] == (MODS["pl-check"].QUICK_STEPS if st["quick"] else 5999)
    assert [ln["label"] for ln in doc["lanes"]] == ["adam", "adam-flow2 u0=1"]
    for ln in doc["lanes"]:
        pl = ln["pl"]
        assert ln["status"] == "ok" and pl["ok"] and ln["n_violations"] == 0
        B, omega, A = num(pl["B"]), num(pl["omega"]), num(pl["A"])
        assert B > 0 and omega > 0 and A > 0 and doc["numbers"][ln["label"]]["A"] == A
        s, env = ln["s"], ln["env"]
        assert len(s) == len(env) == len(ln["bound"]) == len(ln["excess"]) == st["steps"] + 1
        top = max(num(e) for e in env)
        for si, e, b, x in zip(s, env, ln["bound"], ln["excess"]):
            if si < delta:
                assert b is None and x is None                 # NaN before delta
                continue
            assert num(b) == pytest.approx(A * math.exp(-omega * (si - delta)) + B, rel=1e-12)
            assert num(x) == pytest.approx(num(e) - num(b), abs=1e-12 * top)
            assert num(x) <= 1e-12 * top                       # env stays under the bound
        assert abs(num(pl["violation"])) <= 1e-12 * top
        assert num(ln["excess"][ln["touch"]]) == pytest.approx(0.0, abs=1e-12 * top)
    lo, hi = doc["zoom"]
    first = doc["lanes"][0]
    assert delta <= lo <= first["s"][first["touch"]] <= hi
    # the two models agree, and discrete Adam reproduces SPEC §5 on the full run
    a, f = (doc["lanes"][i]["pl"] for i in (0, 1))
    for q in ("B", "omega", "A"):
        assert f[q] == pytest.approx(a[q], rel=0.05)
        if not st["quick"]:
            assert a[q] == pytest.approx(SPEC_PL_ADAM[q], rel=0.02)
    return doc


def data_positivity_moments(files):
    by = {os.path.basename(f): f for f in files}
    doc = load_json(by["positivity-moments.json"])
    st = doc["setting"]
    assert (st["beta1"], st["beta2"], st["alpha"]) == (0.5, 0.2, 1e-2)
    steps = st["steps"]
    assert steps == (MODS["positivity-moments"].QUICK_STEPS if st["quick"] else 269)
    lo, hi = doc["inset"]
    assert 0 <= lo < hi <= steps
    if not st["quick"]:
        assert doc["inset"] == [230, 250]
    keys = [(ln["model"], ln["u0"]) for ln in doc["lanes"]]
    assert keys == [("adam", None), ("adam-flow1", None), ("adam-flow2", 0.0), ("adam-flow2", 1.0)]
    lanes = _lanes_of(by["positivity-moments.csv"], "model", "u0")
    assert len(lanes) == 4
    for ln in doc["lanes"]:
        rows = lanes[(ln["model"], "" if ln["u0"] is None else str(ln["u0"]))]
        assert ln["status"] == "ok" and ln["n_samples"] == len(rows) == steps + 1
        assert [int(r["k"]) for r in rows] == list(range(steps + 1))
        th, f, m, v = ([num(r[c]) for r in rows] for c in ("theta", "f", "m", "v"))
        assert th[0] == -1.5 and m[0] == 0.0 == v[0]
        for r, x, fx in zip(rows, th, f):
            assert num(r["t"]) == pytest.approx(int(r["k"]) * 1e-2, rel=1e-9, abs=1e-12)
            assert fx == pytest.approx(rb1d(x, 1.5), rel=1e-9, abs=1e-12)
        assert th[-1] > th[0] + 0.5                             # the lane moved towards theta* = 1
        if not st["quick"]:
            assert abs(th[-1] - 1.0) < 0.1                      # and reached it
        # min v is computed from the run (the curves written), not assumed
        assert ln["min_v"] == pytest.approx(min(v), abs=1e-15)
        assert ln["min_v_after_start"] == pytest.approx(min(v[1:]), abs=1e-15)
        assert ln["v_negative"] == (min(v) < 0)
        assert ln["condition_applicable"] and 0 <= ln["condition_holds_count"] <= steps + 1
    adam = lanes[("adam", "")]
    assert min(num(r["v"]) for r in adam) >= 0 and not doc["lanes"][0]["v_negative"]
    return doc

DATA = {"trajectories": data_trajectories, "trajectories-global": data_trajectories_global,
        "basin": data_basin, "refine": data_refine, "velocity": data_velocity, "pl": data_pl,
        "positivity": data_positivity, "heredia2024-convex": data_heredia2024_convex,
        "heredia2024-mse": data_heredia2024_mse,
        "heredia2024-doublewell": data_heredia2024_doublewell, "jump": data_jump,
        "polyak": data_polyak, "hill": data_hill, "modified": data_modified,
        "loss-landscape": data_loss_landscape, "dynamics": data_dynamics,
        "refine-errors": data_refine_errors,
        "velocity-independence": data_velocity_independence, "pl-check": data_pl_check,
        "positivity-moments": data_positivity_moments}


# -- tests ------------------------------------------------------------------------------------------

def test_every_figure_has_a_data_check():
    assert set(DATA) == set(MODS)


@pytest.mark.parametrize("name", list(MODS))
def test_figure_module_quick(name, tmp_path):
    mod = MODS[name]
    assert mod.NAME == name and mod.TITLE
    msgs = []
    with text_layout.recording() as overlaps:
        files = mod.make(str(tmp_path), progress=msgs.append,
                         **build.make_kwargs(mod, scheme="exact", quick=True))
    pngs = [f for f in files if f.endswith(".png")]
    # every PNG went through save_figure, and none has overlapping text boxes
    assert set(pngs) <= set(overlaps)
    assert {os.path.basename(p): o for p, o in overlaps.items() if o} == {}
    assert pngs and any(f.endswith((".csv", ".json")) for f in files)
    assert len(set(files)) == len(files)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(f) for f in files)
    for f in pngs:
        check_png(f)
    for f in files:                     # figure data are reproducible: no wall times in them
        if f.endswith(".json"):
            assert "runtime_s" not in open(f).read(), f
    DATA[name](files)
    assert msgs and all(isinstance(m, str) and m for m in msgs)


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
    for f in files:
        if f.endswith(".png"):
            check_png(f)
    data_trajectories(files, scheme="exact")
    data_trajectories(files, scheme="paper")
    # the paper scheme and the exact flows are different solutions of nearby equations
    ex, pa = (read_csv(os.path.join(str(tmp_path), f"trajectories{s}.csv")) for s in ("", "-paper"))
    assert len(ex) == len(pa)
    gap = max(abs(num(a["theta"]) - num(b["theta"])) for a, b in zip(ex, pa)
              if a["model"] != "adam")
    assert 0 < gap < 0.02


def test_velocity_paper_scheme_small(tmp_path):
    from analysis.velocity import velocity
    from paper_figs import _common

    pr = _common.problem("heredia2026-velocity", "velocity", "paper", alpha=[5e-2, 1e-1])
    res = velocity(pr, delta=1.0, horizon=3.0)
    assert res["scheme"] == "paper" and len(res["rows"]) == 6
    assert {(r["u0"], r["alpha"]) for r in res["rows"]} == {
        (u, a) for u in (-1.0, 1.0, 2.0) for a in (5e-2, 1e-1)}
    for r in res["rows"]:
        assert r["converged"] and r["status"] == "ok"
        assert 0 < num(r["sup_theta"]) < 1 and 0 < num(r["sup_f"]) < 10


def test_basin_paper_scheme_small():
    from analysis.basin import basin_study

    res = basin_study(landscape="rosenbrock1d(c=4)", models=["adam", "adam-flow2"],
                      theta0=[-1.5], alpha=[1e-2, 5e-2], epochs=[60, 40], u0=[1.0],
                      scheme="paper")
    assert res["scheme"] == "paper" and len(res["rows"]) == 4
    flow = [r for r in res["rows"] if r["model"] == "adam-flow2"]
    assert len(flow) == 2 and all(r["status"] == "ok" and r["basin"] in (0, 1) for r in flow)
    for r in res["rows"]:
        x = num(r["final_theta"][0])
        assert abs(x - (-1.5)) > 0.01                         # the lane moved from theta0
        assert r["steps"] == {1e-2: 59, 5e-2: 39}[r["alpha"]]
        nearest = min(range(2), key=lambda i: abs(x - res["minima"][i]["x"][0]))
        assert r["basin"] == nearest
    adam = {r["alpha"]: num(r["final_theta"][0]) for r in res["rows"] if r["model"] == "adam"}
    for r in flow:                                             # the model tracks discrete Adam
        assert abs(num(r["final_theta"][0]) - adam[r["alpha"]]) < 0.1


def test_build_writes_report(tmp_path):
    files = build.main(out=str(tmp_path), only=["trajectories"], scheme="exact", quick=True,
                       quiet=True)
    assert [os.path.basename(f) for f in files] == ["trajectories.png", "trajectories.csv",
                                                    "REPORT.md"]
    check_png(files[0])
    data_trajectories(files)
    text = open(files[-1]).read()
    assert text.startswith("# Fidelity report") and "## Conclusions" in text


def test_heredia2024_convex_quick_both(tmp_path):
    mod = MODS["heredia2024-convex"]
    files = mod.make(str(tmp_path), **build.make_kwargs(mod, scheme="both", quick=True))
    names = {os.path.basename(f) for f in files}
    assert names == {"heredia2024-convex.png", "heredia2024-convex.csv",
                     "heredia2024-convex.json"}
    check_png(os.path.join(str(tmp_path), "heredia2024-convex.png"))
    data = data_heredia2024_convex(files, schemes=("exact", "paper"))
    assert data["schemes"] == ["exact", "paper"] and len(data["lanes"]) == 16
    rows = open(os.path.join(str(tmp_path), "heredia2024-convex.csv")).read().splitlines()
    assert rows[0].startswith("optimizer") and any(",paper2024," in r for r in rows)
    if data["published_source"]:
        adam = [ln for ln in data["lanes"] if ln["optimizer"] == "adam"]
        assert all(ln["max_distance"]["published_nonlocal_vs_paper2024"] < 1e-4 for ln in adam)


def test_pl_alpha_sweep_quick(tmp_path):
    mod = MODS["pl"]
    files = mod.make(str(tmp_path), **build.make_kwargs(mod, scheme="exact", quick=True))
    assert os.path.join(str(tmp_path), "pl-alpha.png") in files
    for f in files:
        if f.endswith(".png"):
            check_png(f)
    sweep = load_json(os.path.join(str(tmp_path), "pl.json"))["alpha_sweep"]
    assert sweep["horizon"] == 6.0 and len(sweep["rows"]) == 4
    assert all(r["ok"] and r["omega"] > 0 for r in sweep["rows"])
    assert {r["alpha"] for r in sweep["rows"]} == set(mod.QUICK_ALPHAS)
    data_pl(files)


@pytest.mark.parametrize("name", ["heredia2024-mse", "heredia2024-doublewell"])
def test_heredia2024_mse_doublewell_quick_both(name, tmp_path):
    mod = MODS[name]
    files = mod.make(str(tmp_path), quick=True, scheme="both")
    assert {os.path.basename(f) for f in files} == {f"{name}.{e}" for e in ("png", "csv", "json")}
    check_png(os.path.join(str(tmp_path), f"{name}.png"))
    doc = DATA[name](files, schemes=("exact", "paper"))
    assert doc["quick"] and doc["skipped_paper2024"] and doc["lanes"]
    # the lanes at alpha 0.01 are the ones skipped by the paper2024 re-run
    assert {s["alpha"] for s in doc["skipped_paper2024"]} == {0.01}


def test_scheme_both_runs_exact_only_figures_under_exact():
    # `make figs` runs --scheme both: a figure without the paper scheme runs under exact, and a
    # single scheme a figure lacks is still an error
    exact_only = [m for m in MODS.values() if getattr(m, "SCHEMES", None) == ("exact",)]
    assert exact_only
    for mod in exact_only:
        kw = build.make_kwargs(mod, scheme="both")
        assert kw.get("scheme", "exact") == "exact"
        with pytest.raises(ConfigError, match="paper scheme not available"):
            build.make_kwargs(mod, scheme="paper")


def test_figs_list_names_every_module(capsys):
    assert cli_main(["figs", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in out] == list(MODS)
    assert all(len(ln.split(None, 1)) == 2 for ln in out)          # a name and what it shows
