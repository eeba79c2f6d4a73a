"""The web GUI at `/gui`: server-rendered pages (Jinja2) with a little JavaScript."""

from __future__ import annotations

from reconciler.api.backend import ApiBackend
from reconciler.api.server import Route

__all__ = ["gui_routes"]


def gui_routes(cp: ApiBackend) -> list[Route]:
    return []
