"""MeshMetric: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A MeshMetric turns on metrics for the selected proxies: which Envoy metrics to publish
(profiles with include/exclude selectors), which application endpoints the proxy scrapes
and merges in, and where metrics go (a Prometheus endpoint on the proxy, or pushes to an
OpenTelemetry collector). Which top-level targetRef kinds are allowed depends on the
policy's role (`kuma.io/policy-role`, `system` when absent): only system policies may
target a MeshGateway.

Kuma reports some of these problems at paths that are not in the document
(`spec.default.backends.backend[0]`, `spec.default.applications.application[0]`); they are
reported here at the field itself (`/spec/default/backends/0/...`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from typing import Any

from reconciler.checks import MUST_BE_DEFINED, as_map, enumerate_list, get
from reconciler.errors import Path, Violation, Violations
from reconciler.kind import Kind
from reconciler.model import Resource
from reconciler.policies.core.otel import check_otel_backend, otel_endpoint_deprecation
from reconciler.policies.core.targetref import check_target_ref, deprecated_top_level_kind, policy_role

__all__ = ["KIND", "validate", "SYSTEM_TOP_LEVEL_KINDS", "TOP_LEVEL_KINDS"]

SPEC = Path.root("spec")

SYSTEM_TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "MeshServiceSubset", "MeshGateway", "Dataplane")
"""Top-level kinds of a policy with the `system` role (the default)."""
TOP_LEVEL_KINDS = ("Mesh", "MeshSubset", "MeshService", "Dataplane", "MeshServiceSubset")
"""Top-level kinds of a producer, consumer or workload-owner policy."""

_PROFILES = ("All", "None", "Basic")
_SELECTOR_TYPES = ("Prefix", "Exact", "Contains", "Regex")
_PROMETHEUS_DEFAULT_PORT = 5670
_INVALID_PORT = "port must be a valid (1-65535)"


def validate(resource: Resource) -> list[Violation]:
    """Every rule of Kuma's MeshMetric validator, plus its deprecation warnings."""
    spec = as_map(resource.spec)
    out = Violations()
    ref = spec.get("targetRef")
    if policy_role(resource) == "system":
        out.extend(check_target_ref(ref, SPEC.field("targetRef"), SYSTEM_TOP_LEVEL_KINDS, gateway_listener_tags_allowed=True))
    else:
        out.extend(check_target_ref(ref, SPEC.field("targetRef"), TOP_LEVEL_KINDS))
    conf = as_map(spec.get("default"))
    path = SPEC.field("default")
    out.extend(_check_profiles(get(conf, "sidecar", "profiles"), path.field("sidecar").field("profiles")))
    for app_path, app in enumerate_list(conf.get("applications"), path.field("applications")):
        out.extend(_check_port(get(app, "port"), app_path.field("port")))
    for backend_path, backend in enumerate_list(conf.get("backends"), path.field("backends")):
        out.extend(_check_backend(as_map(backend), backend_path))
    out.extend(_deprecations(spec))
    return list(out)


def _check_profiles(profiles: Any, path: Path) -> list[Violation]:
    profiles = as_map(profiles)
    out: list[Violation] = []
    for section in ("exclude", "include"):
        for item_path, selector in enumerate_list(profiles.get(section), path.field(section)):
            out += _check_selector(as_map(selector), item_path)
    for item_path, profile in enumerate_list(profiles.get("appendProfiles"), path.field("appendProfiles")):
        name = get(profile, "name")
        if name not in _PROFILES:
            out.append(
                Violation(item_path.field("name"), f"unrecognized profile name '{_text(name)}' - 'All', 'None', 'Basic' are supported")
            )
    return out


def _check_selector(selector: Mapping[str, Any], path: Path) -> list[Violation]:
    kind = selector.get("type")
    if kind == "Regex":
        match = selector.get("match")
        problem = go_regex_error(match) if isinstance(match, str) else None
        if problem is not None:
            return [Violation(path.field("match"), f"invalid regex: {problem}")]
        return []
    if kind in _SELECTOR_TYPES:
        return []
    return [Violation(path.field("type"), f"unrecognized type '{_text(kind)}' - 'Regex', 'Prefix', 'Exact', 'Contains' are supported")]


def _check_port(port: Any, path: Path) -> list[Violation]:
    if isinstance(port, bool) or not isinstance(port, int):
        return []  # missing or mistyped: the schema reports it
    if not 1 <= port <= 65535:
        return [Violation(path, _INVALID_PORT)]
    return []


def _check_backend(backend: Mapping[str, Any], path: Path) -> list[Violation]:
    kind = backend.get("type")
    if kind == "Prometheus":
        prometheus = backend.get("prometheus")
        if prometheus is None:
            return [Violation(path.field("prometheus"), f"{MUST_BE_DEFINED} when type is Prometheus")]
        port = get(prometheus, "port")
        return _check_port(_PROMETHEUS_DEFAULT_PORT if port is None else port, path.field("prometheus").field("port"))
    if kind == "OpenTelemetry":
        otel = backend.get("openTelemetry")
        if otel is None:
            return [Violation(path.field("openTelemetry"), f"{MUST_BE_DEFINED} when type is OpenTelemetry")]
        # MeshMetric required host:port before backendRef existed; Kuma keeps that rule.
        return check_otel_backend(as_map(otel), path.field("openTelemetry"), host_port=True)
    return []  # a missing or unknown type is the schema's to report


def _deprecations(spec: Mapping[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    for path, backend in enumerate_list(get(spec, "default", "backends"), SPEC.field("default").field("backends")):
        out += otel_endpoint_deprecation(get(backend, "openTelemetry"), path.field("openTelemetry"))
    return out + deprecated_top_level_kind(spec, SYSTEM_TOP_LEVEL_KINDS)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- Go (RE2) regular expressions ------------------------------------------------------------
# Kuma compiles Regex selectors with Go's regexp (RE2 syntax), as Envoy matches them. Python's
# `re` is close; this scanner rejects what RE2 lacks (backreferences, lookaround, atomic and
# possessive forms, \Z, repeat counts over 1000) and rewrites what only RE2 spells (\z,
# \pL, \Q...\E, \x{...}, (?<name>, flags mid-pattern, the U flag) before compiling.
_UNSUPPORTED_GROUPS = ("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?(", "(?#", "(?P=", "(?P>", "(?&", "(?R", "(?|")
_GROUP_FLAGS = re.compile(r"\(\?([A-Za-z]*)(?:-([A-Za-z]*))?([:)])")
_GROUP_NAME = re.compile(r"\(\?P?<([A-Za-z0-9_]+)>")
_REPEAT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
_NO_PERL = "RE2 does not support '{0}' (no backreferences, lookaround, atomic groups or possessive repeats)"


def go_regex_error(pattern: str) -> str | None:
    """Why Go's regexp.Compile would reject `pattern`, or None if it compiles."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    after_repeat = False  # the previous token was a repetition operator
    while i < n:
        c = pattern[i]
        step: tuple[str, int] | str
        if c == "\\":
            step = _escape(pattern, i, in_class)
        elif in_class:
            in_class = c != "]"
            step = (c, i + 1)
        elif c == "[":
            # A leading ] (after an optional ^) is a literal member of the class.
            j = i + 1 + pattern.startswith("^", i + 1)
            j += pattern.startswith("]", j)
            in_class = True
            step = (pattern[i:j].replace("]", "\\]"), j)
        elif pattern.startswith("(?", i):
            step = _group(pattern, i)
        else:
            repeat = _REPEAT.match(pattern, i) if c == "{" else None
            if repeat and any(int(v) > 1000 for v in repeat.groups() if v):
                return f"invalid repeat count {repeat.group(0)!r}: RE2 allows at most 1000"
            if c == "+" and after_repeat:
                return _NO_PERL.format(pattern[i - 1 : i + 1])
            token = repeat.group(0) if repeat else c
            # A ? right after a repetition makes it lazy; nothing may follow that.
            after_repeat = (c in "*+?" or repeat is not None) and not (c == "?" and after_repeat)
            out.append(token)
            i += len(token)
            continue
        if isinstance(step, str):
            return step
        out.append(step[0])
        i = step[1]
        after_repeat = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POSIX classes like [[:alpha:]] make Python warn
            re.compile("".join(out))
    except re.error as e:
        return str(e)
    return None


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int] | str:
    """The escape at `i` as Python spells it and the index after it, or why RE2 rejects it."""
    if i + 1 >= len(pattern):
        return "trailing backslash at end of expression"
    e = pattern[i + 1]
    any_char = "a" if in_class else "."  # stands for a character Python cannot spell the RE2 way
    if e == "Q":  # literal text up to \E
        end = pattern.find("\\E", i + 2)
        return re.escape(pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]), len(pattern) if end < 0 else end + 2
    if e in "pP" or (e == "x" and pattern.startswith("{", i + 2)):
        if i + 2 >= len(pattern):
            return f"invalid character class range {pattern[i:]!r}"
        close = pattern.find("}", i + 3) if pattern.startswith("{", i + 2) else i + 2
        return f"missing closing }} in {pattern[i : i + 3]!r}" if close < 0 else (any_char, close + 1)
    if e in "123456789":
        if not (e in "1234567" and pattern[i + 2 : i + 3] in tuple("01234567")):
            return _NO_PERL.format("\\" + e)
        # An octal character code: up to three octal digits.
        return any_char, i + (4 if pattern[i + 3 : i + 4] in tuple("01234567") else 3)
    if e == "N":
        return "RE2 does not support '\\N' escapes"
    if e == "Z":
        return "RE2 does not support '\\Z'; use '\\z' for the end of the text"
    if e in "zC":
        return ("\\Z" if e == "z" else any_char), i + 2
    return pattern[i : i + 2], i + 2


def _group(pattern: str, i: int) -> tuple[str, int] | str:
    """The `(?...` group opening at `i` as Python spells it, or why RE2 rejects it."""
    for form in _UNSUPPORTED_GROUPS:
        if pattern.startswith(form, i):
            return _NO_PERL.format(form)
    named = _GROUP_NAME.match(pattern, i)
    if named:
        return f"(?P<{named.group(1)}>", named.end()
    flags = _GROUP_FLAGS.match(pattern, i)
    if flags and set((flags.group(1) or "") + (flags.group(2) or "")) <= set("imsU"):
        # Flags never change whether a pattern compiles; Python only refuses them mid-pattern.
        return ("(?:" if flags.group(3) == ":" else ""), flags.end()
    return f"invalid or unsupported Perl syntax at {pattern[i : i + 4]!r}"


KIND = Kind(name="MeshMetric", policy=True, short_name="mm", validate=validate)
