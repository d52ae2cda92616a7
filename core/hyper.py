"""Validation and lane-broadcasting of hyper-parameters.

Every optimizer and flow takes per-lane hyper-parameters as a Python scalar, a sequence of length B
or a (B,) tensor. :func:`lane_tensor` turns any of those into a (B,) tensor on the right dtype and
device; the ``check_*`` functions raise :class:`core.errors.ConfigError` with a one-line message
for invalid values (the CLI turns it into exit code 2).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import torch

from core.errors import ConfigError

LaneValue = Union[float, int, Sequence[float], torch.Tensor]


def _as_list(x: LaneValue) -> list[float]:
    if isinstance(x, torch.Tensor):
        return [float(v) for v in x.detach().reshape(-1).cpu().tolist()]
    if isinstance(x, (int, float)):
        return [float(x)]
    return [float(v) for v in x]


def check_alpha(x: LaneValue, name: str = "alpha") -> None:
    for a in _as_list(x):
        if not math.isfinite(a) or a <= 0:
            raise ConfigError(f"{name} must be a positive finite number, got {a!r}")


def check_beta(x: LaneValue, name: str = "beta") -> None:
    for b in _as_list(x):
        if not math.isfinite(b) or not (0.0 <= b < 1.0):
            raise ConfigError(f"{name} must lie in [0, 1), got {b!r}")


def check_eps(x: LaneValue, name: str = "eps") -> None:
    for e in _as_list(x):
        if not math.isfinite(e) or e < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {e!r}")


def check_nonneg(x: LaneValue, name: str) -> None:
    for e in _as_list(x):
        if not math.isfinite(e) or e < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {e!r}")


def check_floor(x: LaneValue, name: str) -> None:
    """>= 0, +inf allowed (a gate floor: +inf closes the gate everywhere)."""
    for e in _as_list(x):
        if math.isnan(e) or e < 0:
            raise ConfigError(f"{name} must be a number >= 0 (or inf), got {e!r}")


def check_level(x: LaneValue, name: str) -> None:
    """A threshold level: any number, +-inf allowed (a rule that never fires), not NaN."""
    for e in _as_list(x):
        if math.isnan(e):
            raise ConfigError(f"{name} must be a number (or +-inf), got {e!r}")


def choice_code(value, choices: tuple[str, ...], name: str) -> int:
    """The code of a categorical value: a name of ``choices`` -> its index, a code 0..len-1 passes
    through; ConfigError otherwise (a sign rule, a scope, a variant)."""
    if isinstance(value, str):
        if value in choices:
            return choices.index(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value) in [float(i) for i in range(len(choices))]:
        return int(value)
    codes = ", ".join(str(i) for i in range(len(choices)))
    raise ConfigError(f"{name} must be one of {', '.join(choices)} (or their codes {codes}), "
                      f"got {value!r}")


def check_choices(x, choices: tuple[str, ...], name: str) -> None:
    """ConfigError unless every value (scalar, name, sequence or tensor) is a name or code of
    ``choices``."""
    if isinstance(x, torch.Tensor):
        vals = x.detach().reshape(-1).cpu().tolist()
    elif isinstance(x, (str, int, float)):
        vals = [x]
    else:
        vals = list(x)
    for v in vals:
        choice_code(v, choices, name)


def check_finite(x: LaneValue, name: str) -> None:
    for e in _as_list(x):
        if not math.isfinite(e):
            raise ConfigError(f"{name} must be finite, got {e!r}")


def lane_tensor(x: LaneValue, B: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """Broadcast a scalar, a length-B sequence or a (B,)/(1,)/() tensor to a (B,) tensor."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to(dtype=dtype, device=device).reshape(-1)
    else:
        t = torch.tensor(_as_list(x), dtype=dtype, device=device)
    if t.numel() == 1:
        return t.expand(B).clone()
    if t.numel() != B:
        raise ConfigError(f"per-lane parameter has {t.numel()} values for {B} lanes")
    return t


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        if name not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {name}")
        return name
    table = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32,
             "float": torch.float32}
    if name not in table:
        raise ConfigError(f"unknown dtype {name!r} (choose float64 or float32)")
    return table[name]


def resolve_device(name: str | torch.device) -> torch.device:
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {name!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r} (choose cpu or cuda)")
    return dev
