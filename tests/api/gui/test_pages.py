"""The GUI's pages over real HTTP from a real `reconciler serve`, without a browser: status codes,
security headers, and text from the repository rendered as text, never as markup."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest

from tests.api.gui.repo import timeout_policy
from tests.api.support import admin_token, request, served_control_plane
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, free_port
from tests.gitops.helpers import mesh
from tests.support import dataplane_yaml

HOSTILE_SUBJECT = '<script>alert("subject")</script> & "quotes"'
HOSTILE_FILE = "policies/<img src=x onerror=alert(1)>.yaml"
PAGES = ["/gui", "/gui/meshes", "/gui/meshes/default", "/gui/dataplanes", "/gui/dataplanes/default/web", "/gui/services", "/gui/policies"]


def files() -> dict[str, str | None]:
    return {
        "meshes/default.yaml": mesh(),
        "dataplanes/web.yaml": dataplane_yaml("web", "web", free_port(), free_port(), {"backend": free_port()}),
        "dataplanes/backend.yaml": dataplane_yaml("backend-1", "backend", free_port(), free_port()),
        "policies/timeout.yaml": timeout_policy("2s"),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConfigRemote, ControlPlaneProcess, str, str]]:
    """A valid commit with a hostile subject, then a rejected one whose bad file has a hostile name."""
    root = tmp_path_factory.mktemp("gui-pages")
    with served_control_plane(root, files(), extra=("--dataplane-auth", "none", "--xds-tls", "none")) as (remote, cp, first):
        good = remote.push({}, HOSTILE_SUBJECT)
        cp.wait_applied(good)
        bad = remote.push({HOSTILE_FILE: "type: MeshTimeout\nmesh: default\nname: [unclosed\n"}, "a broken file")
        cp.wait_attempted(bad)
        yield remote, cp, good, bad


class Tags(HTMLParser):
    """The page's script sources, links, and any inline style or event-handler attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.links: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        if tag in ("a", "link") and dict(attrs).get("href"):
            self.links.append(dict(attrs)["href"] or "")
        self.inline += [f"<{tag} {name}>" for name, _ in attrs if name == "style" or name.startswith("on")]


def get(cp: ControlPlaneProcess, path: str) -> tuple[int, dict[str, str], str]:
    reply = request(cp.api, "GET", path)
    return reply.status, dict(reply.headers), reply.body.decode()


@pytest.mark.parametrize("path", PAGES + ["/gui/history"])
def test_every_page_is_html_with_a_strict_content_security_policy(
    served: tuple[ConfigRemote, ControlPlaneProcess, str, str], path: str
) -> None:
    _, cp, _, _ = served
    status, headers, body = get(cp, path)
    assert status == 200, body
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    # Nothing inline that the policy would have to allow: every script is a file of ours.
    tags = Tags()
    tags.feed(body)
    assert tags.scripts == ["/gui/static/gui.js"]
    assert tags.inline == []


def test_text_from_the_repository_is_shown_as_text(served: tuple[ConfigRemote, ControlPlaneProcess, str, str]) -> None:
    _, cp, good, bad = served
    status, _, body = get(cp, "/gui/history")
    assert status == 200
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt; &amp; &#34;quotes&#34;" in body
    # The rejected commit's error names the hostile file, escaped, with its line.
    assert re.search(r"policies/&lt;img src=x onerror=alert\(1\)&gt;\.yaml:\d+", body), body
    assert f'data-revision="{bad}" data-outcome="rejected"' in body
    assert f'data-revision="{good}" data-outcome="applied"' in body
    status, _, body = get(cp, f"/gui/history/{good}")
    assert status == 200
    assert "<script>alert" not in body and "&lt;script&gt;alert" in body


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/gui/dataplanes/default/nobody", 404, "no dataplane nobody in mesh default"),
        ("/gui/dataplanes/other/web", 404, "no dataplane web in mesh other"),
        ("/gui/meshes/nomesh", 404, "no mesh nomesh is served"),
        ("/gui/history/0123456789abcdef", 404, "no commit 0123456789abcdef in the repository"),
        ("/gui/history/a..b", 400, "is not a commit id"),
        ("/gui/no-such-page", 404, "no page /gui/no-such-page"),
        ("/gui/static/nothing.js", 404, "no file nothing.js"),
        ("/gui/static/%2e%2e%2f__init__.py", 404, "no file"),
    ],
)
def test_unknown_things_are_html_errors_with_their_status(
    served: tuple[ConfigRemote, ControlPlaneProcess, str, str], path: str, status: int, text: str
) -> None:
    _, cp, _, _ = served
    got, headers, body = get(cp, path)
    assert got == status, body
    assert headers["content-type"].startswith("text/html")
    assert text in body


def test_static_files_are_served_with_their_types(served: tuple[ConfigRemote, ControlPlaneProcess, str, str]) -> None:
    _, cp, _, _ = served
    status, headers, body = get(cp, "/gui/static/gui.js")
    assert (status, headers["content-type"].split(";")[0], headers["x-content-type-options"]) == (200, "text/javascript", "nosniff")
    assert "sessionStorage" in body and "innerHTML" not in body
    status, headers, _ = get(cp, "/gui/static/gui.css")
    assert (status, headers["content-type"].split(";")[0]) == (200, "text/css")


def test_the_live_fingerprint_moves_when_a_commit_lands(served: tuple[ConfigRemote, ControlPlaneProcess, str, str]) -> None:
    remote, cp, _, _ = served
    before = request(cp.api, "GET", "/gui/live").json()["version"]
    assert request(cp.api, "GET", "/gui/live").json()["version"] == before  # stable while nothing happens
    page = get(cp, "/gui")[2]
    assert f'<meta name="live-version" content="{before}">' in page
    fixed = remote.push({HOSTILE_FILE: None}, "remove the broken file")
    cp.wait_applied(fixed)
    assert request(cp.api, "GET", "/gui/live").json()["version"] != before


def test_every_link_on_every_page_answers(served: tuple[ConfigRemote, ControlPlaneProcess, str, str]) -> None:
    """The GUI's own pages and the JSON behind them (Kuma's API paths, /status, /history)."""
    _, cp, good, _ = served
    links: set[str] = set()
    for path in [*PAGES, "/gui/history", f"/gui/history/{good}"]:
        tags = Tags()
        tags.feed(get(cp, path)[2])
        links.update(tags.links)
    assert {"/gui/dataplanes/default/web", "/meshes/default/dataplanes/web/_rules", "/meshes/default/meshtimeouts/quick"} <= links
    broken = {link: status for link in sorted(links) if (status := request(cp.api, "GET", link).status) != 200}
    assert broken == {}


def test_pages_never_show_the_admin_token(served: tuple[ConfigRemote, ControlPlaneProcess, str, str]) -> None:
    _, cp, _, _ = served
    token = admin_token(cp.state_dir)
    for path in PAGES + ["/gui/history"]:
        assert token not in get(cp, path)[2]


def test_dataplane_and_policy_pages_show_the_model(served: tuple[ConfigRemote, ControlPlaneProcess, str, str]) -> None:
    _, cp, _, _ = served
    body = get(cp, "/gui/dataplanes")[2]
    assert 'data-name="web" data-mesh="default" data-online="false"' in body
    assert 'data-name="backend-1" data-mesh="default" data-online="false"' in body
    body = get(cp, "/gui/policies")[2]
    row = body[body.index('data-name="quick"') :].split("</tr>")[0]
    assert 'href="/gui/dataplanes/default/web"' in row and 'href="/gui/dataplanes/default/backend-1"' in row
    assert "policies/timeout.yaml:" in row
    # Kuma's defaults are served too (this mesh keeps them): listed with what they affect.
    row = body[body.index('data-name="mesh-timeout-all-default"') :].split("</tr>")[0]
    assert "Kuma's default for the mesh" in row and 'href="/gui/dataplanes/default/web"' in row
    body = get(cp, "/gui/dataplanes/default/web")[2]
    rules = body[body.index('data-type="MeshTimeout"') :].split("</details>")[0]
    assert "MeshTimeout default/quick" in rules and "&#34;connectionTimeout&#34;:" in rules
    body = get(cp, "/gui/services")[2]
    assert ">backend<" in body and 'href="/gui/dataplanes/default/backend-1"' in body
