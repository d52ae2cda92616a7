"""Fidelity report ``REPORT.md``: every reproduced number by the published scheme (arXiv 2602.09101)
and by the exact model, their gap, and which published conclusions hold for the exact equations and
which depend on the numerical scheme.

Built by :func:`write_report` from the JSON files the figure modules wrote in the same
``adamflow figs`` run (``<name>.json`` exact, ``<name>-paper.json`` paper scheme). Every number and
yes/no in the report is computed from those files; nothing is hard-coded.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from core.output import atomic_write_text

STUDIES = ("refine", "basin", "velocity", "pl", "positivity")
SCHEMES = ("paper", "exact")
#: further result files of one scheme: the paper scheme with exact (piecewise-linear)
#: convolutions beside the published quadrature (``refine-paper-linear.json``)
VARIANTS = ("paper-linear",)
#: PL violation counted as zero when <= VIOLATION_RTOL * (|A| + |B|) (round-off)
VIOLATION_RTOL = 1e-9


def load(files: list[str]) -> dict[tuple[str, str], dict]:
    """(study, scheme) -> parsed JSON for the study files among ``files``."""
    out = {}
    for f in files:
        base = os.path.basename(f)
        if not base.endswith(".json"):
            continue
        stem = base[:-5]
        for name in STUDIES:
            for s in SCHEMES + VARIANTS:
                if stem == name + ("" if s == "exact" else f"-{s}"):
                    with open(f) as fh:
                        out[(name, s)] = json.load(fh)
    return out


# -- formatting ----------------------------------------------------------------------------------

def num(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    return f"{x:.4g}"


def gap(p, e):
    if p is None or e is None:
        return None
    try:
        d = float(p) - float(e)
    except (TypeError, ValueError):
        return None
    return d if math.isfinite(d) else None


def yn(b) -> str:
    return "n/a" if b is None else ("yes" if b else "no")


def u0s(u) -> str:
    return "-" if u is None else f"{u:g}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c if isinstance(c, str) else num(c) for c in r) + " |" for r in rows]
    return out + [""]


class Claims:
    """Computed statements: (section, text, paper verdict, exact verdict)."""

    def __init__(self):
        self.items: list[tuple[str, str, bool | None, bool | None]] = []

    def add(self, section: str, text: str, paper, exact) -> str:
        self.items.append((section, text, paper, exact))
        return f"- {text}: paper scheme {yn(paper)}, exact {yn(exact)}"


def _idx(rows, *keys):
    return {tuple(r.get(k) for k in keys): r for r in rows}


def _both(data, name):
    return data.get((name, "paper")), data.get((name, "exact"))


# -- sections ------------------------------------------------------------------------------------

def _refine(data, claims: Claims) -> list[str]:
    P, E = _both(data, "refine")
    if not P and not E:
        return []
    L = data.get(("refine", "paper-linear"))
    quad = (P or {}).get("quadrature", "exact")
    quad = "exact conv." if quad == "exact" else quad
    lines = ["## alpha-refinement (refine)", "",
             "E_T = |theta_K - theta_c(T_used)| against discrete Adam (paper protocol); "
             f"paper = the published scheme with its memories by quadrature {quad}"
             + ("; paper, linear = the same scheme with the exact convolutions of g piecewise "
                "linear on each substep; quadrature effect = (paper - paper, linear) / paper, "
                "linear" if L else "")
             + "; gap = paper - exact.", ""]
    pr = _idx(P["rows"], "model", "u0", "alpha") if P else {}
    er = _idx(E["rows"], "model", "u0", "alpha") if E else {}
    lr = _idx(L["rows"], "model", "u0", "alpha") if L else {}
    keys = sorted(set(pr) | set(er), key=lambda k: (k[0], -1e300 if k[1] is None else k[1], k[2]))
    rows = []
    for k in keys:
        p, e = pr.get(k, {}).get("E_T"), er.get(k, {}).get("E_T")
        row = [k[0], u0s(k[1]), k[2], p]
        if L:
            q = lr.get(k, {}).get("E_T")
            d = gap(p, q)
            row += [q, None if d is None or not q else d / q]
        rows.append(row + [e, gap(p, e)])
    head = ["model", "u0", "alpha", f"E_T paper ({quad})"]
    if L:
        head += ["E_T paper, linear", "quadrature effect"]
    lines += table(head + ["E_T exact", "gap"], rows)
    ps = _idx(P["slopes"], "model", "u0") if P else {}
    es = _idx(E["slopes"], "model", "u0") if E else {}
    ls = _idx(L["slopes"], "model", "u0") if L else {}
    skeys = sorted(set(ps) | set(es), key=lambda k: (k[0], -1e300 if k[1] is None else k[1]))
    rows = []
    for k in skeys:
        p, e = ps.get(k, {}).get("p_T"), es.get(k, {}).get("p_T")
        row = [k[0], u0s(k[1]), p]
        if L:
            q = ls.get(k, {}).get("p_T")
            row += [q, gap(p, q)]
        rows.append(row + [e, gap(p, e)])
    lines += ["Log-log slopes of E_T against alpha:", ""]
    head = ["model", "u0", f"p_T paper ({quad})"]
    if L:
        head += ["p_T paper, linear", "quadrature effect"]
    lines += table(head + ["p_T exact", "gap"], rows)

    def closer(rows_by_key, a, u):
        f1 = rows_by_key.get(("adam-flow1", None, a), {}).get("E_T")
        f2 = rows_by_key.get(("adam-flow2", u, a), {}).get("E_T")
        return None if f1 is None or f2 is None else f2 < f1

    alphas = sorted({k[2] for k in keys})
    us = sorted({k[1] for k in keys if k[0] == "adam-flow2" and k[1] is not None})
    lines += ["Second-order model closer to discrete Adam (smaller E_T) than the first-order flow:", ""]
    for a in alphas:
        for u in us:
            lines.append(claims.add(
                "refine", f"second-order model (u0 = {u:g}) closer to discrete Adam than the "
                f"first-order flow at alpha = {a:g}",
                closer(pr, a, u) if P else None, closer(er, a, u) if E else None))
    f1p = ps.get(("adam-flow1", None), {}).get("p_T")
    f1e = es.get(("adam-flow1", None), {}).get("p_T")
    for u in us:
        sp = ps.get(("adam-flow2", u), {}).get("p_T")
        se = es.get(("adam-flow2", u), {}).get("p_T")
        lines.append(claims.add(
            "refine", f"E_T slope of the second-order model (u0 = {u:g}) larger than that of the "
            "first-order flow",
            None if sp is None or f1p is None else sp > f1p,
            None if se is None or f1e is None else se > f1e))
    return lines + [""]


def _basin(data, claims: Claims) -> list[str]:
    P, E = _both(data, "basin")
    if not P and not E:
        return []
    lines = ["## basin selection (basin)", "",
             "Final theta at s = (epochs-1) alpha; basin of the nearest minimizer; gap = paper - exact.",
             ""]
    fin = lambda r: None if r is None else (r.get("final_theta") or [None])[0]  # noqa: E731
    pr = _idx(P["rows"], "model", "u0", "alpha") if P else {}
    er = _idx(E["rows"], "model", "u0", "alpha") if E else {}
    keys = sorted(set(pr) | set(er), key=lambda k: (k[0], -1e300 if k[1] is None else k[1], k[2]))
    rows = []
    for k in keys:
        p, e = pr.get(k), er.get(k)
        rows.append([k[0], u0s(k[1]), k[2], fin(p), fin(e), gap(fin(p), fin(e)),
                     str((p or {}).get("basin_kind"))
                     + (" (paper fixed point not converged)" if (p or {}).get("converged") is False
                        else ""),
                     str((e or {}).get("basin_kind"))])
    lines += table(["model", "u0", "alpha", "final theta paper", "final theta exact", "gap",
                    "basin paper", "basin exact"], rows)

    def switches(rows_by_key, m, u):
        seq = sorted((k[2], r.get("basin_kind")) for k, r in rows_by_key.items()
                     if k[0] == m and k[1] == u)
        return [(a0, a1, b0, b1) for (a0, b0), (a1, b1) in zip(seq, seq[1:]) if b0 != b1]

    groups = sorted({k[:2] for k in keys}, key=lambda g: (g[0], -1e300 if g[1] is None else g[1]))
    for m, u in groups:
        lab = m + ("" if u is None else f" (u0 = {u:g})")
        desc = {}
        for s, rb, D in (("paper", pr, P), ("exact", er, E)):
            if D is None:
                desc[s] = None
                continue
            sw = switches(rb, m, u)
            desc[s] = sw
        txt = []
        for s in SCHEMES:
            if desc[s] is None:
                txt.append(f"{s}: n/a")
            elif not desc[s]:
                txt.append(f"{s}: no switch")
            else:
                txt.append(f"{s}: " + "; ".join(f"{b0} -> {b1} between alpha = {a0:g} and {a1:g}"
                                                for a0, a1, b0, b1 in desc[s]))
        lines.append(f"- basin switch of {lab}: " + ", ".join(txt))
        if m != "adam" and desc["paper"] is not None and desc["exact"] is not None:
            same = [(a0, a1) for a0, a1, _, _ in desc["paper"]] == \
                [(a0, a1) for a0, a1, _, _ in desc["exact"]]
            lines.append(f"  - same switch interval in both schemes: {yn(same)}")
    lines.append("")
    alphas = sorted({k[2] for k in keys})
    flows = [g for g in groups if g[0] != "adam"]
    for m, u in flows:
        for a in alphas:
            def agree(rb):
                ad = rb.get(("adam", None, a), {}).get("basin_kind")
                fl = rb.get((m, u, a), {}).get("basin_kind")
                return None if ad is None or fl is None else ad == fl
            lines.append(claims.add(
                "basin", f"{m}" + ("" if u is None else f" (u0 = {u:g})")
                + f" ends in the same basin as discrete Adam at alpha = {a:g}",
                agree(pr) if P else None, agree(er) if E else None))
    for s, D in (("paper", P), ("exact", E)):
        for t in (D or {}).get("threshold") or []:
            lines.append(f"- alpha* ({s}) of {t['model']}" + ("" if t["u0"] is None else
                         f" u0 = {t['u0']:g}") + f": {num(t['alpha_star'])}")
    return lines + [""]


def _velocity(data, claims: Claims) -> list[str]:
    P, E = _both(data, "velocity")
    if not P and not E:
        return []
    lines = ["## velocity independence (velocity)", "",
             "sup over [delta, T] of |theta_u0 - theta_0| of the second-order model; "
             "gap = paper - exact.", ""]
    pr = _idx(P["rows"], "model", "u0", "alpha") if P else {}
    er = _idx(E["rows"], "model", "u0", "alpha") if E else {}
    keys = sorted(set(pr) | set(er), key=lambda k: (k[0], k[1], k[2]))
    rows = []
    for k in keys:
        p, e = pr.get(k, {}).get("sup_theta"), er.get(k, {}).get("sup_theta")
        rows.append([k[0], u0s(k[1]), k[2], p, e, gap(p, e)])
    lines += table(["model", "u0", "alpha", "sup_theta paper", "sup_theta exact", "gap"], rows)
    ps = _idx(P["slopes"], "model", "u0") if P else {}
    es = _idx(E["slopes"], "model", "u0") if E else {}
    sk = sorted(set(ps) | set(es))
    rows = [[k[0], u0s(k[1]), ps.get(k, {}).get("p_theta"), es.get(k, {}).get("p_theta"),
             gap(ps.get(k, {}).get("p_theta"), es.get(k, {}).get("p_theta"))] for k in sk]
    lines += ["Log-log slopes of sup_theta against alpha:", ""]
    lines += table(["model", "u0", "p_theta paper", "p_theta exact", "gap"], rows)

    def decreasing(rb, m, u):
        seq = [r.get("sup_theta") for k, r in sorted(rb.items(), key=lambda kv: kv[0][2])
               if k[0] == m and k[1] == u]
        if len(seq) < 2 or any(x is None for x in seq):
            return None
        return all(x < y for x, y in zip(seq, seq[1:]))

    for m, u in sk:
        lines.append(claims.add(
            "velocity", f"sup |theta_u0 - theta_0| of {m} (u0 = {u:g}) decreases monotonically "
            "as alpha -> 0", decreasing(pr, m, u) if P else None,
            decreasing(er, m, u) if E else None))
    return lines + [""]


def _lane_key(r):
    return (r["model"], r.get("u0"), r.get("alpha"))


def _pl(data, claims: Claims) -> list[str]:
    P, E = _both(data, "pl")
    if not P and not E:
        return []
    lines = ["## PL bound (pl)", "",
             "env <= A exp(-omega (s - delta)) + B fitted per lane; gap = paper - exact.", ""]
    pr = {_lane_key(r): r for r in (P or {}).get("lanes", [])}
    er = {_lane_key(r): r for r in (E or {}).get("lanes", [])}
    keys = sorted(set(pr) | set(er), key=lambda k: (k[0], -1e300 if k[1] is None else k[1]))
    rows = []
    for k in keys:
        for q in ("B", "omega", "A", "violation"):
            p = ((pr.get(k) or {}).get("pl") or {}).get(q)
            e = ((er.get(k) or {}).get("pl") or {}).get(q)
            rows.append([k[0], u0s(k[1]), q, p, e, gap(p, e)])
    lines += table(["model", "u0", "quantity", "paper", "exact", "gap"], rows)

    def holds(rec):
        pl = (rec or {}).get("pl")
        if not pl or pl.get("violation") is None or not pl.get("ok", True):
            return None
        scale = abs(pl.get("A") or 0.0) + abs(pl.get("B") or 0.0)
        return pl["violation"] <= VIOLATION_RTOL * max(scale, 1e-300)

    for k in keys:
        lines.append(claims.add(
            "pl", f"PL bound of {k[0]}" + ("" if k[1] is None else f" (u0 = {k[1]:g})")
            + f" holds with violation 0 (<= {VIOLATION_RTOL:g} (|A| + |B|))",
            holds(pr.get(k)) if P else None, holds(er.get(k)) if E else None))
    return lines + [""]


def _positivity(data, claims: Claims) -> list[str]:
    P, E = _both(data, "positivity")
    if not P and not E:
        return []
    lines = ["## moment positivity (positivity)", "",
             "min v over the run (v(0) = 0), min v over s > 0, and the sufficient-condition counter "
             "(samples where it holds / samples); gap = paper - exact.", ""]
    pr = {_lane_key(r): r for r in (P or {}).get("lanes", [])}
    er = {_lane_key(r): r for r in (E or {}).get("lanes", [])}
    keys = sorted(set(pr) | set(er), key=lambda k: (k[0], -1e300 if k[1] is None else k[1]))
    rows = []
    for k in keys:
        p, e = pr.get(k) or {}, er.get(k) or {}
        for q in ("min_v", "min_v_after_start", "condition_holds_count", "n_samples"):
            rows.append([k[0], u0s(k[1]), q, p.get(q), e.get(q), gap(p.get(q), e.get(q))])
    lines += table(["model", "u0", "quantity", "paper", "exact", "gap"], rows)

    def positive(rec):
        if not rec or rec.get("min_v_after_start") is None:
            return None
        return rec["min_v_after_start"] >= 0.0

    for k in keys:
        lines.append(claims.add(
            "positivity", f"v of {k[0]}" + ("" if k[1] is None else f" (u0 = {k[1]:g})")
            + " stays nonnegative for s > 0", positive(pr.get(k)) if P else None,
            positive(er.get(k)) if E else None))
    return lines + [""]


def _conclusions(claims: Claims) -> list[str]:
    cats = {"both": [], "exact only": [], "paper only": [], "neither": [], "incomplete": []}
    for sec, text, p, e in claims.items:
        if p is None or e is None:
            cats["incomplete"].append((sec, text))
        elif p and e:
            cats["both"].append((sec, text))
        elif e:
            cats["exact only"].append((sec, text))
        elif p:
            cats["paper only"].append((sec, text))
        else:
            cats["neither"].append((sec, text))
    n = len(claims.items)
    lines = ["## Conclusions: exact equations vs numerical scheme", "",
             f"{n} computed statements; {len(cats['both'])} hold for both the exact equations and "
             f"the paper scheme, {len(cats['exact only']) + len(cats['paper only'])} depend on the "
             f"scheme, {len(cats['neither'])} fail for both, {len(cats['incomplete'])} could not be "
             "decided (a scheme's data missing).", ""]
    titles = {"both": "Hold for the exact equations and the paper scheme",
              "exact only": "Hold for the exact equations only (the paper scheme does not show them)",
              "paper only": "Depend on the numerical scheme (paper scheme only, not the exact "
                            "equations)",
              "neither": "Hold for neither", "incomplete": "Undecided (missing data)"}
    for c, items in cats.items():
        if not items:
            continue
        lines += [f"### {titles[c]} ({len(items)})", ""]
        lines += [f"- [{sec}] {text}" for sec, text in items]
        lines.append("")
    return lines


def render(data: dict[tuple[str, str], dict]) -> str:
    claims = Claims()
    lines = ["# Fidelity report: published scheme (arXiv 2602.09101) vs exact model", "",
             "Generated by `adamflow figs` from the JSON data of this run. For every reproduced "
             "number: the value by the paper scheme, by the exact model, and the gap "
             "(paper - exact). n/a: not computed in this run.", ""]
    have = {s for _, s in data}
    if "paper" not in have:
        lines += ["**The paper-scheme columns need `adamflow figs --scheme both` (or `--scheme "
                  "paper`); this run computed the exact model only.**", ""]
    if "exact" not in have:
        lines += ["**The exact columns need `adamflow figs --scheme both`; this run computed the "
                  "paper scheme only.**", ""]
    for sec in (_refine, _basin, _velocity, _pl, _positivity):
        lines += sec(data, claims)
    lines += _conclusions(claims)
    return "\n".join(lines).rstrip() + "\n"


def write_report(out_dir: str, files: list[str] | None = None) -> str:
    """Write ``out_dir/REPORT.md`` from the study JSONs among ``files`` (default: all in out_dir)."""
    if files is None:
        files = [os.path.join(out_dir, f) for f in sorted(os.listdir(out_dir))]
    path = os.path.join(out_dir, "REPORT.md")
    atomic_write_text(path, render(load(files)))
    return path
