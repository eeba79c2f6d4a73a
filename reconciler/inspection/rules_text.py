"""The InspectRules document (inspection/rules.py) as text for people: per policy type, the
conf of the proxy, of each outbound and route, and of each inbound, each followed by the
policies it came from in merge order (`reconciler inspect dataplane`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.inspection.meta import MATCHES_HASH_KEY

__all__ = ["rules_text", "warnings_text"]


def _conf(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _origin(meta: Mapping[str, Any]) -> str:
    return f"{meta['type']} {meta['mesh']}/{meta['name']}"


def _match_text(match: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for m in match:
        path = m.get("path") or {}
        words = [f"{path.get('type', 'PathPrefix')} {path.get('value', '/')}"]
        if m.get("method"):
            words.append(str(m["method"]))
        words += [f"{h.get('name')}={h.get('value', '')}" for h in m.get("headers") or ()]
        words += [f"?{q.get('name')}={q.get('value', '')}" for q in m.get("queryParams") or ()]
        parts.append(" ".join(words))
    return " | ".join(parts)


def _matchers_text(matchers: Sequence[Mapping[str, Any]], matches: Mapping[str, Any], everything: str) -> str:
    words = []
    for m in matchers:
        if m["key"] == MATCHES_HASH_KEY:
            words.append(("not " if m["not"] else "") + f"route {_match_text(matches.get(m['value'], []))}")
        else:
            words.append(f"{m['key']}{'!=' if m['not'] else '='}{m['value']}")
    return ", ".join(words) or everything


def _resource_text(meta: Mapping[str, Any], section: str | None) -> str:
    return f"{meta['type']} {meta['mesh']}/{meta['name']}" + (f" [{section}]" if section else "")


def _inbound_text(inbound: Mapping[str, Any]) -> str:
    tags = ", ".join(f"{k}={v}" for k, v in sorted(inbound["tags"].items()))
    name = f"{inbound['name']} " if inbound.get("name") else ""
    return f"inbound {name}port {inbound['port']} ({tags})"


def _block(head: str, conf: Any, origins: list[str]) -> list[str]:
    if isinstance(conf, Mapping) and list(conf) == ["rules"]:  # a route's rules: one line each
        body = [f"    {_match_text(r.get('matches') or []) or 'all traffic'}: {_conf(r.get('default'))}" for r in conf["rules"]]
        return [f"  {head}:", *body, *(f"    from {o}" for o in origins)]
    return [f"  {head}: {_conf(conf)}", *(f"    from {o}" for o in origins)]


def rules_text(doc: Mapping[str, Any]) -> list[str]:
    """The lines of the document's rules (nothing for a proxy no policy reaches), without the
    warnings (`warnings_text`)."""
    matches = {m["hash"]: m["match"] for m in doc["httpMatches"]}
    lines: list[str] = []
    for rule in doc["rules"]:
        lines.append(rule["type"])
        if "proxyRule" in rule:
            lines += _block("proxy", rule["proxyRule"]["conf"], [_origin(o) for o in rule["proxyRule"]["origin"]])
        # Named destinations first, the catch-all (no matcher) last; the Mesh-keyed resource
        # rule repeats the catch-all.
        named = [r for r in rule["toRules"] if r["matchers"]]
        for r in named:
            lines += _block(f"to {_matchers_text(r['matchers'], matches, '')}", r["conf"], [_origin(o) for o in r["origin"]])
        for r in (r for r in rule["toResourceRules"] if r["resourceMeta"]["type"] != "Mesh"):
            head = f"to {_resource_text(r['resourceMeta'], r.get('resourceSectionName'))}"
            origins = [f"{_origin(o['resourceMeta'])} /spec/to/{o['ruleIndex']}" for o in r["origin"]]
            for conf in r["conf"]:
                lines += _block(head, conf, origins)
        for r in (r for r in rule["toRules"] if not r["matchers"]):
            lines += _block("to any other destination", r["conf"], [_origin(o) for o in r["origin"]])
        for entry in rule["fromRules"]:
            for r in entry["rules"]:
                head = f"{_inbound_text(entry['inbound'])} from {_matchers_text(r['matchers'], matches, 'every client')}"
                lines += _block(head, r["conf"], [_origin(o) for o in r["origin"]])
    return lines


def warnings_text(doc: Mapping[str, Any]) -> list[str]:
    """The rules' warnings, one a line (MeshProxyPatch's already name their file and line)."""
    return [w if rule["type"] == "MeshProxyPatch" else f"{rule['type']}: {w}" for rule in doc["rules"] for w in rule["warnings"]]
