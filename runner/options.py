"""Command-line argument types shared by ``adamflow run`` and the study commands.

They live below the studies (layer ``runner``) so that both the CLI and :mod:`analysis` can use them.
The hyper-parameter and numerics options are generated from the model descriptors
(:func:`add_hyper_options`) and :class:`runner.experiment.Numerics` (:func:`add_numerics_options`).
Every malformed value raises ``argparse.ArgumentTypeError``; the CLI's parser turns it into one line
``error: ...`` and exit code 2.
"""
from __future__ import annotations

import argparse
import ast
import math
import re
from typing import Any

import landscapes
from core.errors import ConfigError
from core.trajectory import DIVERGENCE_BOUND
from core.validation import (
    check_magnitude,
    check_memory,
    check_output_path,
    check_steps,
    clip,
    n_samples,
    run_bytes,
    steps_from_horizon,
)
from runner.experiment import (
    ENGINES,
    INTEGRATORS,
    SCHEME_NAMES,
    Numerics,
    scheme_models,
    validate,
)
from runner.registry import get_model, hyper_params, registry

#: a negative number, also -inf / -nan / -infinity (argparse would read them as flags)
_NUMLIKE = re.compile(r"^-(?:[\d.]|inf|nan)", re.IGNORECASE)


def parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {clip(text.strip())!r}") from None


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
                f"got {clip(name)!r}") from None
    return parse


def parse_int(text: str) -> int:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        x = float(t)               # 1e6 is an integer too
    except ValueError:
        x = math.nan
    if math.isfinite(x) and x == int(x):
        return int(x)
    raise argparse.ArgumentTypeError(f"not an integer: {clip(t)!r}") from None


def parse_vector(text: str) -> list[float]:
    parts = [p for p in text.strip().split(",")]
    if not parts or any(p.strip() == "" for p in parts):
        raise argparse.ArgumentTypeError(f"malformed vector {clip(text.strip())!r} (use e.g. -1.2,1)")
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
                   help=f"exact-mode stepper: {', '.join(INTEGRATORS)} (default auto: on the "
                        "compiled engine per lane dop853 or, for stiff Adam-family lanes, rodas5p; "
                        "else exprb43)")
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


# -- checks before any computation (issue 14; the primitives are in core.validation) ------------

#: option -> (attribute, stdout allowed) of the output options every command may have
OUTPUT_OPTIONS = (("--json", "json", True), ("--csv", "csv", True), ("--plot", "plot", False))
#: commands whose --plot / --out is a folder
FOLDER_OUTPUTS = {"bench": ("plot",), "figs": ("out",)}
#: landscape parameters that size a landscape's data (points x width), for the memory estimate
_SIZE_PARAMS = ("n_points", "width")


def check_outputs(args: argparse.Namespace, command: str | None = None) -> None:
    """--json, --csv, --plot (and ``figs --out``) writable, before anything runs."""
    folders = FOLDER_OUTPUTS.get(command or getattr(args, "command", None) or "", ())
    for flag, attr, stdout_ok in OUTPUT_OPTIONS:
        val = getattr(args, attr, None)
        if val is not None:
            check_output_path(val, flag, stdout_ok=stdout_ok, directory=attr in folders)
    if "out" in folders and getattr(args, "out", None) is not None:
        check_output_path(args.out, "--out", stdout_ok=False, directory=True)
    if getattr(args, "json", None) == "-" and getattr(args, "csv", None) == "-":
        raise ConfigError("--json and --csv cannot both go to stdout ('-')")


def landscape_size(spec) -> tuple[int, int]:
    """(n_points, width) of a landscape spec or object (1 where it has none), read without
    building it (building linreg(n_points=10**12) would itself exhaust memory)."""
    if not isinstance(spec, str):
        return (int(getattr(spec, "n_points", 1) or 1), int(getattr(spec, "width", 1) or 1))
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 1, 1
    vals = {}
    for kw in getattr(node, "keywords", []) if isinstance(node, ast.Call) else []:
        if kw.arg in _SIZE_PARAMS and isinstance(kw.value, ast.Constant) \
                and isinstance(kw.value.value, (int, float)) and not isinstance(kw.value.value, bool) \
                and math.isfinite(kw.value.value) and kw.value.value >= 1:
            vals[kw.arg] = int(kw.value.value)
    return vals.get("n_points", 1), vals.get("width", 1)


def check_landscape_size(spec, lanes: int = 1) -> None:
    """The memory a landscape's data and one batched evaluation over ``lanes`` lanes take."""
    n_points, width = landscape_size(spec)
    if n_points * width <= 1:
        return
    per_eval = 8.0 * n_points * (width + 2) * 6        # residuals, activations, their gradients
    check_memory(8.0 * n_points * 4 + lanes * per_eval,
                 f"landscape {clip(spec) if isinstance(spec, str) else type(spec).__name__} "
                 f"over {lanes} lane(s)", hint="use fewer n_points or a smaller width")


def preflight(args: argparse.Namespace, command: str | None = None) -> None:
    """The checks every command shares, made before it computes anything: output paths, the
    landscape's size. Command-specific checks (lanes, steps, horizons) follow in each command
    (:func:`check_run_spec` for everything that builds a RunSpec)."""
    check_outputs(args, command)
    land = getattr(args, "landscape", None)
    if land is not None:
        check_landscape_size(land)
        landscapes.parse(land)        # a malformed spec is refused before any progress bar


def lane_count(info, spec) -> int:
    """The number of lanes :func:`runner.experiment.lanes_for` would build (without building
    them): theta0 x the product of the model's per-lane options."""
    n = len(spec.theta0)
    for p in info.hyper:
        given = spec.option(p.name)
        n *= max(1, len(given)) if given else 1
    return n


def check_run_spec(spec, *, record_factor: float = 1.0) -> None:
    """Everything :func:`runner.experiment.run` needs, checked before it runs: the spec itself
    (:func:`runner.experiment.validate`: step counts at most MAX_STEPS per lane, horizons K * alpha
    finite, eps > 0 and alpha >= MIN_FLOW_ALPHA for flows), the starts' magnitudes, and the
    memory the lanes and their records take."""
    from_flags = spec.steps is not None
    if spec.every is not None:
        check_steps(spec.every, "every")
    validate(spec)
    for th in spec.theta0:
        check_magnitude(th, "theta0", DIVERGENCE_BOUND)
    if spec.option("u0"):
        check_magnitude(spec.option("u0"), "u0", DIVERGENCE_BOUND)
    check_landscape_size(spec.landscape, 1)
    landscapes.parse(spec.landscape).check_dim(len(spec.theta0[0]))
    total = 0.0
    lanes_total = 0
    dim = len(spec.theta0[0])
    for name in spec.models:
        info = get_model(name)
        lanes = lane_count(info, spec)
        lanes_total += lanes
        K_max = int(spec.steps) if from_flags else max(
            steps_from_horizon(spec.horizon, float(a)) for a in spec.alpha)
        values = 2 + dim * (1 + len(info.records))
        factor = record_factor * (SUBSTEPS_FACTOR if info.kind == "flow"
                                  and spec.scheme in ("paper", "paper2024") else 1.0)
        total += run_bytes(lanes, n_samples(K_max, spec.every) * factor, values)
    check_memory(total, f"this run ({lanes_total} lanes)")
    check_landscape_size(spec.landscape, lanes_total)


#: the paper schemes solve on h = alpha/5 and keep several arrays per grid point
SUBSTEPS_FACTOR = 5 * 8
