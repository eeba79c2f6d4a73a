"""Rendering the GUI's pages: Jinja2 templates and static files shipped inside the package.

Everything a page shows may come from the repository (names, commit subjects, error messages,
file names), so autoescaping is always on and undefined names fail loudly instead of rendering
as empty text. Every answer carries a Content-Security-Policy that allows scripts, styles and
requests from this server only and no inline script or style: even text that escaped escaping
could not run. The static files are read once, from a fixed list, so no request path reaches
the file system.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from reconciler.api.kuma.descriptors import descriptor_of

__all__ = ["TEMPLATES", "SECURITY_HEADERS", "render_page", "static_file", "STATIC_FILES"]

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Pages show live state: never a stale copy from a cache.
    "Cache-Control": "no-store",
}

_CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("reconciler.api.gui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _short(revision: str | None) -> str:
    """A commit id as people read it (12 hex digits); `branch@sha1:<id>` loses its prefix."""
    if not revision:
        return ""
    return revision.rpartition(":")[2][:12]


def _plural(kind: str) -> str:
    """Kuma's API path segment for a kind: `MeshHTTPRoute` → `meshhttproutes`."""
    descriptor = descriptor_of(kind)
    return descriptor.path if descriptor is not None else kind.lower() + "s"


def _pretty(value: Any) -> str:
    """A JSON value as indented text (escaped like any other text when rendered)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


TEMPLATES.filters["short"] = _short
TEMPLATES.filters["pretty"] = _pretty
TEMPLATES.filters["plural"] = _plural


def render_page(template: str, status: int = 200, **context: Any) -> web.Response:
    text = TEMPLATES.get_template(template).render(**context)
    return web.Response(status=status, text=text, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


def _load_static() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("reconciler.api.gui").joinpath("static")
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _CONTENT_TYPES:
            out[entry.name] = (entry.read_bytes(), _CONTENT_TYPES[suffix])
    return out


STATIC_FILES = _load_static()


def static_file(name: str) -> web.Response | None:
    """One of the package's static files, None when there is no such file."""
    found = STATIC_FILES.get(name)
    if found is None:
        return None
    body, content_type = found
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS)
