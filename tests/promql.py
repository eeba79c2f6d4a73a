"""Which metric names a Grafana dashboard queries, read from its PromQL the simple way.

The rule (also in docs/observability.md): quoted strings are dropped first (label values,
regexes, legend text never name a metric); then a metric name is
  1. an identifier followed, after optional spaces, by `{` (a selector with matchers) or
     `[` (a range selector), unless it is a Grafana variable (`$name`, `${name}`); or
  2. any identifier starting with one of `PREFIXES` (a bare selector such as
     `process_open_fds`, or the metric of `label_values(metric, label)`).
Function names (followed by `(`), keywords and label names in `by (...)` are none of these.
Every expression a dashboard holds is read: panel targets (rows' nested panels too) and the
queries of template variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["PREFIXES", "metric_names", "dashboard_queries"]

PREFIXES = ("reconciler_", "process_", "python_", "envoy_")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w$:{])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")
_IDENTIFIER = re.compile(r"(?<![\w$:{])([a-zA-Z_:][a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    names = {m.group(1) for m in _SELECTOR.finditer(text)}
    names |= {m.group(1) for m in _IDENTIFIER.finditer(text) if m.group(1).startswith(PREFIXES)}
    return names


def dashboard_queries(dashboard: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL expression) of every panel target and template variable query."""

    def panels(items: list[Any]) -> Iterator[Mapping[str, Any]]:
        for p in items:
            yield p
            yield from panels(p.get("panels", []))

    for p in panels(dashboard.get("panels", [])):
        for t in p.get("targets", []):
            if t.get("expr"):
                yield f"panel {p.get('title')!r} target {t.get('refId')}", t["expr"]
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        query = v.get("query")
        expr = query.get("query", "") if isinstance(query, Mapping) else query
        if expr:
            yield f"variable {v.get('name')!r}", expr
