"""Validation, canonical formatting and casting of landscape parameters.

Landscape parameters come in four kinds:

* **lane scalar** -- a number shared by all lanes, or one value per lane (a length-B sequence or a
  (B,) tensor); stored as a Python ``float`` or a 1-D float64 tensor.
* **vector** -- a number (the same in every coordinate), an (n,) sequence/tensor (per coordinate,
  shared by lanes) or a (B, n) one (per lane and coordinate); stored as ``float`` or float64 tensor.
* **matrix** -- (n, n) or (B, n, n), stored as a float64 tensor.
* **integer** -- a plain Python ``int`` (sizes, seeds).

Every check raises :class:`core.errors.ConfigError` with a one-line message naming the landscape
and the parameter. Tensors keep the device they were given on; they are cast to theta's dtype/device
at evaluation time (see :meth:`landscapes.base.Landscape._cast`).
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Union

import torch

from core.errors import ConfigError

#: a stored parameter: a Python number or a float64 tensor
Param = Union[float, torch.Tensor]


def _where(lname: str, pname: str) -> str:
    return f"parameter '{pname}' of {lname}"


def _short(value: object, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _to_tensor(value: object, lname: str, pname: str) -> torch.Tensor:
    """Numbers / nested sequences / arrays / tensors -> float64 tensor (device kept for tensors)."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ConfigError(f"{_where(lname, pname)} must be real numbers, got dtype {value.dtype}")
        return value.detach().to(torch.float64).clone()
    if isinstance(value, (str, bytes, dict, set)) or value is None or isinstance(value, bool):
        raise ConfigError(f"{_where(lname, pname)} must be a number or a list of numbers, got {_short(value)}")
    try:
        t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{_where(lname, pname)} must be a number or a (nested) list of numbers "
                          f"of consistent lengths, got {_short(value)}") from None
    return t


def _check_finite(t: torch.Tensor, lname: str, pname: str) -> None:
    if t.numel() == 0:
        raise ConfigError(f"{_where(lname, pname)} must not be empty")
    if not bool(torch.isfinite(t).all()):
        bad = t[~torch.isfinite(t)].reshape(-1)[0].item()
        raise ConfigError(f"{_where(lname, pname)} must be finite, got {bad}")


def lane_scalar(value: object, lname: str, pname: str) -> Param:
    """A number or one number per lane ((B,) sequence/tensor)."""
    if _is_number(value):
        v = float(value)
        if not math.isfinite(v):
            raise ConfigError(f"{_where(lname, pname)} must be finite, got {v}")
        return v
    t = _to_tensor(value, lname, pname)
    if t.dim() == 0:
        return lane_scalar(float(t.item()), lname, pname)
    if t.dim() != 1:
        raise ConfigError(f"{_where(lname, pname)} must be a number or one number per lane "
                          f"(1-D), got shape {tuple(t.shape)}")
    _check_finite(t, lname, pname)
    return t


def vector(value: object, lname: str, pname: str) -> Param:
    """A number (all coordinates), an (n,) vector or a (B, n) per-lane array."""
    if _is_number(value):
        return lane_scalar(value, lname, pname)
    t = _to_tensor(value, lname, pname)
    if t.dim() == 0:
        return lane_scalar(float(t.item()), lname, pname)
    if t.dim() not in (1, 2):
        raise ConfigError(f"{_where(lname, pname)} must be a number, a list (n,) or per-lane lists "
                          f"(B, n), got shape {tuple(t.shape)}")
    _check_finite(t, lname, pname)
    return t


def matrix(value: object, lname: str, pname: str) -> torch.Tensor:
    """A square (n, n) matrix or a (B, n, n) stack of them."""
    t = _to_tensor(value, lname, pname)
    if t.dim() not in (2, 3) or t.shape[-1] != t.shape[-2]:
        raise ConfigError(f"{_where(lname, pname)} must be a square matrix (n, n) or per-lane "
                          f"matrices (B, n, n), got shape {tuple(t.shape)}")
    _check_finite(t, lname, pname)
    return t


def integer(value: object, lname: str, pname: str, minimum: int | None = None) -> int:
    """A Python integer, optionally >= minimum."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise ConfigError(f"{_where(lname, pname)} must be an integer, got {_short(value)}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{_where(lname, pname)} must be an integer >= {minimum}, got {value}")
    return int(value)


def nonneg(value: object, lname: str, pname: str) -> float:
    """A finite plain number >= 0 (not per lane)."""
    if not _is_number(value):
        raise ConfigError(f"{_where(lname, pname)} must be a number, got {_short(value)}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ConfigError(f"{_where(lname, pname)} must be a finite number >= 0, got {v}")
    return v


# ---------------------------------------------------------------------------------------------
# canonical formatting (the inverse of the spec parser)

def format_number(v: float | int) -> str:
    """Shortest exact text: integers without a decimal point, floats by ``repr`` (round-trips)."""
    if isinstance(v, Integral):
        return str(int(v))
    v = float(v)
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def format_value(v: object) -> str:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().tolist()
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return format_number(v)  # type: ignore[arg-type]


def format_spec(name: str, params: dict[str, object]) -> str:
    """``name`` or ``name(k=v,...)``; parameters whose value is None are left out."""
    items = [f"{k}={format_value(v)}" for k, v in params.items() if v is not None]
    return f"{name}({','.join(items)})" if items else name
