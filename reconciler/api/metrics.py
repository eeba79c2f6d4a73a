"""Prometheus metrics in the text exposition format, without a client library.

Counters and gauges with labels, and one histogram for reconcile duration; rendered on
demand at `GET /metrics`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

__all__ = ["Metrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs)
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._help: dict[str, tuple[str, str]] = {}
        self._gauges: dict[str, Callable[[], Iterable[tuple[dict[str, str], float]]]] = {}
        self._hist: dict[str, list[float]] = {}
        """Per histogram: a cumulative count per bucket, then +Inf count, then sum."""

    def counter(self, name: str, help_text: str) -> None:
        self._help[name] = ("counter", help_text)
        self._counters.setdefault(name, {})

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def gauge(self, name: str, help_text: str, collect: Callable[[], Iterable[tuple[dict[str, str], float]]]) -> None:
        self._help[name] = ("gauge", help_text)
        self._gauges[name] = collect

    def histogram(self, name: str, help_text: str) -> None:
        self._help[name] = ("histogram", help_text)
        self._hist[name] = [0.0] * (len(_BUCKETS) + 2)

    def observe(self, name: str, value: float) -> None:
        with self._lock:
            h = self._hist.setdefault(name, [0.0] * (len(_BUCKETS) + 2))
            for i, bound in enumerate(_BUCKETS):
                if value <= bound:
                    h[i] += 1
            h[-2] += 1
            h[-1] += value

    def render(self) -> str:
        out: list[str] = []
        with self._lock:
            for name, (kind, help_text) in sorted(self._help.items()):
                out.append(f"# HELP {name} {help_text}")
                out.append(f"# TYPE {name} {kind}")
                if kind == "counter":
                    for key, v in sorted(self._counters.get(name, {}).items()):
                        out.append(f"{name}{_labels(key)} {v:g}")
                elif kind == "gauge":
                    for labels, v in self._gauges[name]():
                        out.append(f"{name}{_labels(tuple(sorted(labels.items())))} {v:g}")
                else:
                    h = self._hist[name]
                    for i, b in enumerate(_BUCKETS):
                        out.append(f'{name}_bucket{{le="{b}"}} {h[i]:g}')
                    out.append(f'{name}_bucket{{le="+Inf"}} {h[-2]:g}')
                    out.append(f"{name}_sum {h[-1]:g}")
                    out.append(f"{name}_count {h[-2]:g}")
        return "\n".join(out) + "\n"
