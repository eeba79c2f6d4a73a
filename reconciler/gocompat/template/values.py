"""Values while a template runs: the data record, Go's truth, type names, printing and comparison."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reconciler.gocompat.template.errors import ExecError, Unsupported


# -- execution ---------------------------------------------------------------------------------
class Record:
    """A Go struct of string fields (the stub Kuma renders a template against)."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)

    @property
    def type_name(self) -> str:
        return "struct { " + "; ".join(f"{k} string" for k in self.fields) + " }"

    def __str__(self) -> str:
        return "{" + " ".join(self.fields.values()) + "}"


class _Missing:
    """No value (Go's missingVal): distinguishes "no final argument" from nil."""


MISSING_VALUE = _Missing()


class Break(Exception):
    pass


class Continue(Exception):
    pass


def go_type_name(value: Any) -> str:
    if isinstance(value, Record):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "<nil>"
    raise Unsupported(type(value).__name__)


def is_true(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (bool, int, float, complex, str)):
        return bool(value)
    if isinstance(value, Record):
        return True
    raise Unsupported(type(value).__name__)


def _go_format_float(value: float) -> str:
    """Go's %v for a float64: shortest representation, exponent below 1e-4 or from 1e21."""
    if value == 0:
        return "0"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    # Python's repr is the shortest round-tripping form, as Go's; only the layout differs.
    shortest = Decimal(repr(value))
    magnitude = shortest.adjusted()
    digits = "".join(str(d) for d in shortest.as_tuple().digits).rstrip("0") or "0"
    if -4 <= magnitude < 21:
        return f"{value:.{max(0, len(digits) - 1 - magnitude)}f}"
    mant = digits[0] + ("." + digits[1:] if digits[1:] else "")
    sign = "-" if value < 0 else ""
    return f"{sign}{mant}e{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"


def format_value(value: Any) -> str:
    """fmt.Print of one value."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_format_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Record):
        return str(value)
    raise Unsupported(type(value).__name__)


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "nil"
    if isinstance(v, Record):
        return "struct"
    raise Unsupported(type(v).__name__)


def go_eq(arg1: Any, *args: Any) -> bool:
    if not args:
        raise ExecError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in args:
        k2 = _basic_kind(arg)
        if k1 == "nil" or k2 == "nil":
            if k1 != k2:
                raise ExecError("incompatible types for comparison")
            return True
        if k1 == "struct" or k2 == "struct":
            if k1 != k2:
                raise ExecError("incompatible types for comparison")
            if arg1 is arg or (isinstance(arg, Record) and arg1.fields == arg.fields):
                return True
            continue
        if k1 != k2:
            raise ExecError("incompatible types for comparison")
        if arg1 == arg:
            return True
    return False


def go_lt(a: Any, b: Any) -> bool:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka in ("bool", "complex", "nil", "struct"):
        raise ExecError("invalid type for comparison")
    if ka != kb:
        raise ExecError("incompatible types for comparison")
    return bool(a < b)
