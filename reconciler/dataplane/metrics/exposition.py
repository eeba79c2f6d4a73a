"""Prometheus exposition text in and out: metric families with their samples.

The Prometheus text format (Envoy's, most applications') is read here as Go's expfmt parser
reads it, keeping names exactly: prometheus-client's text parser renames counters (it adds
`_total` to a counter's samples), and Kuma's profile selectors match the name the `# TYPE`
line gives. OpenMetrics, when an application answers with it, is read by prometheus-client's
OpenMetrics parser (its counter family is named with `_total`, as the samples).

Rendering writes the Prometheus text format 0.0.4, what Kuma's `/meshmetric` handler answers
(promhttp without OpenMetrics), and OpenMetrics 1.0.0 when the scraper asks for it first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

__all__ = [
    "Family",
    "Sample",
    "parse",
    "render",
    "sanitize_label_name",
    "with_labels",
    "TEXT_CONTENT_TYPE",
    "OPENMETRICS_CONTENT_TYPE",
    "negotiate",
]

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass(slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(slots=True)
class Family:
    name: str
    """As the exposition's `# TYPE` line named it (a counter keeps its `_total`)."""
    type: str
    """counter, gauge, histogram, summary, untyped (prometheus-client's `unknown` reads as untyped)."""
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def parse(text: str, content_type: str = "") -> list[Family]:
    """The families of an exposition; OpenMetrics when `content_type` says so. Raises
    ValueError when the text does not parse."""
    if content_type.split(";")[0].strip().lower() == "application/openmetrics-text":
        return _parse_openmetrics(text)
    return _parse_text(text)


def _parse_openmetrics(text: str) -> list[Family]:
    try:
        metrics = list(parse_openmetrics(text))  # type: ignore[no-untyped-call]
    except Exception as e:  # the parser raises ValueError, IndexError, KeyError... on bad input
        raise ValueError(f"cannot parse OpenMetrics: {e}") from e
    out: list[Family] = []
    for metric in metrics:
        kind = "untyped" if metric.type in ("unknown", "untyped") else metric.type
        name = metric.name + "_total" if kind == "counter" else metric.name
        out.append(Family(name, kind, metric.documentation or "", [Sample(s.name, dict(s.labels), float(s.value)) for s in metric.samples]))
    return out


_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{)?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,)?')
_UNESCAPE = re.compile(r"\\(.)")


def _parse_text(text: str) -> list[Family]:
    """The Prometheus text format 0.0.4, as Go's expfmt.TextParser reads it: a sample belongs to
    the family its `# TYPE` line named (histogram and summary samples by their suffixes); a
    sample of no declared family starts an untyped one of its own name."""
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line[1:].split(None, 2)
            if len(parts) >= 3 and parts[0] == "TYPE":
                families.setdefault(parts[1], Family(parts[1], parts[2].strip(), helps.get(parts[1], "")))
            elif len(parts) >= 2 and parts[0] == "HELP":
                helps[parts[1]] = _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), parts[2] if len(parts) > 2 else "")
                if parts[1] in families:
                    families[parts[1]].help = helps[parts[1]]
            continue
        sample = _sample(line, number)
        family = families.get(sample.name) or _owner(families, sample.name)
        if family is None:
            family = families[sample.name] = Family(sample.name, "untyped", helps.get(sample.name, ""))
        family.samples.append(sample)
    return list(families.values())


def _owner(families: Mapping[str, Family], name: str) -> Family | None:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            family = families.get(name[: -len(suffix)])
            if family is not None and suffix in _SUFFIXES.get(family.type, ()):
                return family
    return None


def _sample(line: str, number: int) -> Sample:
    match = _SAMPLE.match(line)
    if match is None:
        raise ValueError(f"line {number}: not a sample: {line[:80]!r}")
    labels: dict[str, str] = {}
    i = match.end()
    if match.group(2):
        while True:
            if line[i:].lstrip().startswith("}"):
                i = line.index("}", i) + 1
                break
            label = _LABEL.match(line, i)
            if label is None:
                raise ValueError(f"line {number}: bad labels: {line[:80]!r}")
            labels[label.group(1)] = _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), label.group(2))
            i = label.end()
            if label.group(3) is None:
                rest = line[i:].lstrip()
                if not rest.startswith("}"):
                    raise ValueError(f"line {number}: bad labels: {line[:80]!r}")
                i = line.index("}", i) + 1
                break
    fields = line[i:].split()
    if not fields:
        raise ValueError(f"line {number}: no value: {line[:80]!r}")
    try:
        value = float(fields[0])
    except ValueError:
        raise ValueError(f"line {number}: bad value {fields[0]!r}") from None
    return Sample(match.group(1), labels, value)


_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_label_name(name: str) -> str:
    """A label name Prometheus accepts (Kuma's sanitizeLabelName, the OTel exporter's
    underscore escaping): anything outside [a-zA-Z0-9_] becomes `_`."""
    return _INVALID_LABEL_CHAR.sub("_", name)


def with_labels(families: Iterable[Family], labels: Mapping[str, str]) -> list[Family]:
    """Every sample with `labels` added; an added label replaces a sample's own of the same
    name (OpenTelemetry attribute sets keep the last value)."""
    extra = {sanitize_label_name(k): v for k, v in labels.items()}
    return [Family(f.name, f.type, f.help, [Sample(s.name, {**s.labels, **extra}, s.value) for s in f.samples]) for f in families]


def negotiate(accept: str) -> str:
    """OpenMetrics when the scraper's Accept lists it before the text format, else text."""
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == "application/openmetrics-text":
            return OPENMETRICS_CONTENT_TYPE
        if media in ("text/plain", "*/*"):
            return TEXT_CONTENT_TYPE
    return TEXT_CONTENT_TYPE


def render(families: Iterable[Family], content_type: str = TEXT_CONTENT_TYPE) -> str:
    """The families as exposition text of `content_type` (see `negotiate`). Families of the
    same name (Envoy's and an application's) are written once, their samples together."""
    openmetrics = content_type.startswith("application/openmetrics-text")
    merged: dict[str, Family] = {}
    for family in families:
        if not family.samples:
            continue
        if family.name in merged and merged[family.name].type == family.type:
            merged[family.name].samples.extend(family.samples)
        elif family.name not in merged:
            merged[family.name] = Family(family.name, family.type, family.help, list(family.samples))
    lines: list[str] = []
    for family in merged.values():
        name, kind = family.name, family.type
        if openmetrics:
            kind = "unknown" if kind == "untyped" else kind
            if kind == "counter" and name.endswith("_total"):
                name = name[: -len("_total")]
        if family.help:
            lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {kind}")
        for s in family.samples:
            sample_name = s.name
            if openmetrics and kind == "counter" and not sample_name.endswith(("_total", "_created")):
                sample_name += "_total"
            lines.append(f"{sample_name}{_labels(s.labels)} {_value(s.value)}")
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n" if lines else ""


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in labels.items()) + "}"


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
