"""Writing results: JSON and CSV, atomically (write to a temporary file, then rename).

An interrupted run never leaves a truncated file behind: the previous file (if any) stays intact
until the new one is complete.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
from typing import Any

from core import text_layout


def _clean(x: Any) -> Any:
    """NaN/inf -> None so that the JSON is standard."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _atomic(path: str, write, suffix: str = "") -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    The temporary file gets the permissions a plain ``open`` would give (mkstemp makes it 0600).
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        text_layout.record(fig, path)
        _atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), suffix=".png")
    finally:
        plt.close(fig)


def dumps_json(obj: Any, indent: int | None = None) -> str:
    return json.dumps(_clean(obj), indent=indent, allow_nan=False)


def write_json(obj: Any, path: str) -> None:
    """``path == '-'`` prints to stdout."""
    text = dumps_json(obj)
    if path == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        atomic_write_text(path, text + "\n")


def write_csv(header: list[str], rows: list[list[Any]], path: str) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow(["" if (isinstance(v, float) and not math.isfinite(v)) else v for v in r])
    if path == "-":
        sys.stdout.write(buf.getvalue())
    else:
        atomic_write_text(path, buf.getvalue())
