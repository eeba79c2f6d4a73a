"""Go number and string literals as the template parser reads them (strconv.ParseInt/ParseFloat/Unquote)."""

from __future__ import annotations

import math
import re

_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$")


def parse_go_number(text: str) -> int | float | complex | None:
    t = text.replace("_", "")
    if text.endswith("i"):
        # An imaginary literal is a complex constant in Go, even `0i`; `073i` is decimal.
        try:
            return complex(0, float(t[:-1])) if t[:-1] else None
        except ValueError:
            return None
    if _GO_INT.match(text):
        sign = -1 if t.startswith("-") else 1
        body = t.lstrip("+-")
        lower = body.lower()
        if lower.startswith("0x"):
            return sign * int(body[2:], 16)
        if lower.startswith("0o"):
            return sign * int(body[2:], 8)
        if lower.startswith("0b"):
            return sign * int(body[2:], 2)
        if len(body) > 1 and body.startswith("0"):
            return sign * int(body, 8)
        return sign * int(body)
    try:
        if t.lower().startswith(("0x", "+0x", "-0x")):
            if "p" not in t.lower():
                return None  # strconv.ParseFloat: a hexadecimal mantissa requires a 'p' exponent
            return float.fromhex(t)
        value = float(t)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def go_unquote(quoted: str) -> str:
    """Go's strconv.Unquote for "..." and `...` literals."""
    if len(quoted) < 2:
        raise ValueError(quoted)
    if quoted[0] == "`":
        if quoted[-1] != "`":
            raise ValueError(quoted)
        return quoted[1:-1].replace("\r", "")
    if quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError(quoted)
    return _unescape(quoted[1:-1], '"')


def unquote_char(quoted: str) -> int:
    body = _unescape(quoted[1:-1], "'")
    if len(body) != 1:
        raise ValueError(quoted)
    return ord(body)


def _unescape(body: str, quote: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote or ch == "\n":
            raise ValueError(body)
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            raise ValueError(body)
        esc = body[i + 1]
        if esc in _ESCAPES and (esc not in "'\"" or esc == quote):
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(body)
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError(body)
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ValueError(body)
    return "".join(out)
