"""The study contract: one class per study command, sharing the numerics and output options.

A study turns options into a plain result (dicts and lists: JSON-ready), draws a figure from that
result only, and prints a summary. Subclasses set ``command`` and ``help`` and implement

* ``add_options(parser)``: the study's own options (problem, protocol, sweep, ...);
* ``compute(args, numerics) -> result``: run it (every simulation goes through
  :func:`runner.experiment.run_lanes` / :func:`runner.experiment.run`);
* ``plot(result, path)`` and ``summary(result)``; ``to_json(result)`` when the JSON form differs.

:meth:`Study.add_arguments` adds, after the study's options, the options every study shares:
``--scheme`` (restricted to :attr:`Study.schemes`), ``--integrator``, ``--rtol``, ``--atol``,
``--device``, ``--dtype`` (:func:`runner.options.add_numerics_options`) and ``--json``, ``--plot``,
``--quiet``. :meth:`Study.main` is the CLI hook: validate the numerics, compute, write JSON, draw,
print (not when the JSON goes to stdout).
"""
from __future__ import annotations

import argparse
from typing import Any

from analysis.cli_options import add_output_options
from core.errors import ConfigError
from core.output import write_json
from runner.experiment import Numerics
from runner.options import add_numerics_options, check_outputs, numerics_from_args


class Study:
    #: CLI command (``adamflow <command>``)
    command: str = ""
    #: one line for ``adamflow --help``
    help: str = ""
    #: flow schemes the study can compare (each flow must support the chosen one as well)
    schemes: tuple[str, ...] = ("exact", "paper")
    #: print the summary only when no JSON is written (else: unless the JSON goes to stdout)
    summary_only_without_json: bool = False

    # -- to implement ----------------------------------------------------------------------------
    def add_options(self, p: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def compute(self, args: argparse.Namespace, numerics: Numerics) -> Any:
        raise NotImplementedError

    def plot(self, result: Any, path: str) -> None:
        raise NotImplementedError

    def summary(self, result: Any) -> None:
        raise NotImplementedError

    def to_json(self, result: Any) -> Any:
        return result

    # -- shared ----------------------------------------------------------------------------------
    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        self.add_options(p)
        add_numerics_options(p)
        add_output_options(p)

    def numerics(self, args: argparse.Namespace) -> Numerics:
        if args.scheme not in self.schemes:
            raise ConfigError(f"`{self.command}` takes --scheme {' or '.join(self.schemes)}, "
                              f"not {args.scheme!r}")
        return numerics_from_args(args)

    def main(self, args: argparse.Namespace) -> int:
        check_outputs(args, self.command)     # before computing: a result is never lost to a path
        result = self.compute(args, self.numerics(args))
        if args.json:
            write_json(self.to_json(result), args.json)
        if args.plot:
            self.plot(result, args.plot)
        if (not args.json) if self.summary_only_without_json else args.json != "-":
            self.summary(result)
        return 0

    def __repr__(self) -> str:
        return f"<study {self.command}>"


__all__ = ["Study"]
