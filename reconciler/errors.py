"""Errors are values with a location.

    Path        where in a document: built with .field()/.index()/.key(), printed as a JSON pointer
    Violation   what a validator found: a Path and a message, not yet tied to a file
    Problem     what the user sees: file, line, resource identity, JSON pointer, message, severity
    escape_control  what text output does to everything that came from a repository

Validators return every Violation they find; the pipeline turns them into Problems by looking
the pointer up in the document's line map. Nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from reconciler.types import ResourceKey

__all__ = [
    "Path",
    "Violation",
    "Problem",
    "Severity",
    "Violations",
    "escape_pointer_token",
    "escape_control",
]

Severity = Literal["error", "warning"]


def escape_pointer_token(token: str) -> str:
    """Escape one reference token the way RFC 6901 asks (`~` then `/`)."""
    return token.replace("~", "~0").replace("/", "~1")


# File names, commit subjects, keys and values come from whoever pushed. Printed raw, a newline
# forges an output line (a fake "valid" in a hook's reply), ESC drives the reader's terminal, and
# the Unicode bidi controls reorder what a reviewer reads (Trojan Source, CVE-2021-42574). The
# set: C0 controls and DEL, C1 controls, the bidi marks, embeddings, overrides and isolates, the
# line and paragraph separators, and lone surrogates (bytes of a name that is not UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) <= 0xFF else f"\\u{ord(c):04x}"


def escape_control(text: str) -> str:
    """`text` with each control character written as a visible escape (`\\n`, `\\x1b`, `\\u202e`).

    The result is one line that a terminal shows as it is. Backslashes are kept as they are, so
    the escapes read like Python's; JSON output carries the exact text.
    """
    return _CONTROL.sub(_escaped, text)


@dataclass(frozen=True, slots=True)
class Path:
    """A location inside a document, as a tuple of mapping keys and list indexes."""

    parts: tuple[str | int, ...] = ()

    @classmethod
    def root(cls, *parts: str | int) -> Path:
        return cls(tuple(parts))

    def field(self, name: str) -> Path:
        return Path(self.parts + (name,))

    def key(self, name: str) -> Path:
        """A key of a user-chosen map (tags, labels): same as field, named for the reader."""
        return Path(self.parts + (name,))

    def index(self, i: int) -> Path:
        return Path(self.parts + (i,))

    def join(self, other: Path) -> Path:
        return Path(self.parts + other.parts)

    @property
    def pointer(self) -> str:
        return "".join("/" + escape_pointer_token(str(p)) for p in self.parts)

    @property
    def dotted(self) -> str:
        """Kuma's field notation: `spec.to[0].default.http.requestTimeout`."""
        out = ""
        for p in self.parts:
            if isinstance(p, int):
                out += f"[{p}]"
            elif out:
                out += "." + p if _plain(p) else f'["{p}"]'
            else:
                out = p
        return out

    def __str__(self) -> str:
        return self.pointer or "/"


def _plain(token: str) -> bool:
    return token.replace("_", "").replace("-", "").isalnum()


@dataclass(frozen=True, slots=True)
class Violation:
    """One thing wrong at one place in a document; the location in the file is added later."""

    path: Path
    message: str
    severity: Severity = "error"


class Violations:
    """Collects violations under a common root; mirrors Kuma's ValidationError.AddViolationAt."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Violation] = []

    def add(self, path: Path, message: str) -> None:
        self._items.append(Violation(path, message))

    def warn(self, path: Path, message: str) -> None:
        self._items.append(Violation(path, message, "warning"))

    def extend(self, violations: Iterable[Violation]) -> None:
        self._items.extend(violations)

    def extend_at(self, root: Path, violations: Iterable[Violation]) -> None:
        """Add violations that were computed relative to `root` (re-rooting them)."""
        for v in violations:
            self._items.append(Violation(root.join(v.path), v.message, v.severity))

    def __iter__(self) -> Iterator[Violation]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def as_tuple(self) -> tuple[Violation, ...]:
        return tuple(self._items)


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """A located error or warning, the unit every command reports."""

    file: str | None
    line: int | None
    resource: ResourceKey | None
    pointer: str
    message: str
    severity: Severity = field(default="error", compare=False)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def location(self) -> str:
        if self.file is None:
            return "<repository>"
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "resource": self.resource.to_json() if self.resource else None,
            "pointer": self.pointer,
            "message": self.message,
        }

    def render(self) -> str:
        """One line a reviewer can act on: `file:line: Type mesh/name /pointer: message`.

        Every part may come from the repository, so control characters are escaped: the line
        stays one line, whatever the file is called.
        """
        parts = [self.location() + ":"]
        if self.severity == "warning":
            parts.append("warning:")
        if self.resource is not None:
            parts.append(str(self.resource))
        if self.pointer:
            parts.append(self.pointer + ":")
        elif self.resource is not None:
            parts[-1] += ":"
        parts.append(self.message)
        return escape_control(" ".join(parts))
