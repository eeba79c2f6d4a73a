"""The ServiceMonitor's fields checked by hand: its schema is the Prometheus Operator's CRD,
which no package here ships offline. These are the CRD's required fields (spec.selector,
spec.endpoints) and the types of the fields the manifests use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENDPOINT_FIELDS = {"port": str, "path": str, "interval": str, "scrapeTimeout": str, "scheme": str}


def servicemonitor_problems(obj: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    if obj.get("apiVersion") != "monitoring.coreos.com/v1" or obj.get("kind") != "ServiceMonitor":
        problems.append("not a monitoring.coreos.com/v1 ServiceMonitor")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata.get("name"), str) or not metadata.get("name"):
        problems.append("metadata.name missing")
    spec = obj.get("spec") or {}
    unknown = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels", "sampleLimit"}
    problems += [f"spec.{f}: unknown field" for f in sorted(unknown)]
    selector = spec.get("selector")
    if not isinstance(selector, Mapping) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problems.append("spec.selector: required, with matchLabels or matchExpressions")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        problems.append("spec.endpoints: required, a non-empty list")
        endpoints = []
    for i, endpoint in enumerate(endpoints):
        for field, value in endpoint.items():
            if field not in ENDPOINT_FIELDS:
                problems.append(f"spec.endpoints[{i}].{field}: unknown field")
            elif not isinstance(value, ENDPOINT_FIELDS[field]):
                problems.append(f"spec.endpoints[{i}].{field}: not a {ENDPOINT_FIELDS[field].__name__}")
        if "port" not in endpoint and "targetPort" not in endpoint:
            problems.append(f"spec.endpoints[{i}]: names no port")
    names = spec.get("namespaceSelector", {}).get("matchNames", [])
    if not all(isinstance(n, str) for n in names):
        problems.append("spec.namespaceSelector.matchNames: not strings")
    return problems
