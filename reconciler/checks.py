"""Building blocks for kind validators, each the Python twin of a Kuma v2.14 validator rule.

Every function takes the value and the `Path` where it sits and returns `Violation`s; none
raises. The values come from YAML the schema has already checked, but validators also run
when the schema found problems elsewhere, so every accessor here tolerates wrong shapes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciler.durations import parse_duration
from reconciler.errors import Path, Violation

__all__ = [
    "MUST_BE_DEFINED",
    "MUST_NOT_BE_DEFINED",
    "MUST_BE_SET",
    "MUST_NOT_BE_SET",
    "MUST_NOT_BE_EMPTY",
    "parse_decimal",
    "int_or_decimal_string",
    "GO_DECIMAL",
    "check_duration_greater_than_zero",
    "as_map",
    "as_list",
    "get",
    "enumerate_list",
    "check_duration",
    "check_positive_duration",
    "check_port",
    "check_percentage",
    "check_range",
    "check_tags",
    "check_selector",
    "check_hostname",
    "check_dns1123_subdomain",
    "check_dns1123_label",
    "is_ip",
    "is_hostname",
    "check_address",
    "check_one_of_fields",
    "check_exactly_one_field",
    "must_be_one_of",
]

MUST_BE_DEFINED = "must be defined"
MUST_NOT_BE_DEFINED = "must not be defined"
MUST_BE_SET = "must be set"
MUST_NOT_BE_SET = "must not be set"
MUST_NOT_BE_EMPTY = "must not be empty"


def parse_decimal(value: Any) -> float | None:
    """A number written as YAML int/float or as a decimal string (`"0.5"`, `"50"`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip()) if value.strip() else None
        except ValueError:
            return None
    return None


# shopspring/decimal's NewFromString: an optionally signed decimal with an optional exponent.
GO_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def int_or_decimal_string(value: Any) -> Decimal | None:
    """Kuma's NewDecimalFromIntOrString: an integer, or a decimal written as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and GO_DECIMAL.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


# -- safe accessors ------------------------------------------------------------------------
def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, (list, tuple)) else ()


def get(value: Any, *keys: str | int) -> Any:
    """`get(spec, "to", 0, "targetRef")`: None as soon as a step is missing or mistyped."""
    cur = value
    for k in keys:
        if isinstance(k, int):
            if not isinstance(cur, (list, tuple)) or not -len(cur) <= k < len(cur):
                return None
            cur = cur[k]
        else:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(k)
    return cur


def enumerate_list(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    """(path of item, item) for each item of a list; nothing for a non-list."""
    for i, item in enumerate(as_list(value)):
        yield path.index(i), item


def must_be_one_of(name: str, allowed: Iterable[str]) -> str:
    return f'"{name}" must be one of [' + ", ".join(f'"{a}"' for a in allowed) + "]"


# -- scalars ---------------------------------------------------------------------------------
def check_duration(value: Any, path: Path, *, allow_zero: bool = True) -> list[Violation]:
    """A valid, non-negative Go duration (zero allowed unless `allow_zero=False`)."""
    if value is None:
        return []
    seconds = parse_duration(value)
    if seconds is None:
        return [Violation(path, f'"{value}" is not a valid duration; write it like 5s, 1m30s or 250ms')]
    if seconds < 0:
        return [Violation(path, "must not be negative when defined")]
    if seconds == 0 and not allow_zero:
        return [Violation(path, "must be greater than zero when defined")]
    return []


def check_duration_greater_than_zero(value: Any, path: Path) -> list[Violation]:
    """Kuma's ValidateDurationGreaterThanZeroOrNil: zero and negative durations get the same message.

    A value that is not a duration is the schema's to report.
    """
    seconds = parse_duration(value)
    if seconds is not None and seconds <= 0:
        return [Violation(path, "must be greater than zero when defined")]
    return []


def check_positive_duration(value: Any, path: Path) -> list[Violation]:
    return check_duration(value, path, allow_zero=False)


def check_port(value: Any, path: Path, *, allow_zero: bool = False) -> list[Violation]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [Violation(path, "port must be a number")]
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        return [Violation(path, f"port must be in the range [{low}, 65535]")]
    return []


def check_range(value: Any, path: Path, low: float, high: float) -> list[Violation]:
    number = parse_decimal(value)
    if value is None:
        return []
    if number is None:
        return [Violation(path, "must be a number")]
    if not low <= number <= high:
        return [Violation(path, f"must be in inclusive range [{_num(low)}, {_num(high)}]")]
    return []


def check_percentage(value: Any, path: Path) -> list[Violation]:
    """Kuma's ValidatePercentageOrNil: 0-100, an integer or a decimal string ("0.5").

    Other types are the schema's to report.
    """
    if value is None:
        return []
    number = int_or_decimal_string(value)
    if number is None:
        return [Violation(path, "string must be a valid number")] if isinstance(value, str) else []
    if not 0 <= number <= 100:
        return [Violation(path, "must be in inclusive range [0.0, 100.0]")]
    return []


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# -- tags and selectors (Kuma: pkg/core/resources/apis/mesh/validators.go) -------------------
_TAG_NAME = re.compile(r"^[a-zA-Z0-9.\-_:/]*$")
_TAG_VALUE = re.compile(r"^[a-zA-Z0-9.\-_:]*$")
_SELECTOR_VALUE = re.compile(r"^([a-zA-Z0-9.\-_:/]*|\*)$")
SERVICE_TAG = "kuma.io/service"


def _check_tag_map(
    tags: Any, path: Path, value_pattern: re.Pattern[str], value_message: str, *, require_service: bool, require_one: bool
) -> list[Violation]:
    out: list[Violation] = []
    if tags is None:
        tags = {}
    if not isinstance(tags, Mapping):
        return [Violation(path, "must be a map of tag names to values")]
    if require_one and not tags:
        out.append(Violation(path, "must have at least one tag"))
    for key in sorted(tags):
        value = tags[key]
        if key == "":
            out.append(Violation(path, "tag name must be non-empty"))
        if not _TAG_NAME.match(key):
            out.append(Violation(path.key(key), "tag name must consist of alphanumeric characters, dots, dashes, slashes and underscores"))
        if not isinstance(value, str):
            out.append(Violation(path.key(key), "tag value must be a string (quote numbers and booleans)"))
            continue
        if value == "":
            out.append(Violation(path.key(key), "tag value must be non-empty"))
        elif not value_pattern.match(value):
            out.append(Violation(path.key(key), value_message))
    if require_service and SERVICE_TAG not in tags:
        out.append(Violation(path, f'mandatory tag "{SERVICE_TAG}" is missing'))
    return out


def check_tags(tags: Any, path: Path, *, require_service: bool = False, require_one: bool = False) -> list[Violation]:
    """Tags on a dataplane or gateway listener: concrete values, no wildcards."""
    return _check_tag_map(
        tags,
        path,
        _TAG_VALUE,
        "tag value must consist of alphanumeric characters, dots, dashes and underscores",
        require_service=require_service,
        require_one=require_one,
    )


def check_selector(tags: Any, path: Path, *, require_service: bool = False, require_one: bool = False) -> list[Violation]:
    """Tags used to select dataplanes: like tags, but a value may be `*`."""
    return _check_tag_map(
        tags,
        path,
        _SELECTOR_VALUE,
        'tag value must consist of alphanumeric characters, dots, dashes, slashes and underscores or be "*"',
        require_service=require_service,
        require_one=require_one,
    )


# -- names and addresses ------------------------------------------------------------------
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_DNS1123_LABEL = re.compile(rf"^{_DNS_LABEL}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def check_dns1123_subdomain(value: Any, path: Path) -> list[Violation]:
    if not isinstance(value, str):
        return []
    if len(value) > 253:
        return [Violation(path, "must be no more than 253 characters")]
    if not _DNS1123_SUBDOMAIN.match(value):
        return [
            Violation(
                path,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
            )
        ]
    return []


def check_dns1123_label(value: Any, path: Path) -> list[Violation]:
    if not isinstance(value, str):
        return []
    if len(value) > 63:
        return [Violation(path, "must be no more than 63 characters")]
    if not _DNS1123_LABEL.match(value):
        return [
            Violation(
                path,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character",
            )
        ]
    return []


def check_hostname(value: Any, path: Path, *, allow_wildcard: bool = True) -> list[Violation]:
    """A gateway hostname: `*`, `*.example.com` or `example.com` (Kuma's ValidateHostname)."""
    if not isinstance(value, str):
        return []
    if value == "*" and allow_wildcard:
        return []
    out = []
    if len(value) > 253:
        out.append(Violation(path, "must be at most 253 characters"))
    if allow_wildcard and value.startswith("*."):
        if not _DNS1123_SUBDOMAIN.match(value[2:]):
            out.append(Violation(path, "invalid wildcard domain"))
        return out
    if not _DNS1123_SUBDOMAIN.match(value):
        out.append(Violation(path, "invalid hostname"))
    return out


def is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_hostname(value: Any) -> bool:
    return isinstance(value, str) and bool(_HOSTNAME.match(value))


def check_address(value: Any, path: Path, *, message: str = "address has to be a valid IP or hostname") -> list[Violation]:
    if value is None:
        return []
    if is_ip(value) or is_hostname(value):
        return []
    return [Violation(path, message)]


# -- field combinations ---------------------------------------------------------------------
def check_one_of_fields(obj: Any, path: Path, fields: Sequence[str]) -> list[Violation]:
    """At most one of `fields` is set."""
    present = [f for f in fields if get(obj, f) is not None]
    if len(present) > 1:
        return [Violation(path, "only one of " + ", ".join(f"'{f}'" for f in fields) + " can be set")]
    return []


def check_exactly_one_field(obj: Any, path: Path, fields: Sequence[str]) -> list[Violation]:
    """Exactly one of `fields` is set."""
    present = [f for f in fields if get(obj, f) is not None]
    if len(present) != 1:
        return [Violation(path, "exactly one of " + ", ".join(f"'{f}'" for f in fields) + " must be set")]
    return []
