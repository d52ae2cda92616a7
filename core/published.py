"""Where the published reference data live.

The trajectories of the first-order IDE paper (``heredia_2411_v1_notebook_traces.json``, SPEC §8.2)
sit in the ``shared/`` folder beside the checkout. :func:`heredia2411_traces_path` finds it: the
environment variable ``ADAMFLOW_HEREDIA2411_TRACES``, then ``../shared`` next to the repository,
then ``./shared`` inside it. Returns None when absent (figures then omit the published markers and
the comparison tests are skipped).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

TRACES_FILE = "heredia_2411_v1_notebook_traces.json"


def heredia2411_traces_path() -> Path | None:
    env = os.environ.get("ADAMFLOW_HEREDIA2411_TRACES")
    repo = Path(__file__).resolve().parents[1]
    for cand in ([Path(env)] if env else []) + [repo.parent / "shared" / TRACES_FILE,
                                                 repo / "shared" / TRACES_FILE]:
        if cand.exists():
            return cand
    return None


def load_heredia2411(figures: set[str] | None = None) -> dict:
    """The published traces as ``{figure: {trace name: {alpha: (x list, y list)}}}`` plus
    ``"_source"`` (the file), restricted to ``figures`` when given; ``{}`` when the file is absent.
    Subplot axis ``x`` holds the alpha = 0.1 runs, ``x2`` the alpha = 0.01 runs (SPEC §8.2)."""

    path = heredia2411_traces_path()
    if path is None:
        return {}
    doc = json.loads(path.read_text())
    out: dict = {}
    for fig, d in doc.get("figures", {}).items():
        if figures is not None and fig not in figures:
            continue
        for tr in d.get("traces", []):
            alpha = 0.1 if tr.get("xaxis") in ("x", "x1") else 0.01
            out.setdefault(fig, {}).setdefault(tr["name"], {})[alpha] = (
                [float(x) for x in tr["x"]], [float(y) for y in tr["y"]])
    out["_source"] = str(path)
    return out
