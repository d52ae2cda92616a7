"""Command-line argument types shared by ``adamflow run`` and the study commands.

They live below the studies (layer ``runner``) so that both the CLI and :mod:`analysis` can use them.
Every malformed value raises ``argparse.ArgumentTypeError``; the CLI's parser turns it into one line
``error: ...`` and exit code 2.
"""
from __future__ import annotations

import argparse
import re

_NUMLIKE = re.compile(r"^-[\d.]")


def parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text.strip()!r}") from None


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text.strip()!r}") from None


def parse_vector(text: str) -> list[float]:
    parts = [p for p in text.strip().split(",")]
    if not parts or any(p.strip() == "" for p in parts):
        raise argparse.ArgumentTypeError(f"malformed vector {text.strip()!r} (use e.g. -1.2,1)")
    return [parse_float(p) for p in parts]


def protect_negative_numbers(argv: list[str]) -> list[str]:
    """argparse reads '-1.2,1' or '-1e-3' as option flags; a leading space makes them values."""
    return [" " + a if _NUMLIKE.match(a) else a for a in argv]
