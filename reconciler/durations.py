"""Go duration strings (`300ms`, `1m30s`) as seconds: a leaf shared by validation, the policies and the CA."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["parse_duration"]

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign, as Go accepts
    "μs": 1e-6,  # U+03BC greek mu, as Go accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: Any) -> float | None:
    """Seconds in a Go duration string (`300ms`, `1m30s`, `-1.5h`, `0`), or None if invalid.

    Kuma's durations are Kubernetes `metav1.Duration`, parsed by Go's time.ParseDuration.
    """
    if not isinstance(text, str) or not text:
        return None
    s = text
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        return None
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            return None
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    return sign * total
