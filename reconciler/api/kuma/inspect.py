"""Kuma's inspect endpoints, answered from the applied commit and the config cache:

- `GET /meshes/{mesh}/dataplanes/{name}/_rules`: InspectRules (reconciler/inspection/rules.py);
- `GET /meshes/{mesh}/dataplanes/{name}/_config`: DataplaneXDSConfig, the Envoy config as
  served (`shadow` accepted; no `include=diff`: docs/api.md);
- `GET /meshes/{mesh}/{policy plural}/{name}/_resources/dataplanes`: the dataplanes a policy
  selects (InspectDataplanesForPolicy: total, items, next; size, offset, name);
- `GET /meshes/{mesh}/meshservices/{name}/_dataplanes`: the dataplanes a MeshService selects.

Unknown meshes, dataplanes and policies answer 404 in Kuma's error shape (api/kuma/errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from reconciler.api.backend import ApiBackend
from reconciler.api.kuma.errors import kuma_error
from reconciler.api.server import Route, json_response
from reconciler.inspection.config_dump import xds_config
from reconciler.inspection.dataplanes import DEFAULT_SIZE, meshservice_dataplanes, page, policy_dataplanes
from reconciler.inspection.rules import UnknownResource, inspect_rules
from reconciler.kind_names import POLICY_KINDS
from reconciler.mesh.model import Dataplane, MeshModel

__all__ = ["inspect_routes", "policy_plural", "POLICY_PLURALS"]


def policy_plural(kind: str) -> str:
    """Kuma's path name of a policy kind: meshretries, meshtlses, meshproxypatches, meshtimeouts."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


POLICY_PLURALS = {policy_plural(k): k for k in sorted(POLICY_KINDS)}


def _not_found(e: UnknownResource) -> web.Response:
    title = "Failed to retrieve Mesh" if e.type == "Mesh" else f"Could not retrieve {e.type}"
    return kuma_error(404, title, "Not found")


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        raise ValueError(f"invalid format: '{name}' must be a non-negative number")
    return int(raw)


def inspect_routes(cp: ApiBackend) -> list[Route]:
    def model() -> MeshModel | None:
        applied = cp.store.applied
        return applied.model if applied is not None else None

    async def rules(request: web.Request) -> web.Response:
        m = model()
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        if m is None:
            return _not_found(UnknownResource("Mesh", "", mesh))
        try:
            return json_response(inspect_rules(m, mesh, name, compact_outbounds=cp.compact_outbounds))
        except UnknownResource as e:
            return _not_found(e)

    async def config(request: web.Request) -> web.Response:
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        if request.query.get("shadow", "false") not in ("true", "false"):
            return kuma_error(400, "Bad Request", "bad request: unsupported value for query parameter 'shadow'")
        m = model()
        if m is None or mesh not in m.meshes:
            return _not_found(UnknownResource("Mesh", "", mesh))
        served = cp.cache.fetch(f"{mesh}.{name}")
        if served is None:
            return _not_found(UnknownResource("Dataplane", mesh, name))
        return json_response({"xds": xds_config(served.resources)})

    def listing(find: Callable[[MeshModel, web.Request], list[Dataplane]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                size = _int_param(request, "size", DEFAULT_SIZE)
                offset = _int_param(request, "offset", 0)
            except ValueError as e:
                return kuma_error(400, "Bad Request", str(e))
            m = model()
            if m is None:
                return _not_found(UnknownResource("Mesh", "", request.match_info["mesh"]))
            try:
                found = find(m, request)
            except UnknownResource as e:
                return _not_found(e)
            result = page(found, size, offset, request.query.get("name", ""))
            doc: dict[str, object] = {"total": result.total, "items": result.items, "next": None}
            if result.next_offset is not None:
                doc["next"] = str(request.url.update_query(offset=str(result.next_offset), size=str(size)))
            return json_response(doc)

        return handler

    def for_policy(m: MeshModel, request: web.Request) -> list[Dataplane]:
        kind = POLICY_PLURALS.get(request.match_info["plural"])
        if kind is None:
            raise UnknownResource("policy type", request.match_info["mesh"], request.match_info["plural"])
        return policy_dataplanes(m, request.match_info["mesh"], kind, request.match_info["name"])

    def for_meshservice(m: MeshModel, request: web.Request) -> list[Dataplane]:
        return meshservice_dataplanes(m, request.match_info["mesh"], request.match_info["name"])

    return [
        Route("GET", "/meshes/{mesh}/dataplanes/{name}/_rules", rules),
        Route("GET", "/meshes/{mesh}/dataplanes/{name}/_config", config),
        Route("GET", "/meshes/{mesh}/meshservices/{name}/_dataplanes", listing(for_meshservice)),
        Route("GET", "/meshes/{mesh}/{plural}/{name}/_resources/dataplanes", listing(for_policy)),
    ]
