"""paper_figs.report on a small synthetic set of study JSONs."""
import json
import os

from paper_figs import report


def _w(d, name, data):
    p = os.path.join(d, name)
    with open(p, "w") as fh:
        json.dump(data, fh)
    return p


def _refine(e1, e2):
    rows = [{"alpha": a, "model": "adam-flow1", "u0": None, "E_T": e1[i]} for i, a in
            enumerate((0.01, 0.05))]
    rows += [{"alpha": a, "model": "adam-flow2", "u0": 1.0, "E_T": e2[i]} for i, a in
             enumerate((0.01, 0.05))]
    return {"rows": rows, "slopes": [{"model": "adam-flow1", "u0": None, "p_T": 1.0},
                                     {"model": "adam-flow2", "u0": 1.0, "p_T": 2.0}]}


def _basin(kinds):
    rows = [{"alpha": a, "model": "adam", "u0": None, "final_theta": [t], "basin_kind": k}
            for a, t, k in ((0.01, -0.85, "local"), (0.1, 1.0, "global"))]
    rows += [{"alpha": a, "model": "adam-flow2", "u0": 1.0, "final_theta": [t], "basin_kind": k}
             for a, (t, k) in zip((0.01, 0.1), kinds)]
    return {"rows": rows, "threshold": []}


def _pl(viol):
    return {"lanes": [{"model": "adam-flow2", "u0": 1.0, "alpha": 1e-3,
                       "pl": {"B": 0.5, "omega": 2.0, "A": 1.0, "violation": viol, "ok": True}}]}


def _pos(mv):
    return {"lanes": [{"model": "adam-flow2", "u0": 0.0, "alpha": 1e-2, "min_v": 0.0,
                       "min_v_after_start": mv, "condition_holds_count": 3, "n_samples": 5}]}


def _vel(s):
    return {"rows": [{"model": "adam-flow2", "u0": 1.0, "alpha": a, "sup_theta": v}
                     for a, v in zip((0.01, 0.05), s)],
            "slopes": [{"model": "adam-flow2", "u0": 1.0, "p_theta": 1.0}]}


def test_report_both_schemes(tmp_path):
    d = str(tmp_path)
    files = [
        # paper: flow2 closer at both alphas; exact: only at 0.05
        _w(d, "refine-paper.json", _refine([0.2, 0.4], [0.1, 0.3])),
        _w(d, "refine.json", _refine([0.2, 0.4], [0.25, 0.3])),
        _w(d, "basin-paper.json", _basin([(-0.85, "local"), (1.0, "global")])),
        _w(d, "basin.json", _basin([(-0.86, "local"), (-0.8, "local")])),
        _w(d, "velocity-paper.json", _vel([0.01, 0.05])),
        _w(d, "velocity.json", _vel([0.01, 0.04])),
        _w(d, "pl-paper.json", _pl(0.0)),
        _w(d, "pl.json", _pl(0.1)),
        _w(d, "positivity-paper.json", _pos(-1e-3)),
        _w(d, "positivity.json", _pos(2e-3)),
        _w(d, "unrelated.json", {"x": 1}),
    ]
    path = report.write_report(d, files)
    assert path == os.path.join(d, "REPORT.md")
    text = open(path).read()
    assert "| adam-flow2 | 1 | 0.01 | 0.1 | 0.25 | -0.15 |" in text
    assert ("second-order model (u0 = 1) closer to discrete Adam than the first-order flow at "
            "alpha = 0.01: paper scheme yes, exact no") in text
    assert ("second-order model (u0 = 1) closer to discrete Adam than the first-order flow at "
            "alpha = 0.05: paper scheme yes, exact yes") in text
    assert ("basin switch of adam-flow2 (u0 = 1): paper: local -> global between alpha = 0.01 and "
            "0.1, exact: no switch") in text
    assert "ends in the same basin as discrete Adam at alpha = 0.1: paper scheme yes, exact no" in text
    assert "| adam-flow2 | 1 | 0.01 | -0.85 | -0.86 | 0.01 | local | local |" in text
    assert "holds with violation 0 (<= 1e-09 (|A| + |B|)): paper scheme yes, exact no" in text
    assert "stays nonnegative for s > 0: paper scheme no, exact yes" in text
    assert "decreases monotonically as alpha -> 0: paper scheme yes, exact yes" in text
    assert "| adam-flow2 | 1 | p_T" not in text
    concl = text.split("## Conclusions")[1]
    assert "### Hold for the exact equations and the paper scheme" in concl
    assert "### Depend on the numerical scheme (paper scheme only" in concl
    assert "### Hold for the exact equations only" in concl
    assert "the paper-scheme columns need" not in text.lower()


def test_report_exact_only_says_paper_columns_need_both(tmp_path):
    d = str(tmp_path)
    files = [_w(d, "refine.json", _refine([0.2, 0.4], [0.1, 0.3]))]
    text = open(report.write_report(d, files)).read()
    assert "`adamflow figs --scheme both`" in text
    assert "| adam-flow1 | - | 0.01 | n/a | 0.2 | n/a |" in text
    assert "paper scheme n/a, exact yes" in text
    assert "Undecided (missing data)" in text


def test_report_reads_only_given_files(tmp_path):
    d = str(tmp_path)
    _w(d, "pl.json", _pl(0.0))
    files = [_w(d, "refine.json", _refine([0.2, 0.4], [0.1, 0.3]))]
    text = open(report.write_report(d, files)).read()
    assert "## PL bound" not in text and "## alpha-refinement" in text
    assert "## PL bound" in open(report.write_report(d)).read()


def test_report_refine_quadrature_column(tmp_path):
    """With refine-paper-linear.json beside refine-paper.json, the refine table shows both
    quadratures and their relative difference; the paper column names its quadrature."""
    d = str(tmp_path)
    gl = _refine([0.2, 0.4], [0.1, 0.3])
    gl["quadrature"] = "gl1000"
    files = [_w(d, "refine-paper.json", gl),
             _w(d, "refine-paper-linear.json", _refine([0.25, 0.4], [0.1, 0.3])),
             _w(d, "refine.json", _refine([0.2, 0.4], [0.25, 0.3]))]
    text = open(report.write_report(d, files)).read()
    assert "| model | u0 | alpha | E_T paper (gl1000) | E_T paper, linear | quadrature effect |" \
        " E_T exact | gap |" in text
    # (0.2 - 0.25) / 0.25 = -0.2; gap paper - exact = 0
    assert "| adam-flow1 | - | 0.01 | 0.2 | 0.25 | -0.2 | 0.2 | 0 |" in text
    assert "| model | u0 | p_T paper (gl1000) | p_T paper, linear | quadrature effect |" in text


def test_report_refine_without_linear_file_keeps_three_columns(tmp_path):
    d = str(tmp_path)
    files = [_w(d, "refine-paper.json", _refine([0.2, 0.4], [0.1, 0.3])),
             _w(d, "refine.json", _refine([0.2, 0.4], [0.25, 0.3]))]
    text = open(report.write_report(d, files)).read()
    assert "| model | u0 | alpha | E_T paper (exact conv.) | E_T exact | gap |" in text
    assert "quadrature effect" not in text
