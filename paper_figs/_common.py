"""Shared helpers of the figure modules: presets as study inputs, schemes, output files."""
from __future__ import annotations

import os

from adamflow import presets
from adamflow.errors import ConfigError


def schemes(scheme: str, *, supported: tuple[str, ...] = ("exact", "paper"), name: str = ""
            ) -> list[str]:
    """The flow schemes to draw for ``--scheme`` (exact, paper or both); ConfigError when one is
    unknown, not provided by the library yet, or not honoured by this figure's study."""
    from analysis.cli_options import check_scheme

    if scheme not in ("exact", "paper", "both"):
        raise ConfigError(f"unknown scheme {scheme!r} (choose from: exact, paper, both)")
    out = ["exact", "paper"] if scheme == "both" else [scheme]
    for s in out:
        check_scheme(s)
        if s not in supported:
            raise ConfigError(f"{s} scheme not available for figure {name!r}")
    return out


def suffix(scheme: str) -> str:
    return "" if scheme == "exact" else f"-{scheme}"


def path(out_dir: str, name: str, scheme: str, ext: str) -> str:
    return os.path.join(out_dir, f"{name}{suffix(scheme)}.{ext}")


def problem(preset: str, command: str, scheme: str = "exact", **override):
    """An :class:`analysis.cli_options.Problem` from preset defaults of ``command``."""
    from analysis.cli_options import Problem

    d = presets.command_defaults(preset, command)
    d.update(override)
    return Problem(landscape=d["landscape"], theta0=d["theta0"], alpha=list(d["alpha"]),
                   models=list(d["models"]), beta1=d["beta1"], beta2=d["beta2"], eps=d["eps"],
                   u0=list(d.get("u0", [0.0])), scheme=scheme)
