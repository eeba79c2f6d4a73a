"""Kuma's inspect endpoints, answered from the applied commit and the config cache:

- `GET /meshes/{mesh}/dataplanes/{name}/_rules`: InspectRules (reconciler/inspection/rules.py),
  and `GET /meshes/{mesh}/meshgateways/{name}/_rules` for a MeshGateway, as Kuma makes it up;
- `GET /meshes/{mesh}/dataplanes/{name}/_config`: DataplaneXDSConfig, the Envoy config as
  served (`shadow` and `include=diff` accepted; the diff is empty: docs/api.md);
- `GET /meshes/{mesh}/dataplanes/{name}/_layout`, `_policies`, `_inbounds/{kri}/_policies`,
  `_outbounds/{kri}/_policies`, `_outbounds/{kri}/_routes`, `_outbounds/{kri}/_routes/{kri}/_policies`:
  Kuma 2.14's views by KRI
  (reconciler/inspection/proxy_policies.py);
- `GET /meshes/{mesh}/{policy plural}/{name}/_resources/dataplanes`: the dataplanes a policy
  selects (InspectDataplanesForPolicy: total, items, next; size, offset, name);
- `GET /meshes/{mesh}/meshservices/{name}/_dataplanes` (and `_resources/dataplanes`, the path
  Kuma's server answers): the dataplanes a MeshService selects.

Unknown meshes, dataplanes and policies answer 404 in Kuma's error shape (api/kuma/errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from reconciler.api.backend import ApiBackend
from reconciler.api.kuma.errors import InvalidParameter, KumaError, kuma_error, not_found
from reconciler.api.server import Route, json_response
from reconciler.inspection.config_dump import xds_config
from reconciler.inspection.dataplanes import DEFAULT_SIZE, MAX_SIZE, meshservice_dataplanes, page, policy_dataplanes
from reconciler.inspection.proxy_policies import (
    NoSuchListener,
    inbound_policies,
    layout,
    outbound_policies,
    outbound_routes,
    proxy_policies,
    route_policies,
)
from reconciler.inspection.rules import UnknownResource, gateway_rules, proxy_view_of, rules_of_view
from reconciler.kind_names import POLICY_KINDS
from reconciler.mesh.model import Dataplane, MeshModel
from reconciler.policies.core.match import PolicyIndex
from reconciler.views.proxy import ProxyView

__all__ = ["inspect_routes", "policy_plural", "POLICY_PLURALS"]

Handler = Callable[[web.Request], Awaitable[web.Response]]


def policy_plural(kind: str) -> str:
    """Kuma's path name of a policy kind: meshretries, meshtlses, meshproxypatches, meshtimeouts."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


POLICY_PLURALS = {policy_plural(k): k for k in sorted(POLICY_KINDS)}


def _not_found(e: UnknownResource) -> KumaError:
    return not_found("Failed to retrieve Mesh" if e.type == "Mesh" else f"Could not retrieve {e.type}")


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        reason = f"must be a number from {low} to {high}"
        raise KumaError(400, "Bad Request", f"bad request: query parameter '{name}' {reason}", (InvalidParameter(name, reason),))
    return int(raw)


def _kuma_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except KumaError as e:
            return e.response()
        except UnknownResource as e:
            return _not_found(e).response()

    return wrapped


def inspect_routes(cp: ApiBackend) -> list[Route]:
    def model(mesh: str) -> MeshModel:
        applied = cp.store.applied
        if applied is None:
            raise UnknownResource("Mesh", "", mesh)
        return applied.model

    def proxy(request: web.Request) -> tuple[ProxyView, PolicyIndex]:
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        return proxy_view_of(model(mesh), mesh, name, compact_outbounds=cp.compact_outbounds)

    async def rules(request: web.Request) -> web.Response:
        return json_response(rules_of_view(*proxy(request)))

    async def meshgateway_rules(request: web.Request) -> web.Response:
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        try:
            return json_response(gateway_rules(model(mesh), mesh, name, compact_outbounds=cp.compact_outbounds))
        except ValueError as e:
            return kuma_error(400, "Invalid MeshGateway", str(e))

    async def config(request: web.Request) -> web.Response:
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        if request.query.get("shadow", "false") not in ("true", "false"):
            return kuma_error(400, "Bad Request", "bad request: unsupported value for query parameter 'shadow'")
        if mesh not in model(mesh).meshes:
            raise UnknownResource("Mesh", "", mesh)
        served = cp.cache.fetch(f"{mesh}.{name}")
        if served is None:
            raise UnknownResource("Dataplane", mesh, name)
        doc: dict[str, Any] = {"xds": xds_config(served.resources)}
        include = [part for value in request.query.getall("include", []) for part in value.split(",") if part]
        if any(part != "diff" for part in include):
            return kuma_error(400, "Bad Request", "bad request: unsupported value for query parameter 'include'")
        if include:
            # Kuma's diff is the shadow-policy config against the proxy's: with no shadow
            # policies here, `xds` is what the proxy is served, and there is nothing between.
            doc["diff"] = []
        return json_response(doc)

    async def dataplane_layout(request: web.Request) -> web.Response:
        view, _ = proxy(request)
        return json_response(layout(view))

    async def dataplane_policies(request: web.Request) -> web.Response:
        return json_response(proxy_policies(rules_of_view(*proxy(request))))

    def by_kri(answer: Callable[[ProxyView, PolicyIndex, Mapping[str, str]], dict[str, Any]]) -> Handler:
        """A view named by the KRIs in the path (`kri`, and `route` for a route's policies)."""

        async def handler(request: web.Request) -> web.Response:
            view, index = proxy(request)
            try:
                return json_response(answer(view, index, request.match_info))
            except ValueError as e:
                return kuma_error(400, "Bad Request", f"bad request: {e}")
            except NoSuchListener as e:
                return kuma_error(404, "Not Found", str(e))

        return handler

    def listing(find: Callable[[MeshModel, web.Request], list[Dataplane]]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            size = _int_param(request, "size", DEFAULT_SIZE, 1, MAX_SIZE)
            offset = _int_param(request, "offset", 0, 0, 10**9)
            result = page(find(model(request.match_info["mesh"]), request), size, offset, request.query.get("name", ""))
            doc: dict[str, object] = {"total": result.total, "items": result.items, "next": None}
            if result.next_offset is not None:
                doc["next"] = str(request.url.update_query(offset=str(result.next_offset), size=str(size)))
            return json_response(doc)

        return handler

    def for_policy(m: MeshModel, request: web.Request) -> list[Dataplane]:
        kind = POLICY_PLURALS.get(request.match_info["plural"])
        if kind is None:
            raise KumaError(404, "Not Found", f"no policy type {request.match_info['plural']}")
        try:
            return policy_dataplanes(m, request.match_info["mesh"], kind, request.match_info["name"])
        except UnknownResource as e:
            if e.type == "Mesh":
                raise
            raise not_found("Could not retrieve policy") from e  # Kuma's title, whatever the kind

    def for_meshservice(m: MeshModel, request: web.Request) -> list[Dataplane]:
        mesh, name = request.match_info["mesh"], request.match_info["name"]
        applied = cp.store.applied
        if applied is None or mesh not in m.meshes:
            raise UnknownResource("Mesh", "", mesh)
        found = next((r for r in applied.snapshot if r.type == "MeshService" and r.mesh == mesh and r.name == name), None)
        if found is None:
            raise not_found("Could not retrieve policy")  # Kuma's title for this list's resource
        return meshservice_dataplanes(m, found)

    dataplane = "/meshes/{mesh}/dataplanes/{name}"
    paths: list[tuple[str, Handler]] = [
        (f"{dataplane}/_rules", rules),
        (f"{dataplane}/_config", config),
        ("/meshes/{mesh}/meshgateways/{name}/_rules", meshgateway_rules),
        (f"{dataplane}/_layout", dataplane_layout),
        (f"{dataplane}/_policies", dataplane_policies),
        (f"{dataplane}/_inbounds/{{kri}}/_policies", by_kri(lambda v, i, p: inbound_policies(v, rules_of_view(v, i), p["kri"]))),
        (f"{dataplane}/_outbounds/{{kri}}/_policies", by_kri(lambda v, i, p: outbound_policies(v, rules_of_view(v, i), p["kri"]))),
        (f"{dataplane}/_outbounds/{{kri}}/_routes", by_kri(lambda v, i, p: outbound_routes(v, i, p["kri"]))),
        (
            f"{dataplane}/_outbounds/{{kri}}/_routes/{{route}}/_policies",
            by_kri(lambda v, i, p: route_policies(v, i, rules_of_view(v, i), p["kri"], p["route"])),
        ),
        ("/meshes/{mesh}/meshservices/{name}/_dataplanes", listing(for_meshservice)),
        # The path Kuma's server answers for the same list (the OpenAPI description says `_dataplanes`).
        ("/meshes/{mesh}/meshservices/{name}/_resources/dataplanes", listing(for_meshservice)),
        ("/meshes/{mesh}/{plural}/{name}/_resources/dataplanes", listing(for_policy)),
    ]
    return [Route("GET", path, _kuma_errors(handler)) for path, handler in paths]
