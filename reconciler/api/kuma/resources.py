"""Kuma's resource endpoints: `/`, `/_resources`, `/policies`, `/global-insight`,
`/_kri/{kri}`, `/meshes`, `/meshes/{mesh}/{plural}[/{name}]`, `/{plural}` (a mesh-scoped kind
across meshes, or a global kind), `/{plural}/{name}` for global kinds, and the overviews of
dataplanes and zone proxies, and the mesh and service insights. Every write on these paths is
refused (writes.py).

Top-level paths are registered kind by kind: a pattern such as `/{plural}` would take the
control plane's own `/status` and `/history`. Under `/meshes/{mesh}/` one pattern serves every
kind and answers an unknown one with Kuma's 404. The fixed `_overview` paths come before the
`{name}` patterns that would read `_overview` as a name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reconciler.api.backend import ApiBackend
from reconciler.api.kuma.addresses import address_status
from reconciler.api.kuma.catalog import Catalog, catalog_of, times_of
from reconciler.api.kuma.descriptors import KindDescriptor, by_path, descriptor_of, descriptors
from reconciler.api.kuma.errors import InvalidParameter, KumaError, not_found
from reconciler.api.kuma.global_insight import global_insight_json
from reconciler.api.kuma.index import index_json, instance_id, policies_json, resources_json
from reconciler.api.kuma.insights import mesh_insight_json, service_stats
from reconciler.api.kuma.listing import page_of, paginate, resource_filter
from reconciler.api.kuma.overview import insight_json
from reconciler.api.kuma.shapes import computed_labels, item_json, kri_of, rfc3339
from reconciler.api.kuma.writes import refusing_routes
from reconciler.api.server import Route, json_response
from reconciler.model import Resource

__all__ = ["resource_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LIST_TITLE = "Could not retrieve resources"
ITEM_TITLE = "Could not retrieve a resource"
_OVERVIEW_FIELDS = {
    "Dataplane": ("dataplane", "dataplaneInsight"),
    "ZoneIngress": ("zoneIngress", "zoneIngressInsight"),
    "ZoneEgress": ("zoneEgress", "zoneEgressInsight"),
}
"""Kuma's <Kind>Overview: the resource's fields and its insight, under these names."""
_OVERVIEW_PATHS = {
    "Dataplane": (
        ("/meshes/{mesh}/dataplanes/_overview", "/meshes/{mesh}/dataplanes+insights", "/dataplanes/_overview", "/dataplanes+insights"),
        ("/meshes/{mesh}/dataplanes/{name}/_overview", "/meshes/{mesh}/dataplanes+insights/{name}"),
    ),
    "ZoneIngress": (
        ("/zoneingresses/_overview", "/zone-ingresses/_overview", "/zoneingresses+insights"),
        ("/zoneingresses/{name}/_overview", "/zone-ingresses/{name}/_overview", "/zoneingresses+insights/{name}"),
    ),
    "ZoneEgress": (
        ("/zoneegresses/_overview", "/zoneegressoverviews"),
        ("/zoneegresses/{name}/_overview", "/zoneegressoverviews/{name}"),
    ),
}
"""Lists and items of overviews: Kuma's `_overview` paths and its older ones."""


def _kuma(handler: Callable[[web.Request], web.StreamResponse]) -> Handler:
    """A synchronous handler whose KumaError becomes Kuma's error answer."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return handler(request)
        except KumaError as e:
            return e.response()

    return run


class _Views:
    """The read handlers over one control plane."""

    def __init__(self, cp: ApiBackend) -> None:
        self.cp = cp
        self.instance = instance_id()

    # -- helpers -------------------------------------------------------------------------
    def _catalog(self) -> Catalog:
        return catalog_of(self.cp.store)

    def _item(self, catalog: Catalog, d: KindDescriptor, r: Resource) -> dict[str, Any]:
        item = item_json(d, r, times_of(self.cp.store, catalog, r))
        applied = self.cp.store.applied
        status = address_status(applied.model if applied is not None else None, r)
        if status is not None:
            item["status"] = status
        return item

    @staticmethod
    def _mesh(catalog: Catalog, request: web.Request) -> str:
        mesh = request.match_info["mesh"]
        if mesh not in catalog.meshes():
            raise not_found("Failed to retrieve Mesh")
        return mesh

    @staticmethod
    def _kind(request: web.Request, *, mesh_scoped: bool) -> KindDescriptor:
        d = by_path().get(request.match_info["plural"])
        if d is None or d.global_scope == mesh_scoped:
            raise KumaError(404, "Not found", f"no resource type is served at {request.path}")
        return d

    @staticmethod
    def _format(request: web.Request) -> None:
        fmt = request.query.get("format", "")
        if fmt not in ("", "universal"):
            reason = (
                "must be universal: this control plane keeps Universal resources only"
                if fmt in ("k8s", "kubernetes")
                else ("must be one of k8s, kubernetes, universal")
            )
            raise KumaError(400, "Bad Request", "Resource is not valid", (InvalidParameter("format", reason),))

    def _list(
        self, request: web.Request, catalog: Catalog, d: KindDescriptor, mesh: str, render: Callable[[Resource], dict[str, Any]]
    ) -> web.Response:
        """One page of the kind's resources in `mesh` (every mesh: "") that pass the filters."""
        page = page_of(request, LIST_TITLE)
        keep = resource_filter(request, d.name, LIST_TITLE)
        items = [r for r in catalog.of(d.name, mesh) if keep(r, computed_labels(d, r))]
        chosen, next_url = paginate(request, items, page)
        return json_response({"total": len(items), "items": [render(r) for r in chosen], "next": next_url})

    # -- resources -----------------------------------------------------------------------
    def list_in_mesh(self, request: web.Request) -> web.StreamResponse:
        catalog = self._catalog()
        d = self._kind(request, mesh_scoped=True)
        return self._list(request, catalog, d, self._mesh(catalog, request), lambda r: self._item(catalog, d, r))

    def item_in_mesh(self, request: web.Request) -> web.StreamResponse:
        catalog = self._catalog()
        d = self._kind(request, mesh_scoped=True)
        mesh = self._mesh(catalog, request)
        self._format(request)
        r = catalog.get(d.name, mesh, request.match_info["name"])
        if r is None:
            raise not_found(ITEM_TITLE)
        return json_response(self._item(catalog, d, r))

    def list_top(self, d: KindDescriptor) -> Handler:
        def handle(request: web.Request) -> web.StreamResponse:
            catalog = self._catalog()
            return self._list(request, catalog, d, "", lambda r: self._item(catalog, d, r))

        return _kuma(handle)

    def item_top(self, d: KindDescriptor) -> Handler:
        def handle(request: web.Request) -> web.StreamResponse:
            catalog = self._catalog()
            self._format(request)
            r = catalog.get(d.name, "", request.match_info["name"])
            if r is None:
                raise not_found(ITEM_TITLE)
            return json_response(self._item(catalog, d, r))

        return _kuma(handle)

    def by_kri(self, request: web.Request) -> web.StreamResponse:
        """The resource a KRI names: `kri_<short name>_<mesh>_<zone>_<namespace>_<name>_<section>`."""
        text = request.match_info["kri"]
        parts = text.split("_")
        if len(parts) < 7 or parts[0] != "kri":
            raise KumaError(400, "Bad Request", f"bad request: invalid identifier string: {json.dumps(text)}")
        d = next((d for d in descriptors() if d.short_name and d.short_name == parts[1]), None)
        if d is None:
            raise KumaError(400, "Bad Request", f"bad request: unknown short name of resource type: {json.dumps(parts[1])}")
        catalog = self._catalog()
        # The KRI of a resource here (its section name aside); another zone's names none of them.
        wanted = "_".join(parts[:6]) + "_"
        r = next((r for r in catalog.of(d.name, parts[2]) if kri_of(d, r) == wanted), None)
        if r is None:
            raise not_found(ITEM_TITLE)
        self._format(request)
        return json_response(self._item(catalog, d, r))

    # -- overviews of proxies ------------------------------------------------------------
    def _overview(self, catalog: Catalog, d: KindDescriptor, r: Resource) -> dict[str, Any]:
        item = self._item(catalog, d, r)
        meta: dict[str, Any] = {k: item[k] for k in ("mesh", "name", "creationTime", "modificationTime", "labels", "kri") if k in item}
        spec_field, insight_field = _OVERVIEW_FIELDS[d.name]
        if d.name == "Dataplane":
            proxy = self.cp.store.proxies.get(f"{r.mesh}.{r.name}")
            insight = insight_json(proxy, catalog.get("Mesh", "", r.mesh), self.instance)
        else:  # zone proxies are listed, never served here: no subscription
            insight = insight_json(None, None, self.instance)
        return {"type": f"{d.name}Overview", **meta, spec_field: dict(r.spec), insight_field: insight}

    def overview_list(self, d: KindDescriptor) -> Handler:
        def handle(request: web.Request) -> web.StreamResponse:
            catalog = self._catalog()
            mesh = self._mesh(catalog, request) if "mesh" in request.match_info else ""
            return self._list(request, catalog, d, mesh, lambda r: self._overview(catalog, d, r))

        return _kuma(handle)

    def overview_item(self, d: KindDescriptor) -> Handler:
        def handle(request: web.Request) -> web.StreamResponse:
            catalog = self._catalog()
            mesh = self._mesh(catalog, request) if "mesh" in request.match_info else ""
            r = catalog.get(d.name, mesh, request.match_info["name"])
            if r is None:
                raise not_found(ITEM_TITLE)
            return json_response(self._overview(catalog, d, r))

        return _kuma(handle)

    # -- mesh and service insights ------------------------------------------------------
    def _created(self, catalog: Catalog, mesh: str) -> str:
        """An insight's creationTime: its mesh's (the insight is recomputed on every read)."""
        resource = catalog.get("Mesh", "", mesh)
        return rfc3339(self.cp.store.time_of(resource).created if resource is not None else time.time())

    def _mesh_insight(self, catalog: Catalog, mesh: Resource) -> dict[str, Any]:
        now = rfc3339(time.time())
        meta = {"type": "MeshInsight", "name": mesh.name, "creationTime": self._created(catalog, mesh.name), "modificationTime": now}
        return {**meta, **mesh_insight_json(self.cp.store, catalog, mesh.name)}

    def mesh_insights(self, request: web.Request) -> web.StreamResponse:
        catalog = self._catalog()
        page = page_of(request, LIST_TITLE)
        name = request.query.get("name", "")
        meshes = [m for m in catalog.of("Mesh") if name in m.name]
        chosen, next_url = paginate(request, meshes, page)
        return json_response({"total": len(meshes), "items": [self._mesh_insight(catalog, m) for m in chosen], "next": next_url})

    def mesh_insight(self, request: web.Request) -> web.StreamResponse:
        catalog = self._catalog()
        mesh = catalog.get("Mesh", "", request.match_info["name"])
        if mesh is None:
            raise not_found(ITEM_TITLE)
        return json_response(self._mesh_insight(catalog, mesh))

    def _service_insights(self, request: web.Request, catalog: Catalog, meshes: list[str]) -> list[dict[str, Any]]:
        wanted = {t.strip().lower() for t in request.query.get("type", "").split(",") if t.strip()}
        if wanted - {"internal", "external", "gateway_builtin", "gateway_delegated"}:
            raise KumaError(400, "Bad Request", "bad request: unsupported service type")
        name = request.query.get("name", "")
        now = rfc3339(time.time())
        out = []
        for mesh in meshes:
            created = self._created(catalog, mesh)
            for service, stat in sorted(service_stats(self.cp.store, catalog, mesh).items()):
                if name not in service or (wanted and stat.service_type not in wanted):
                    continue
                out.append(
                    {
                        "type": "ServiceInsight",
                        "mesh": mesh,
                        "name": service,
                        "creationTime": created,
                        "modificationTime": now,
                        "serviceType": stat.service_type,
                        "status": stat.status,
                        "dataplanes": {"online": stat.online, "offline": stat.offline, "total": stat.online + stat.offline},
                        "issuedBackends": stat.issued_backends,
                    }
                )
        return out

    def service_insights(self, request: web.Request) -> web.StreamResponse:
        catalog = self._catalog()
        meshes = [self._mesh(catalog, request)] if "mesh" in request.match_info else sorted(catalog.meshes())
        page = page_of(request, LIST_TITLE)
        items = self._service_insights(request, catalog, meshes)
        chosen, next_url = paginate(request, items, page)
        return json_response({"total": len(items), "items": chosen, "next": next_url})

    def service_insight(self, request: web.Request) -> web.StreamResponse:
        catalog = self._catalog()
        mesh = self._mesh(catalog, request)
        name = request.match_info["name"]
        found = [i for i in self._service_insights(request, catalog, [mesh]) if i["name"] == name]
        if not found:  # Kuma answers an empty insight for a service it does not know
            now = rfc3339(time.time())
            empty = {
                "type": "ServiceInsight",
                "mesh": mesh,
                "name": name,
                "creationTime": self._created(catalog, mesh),
                "modificationTime": now,
            }
            return json_response({**empty, "dataplanes": {"online": 0, "offline": 0, "total": 0}})
        return json_response(found[0])

    # -- index ---------------------------------------------------------------------------
    def index(self, request: web.Request) -> web.StreamResponse:
        return json_response(index_json(self.cp))

    def resources(self, request: web.Request) -> web.StreamResponse:
        return json_response(resources_json())

    def policies(self, request: web.Request) -> web.StreamResponse:
        return json_response(policies_json())

    def global_insight(self, request: web.Request) -> web.StreamResponse:
        return json_response(global_insight_json(self.cp.store, self._catalog()))


def resource_routes(cp: ApiBackend) -> list[Route]:
    v = _Views(cp)
    routes = [
        Route("GET", "/", _kuma(v.index)),
        Route("GET", "/_resources", _kuma(v.resources)),
        Route("GET", "/policies", _kuma(v.policies)),
        Route("GET", "/global-insight", _kuma(v.global_insight)),
        Route("GET", "/_kri/{kri}", _kuma(v.by_kri)),
        Route("GET", "/mesh-insights", _kuma(v.mesh_insights)),
        Route("GET", "/mesh-insights/{name}", _kuma(v.mesh_insight)),
        Route("GET", "/service-insights", _kuma(v.service_insights)),
        Route("GET", "/meshes/{mesh}/service-insights", _kuma(v.service_insights)),
        Route("GET", "/meshes/{mesh}/service-insights/{name}", _kuma(v.service_insight)),
    ]
    for kind, (lists, items) in _OVERVIEW_PATHS.items():
        d = descriptor_of(kind)
        assert d is not None
        routes += [Route("GET", path, v.overview_list(d)) for path in lists]
        routes += [Route("GET", path, v.overview_item(d)) for path in items]
    writable: list[str] = []
    for d in descriptors():
        for segment in filter(None, (d.path, d.alternative_path)):
            routes.append(Route("GET", f"/{segment}", v.list_top(d)))
            if d.global_scope:
                routes.append(Route("GET", f"/{segment}/{{name}}", v.item_top(d)))
                writable += [f"/{segment}", f"/{segment}/{{name}}"]
    routes.append(Route("GET", "/meshes/{mesh}/{plural}", _kuma(v.list_in_mesh)))
    routes.append(Route("GET", "/meshes/{mesh}/{plural}/{name}", _kuma(v.item_in_mesh)))
    writable += ["/meshes/{mesh}/{plural}", "/meshes/{mesh}/{plural}/{name}"]
    routes += refusing_routes(cp, writable)
    return routes
