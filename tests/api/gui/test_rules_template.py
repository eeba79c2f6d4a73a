"""The dataplane page's rules section renders every field of Kuma's InspectRules schema
(components/schemas/InspectRules in Kuma's OpenAPI description), whatever policy type, and
shows text from the repository as text."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from reconciler.api.gui.render import TEMPLATES

HOSTILE = "<script>alert(1)</script>"


def meta(type_: str, name: str) -> dict[str, Any]:
    return {"type": type_, "mesh": "default", "name": name, "labels": {}}


DOC: dict[str, Any] = {
    "resource": meta("Dataplane", "web"),
    "rules": [
        {
            "type": "MeshTrace",
            "proxyRule": {"conf": {"sampling": {"overall": 42}}, "origin": [meta("MeshTrace", "everywhere")]},
            "warnings": [f"careful {HOSTILE}"],
        },
        {
            "type": "MeshTimeout",
            "toRules": [
                {
                    "matchers": [
                        {"key": "kuma.io/service", "value": "backend", "not": False},
                        {"key": "zone", "value": "east", "not": True},
                    ],
                    "conf": {"connectionTimeout": "7s"},
                    "origin": [meta("MeshTimeout", "to-backend")],
                }
            ],
            "toResourceRules": [
                {
                    "resourceMeta": meta("MeshService", "redis"),
                    "resourceSectionName": "tcp-port",
                    "conf": [{"idleTimeout": "1h"}],
                    "origin": [{"resourceMeta": meta("MeshTimeout", "redis-idle"), "ruleIndex": 2}],
                }
            ],
            "fromRules": [
                {
                    "inbound": {"name": "http", "port": 8080, "tags": {"kuma.io/service": "web"}},
                    "rules": [{"matchers": [], "conf": {"requestTimeout": "3s"}, "origin": [meta("MeshTimeout", "inbound")]}],
                }
            ],
            "inboundRules": [
                {
                    "inbound": {"name": "http", "port": 8080, "tags": {"kuma.io/service": "web"}},
                    "rules": [{"conf": [{"requestTimeout": "3s"}], "origin": [meta("MeshTimeout", "inbound")]}],
                }
            ],
        },
        {"type": "MeshHTTPRoute", "toRules": [{"matchers": [], "conf": {"note": HOSTILE}, "origin": []}]},
    ],
    "httpMatches": [{"hash": "Abc123", "match": {"path": {"type": "PathPrefix", "value": "/api"}}}],
}


class Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def rendered(doc: dict[str, Any] | None) -> tuple[str, str, int]:
    html = str(TEMPLATES.get_template("rules.html").module.rules_section(doc))  # type: ignore[attr-defined]
    parser = Text()
    parser.feed(html)
    return html, parser.text(), parser.scripts


def test_every_field_of_the_schema_is_shown() -> None:
    _, text, _ = rendered(DOC)
    assert "MeshTrace whole proxy · 1 warnings" in text
    assert "MeshTimeout 1 to · 1 to resources · 1 from (inbounds) · 1 inbound" in text
    assert '"overall": 42' in text and "from MeshTrace default/everywhere" in text
    assert "kuma.io/service=backend !zone=east" in text and '"connectionTimeout": "7s"' in text and "MeshTimeout default/to-backend" in text
    assert "MeshService default/redis tcp-port" in text and '"idleTimeout": "1h"' in text and "MeshTimeout default/redis-idle to[2]" in text
    assert "Inbound http :8080 kuma.io/service=web" in text and '"requestTimeout": "3s"' in text and "all traffic" in text
    assert "HTTP matches" in text and "Abc123" in text and '"value": "/api"' in text


def test_text_in_rules_stays_text() -> None:
    html, text, scripts = rendered(DOC)
    assert scripts == 0 and "<script>alert" not in html
    assert f"careful {HOSTILE}" in text
    assert '"note": "<script>alert(1)</script>"' in text


def test_a_proxy_without_rules_or_without_a_dataplane_says_so() -> None:
    assert rendered({"resource": meta("Dataplane", "web"), "rules": [], "httpMatches": []})[1] == "No policy applies to this dataplane."
    assert "the commit served has no Dataplane of this name" in rendered(None)[1]
