"""The landscape spec language: ``name`` or ``name(key=value, ...)``.

Values are numbers (``4``, ``-1.5``, ``1e-3``; ``nan``/``inf`` are read so that they can be
rejected with a clear message) or (nested) lists of numbers in ``[...]``; whitespace is free.
Examples: ``rosenbrock1d(c=4)``, ``quadratic(diag=[1,100], center=[1,2])``, ``mlp(width=3)``.

The text is parsed with :func:`ast.parse` and only the node types above are accepted; nothing is
evaluated. Every problem raises :class:`core.errors.ConfigError` with a one-line message.
"""
from __future__ import annotations

import ast

from core.errors import ConfigError
from landscapes.base import Landscape
from landscapes.registry import REGISTRY

_SPECIAL = {"nan": float("nan"), "inf": float("inf"), "infinity": float("inf")}
_FORM = "expected name or name(key=value, ...)"


def _one_line(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value(node: ast.AST, lname: str, key: str) -> object:
    """An ast node -> number or nested list of numbers; anything else is a ConfigError."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
            and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand, lname, key)
        if isinstance(v, list):
            raise ConfigError(f"invalid value for '{key}' of {lname}: {_one_line(ast.unparse(node))}")
        return -v if isinstance(node.op, ast.USub) else v  # type: ignore[operator]
    if isinstance(node, ast.Name) and node.id.lower() in _SPECIAL:
        return _SPECIAL[node.id.lower()]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(e, lname, key) for e in node.elts]
    raise ConfigError(f"invalid value for '{key}' of {lname}: {_one_line(ast.unparse(node))} "
                      f"(expected a number or a list of numbers)")


def parse(spec: str | Landscape) -> Landscape:
    """Spec string -> Landscape (a Landscape passes through unchanged)."""
    if isinstance(spec, Landscape):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"landscape spec must be a string, got {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise ConfigError(f"empty landscape spec; {_FORM}")
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"malformed landscape spec {_one_line(text)!r}: {exc.msg}; {_FORM}") from None
    if isinstance(node, ast.Name):
        name, keywords = node.id, []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, keywords = node.func.id, node.keywords
        if node.args:
            raise ConfigError(f"malformed landscape spec {_one_line(text)!r}: parameters must be "
                              f"given as key=value")
    else:
        raise ConfigError(f"malformed landscape spec {_one_line(text)!r}: {_FORM}")
    cls = REGISTRY.get(name.lower())
    if cls is None:
        raise ConfigError(f"unknown landscape {_one_line(name)!r}; choose from: {', '.join(sorted(REGISTRY))}")
    kwargs: dict[str, object] = {}
    for kw in keywords:
        if kw.arg is None:
            raise ConfigError(f"malformed landscape spec {_one_line(text)!r}: {_FORM}")
        if kw.arg not in cls.PARAMS:
            expected = ", ".join(cls.PARAMS) if cls.PARAMS else "none"
            raise ConfigError(f"unknown parameter {_one_line(kw.arg)!r} for landscape {cls.name}; "
                              f"expected: {expected}")
        if kw.arg in kwargs:
            raise ConfigError(f"parameter {_one_line(kw.arg)!r} of {cls.name} given twice")
        kwargs[kw.arg] = _value(kw.value, cls.name, kw.arg)
    return cls(**kwargs)
