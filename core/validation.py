"""Checks made before any computation (issue 14): every command refuses a bad input up front.

Each check raises :class:`core.errors.ConfigError` with a one-line message (the CLI prints
``error: <message>`` and exits with code 2) *before* a run starts, so that no computation is lost
to an output path that cannot be written, and no run is started that cannot fit in memory, cannot
end (an infinite horizon, 10^12 steps) or is meaningless (eps = 0 in a flow that divides by it).

* :func:`check_output_path`: ``--json``, ``--csv``, ``--plot`` (a file: not empty, not a
  directory, its folder exists or can be created and is writable; ``-`` = stdout where allowed)
  and ``figs --out`` (a folder);
* :func:`check_steps`, :func:`steps_from_horizon`, :func:`check_horizon`: step counts bounded by
  :data:`MAX_STEPS`, horizons K * alpha finite;
* :func:`check_memory` with :func:`available_memory`: the estimated bytes of a run against the
  memory the machine has free;
* :func:`check_flow_eps`, :func:`check_points`, :func:`check_delta`: eps > 0 for flows, finite
  points (minima), a window start inside the horizon;
* :func:`clip`: user text echoed in a message is cut to :data:`ECHO_LIMIT` characters.

This module imports nothing above ``core``; the command-level orchestration (which command checks
what) is :func:`runner.options.preflight` and the studies' own ``compute`` prologues.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable

from core.errors import ConfigError

#: the largest step count of one lane (a run of more updates is refused: it would not end)
MAX_STEPS = 10 ** 9
#: user strings echoed in error messages are cut to this many characters
ECHO_LIMIT = 80
#: a run may use at most this fraction of the memory the machine has available
MEMORY_FRACTION = 0.8
#: bytes per recorded value: the float64 tensor plus its Python list and JSON/CSV text forms
BYTES_PER_VALUE = 96
#: Python bookkeeping per lane (its hyper-parameter dict, params lists, the JSON record)
BYTES_PER_LANE = 4096


def clip(text: object, limit: int = ECHO_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters (``...`` and its length when cut)."""
    s = " ".join(str(text).split())
    if len(s) <= limit:
        return s
    return f"{s[: limit - 3]}... ({len(s)} characters)"


# -- output paths --------------------------------------------------------------------------------

def _nearest_existing(path: str) -> str:
    p = path
    while p and not os.path.lexists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p or os.sep


def _probe_dir(directory: str, create_dir: bool) -> None:
    """Create and remove a temporary file (or folder) in ``directory``; OSError if it cannot."""
    if create_dir:
        os.rmdir(tempfile.mkdtemp(prefix=".adamflow-probe-", dir=directory))
    else:
        fd, tmp = tempfile.mkstemp(prefix=".adamflow-probe-", dir=directory)
        os.close(fd)
        os.unlink(tmp)


def check_output_path(path: str | None, option: str, *, stdout_ok: bool = True,
                      directory: bool = False) -> None:
    """ConfigError unless ``path`` can be written by the atomic writers of :mod:`core.output`.

    ``None`` (option not given) passes. A file path must not be empty or a directory; its folder
    must exist and be writable, or be creatable under the nearest existing folder (the writers
    create it). ``-`` means stdout where ``stdout_ok``. ``directory=True`` checks a folder
    (``figs --out``): it must not be an existing non-directory.
    """
    if path is None:
        return
    if not isinstance(path, str):
        raise ConfigError(f"{option} must be a path, got {clip(repr(path))}")
    if path.strip() == "":
        raise ConfigError(f"{option} needs a path, got an empty string"
                          + (" (use '-' for stdout)" if stdout_ok and not directory else ""))
    if path == "-":
        if stdout_ok and not directory:
            return
        raise ConfigError(f"{option} cannot be '-' (stdout): give a "
                          f"{'folder' if directory else 'file path'}")
    shown = clip(path)
    if "\0" in path:
        raise ConfigError(f"{option} {shown!r}: a path cannot contain a NUL character")
    full = os.path.abspath(path)
    name = os.path.basename(full)
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise ConfigError(f"{option} {shown!r}: file name longer than 255 bytes")
    try:
        if directory:
            if os.path.lexists(full) and not os.path.isdir(full):
                raise ConfigError(f"{option} {shown!r} exists and is not a directory")
            target_dir = full
        else:
            if os.path.isdir(full):
                raise ConfigError(f"{option} {shown!r} is a directory; give a file path")
            if path.endswith(os.sep):
                raise ConfigError(f"{option} {shown!r} ends with '{os.sep}'; give a file path")
            target_dir = os.path.dirname(full)
        base = _nearest_existing(target_dir)
        if not os.path.isdir(base):
            raise ConfigError(f"{option} {shown!r}: {clip(base)!r} is not a directory")
        _probe_dir(base, create_dir=base != target_dir)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{option} {shown!r} cannot be written ({clip(why)})") from None


# -- sizes -----------------------------------------------------------------------------------------

def check_int(value: object, name: str, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an int in [minimum, maximum]; ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and (not math.isfinite(value) or value != int(value))):
        raise ConfigError(f"{name} must be an integer, got {clip(repr(value))}")
    v = int(value)
    if v < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ConfigError(f"{name} must be at most {maximum:.3g}, got {clip(v)}")
    return v


def check_steps(K: object, name: str = "steps", minimum: int = 1) -> int:
    """A step count in [minimum, :data:`MAX_STEPS`]."""
    return check_int(K, name, minimum, MAX_STEPS)


def check_horizon(alpha: float, K: int, *, what: str = "") -> float:
    """The horizon K * alpha, which must be finite (and positive for K >= 1)."""
    T = float(alpha) * int(K)
    if not math.isfinite(T):
        raise ConfigError(f"the horizon {K} steps x alpha={alpha:g} is not finite{what}; "
                          "use a smaller alpha or fewer steps")
    if K >= 1 and T <= 0:
        raise ConfigError(f"the horizon {K} steps x alpha={alpha:g} underflows to 0{what}")
    return T


def steps_from_horizon(T: float, alpha: float, *, minimum: int = 1) -> int:
    """K = round(T / alpha), checked: finite, at least ``minimum``, at most :data:`MAX_STEPS`."""
    if not (isinstance(T, (int, float)) and math.isfinite(T) and T > 0):
        raise ConfigError(f"horizon must be a positive finite number, got {clip(T)}")
    q = float(T) / float(alpha)
    if not math.isfinite(q) or q > MAX_STEPS + 0.5:
        raise ConfigError(f"horizon {T:g} with alpha={alpha:g} needs {q:.3g} steps, more than "
                          f"the limit {MAX_STEPS:.0e}; use a larger alpha or a shorter horizon")
    K = int(round(q))
    if K < minimum:
        raise ConfigError(f"horizon {T:g} is shorter than one step of alpha={alpha:g}")
    return K


def n_samples(K: int, every: int) -> int:
    """Number of recorded samples of a lane of K steps recorded every ``every`` steps (without
    building the index list)."""
    K, every = int(K), max(1, int(every))
    return K // every + 1 + (1 if K % every else 0)


def available_memory() -> int | None:
    """Bytes of memory available now: /proc/meminfo MemAvailable, else the free physical pages
    (sysconf), else None (unknown: no memory check)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return int(os.sysconf(pages)) * int(os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            continue
    return None


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.3g} EiB"  # pragma: no cover


def check_memory(nbytes: float, what: str, hint: str = "use fewer lanes, a larger --every or "
                 "fewer steps") -> None:
    """ConfigError when ``nbytes`` exceeds :data:`MEMORY_FRACTION` of :func:`available_memory`."""
    avail = available_memory()
    if not math.isfinite(nbytes):
        raise ConfigError(f"{what} would need an unbounded amount of memory; {hint}")
    if avail is not None and nbytes > MEMORY_FRACTION * avail:
        raise ConfigError(f"{what} would need about {format_bytes(nbytes)} of memory, but "
                          f"{format_bytes(avail)} is available; {hint}")


def run_bytes(lanes: int, samples: int, values_per_sample: int) -> float:
    """The estimated bytes of ``lanes`` lanes recording ``samples`` samples of
    ``values_per_sample`` values each (tensors, their Python and text forms)."""
    return float(lanes) * (BYTES_PER_LANE + float(samples) * values_per_sample * BYTES_PER_VALUE)


# -- values ------------------------------------------------------------------------------------------

def check_flow_eps(eps: Iterable[float] | float, model: str) -> None:
    """A flow divides by sqrt(v) + eps with v(0) = 0: eps must be > 0 (0/0 at t = 0 otherwise)."""
    vals = [eps] if isinstance(eps, (int, float)) else list(eps)
    for e in vals:
        if not (math.isfinite(float(e)) and float(e) > 0):
            raise ConfigError(f"eps must be > 0 for the flow {model} (it divides by sqrt(v) + eps "
                              f"and v(0) = 0), got {e!r}")


#: the smallest step size a flow takes: its rates (1 - beta)/alpha and their powers must stay far
#: from overflow in the compiled integrator (alpha = 1e-100 made it fail)
MIN_FLOW_ALPHA = 1e-30


def check_flow_alpha(alpha: Iterable[float] | float, model: str) -> None:
    """alpha >= :data:`MIN_FLOW_ALPHA` for a flow (its rates scale as 1/alpha)."""
    vals = [alpha] if isinstance(alpha, (int, float)) else list(alpha)
    for a in vals:
        if float(a) < MIN_FLOW_ALPHA:
            raise ConfigError(f"alpha must be >= {MIN_FLOW_ALPHA:g} for the flow {model} (its "
                              f"rates scale as 1/alpha), got {a!r}")


def check_magnitude(values: Iterable[float] | float, name: str, bound: float) -> None:
    """|x| <= ``bound`` (finite) for every value: a start beyond the divergence bound has diverged
    before the first step (and overflows the integrators' arithmetic)."""
    vals = [values] if isinstance(values, (int, float)) else list(values)
    for x in vals:
        if not (math.isfinite(float(x)) and abs(float(x)) <= bound):
            raise ConfigError(f"{name} must be finite with |{name}| <= {bound:g}, got {x!r}")


def check_points(points: Iterable[Iterable[float]] | None, name: str) -> None:
    """Every coordinate of every point finite."""
    for p in points or []:
        for x in p:
            if not math.isfinite(float(x)):
                raise ConfigError(f"{name} must be finite, got {x!r}")


def check_delta(delta: float, horizon: float, *, name: str = "delta", what: str = "") -> None:
    """A window start ``delta`` (finite, >= 0) no later than the horizon (as ``velocity``)."""
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {clip(delta)}")
    if delta > horizon:
        raise ConfigError(f"{name} {delta:g} exceeds the horizon {horizon:g}{what}")


__all__ = ["MAX_STEPS", "ECHO_LIMIT", "clip", "check_output_path", "check_int", "check_steps",
           "check_horizon", "steps_from_horizon", "n_samples", "available_memory", "format_bytes",
           "check_memory", "run_bytes", "check_flow_eps", "check_flow_alpha", "check_magnitude", "check_points", "check_delta"]
