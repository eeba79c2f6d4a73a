"""The web GUI at `/gui`: server-rendered pages (Jinja2) with a little JavaScript.

Pages (reconciler/api/gui/pages.py) read the store and the applied model through `ApiBackend`;
templates and static files ship inside the package. docs/gui.md shows every page.
"""

from __future__ import annotations

from reconciler.api.backend import ApiBackend
from reconciler.api.gui.pages import Pages
from reconciler.api.server import Route

__all__ = ["gui_routes"]


def gui_routes(cp: ApiBackend) -> list[Route]:
    pages = Pages(cp)
    return [
        Route("GET", "/gui", pages.home),
        Route("GET", "/gui/", pages.home),
        Route("GET", "/gui/live", pages.live),
        Route("GET", "/gui/static/{file}", pages.static),
        Route("GET", "/gui/meshes", pages.meshes),
        Route("GET", "/gui/meshes/{mesh}", pages.mesh),
        Route("GET", "/gui/dataplanes", pages.dataplanes),
        Route("GET", "/gui/dataplanes/{mesh}/{name}", pages.dataplane),
        Route("GET", "/gui/services", pages.services),
        Route("GET", "/gui/policies", pages.policies),
        Route("GET", "/gui/history", pages.history),
        Route("GET", "/gui/history/{revision}", pages.commit),
        # Last: any other path under /gui is an HTML 404 page, not the API's JSON one.
        Route("GET", "/gui/{tail:.*}", pages.missing),
    ]
