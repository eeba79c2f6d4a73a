"""A MeshHTTPRoute rule as an Envoy route: match, filters, and weighted backends.

Matches: path `Exact` → `path`, `PathPrefix` → two routes as Kuma's (an exact `path: /api`
then `prefix: /api/`; `prefix: /` for `/`), `RegularExpression` → `safe_regex`; `method` → the
`:method` header; headers `Exact`, `Present`, `Absent`, `Prefix` (empty: present),
`RegularExpression`; query parameters `Exact`, `RegularExpression`.

Filters: `RequestHeaderModifier` / `ResponseHeaderModifier` (`set` overwrites, `add`
appends, `remove`); `RequestRedirect` (scheme, hostname, port, path `ReplaceFullPath` /
`ReplacePrefixMatch`, statusCode, default 302); `URLRewrite` (hostname, path
`ReplaceFullPath` / `ReplacePrefixMatch`); `RequestMirror` (backendRef, percentage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from reconciler.mesh.routing import RouteView

__all__ = ["envoy_routes_of"]

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def _regex(value: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=value)


def _path_matches(match: Mapping[str, Any]) -> list[rc.RouteMatch]:
    """Kuma's path matches (pkg/plugins/policies/meshhttproute/xds/configurer.go). A prefix
    other than `/` becomes the pair `path: /api` + `prefix: /api/` rather than Envoy's
    `path_separated_prefix`, which cannot drop the prefix cleanly in a rewrite (envoy#23130)."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = path.get("type", "PathPrefix"), str(path.get("value", "/"))
    if kind == "Exact":
        return [rc.RouteMatch(path=value)]
    if kind == "RegularExpression":
        return [rc.RouteMatch(safe_regex=_regex(value))]
    if value == "/":
        return [rc.RouteMatch(prefix="/")]
    trimmed = value.removesuffix("/")
    return [rc.RouteMatch(path=trimmed), rc.RouteMatch(prefix=trimmed + "/")]


def _match(match: Mapping[str, Any], out: rc.RouteMatch) -> rc.RouteMatch:
    """`out` (a path match) with the method, header and query parameter matches added."""
    if match.get("method"):
        out.headers.append(rc.HeaderMatcher(name=":method", string_match=string_pb2.StringMatcher(exact=str(match["method"]))))
    seen: set[str] = set()
    for header in match.get("headers") or ():
        name = str(header.get("name"))
        if name in seen:
            continue
        seen.add(name)
        kind = header.get("type", "Exact")
        value = str(header.get("value", ""))
        if kind == "Present" or (kind == "Prefix" and not value):
            out.headers.append(rc.HeaderMatcher(name=name, present_match=True))
        elif kind == "Absent":
            out.headers.append(rc.HeaderMatcher(name=name, present_match=False))
        elif kind == "Prefix":
            out.headers.append(rc.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(prefix=value)))
        elif kind == "RegularExpression":
            out.headers.append(rc.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(safe_regex=_regex(value))))
        else:
            out.headers.append(rc.HeaderMatcher(name=name, string_match=string_pb2.StringMatcher(exact=value)))
    for param in match.get("queryParams") or ():
        matcher = (
            string_pb2.StringMatcher(safe_regex=_regex(str(param.get("value", ""))))
            if param.get("type") == "RegularExpression"
            else string_pb2.StringMatcher(exact=str(param.get("value", "")))
        )
        out.query_parameters.append(rc.QueryParameterMatcher(name=str(param.get("name")), string_match=matcher))
    return out


def _headers(modifier: Mapping[str, Any]) -> tuple[list[base_pb2.HeaderValueOption], list[str]]:
    options = []
    for h in modifier.get("set") or ():
        options.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=str(h["name"]), value=str(h.get("value", ""))),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )
    for h in modifier.get("add") or ():
        options.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=str(h["name"]), value=str(h.get("value", ""))),
                append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD,
            )
        )
    return options, [str(n) for n in modifier.get("remove") or ()]


def _is_prefix(match: Mapping[str, Any]) -> bool:
    return str((match.get("path") or {}).get("type", "PathPrefix")) == "PathPrefix"


def _prefix_replacement(replacement: str) -> str:
    """The `prefix_rewrite` of the `prefix: /api/` half. Kuma writes the replacement as is, so
    `/api/x` with `/v2` becomes `/v2x`; the Gateway API (which MeshHTTPRoute follows) wants
    `/v2/x`, so the matched separator is kept (docs/routing.md, differences)."""
    return replacement if replacement.endswith("/") else replacement + "/"


def envoy_routes_of(view: RouteView) -> list[rc.Route]:
    """The Envoy routes for one match of a rule: one, or the exact/prefix pair of a path
    prefix, sharing the rule's name as in Kuma (hooks are applied by the caller)."""
    return [_envoy_route(view, path) for path in _path_matches(view.match)]


def _envoy_route(view: RouteView, path_match: rc.RouteMatch) -> rc.Route:
    route = rc.Route(name=view.name, match=_match(view.match, path_match))
    prefix_match = _is_prefix(view.match)
    # Which half of a prefix pair this is decides how ReplacePrefixMatch is written: the exact
    # `/api` half is replaced whole, the `/api/` half by prefix.
    exact_half = prefix_match and bool(path_match.path)
    redirect = next((f.get("requestRedirect") for f in view.filters if f.get("type") == "RequestRedirect"), None)
    if redirect is not None:
        action = rc.RedirectAction(response_code=_REDIRECT_CODES.get(int(redirect.get("statusCode", 302)), rc.RedirectAction.FOUND))
        if redirect.get("scheme"):
            action.scheme_redirect = str(redirect["scheme"])
        if redirect.get("hostname"):
            action.host_redirect = str(redirect["hostname"])
        if redirect.get("port"):
            action.port_redirect = int(redirect["port"])
        path = redirect.get("path") or {}
        if path.get("type") == "ReplaceFullPath":
            action.path_redirect = str(path.get("replaceFullPath", "/"))
        elif path.get("type") == "ReplacePrefixMatch" and prefix_match:
            replacement = str(path.get("replacePrefixMatch", "/"))
            if exact_half:
                action.path_redirect = replacement
            else:
                action.prefix_rewrite = _prefix_replacement(replacement) if path_match.prefix != "/" else replacement
        route.redirect.CopyFrom(action)
    else:
        action = rc.RouteAction()
        live = [c for c in view.clusters if c.weight > 0] or list(view.clusters)
        if len(live) == 1:
            action.cluster = live[0].name
        else:
            action.weighted_clusters.CopyFrom(
                rc.WeightedCluster(
                    clusters=[rc.WeightedCluster.ClusterWeight(name=c.name, weight=wrappers_pb2.UInt32Value(value=c.weight)) for c in live]
                )
            )
        for f in view.filters:
            if f.get("type") != "URLRewrite":
                continue
            rewrite = f.get("urlRewrite") or {}
            if rewrite.get("hostname"):
                action.host_rewrite_literal = str(rewrite["hostname"])
            path = rewrite.get("path") or {}
            if path.get("type") == "ReplaceFullPath":
                action.regex_rewrite.CopyFrom(
                    regex_pb2.RegexMatchAndSubstitute(pattern=_regex(".*"), substitution=str(path.get("replaceFullPath", "/")))
                )
            elif path.get("type") == "ReplacePrefixMatch" and prefix_match:
                replacement = str(path.get("replacePrefixMatch", "/"))
                if exact_half:
                    action.regex_rewrite.CopyFrom(regex_pb2.RegexMatchAndSubstitute(pattern=_regex(".*"), substitution=replacement))
                elif path_match.prefix == "/":
                    action.prefix_rewrite = replacement
                else:
                    action.prefix_rewrite = _prefix_replacement(replacement)
        for cluster, percentage in view.mirrors:
            action.request_mirror_policies.append(
                rc.RouteAction.RequestMirrorPolicy(
                    cluster=cluster,
                    runtime_fraction=base_pb2.RuntimeFractionalPercent(
                        default_value=percent_pb2.FractionalPercent(
                            numerator=int(round(percentage * 10000)), denominator=percent_pb2.FractionalPercent.MILLION
                        )
                    ),
                )
            )
        route.route.CopyFrom(action)
    for f in view.filters:
        if f.get("type") == "RequestHeaderModifier":
            add, remove = _headers(f.get("requestHeaderModifier") or {})
            route.request_headers_to_add.extend(add)
            route.request_headers_to_remove.extend(remove)
        elif f.get("type") == "ResponseHeaderModifier":
            add, remove = _headers(f.get("responseHeaderModifier") or {})
            route.response_headers_to_add.extend(add)
            route.response_headers_to_remove.extend(remove)
    return route
