"""Renders the Helm chart's templates the way `helm template` does, for the subset they use.

No `helm` binary can be installed here (it is on neither PyPI, npm nor Debian bookworm), so
the tests render deploy/helm/mesh-reconciler with this instead and compare the result with
deploy/kubernetes object by object. The subset: `{{ .Values.a.b }}`, `{{ .Release.Name }}`,
`{{ .Release.Namespace }}`, `{{ .Chart.AppVersion }}`, the pipes `quote` and
`toYaml ... | nindent N`, `{{ if X }}...{{ end }}`, and `{{-`/`-}}` whitespace trimming. Anything
else in a template is an error here, so the chart cannot drift into what this cannot check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.DOTALL)
REFERENCE = re.compile(r"^\.(Values|Release|Chart)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)$")


class UnsupportedTemplate(ValueError):
    """A template uses something outside the subset (say which, so the chart or this grows)."""


@dataclass
class _Block:
    condition: str | None  # None: the template's top level
    parts: list[str | tuple[str] | _Block] = field(default_factory=list)


def _tokens(text: str) -> list[str | tuple[str]]:
    """Text chunks (str) and actions ((expr,)), with `{{-` and `-}}` trimming applied."""
    out: list[str | tuple[str]] = []
    pos = 0
    trim_next = False
    for m in ACTION.finditer(text):
        chunk = text[pos : m.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(chunk)
        out.append((m.group(2),))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = text[pos:]
    out.append(tail.lstrip() if trim_next else tail)
    return out


def _parse(text: str) -> _Block:
    stack = [_Block(None)]
    for token in _tokens(text):
        if isinstance(token, str):
            stack[-1].parts.append(token)
            continue
        expr = token[0]
        if expr.startswith("/*"):
            continue
        if expr.startswith("if "):
            block = _Block(expr[3:].strip())
            stack[-1].parts.append(block)
            stack.append(block)
        elif expr == "end":
            if len(stack) == 1:
                raise UnsupportedTemplate("{{ end }} without {{ if }}")
            stack.pop()
        else:
            stack[-1].parts.append(token)
    if len(stack) != 1:
        raise UnsupportedTemplate("{{ if }} without {{ end }}")
    return stack[0]


def _lookup(ref: str, scope: Mapping[str, Any]) -> Any:
    m = REFERENCE.match(ref)
    if not m:
        raise UnsupportedTemplate(f"not a .Values/.Release/.Chart reference: {ref!r}")
    value: Any = scope[m.group(1)]
    for key in m.group(2).split(".")[1:]:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _go_string(value: Any) -> str:
    """How Go's text/template prints a value (helm reads numbers as float64: 30.0 prints 30)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _evaluate(expr: str, scope: Mapping[str, Any]) -> str:
    stages = [s.strip() for s in expr.split("|")]
    head = stages[0].split()
    if len(head) == 2 and head[0] == "toYaml":
        value: Any = _to_yaml(_lookup(head[1], scope))
    elif len(head) == 1:
        value = _go_string(_lookup(head[0], scope))
    else:
        raise UnsupportedTemplate(f"unsupported action {{{{ {expr} }}}}")
    for stage in stages[1:]:
        name, *args = stage.split()
        if name == "quote" and not args:
            value = json.dumps(str(value))
        elif name == "nindent" and len(args) == 1:
            pad = " " * int(args[0])
            value = "\n" + "\n".join(pad + line if line else line for line in str(value).split("\n"))
        else:
            raise UnsupportedTemplate(f"unsupported pipe {stage!r} in {{{{ {expr} }}}}")
    return str(value)


def _truthy(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, lists and maps are false."""
    return bool(value)


def _render(block: _Block, scope: Mapping[str, Any]) -> str:
    out: list[str] = []
    for part in block.parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Block):
            if part.condition is None or _truthy(_lookup(part.condition, scope)):
                out.append(_render(part, scope))
        else:
            out.append(_evaluate(part[0], scope))
    return "".join(out)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_chart(
    chart: Path, *, release: str = "mesh-reconciler", namespace: str = "mesh-system", values: Mapping[str, Any] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Each template file's objects (empty when its `if` is off), with values.yaml merged with `values`."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    defaults = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    scope = {
        "Values": _merge(defaults, values or {}),
        "Release": {"Name": release, "Namespace": namespace},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta.get("appVersion")},
    }
    rendered: dict[str, list[dict[str, Any]]] = {}
    for template in sorted((chart / "templates").glob("*.yaml")):
        text = _render(_parse(template.read_text()), scope)
        rendered[template.name] = [doc for doc in yaml.safe_load_all(text) if doc]
    return rendered
