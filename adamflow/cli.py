"""``adamflow`` command line: a thin layer over the library.

Every invalid input ends with one line ``error: ...`` on stderr and exit code 2 (no traceback).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading

import analysis
import landscapes
from adamflow import bench
from core.errors import ConfigError
from core.output import write_csv, write_json
from core.validation import clip
from paper_figs import build
from runner import experiment, presets
from runner.options import (
    add_hyper_options,
    add_numerics_options,
    check_run_spec,
    hyper_from_args,
    preflight,
)
from runner.options import parse_float as _float
from runner.options import parse_int as _int
from runner.options import parse_vector as _vector
from runner.options import protect_negative_numbers as _protect_negative_numbers
from runner.presets import COMMANDS as PRESET_COMMANDS
from runner.presets import describe
from runner.registry import registry


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help shows its default (unless the help already states it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or "default" in text.lower() or action.nargs == 0 \
                or action.default in (None, argparse.SUPPRESS, False):
            return text
        d = action.default
        shown = " ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in d) \
            if isinstance(d, (list, tuple)) else d
        return f"{text} (default: {str(shown).replace('%', '%%')})".lstrip()


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2
        raise ConfigError(clip(message.replace("\n", " "), 1000))


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--landscape", required=True, help="landscape spec, e.g. 'rosenbrock1d(c=4)'")
    p.add_argument("--model", nargs="+", required=True, dest="models",
                   help="one or more models (see `adamflow models`)")
    p.add_argument("--theta0", nargs="+", required=True, type=_vector,
                   help="initial point per lane; comma list for n > 1 (-1.2,1)")
    add_hyper_options(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--steps", type=_int, help="K steps (flows: horizon K*alpha); no default: give "
                   "--steps or --horizon")
    g.add_argument("--horizon", type=_float, help="time horizon T (K = round(T/alpha)); no default")
    p.add_argument("--every", type=_int, default=1, help="record every N-th step (default 1)")
    p.add_argument("--sensitivity", action="store_true",
                   help="also estimate each lane's |d theta(T)/d theta0| (central differences, "
                        "two more lanes each) and flag ill-conditioned lanes (default: off)")
    add_numerics_options(p)
    p.add_argument("--json", metavar="PATH", help="write JSON ('-' = stdout; default: none, print "
                   "a summary)")
    p.add_argument("--csv", metavar="PATH", help="write CSV, one row per lane and sample ('-' = "
                   "stdout; default: none)")


def study_modules() -> list:
    """The analysis modules present (see :data:`analysis.STUDIES`)."""
    mods = []
    for path in analysis.STUDIES:
        try:
            mods.append(importlib.import_module(path))
        except ModuleNotFoundError as exc:
            if exc.name != path:
                raise
    return mods


def _add_preset_option(p: argparse.ArgumentParser) -> None:
    if not any("--preset" in a.option_strings for a in p._actions):
        p.add_argument("--preset", metavar="NAME", default=None,
                       help="experiment preset (see `adamflow presets`); explicit options override it")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="adamflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    subcommands: dict[str, argparse.ArgumentParser] = {}
    p_run = sub.add_parser("run", help="run discrete optimizers and/or flows over lanes")
    _add_run_options(p_run)
    subcommands["run"] = p_run
    sub.add_parser("models", help="list models")
    sub.add_parser("landscapes", help="list landscapes")
    sub.add_parser("presets", help="list experiment presets (--preset NAME)")
    for mod in study_modules():
        p_study = sub.add_parser(mod.COMMAND, help=mod.HELP)
        mod.add_arguments(p_study)
        subcommands[mod.COMMAND] = p_study
    for name in PRESET_COMMANDS:
        if name in subcommands:
            _add_preset_option(subcommands[name])
    p_figs = sub.add_parser("figs", help="reproduce figures into a folder")
    p_figs.add_argument("--out", default="paper_figs/out", metavar="DIR",
                        help="folder of the figures (created if missing)")
    p_figs.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="make these figures only (default: all)")
    p_figs.add_argument("--scheme", default="both",
                        help="flow scheme of the figures: both (default), exact or paper")
    p_figs.add_argument("--quiet", action="store_true", help="no progress bars")
    p_figs.add_argument("--list", action="store_true",
                        help="list the figure modules (name, what it shows) and exit")
    p_figs.add_argument("--quick", action="store_true",
                        help="reduced sizes (seconds per figure; for a look, not for the numbers)")
    p_figs.add_argument("--resume", action="store_true",
                        help="skip the modules an earlier run of the same configuration finished "
                             "in --out (files unchanged; see .figs-progress.json); default: draw all")
    p_bench = sub.add_parser("bench", help="benchmark against scipy, torchdiffeq, torchode, "
                             "diffrax, torch.optim (same run, matched accuracy)")
    bench.add_arguments(p_bench)
    parser.subcommands = subcommands
    return parser


def _preset_in(argv: list[str]) -> str | None:
    """The value of ``--preset NAME`` / ``--preset=NAME`` (or an unambiguous prefix such as
    ``--pres``) in ``argv``, or None."""
    found = None
    for i, a in enumerate(argv):
        if a == "--":
            break
        key, eq, val = a.partition("=")
        if len(key) >= 5 and "--preset".startswith(key):
            if eq:
                found = val.strip()
            elif i + 1 < len(argv):
                found = argv[i + 1].strip()
            else:
                raise ConfigError("argument --preset: expected one argument")
    return found


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` (already protected); ``--preset NAME`` fills the defaults of its command."""

    parser = build_parser()
    command = argv[0] if argv else None
    preset = _preset_in(argv[1:]) if command in parser.subcommands else None
    if preset is None:
        return parser.parse_args(argv)
    if command not in presets.COMMANDS:
        raise ConfigError(f"`{command}` takes no --preset")
    sub = parser.subcommands[command]
    defaults = presets.apply_to_parser(sub, preset, command)
    args = parser.parse_args(argv)
    presets.resolve_exclusive(sub, args, defaults)
    return args


def cmd_run(args) -> int:
    spec = experiment.RunSpec(
        landscape=args.landscape, models=args.models, theta0=args.theta0, steps=args.steps,
        horizon=args.horizon, every=args.every, device=args.device, dtype=args.dtype,
        scheme=args.scheme, integrator=args.integrator, engine=args.engine, rtol=args.rtol,
        atol=args.atol, arithmetic=args.arithmetic, quadrature=args.quadrature,
        sensitivity=args.sensitivity,
        **hyper_from_args(args))
    check_run_spec(spec)
    results = experiment.run(spec)
    records = experiment.lane_records(results)
    if args.json:
        write_json({"lanes": records}, args.json)
    if args.csv:
        header, rows = experiment.csv_rows(records, results)
        write_csv(header, rows, args.csv)
    if not args.json and not args.csv:
        width = max([13] + [len(rec["model"]) for rec in records])
        for rec in records:
            extra = f" u0={rec['u0']}" if rec.get("u0") is not None else ""
            print(f"{rec['model']:<{width}} alpha={rec['alpha']:<8g}{extra} status={rec['status']:<8} "
                  f"final_theta={rec['final_theta']} final_f={rec['final_f']}")
    return 0


def cmd_models(args) -> int:
    reg = registry()
    width = max(len(n) for n in reg)
    for name, info in reg.items():
        hp = ", ".join(info.hyperparameters)
        extra = f" schemes: {', '.join(info.schemes)}; models {info.method}" if info.kind == "flow" \
            and info.method else (f" schemes: {', '.join(info.schemes)}" if info.kind == "flow" else "")
        print(f"{name:<{width}} {info.kind:<9} {info.description}  [{hp}]{extra}")
    return 0


def cmd_landscapes(args) -> int:
    for name, desc in landscapes.available():
        print(f"{name:<14} {desc}")
    return 0


def cmd_presets(args) -> int:
    for name, desc in describe():
        print(f"{name:<32} {desc}")
    return 0


def cmd_figs(args) -> int:
    if args.list:
        mods = build.figure_modules()
        width = max(len(n) for n in mods)
        for name, mod in mods.items():
            print(f"{name:<{width}}  {mod.TITLE}")
        return 0
    build.main(out=args.out, only=args.only, quiet=args.quiet, scheme=args.scheme,
               quick=args.quick, resume=args.resume)
    return 0


COMMANDS = {"run": cmd_run, "models": cmd_models, "landscapes": cmd_landscapes,
            "presets": cmd_presets, "figs": cmd_figs, "bench": lambda args: cmd_bench(args)}


def cmd_bench(args) -> int:
    return bench.main(args, cli_main=main)


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that the interpreter's final flush
    does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(_protect_negative_numbers(argv))
        preflight(args, args.command)
        if args.command in COMMANDS:
            return COMMANDS[args.command](args)
        study = {m.COMMAND: m for m in study_modules()}[args.command]
        return study.main(args)
    except ConfigError as exc:
        print(f"error: {clip(exc, 1000)}", file=sys.stderr)
        return 2
    except BrokenPipeError:          # `adamflow models | head`: the reader went away
        _quiet_stdout()
        return 141
    except MemoryError:              # a backstop: the size checks should refuse such runs first
        print("error: out of memory (use fewer lanes, a larger --every or fewer steps)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _nothing_left_running() -> bool:
    """No worker process, Dask client or non-daemon thread that an orderly exit would wait for."""
    if "distributed" in sys.modules:
        return False
    mp = sys.modules.get("multiprocessing")
    if mp is not None and mp.active_children():
        return False
    main_thread = threading.main_thread()
    return not any(t.is_alive() and not t.daemon and t is not main_thread
                   for t in threading.enumerate())


def entry() -> None:
    """The ``adamflow`` console script: :func:`main`, then a fast exit where nothing is left
    running. The interpreter's teardown (finalising torch's, numba's and scipy's modules) costs
    about 0.3 s per command and does nothing a finished command needs: every result file is
    written and closed (atomically) by then. So the output streams and logging are flushed and the
    process ends with ``os._exit``; a command that leaves workers or threads (a Dask sweep) exits
    the orderly way. Called in-process (tests, ``python -m adamflow``), :func:`main` just returns."""
    rc = main()
    if not _nothing_left_running():
        sys.exit(rc)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, OSError, ValueError):     # the reader went away
            rc = rc or 141
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(main())
