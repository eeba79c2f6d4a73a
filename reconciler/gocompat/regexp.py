"""Go's regexp (RE2 syntax): why `regexp.Compile` would refuse a pattern, judged with Python's `re`."""

from __future__ import annotations

import re

__all__ = ["go_regexp_error"]

_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")
_BIG_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def go_regexp_error(pattern: str) -> str | None:
    """Why Go's regexp (RE2 syntax) would refuse `pattern`, as far as Python's `re` can tell.

    RE2 has no lookaround, atomic groups or backreferences (Python has them), and some RE2
    syntax (\\pL, \\z, \\Q..\\E, POSIX classes, (?<name>) is rewritten to Python equivalents
    before compiling, so that only real mistakes are reported.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt.isdigit() and nxt != "0":
                return f"invalid escape sequence: `\\{nxt}` (RE2 has no backreferences)"
            if nxt in "Z":
                return "invalid escape sequence: `\\Z` (RE2 writes end of text as \\z)"
            if nxt in "pP":
                end = pattern.find("}", i) + 1 if pattern[i + 2 : i + 3] == "{" else i + 3
                if end <= i:
                    return "invalid character class range"
                out.append("a" if in_class else ".")
                i = end
                continue
            if nxt == "z":
                out.append("\\Z")
            elif nxt == "Q":
                stop = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if stop < 0 else pattern[i + 2 : stop]
                out.append(re.escape(literal))
                i = n if stop < 0 else stop + 2
                continue
            elif nxt == "C":
                out.append(".")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            posix = _POSIX_CLASS.match(pattern, i)
            if posix is not None:
                out.append("a-z")
                i = posix.end()
                continue
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern[i : i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i : i + 1] == "]":
                out.append("\\]")
                i += 1
            continue
        elif c == "(" and pattern.startswith("(?", i):
            head = pattern[i + 2 : i + 4]
            if head[:1] in ("=", "!", ">") or head in ("<=", "<!"):
                return f"invalid or unsupported Perl syntax: `{pattern[i : i + 4]}` (RE2 has no lookaround or atomic groups)"
            if head[:1] == "<":
                out.append("(?P<")
                i += 3
                continue
        elif c in "*+?" and i > 0 and pattern[i - 1] in "*+}" and (i < 2 or pattern[i - 2] != "\\") and c != "?":
            return f"invalid nested repetition operator: `{pattern[i - 1 : i + 1]}`"
        out.append(c)
        i += 1
    for m in _BIG_REPEAT.finditer(pattern):
        if any(g and int(g) > 1000 for g in (m.group(1), m.group(3))):
            return f"invalid repeat count: `{m.group(0)}`"
    try:
        re.compile("".join(out))
    except re.error as e:
        if "global flags not at the start" in str(e):
            return None  # RE2 allows flags anywhere
        return str(e)
    return None
