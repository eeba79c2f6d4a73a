"""The builtin template functions (text/template/funcs.go) and the fmt verbs printf needs."""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.gocompat.template.errors import ExecError, Unsupported
from reconciler.gocompat.template.items import go_quote
from reconciler.gocompat.template.values import Record, format_value, go_eq, go_lt, go_type_name, is_true


def _sprint(args: Sequence[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def _sprintln(args: Sequence[Any]) -> str:
    return " ".join(format_value(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _sprintf(fmt: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf for the verbs a hostname template plausibly uses."""
    out = []
    pos = 0
    argi = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, precision, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        if width == "*" or precision == "*" or "#" in flags:
            raise Unsupported("printf flags")
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        text = _format_verb(verb, arg, precision)
        if width:
            pad = int(width) - len(text)
            if pad > 0:
                if "-" in flags:
                    text = text + " " * pad
                elif "0" in flags and not isinstance(arg, str):
                    text = ("-" + "0" * pad + text[1:]) if text.startswith("-") else "0" * pad + text
                else:
                    text = " " * pad + text
        out.append(text)
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{go_type_name(a)}={format_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_verb(verb: str, arg: Any, precision: str | None) -> str:
    def bad() -> str:
        return f"%!{verb}({go_type_name(arg)}={format_value(arg)})"

    if verb == "v":
        return format_value(arg)
    if verb == "s":
        if isinstance(arg, str):
            return arg[: int(precision)] if precision is not None else arg
        return format_value(arg) if isinstance(arg, Record) else bad()
    if verb == "q":
        if isinstance(arg, str):
            return go_quote(arg)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return "'" + chr(arg) + "'"
        return bad()
    if verb == "d":
        return str(arg) if isinstance(arg, int) and not isinstance(arg, bool) else bad()
    if verb in "xX":
        if isinstance(arg, str):
            text = arg.encode().hex()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            text = format(arg, "x")
        else:
            return bad()
        return text.upper() if verb == "X" else text
    if verb == "t":
        return format_value(arg) if isinstance(arg, bool) else bad()
    if verb == "c":
        return chr(arg) if isinstance(arg, int) and not isinstance(arg, bool) else bad()
    raise Unsupported(f"printf verb %{verb}")


def _js_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append("\\u0022")
        elif ch == "<":
            out.append("\\u003C")
        elif ch == ">":
            out.append("\\u003E")
        elif ch == "&":
            out.append("\\u0026")
        elif ch == "=":
            out.append("\\u003D")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _html_escape(s: str) -> str:
    s = html.escape(s, quote=False).replace('"', "&#34;").replace("'", "&#39;")
    return s.replace("\x00", "\ufffd")


def _len(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    raise ExecError(f"len of type {go_type_name(item)}")


def _index(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise ExecError("index of untyped nil")
    for idx in indexes:
        if not isinstance(item, str):
            raise ExecError(f"can't index item of type {go_type_name(item)}")
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise ExecError(f"cannot index slice/array with type {go_type_name(idx)}")
        data = item.encode()
        if not 0 <= idx < len(data):
            raise ExecError(f"index out of range: {idx}")
        item = data[idx]
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise ExecError("slice of untyped nil")
    if len(indexes) > 3:
        raise ExecError(f"too many slice indexes: {len(indexes)}")
    if not isinstance(item, str):
        raise ExecError(f"can't slice item of type {go_type_name(item)}")
    if len(indexes) == 3:
        raise ExecError("cannot 3-index slice a string")
    data = item.encode()
    bounds = [0, len(data)]
    for i, idx in enumerate(indexes):
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise ExecError(f"cannot index slice/array with type {go_type_name(idx)}")
        if not 0 <= idx <= len(data):
            raise ExecError(f"index out of range: {idx}")
        bounds[i] = idx
    if bounds[0] > bounds[1]:
        raise ExecError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    try:
        return data[bounds[0] : bounds[1]].decode()
    except UnicodeDecodeError:
        raise Unsupported("byte slice of a multi-byte string") from None


def _not(value: Any) -> bool:
    return not is_true(value)


BUILTINS: dict[str, Callable[..., Any]] = {
    "eq": go_eq,
    "ne": lambda a, b: not go_eq(a, b),
    "lt": go_lt,
    "le": lambda a, b: go_lt(a, b) or go_eq(a, b),
    "gt": lambda a, b: not (go_lt(a, b) or go_eq(a, b)),
    "ge": lambda a, b: not go_lt(a, b),
    "html": lambda *a: _html_escape(_sprint(a)),
    "js": lambda *a: _js_escape(_sprint(a)),
    "urlquery": lambda *a: urllib.parse.quote_plus(_sprint(a), safe="-_.~"),
    "index": _index,
    "slice": _slice,
    "len": _len,
    "not": _not,
    "print": lambda *a: _sprint(a),
    "println": lambda *a: _sprintln(a),
    "printf": lambda f, *a: _sprintf(f, a),
}
# (fixed parameters, variadic) per function, as Go's reflection sees them.
ARITY: dict[str, tuple[int, bool]] = {
    "eq": (1, True),
    "ne": (2, False),
    "lt": (2, False),
    "le": (2, False),
    "gt": (2, False),
    "ge": (2, False),
    "html": (0, True),
    "js": (0, True),
    "urlquery": (0, True),
    "index": (1, True),
    "slice": (1, True),
    "len": (1, False),
    "not": (1, False),
    "print": (0, True),
    "println": (0, True),
    "printf": (1, True),
    "label": (1, False),
}
STRING_PARAMS: dict[str, tuple[int, ...]] = {"printf": (0,), "label": (0,)}
