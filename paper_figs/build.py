"""Build every reproduced figure: ``adamflow figs`` / ``make figs``.

Each figure is one module of :mod:`paper_figs` exposing ``NAME``, ``TITLE`` and
``make(out_dir: str, progress) -> list[str]`` (the files it wrote: PNG plus the data behind it).
``progress`` is a callable ``progress(message)`` the module may call between stages. Modules may
also take ``quick`` (reduced size, for tests) and ``scheme`` (exact, paper or both; default both).
After the figures, :func:`paper_figs.report.write_report` writes ``REPORT.md`` (paper scheme vs
exact model) from the JSON files written in the same run.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import sys
import time

from tqdm import tqdm

from core import text_layout
from core.errors import ConfigError
from core.output import atomic_write_text
from paper_figs import report

#: figure modules, in build order
MODULES = ("paper_figs.trajectories", "paper_figs.trajectories_global", "paper_figs.basin",
           "paper_figs.refine", "paper_figs.velocity", "paper_figs.pl", "paper_figs.positivity",
           "paper_figs.heredia2024_convex", "paper_figs.heredia2024_mse",
           "paper_figs.heredia2024_doublewell", "paper_figs.jump_adam", "paper_figs.polyak",
           "paper_figs.hill", "paper_figs.modified", "paper_figs.loss_landscape",
           "paper_figs.dynamics", "paper_figs.refine_errors",
           "paper_figs.velocity_independence", "paper_figs.pl_check",
           "paper_figs.positivity_moments")

#: reduced sizes for modules without a ``quick`` parameter
QUICK_KWARGS = {"steps": 200}


def figure_modules() -> dict:
    mods = {}
    for path in MODULES:
        mod = importlib.import_module(path)
        mods[mod.NAME] = mod
    return mods


def make_kwargs(mod, *, scheme: str = "exact", quick: bool = False) -> dict:
    """The keyword arguments of ``mod.make`` for ``scheme`` and ``quick``."""
    params = inspect.signature(mod.make).parameters
    kw = {}
    supported = getattr(mod, "SCHEMES", ("exact", "paper") if "scheme" in params else ("exact",))
    wanted = ["exact", "paper"] if scheme == "both" else [scheme]
    usable = [s for s in wanted if s in supported]
    if not usable:
        ok = [n for n, m in figure_modules().items()
              if scheme in getattr(m, "SCHEMES", ("exact", "paper")
                                   if "scheme" in inspect.signature(m.make).parameters else ())]
        raise ConfigError(f"{scheme} scheme not available for figure {mod.NAME!r} "
                          f"(figures with it: {', '.join(ok) or 'none'}; use --only)")
    # "both" runs each figure under the schemes it has (an exact-only figure: exact)
    if "scheme" in params:
        kw["scheme"] = scheme if usable == wanted else usable[0]
    if quick:
        if "quick" in params:
            kw["quick"] = True
        else:
            kw.update({k: v for k, v in QUICK_KWARGS.items() if k in params})
    return kw


#: the progress manifest of a figure set, in its output folder
PROGRESS = ".figs-progress.json"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_progress(out: str, config: dict) -> tuple[dict[str, dict[str, str]], dict[str, dict]]:
    """(done, overlaps) of the modules that an earlier run of the same configuration finished and
    whose files are all still there unchanged: done maps name -> {file relative to out:
    SHA-256}, overlaps name -> its PNGs' overlapping text boxes (one read of the manifest)."""
    try:
        with open(os.path.join(out, PROGRESS)) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return {}, {}
    if doc.get("config") != config:
        return {}, {}
    done = {name: files for name, files in doc.get("done", {}).items()
            if all(os.path.isfile(os.path.join(out, f)) and _sha256(os.path.join(out, f)) == h
                   for f, h in files.items())}
    overlaps = {n: o for n, o in doc.get("overlaps", {}).items() if n in done}
    return done, overlaps


def _save_progress(out: str, config: dict, done: dict[str, dict[str, str]],
                   overlaps: dict[str, dict]) -> None:
    """The manifest: finished modules (file -> SHA-256) and, per module, its PNGs' overlapping
    text boxes (:mod:`core.text_layout`; empty when the figure is clean)."""
    atomic_write_text(os.path.join(out, PROGRESS),
                      json.dumps({"config": config, "done": done, "overlaps": overlaps},
                                 indent=1, sort_keys=True) + "\n")


def main(out: str = "paper_figs/out", only: list[str] | None = None, quiet: bool = False,
         scheme: str = "both", quick: bool = False, resume: bool = False) -> list[str]:
    """Draw the figures ``only`` (default all) into ``out`` and write the report.

    After each module its files and their SHA-256 are recorded in ``out/.figs-progress.json``
    (atomically). ``resume``: modules that an earlier run of the same configuration (scheme,
    quick) finished, with their files unchanged, are not drawn again; a run killed in the middle
    of a module redraws that module. Every figure module is deterministic, so a resumed set is
    byte for byte the set of an uninterrupted run."""
    if scheme not in ("exact", "paper", "both"):
        raise ConfigError(f"unknown scheme {scheme!r} (choose from: exact, paper, both)")
    mods = figure_modules()
    names = list(mods)
    if only:
        unknown = [n for n in only if n not in mods]
        if unknown:
            raise ConfigError(f"unknown figure {unknown[0]!r}; choose from: {', '.join(names)}")
        names = [n for n in names if n in only]
    kwargs = {n: make_kwargs(mods[n], scheme=scheme, quick=quick) for n in names}
    os.makedirs(out, exist_ok=True)
    config = {"scheme": scheme, "quick": bool(quick)}
    # the manifest names files relative to out, so that it moves with the folder
    done, overlaps = _load_progress(out, config) if resume else ({}, {})
    finished = set(done)
    written: list[str] = []
    bar = tqdm(names, desc="figures", unit="fig", disable=quiet)
    for name in bar:
        bar.set_postfix_str(name)
        if name in finished:
            written += [os.path.join(out, f) for f in done[name]]
            if not quiet:
                tqdm.write(f"{name}: done in an earlier run ({len(done[name])} files)")
            continue
        t0 = time.perf_counter()
        with text_layout.recording() as recorded:
            files = mods[name].make(out,
                                    progress=(lambda msg: bar.set_postfix_str(f"{name}: {msg}")),
                                    **kwargs[name])
            clashes = {os.path.relpath(p, out): o for p, o in recorded.items() if o}
        for png, pairs in clashes.items():
            tqdm.write(f"warning: overlapping text in {png}: "
                       + "; ".join(f"{a!r} / {b!r}" for a, b in pairs[:3]), file=sys.stderr)
        written += files
        done[name] = {os.path.relpath(f, out): _sha256(f) for f in files}
        overlaps[name] = clashes
        _save_progress(out, config, done, overlaps)
        if not quiet:
            tqdm.write(f"{name}: {', '.join(files)} ({time.perf_counter() - t0:.1f} s)")

    written.append(report.write_report(out, written))
    if not quiet:
        tqdm.write(f"report: {written[-1]}")
        print(f"wrote {len(written)} files to {out}/")
    return written
