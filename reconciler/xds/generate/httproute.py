"""A MeshHTTPRoute rule as an Envoy route: match, filters, and weighted backends.

Matches: path `Exact` → `path`, `PathPrefix` → `path_separated_prefix` (`prefix` for `/`),
`RegularExpression` → `safe_regex`; `method` → the `:method` header; headers `Exact`,
`Present`, `Absent`, `Prefix` (empty: present), `RegularExpression`; query parameters
`Exact`, `RegularExpression`.

Filters: `RequestHeaderModifier` / `ResponseHeaderModifier` (`set` overwrites, `add`
appends, `remove`); `RequestRedirect` (scheme, hostname, port, path `ReplaceFullPath` /
`ReplacePrefixMatch`, statusCode, default 302); `URLRewrite` (hostname, path
`ReplaceFullPath` / `ReplacePrefixMatch`); `RequestMirror` (backendRef, percentage).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from reconciler.mesh.routing import RouteView

__all__ = ["envoy_route"]

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def _regex(value: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=value)


def _match(match: Mapping[str, Any]) -> rc.RouteMatch:
    out = rc.RouteMatch()
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = path.get("type", "PathPrefix"), str(path.get("value", "/"))
    if kind == "Exact":
        out.path = value
    elif kind == "RegularExpression":
        out.safe_regex.CopyFrom(_regex(value))
    elif value == "/":
        out.prefix = "/"
    else:
        out.path_separated_prefix = value.rstrip("/") or "/"
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


def _prefix_of(match: Mapping[str, Any]) -> str:
    path = match.get("path") or {}
    return str(path.get("value", "/")) if path.get("type", "PathPrefix") == "PathPrefix" else "/"


def envoy_route(view: RouteView) -> rc.Route:
    """The Envoy route for one match of a rule (hooks are applied by the caller)."""
    route = rc.Route(name=view.name, match=_match(view.match))
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
        elif path.get("type") == "ReplacePrefixMatch":
            action.prefix_rewrite = str(path.get("replacePrefixMatch", "/"))
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
            elif path.get("type") == "ReplacePrefixMatch":
                prefix = _prefix_of(view.match)
                replacement = str(path.get("replacePrefixMatch", "/"))
                if prefix.rstrip("/") and replacement == "/":
                    # /api/x with prefix /api rewritten to / must give /x, not //x.
                    action.regex_rewrite.CopyFrom(
                        regex_pb2.RegexMatchAndSubstitute(pattern=_regex("^" + re.escape(prefix.rstrip("/")) + "/*"), substitution="/")
                    )
                else:
                    action.prefix_rewrite = replacement
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
