"""Build every reproduced figure: ``adamflow figs`` / ``make figs``.

Each figure is one module of :mod:`paper_figs` exposing ``NAME``, ``TITLE`` and
``make(out_dir: str, progress) -> list[str]`` (the files it wrote: PNG plus the data behind it).
``progress`` is a callable ``progress(message)`` the module may call between stages.
"""
from __future__ import annotations

import importlib
import os
import time

from tqdm import tqdm

from adamflow.errors import ConfigError

#: figure modules, in build order
MODULES = ("paper_figs.trajectories",)


def figure_modules() -> dict:
    mods = {}
    for path in MODULES:
        mod = importlib.import_module(path)
        mods[mod.NAME] = mod
    return mods


def main(out: str = "paper_figs/out", only: list[str] | None = None, quiet: bool = False) -> list[str]:
    mods = figure_modules()
    names = list(mods)
    if only:
        unknown = [n for n in only if n not in mods]
        if unknown:
            raise ConfigError(f"unknown figure {unknown[0]!r}; choose from: {', '.join(names)}")
        names = [n for n in names if n in only]
    os.makedirs(out, exist_ok=True)
    written: list[str] = []
    bar = tqdm(names, desc="figures", unit="fig", disable=quiet)
    for name in bar:
        bar.set_postfix_str(name)
        t0 = time.perf_counter()
        files = mods[name].make(out, progress=(lambda msg: bar.set_postfix_str(f"{name}: {msg}")))
        written += files
        if not quiet:
            tqdm.write(f"{name}: {', '.join(files)} ({time.perf_counter() - t0:.1f} s)")
    if not quiet:
        print(f"wrote {len(written)} files to {out}/")
    return written
