"""Reading a control plane's `GET /metrics` the way Prometheus would: prometheus_client's own
parser, samples by name and labels, and the names a scrape exports (for the dashboard test)."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "scrape", "SUFFIXES"]

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}
"""The sample names a family of each type exposes, even before it has a sample."""


@dataclass(frozen=True)
class Scrape:
    text: str
    content_type: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: dict[str, str]
    """Family name → type, as the parser reads them (a counter's family name has no `_total`)."""

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 when absent, as a counter not yet counted)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def matching(self, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample of `name` whose labels include `labels`."""
        want = set(labels.items())
        return {k: v for (n, k), v in self.samples.items() if n == name and want <= k}

    def names(self) -> set[str]:
        """Every sample name this scrape exports, including those of families without samples yet."""
        out = {name for name, _ in self.samples}
        for family, kind in self.families.items():
            out.update(family + suffix for suffix in SUFFIXES.get(kind, ("",)))
        return out


def scrape(api: str, headers: Mapping[str, str] | None = None) -> Scrape:
    request = urllib.request.Request(api + "/metrics", headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=5) as r:
        text = r.read().decode()
        content_type = r.headers.get("Content-Type", "")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return Scrape(text, content_type, samples, families)
