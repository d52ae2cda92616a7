"""Command-line argument types shared by ``adamflow run`` and the study commands.

They live below the studies (layer ``runner``) so that both the CLI and :mod:`analysis` can use them.
The hyper-parameter and numerics options are generated from the model descriptors
(:func:`add_hyper_options`) and :class:`runner.experiment.Numerics` (:func:`add_numerics_options`).
Every malformed value raises ``argparse.ArgumentTypeError``; the CLI's parser turns it into one line
``error: ...`` and exit code 2.
"""
from __future__ import annotations

import argparse
import re
from typing import Any

from runner.experiment import (
    ENGINES,
    INTEGRATORS,
    SCHEME_NAMES,
    Numerics,
    scheme_models,
)
from runner.registry import hyper_params, registry

_NUMLIKE = re.compile(r"^-[\d.]")


def parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text.strip()!r}") from None


def code_parser(choices: tuple[str, ...]):
    """argparse type of a categorical parameter: a name of ``choices`` or its code (a number)."""
    def parse(text: str) -> float:
        name = text.strip()
        if name in choices:
            return float(choices.index(name))
        try:
            return float(name)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected one of {', '.join(choices)} or a code 0..{len(choices) - 1}, "
                f"got {name!r}") from None
    return parse


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


# -- options generated from the model descriptors ------------------------------------------------

def add_hyper_options(p: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """One per-lane option (``nargs='+'``) per hyper-parameter of the registered models, with the
    flag, help and default its declaration gives (:mod:`core.method`). Required when every model
    requires it (alpha)."""
    reg = registry()
    for name, hp in hyper_params().items():
        if name in exclude:
            continue
        required = all(any(q.name == name and q.default is None for q in info.hyper)
                       for info in reg.values())
        users = [info.name for info in reg.values() if any(q.name == name for q in info.hyper)]
        default = "" if hp.default is None else f"; default {hp.default:g}"
        p.add_argument(hp.flag, nargs="+", type=code_parser(hp.choices) if hp.choices else parse_float,
                       required=required, dest=name,
                       help=f"{hp.help}{default} ({', '.join(users)})"
                       if len(users) < len(reg) else f"{hp.help}{default}")


def hyper_from_args(args: argparse.Namespace) -> dict[str, list[float] | None]:
    """The hyper-parameter options of :func:`add_hyper_options` as a RunSpec's keyword arguments."""
    return {name: getattr(args, name) for name in hyper_params() if hasattr(args, name)}


def add_numerics_options(p: argparse.ArgumentParser, *, scheme_default: str = "exact") -> None:
    """--scheme, --integrator, --rtol, --atol, --device, --dtype (see :class:`Numerics`)."""
    p.add_argument("--scheme", default=scheme_default,
                   help="flow scheme: " + "; ".join(
                       f"{s} ({', '.join(scheme_models(s))})" if s != "exact" else "exact (every flow)"
                       for s in SCHEME_NAMES))
    p.add_argument("--integrator", default="auto",
                   help=f"exact-mode stepper: {', '.join(INTEGRATORS)} (default auto: dop853 on "
                        "the compiled engine where it applies, else exprb43)")
    p.add_argument("--engine", default="auto",
                   help=f"exact-mode engine: {', '.join(ENGINES)} (default auto: compiled where the "
                        "flow, landscape, dtype and device allow it; torch = the reference engine)")
    p.add_argument("--rtol", type=parse_float, default=None,
                   help="flow relative tolerance (default 1e-10; float32 1e-5)")
    p.add_argument("--atol", type=parse_float, default=None,
                   help="flow absolute tolerance (default 1e-12; float32 1e-7)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float64", help="float64 or float32")
    p.add_argument("--quadrature", default="exact",
                   help="memories of --scheme paper: exact (default: the exact convolution of g "
                        "piecewise linear on each substep) or glN, e.g. gl1000 (the published "
                        "N-node Gauss-Legendre rule on the cubic spline of theta; the default of "
                        "presets that reproduce a published table); other schemes ignore it")
    p.add_argument("--arithmetic", default="spec",
                   help="evaluation order of the discrete optimizers: spec (default: the SPEC "
                        "formulas as written; compiled engine) or torch (torch.optim's kernels, "
                        "bit for bit; torch engine)")


def numerics_from_args(args: argparse.Namespace, **extra: Any) -> Numerics:
    """The :class:`Numerics` of :func:`add_numerics_options`' options, validated."""
    num = Numerics(scheme=args.scheme, integrator=args.integrator, engine=args.engine, rtol=args.rtol, atol=args.atol,
                   device=args.device, dtype=args.dtype, extra=dict(extra),
                   arithmetic=getattr(args, "arithmetic", "spec"),
                   quadrature=getattr(args, "quadrature", "exact"))
    num.validate()
    return num
