"""Values of Kuma's proto kinds as Kuma reads them (protobuf JSON rules), and message helpers.

Kuma reads Mesh, Dataplane, ZoneIngress and ZoneEgress with protobuf JSON rules: a null field
is an unset field, numbers may be quoted, enums are names or numbers. The validators of those
kinds read their fields through these functions so that they see what Kuma sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.errors import Path, Violation

__all__ = ["text", "uint", "number", "enum_index", "quote", "names_hint", "tag_map", "check_port_number"]

_PORT_RANGE = "port must be in the range [1, 65535]"


def text(value: Any) -> str:
    """A string field as Kuma sees it: "" when unset (or of a type the schema rejects)."""
    return value if isinstance(value, str) else ""


def uint(value: Any) -> int | None:
    """An unsigned number field (quoted or not) as Kuma sees it: 0 when unset, None when unreadable."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def enum_index(value: Any, names: Sequence[str]) -> int | None:
    """A protobuf enum written as a name or a number: its number (0 when unset), None when unknown."""
    if value is None:
        return 0
    if isinstance(value, str):
        return names.index(value) if value in names else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def quote(value: str) -> str:
    """Go's %q for the strings Kuma quotes in its messages."""
    return json.dumps(value, ensure_ascii=False)


def tag_map(value: Any) -> Any:
    """Tags as Kuma reads them: a null value is an empty string. Non-maps pass through for the schema."""
    if not isinstance(value, Mapping):
        return value
    return {k: ("" if v is None else v) for k, v in value.items()}


def check_port_number(value: Any, path: Path) -> list[Violation]:
    """Kuma's ValidatePort: 1-65535, where an unset port counts as 0."""
    port = uint(value)
    if port is None:
        return []  # the schema reports what is not a number
    if port == 0 or port > 65535:
        return [Violation(path, _PORT_RANGE)]
    return []


def names_hint(names: Sequence[str]) -> str:
    listed = [quote(n) for n in dict.fromkeys(names) if n]
    return ": " + ", ".join(listed) if listed else ", and it has none"


def number(value: Any) -> float | None:
    """A double field (quoted or not); None when unset or unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
