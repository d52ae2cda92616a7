"""Where the published reference data live.

The trajectories of the first-order IDE paper (``heredia_2411_v1_notebook_traces.json``, SPEC §8.2)
sit in the ``shared/`` folder beside the checkout. :func:`heredia2411_traces_path` finds it: the
environment variable ``ADAMFLOW_HEREDIA2411_TRACES``, then ``../shared`` next to the repository,
then ``./shared`` inside it. Returns None when absent (figures then omit the published markers and
the comparison tests are skipped).
"""
from __future__ import annotations

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
