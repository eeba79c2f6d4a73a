"""Kuma's list parameters: pages (`size`, `offset`, `next`) and filters.

Pages as Kuma's api-server has them: `size` defaults to 100, must be 1..1000; `offset` is the
opaque string a previous `next` carried (here the index of the first item); `next` is this
URL with `offset` moved on, or null on the last page. `total` counts every item that passed
the filters, not only this page.

Filters as Kuma's (pkg/api-server/filters): `name` keeps names containing it;
`filter[labels.<key>]=<value>` keeps resources with exactly that label (every such filter must
hold); on dataplanes `tag=<key>:<value>` keeps those with an inbound (or gateway) whose tag
contains the value, and `gateway=true|false|builtin|delegated` filters on the gateway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from reconciler.api.kuma.errors import InvalidParameter, KumaError
from reconciler.api.kuma.insights import gateway_type
from reconciler.model import Resource

__all__ = ["Page", "page_of", "resource_filter", "paginate", "DEFAULT_SIZE", "MAX_SIZE"]

DEFAULT_SIZE = 100
MAX_SIZE = 1000

Filter = Callable[[Resource, Mapping[str, str]], bool]
"""(resource, its labels as served) → kept."""


@dataclass(frozen=True, slots=True)
class Page:
    size: int
    offset: int


def page_of(request: web.Request, title: str) -> Page:
    raw = request.query.get("size", "")
    size = DEFAULT_SIZE
    if raw != "":
        try:
            size = int(raw)
        except ValueError:
            raise _bad_size(title, "invalid format") from None
        if size <= 0:
            raise _bad_size(title, "must be greater than 0")
        if size > MAX_SIZE:
            raise _bad_size(title, f"invalid page size of {size}. Maximum page size is {MAX_SIZE}")
    offset_raw = request.query.get("offset", "")
    offset = 0
    if offset_raw != "":
        if not offset_raw.isdigit():
            raise KumaError(400, title, "Invalid offset", (InvalidParameter("offset", "must be the offset from a previous `next`"),))
        offset = int(offset_raw)
    return Page(size, offset)


def _bad_size(title: str, reason: str) -> KumaError:
    return KumaError(400, title, "Invalid page size", (InvalidParameter("size", reason),))


def resource_filter(request: web.Request, kind: str, title: str) -> Filter:
    """The filters of the request's query; a 400 (KumaError) for one Kuma does not support."""
    name = request.query.get("name", "")
    labels: dict[str, str] = {}
    invalid = []
    for key in request.query:
        if not key.startswith("filter["):
            continue
        if not key.startswith("filter[labels."):
            invalid.append(InvalidParameter(key, "filters are only supported on labels"))
            continue
        close = key.index("]") if "]" in key else -1
        if close != len(key) - 1:
            invalid.append(InvalidParameter(key, "advanced filters are not supported"))
            continue
        labels[key[len("filter[labels.") : close]] = request.query.getall(key)[-1]
    tags: dict[str, str] = {}
    gateway = ""
    if kind == "Dataplane":
        gateway = request.query.get("gateway", "").lower()
        if gateway not in ("", "true", "false", "builtin", "delegated"):
            invalid.append(InvalidParameter("gateway", f"should use `true`, `false`, 'builtin' or 'delegated' instead of {gateway}"))
        for value in request.query.getall("tag", []):
            key, sep, wanted = value.partition(":")
            if sep:  # Kuma ignores a tag without `:`
                tags[key] = wanted
    if invalid:
        raise KumaError(400, title, "Resource is not valid", tuple(invalid))

    def keep(resource: Resource, served_labels: Mapping[str, str]) -> bool:
        if name and name not in resource.name:
            return False
        if any(served_labels.get(k) != v for k, v in labels.items()):
            return False
        if kind == "Dataplane":
            return _gateway_matches(resource, gateway) and _tags_match(resource, tags)
        return True

    return keep


def _networking(resource: Resource) -> Mapping[str, Any]:
    networking = resource.spec.get("networking")
    return networking if isinstance(networking, Mapping) else {}


def _gateway_matches(resource: Resource, mode: str) -> bool:
    kind = gateway_type(resource)
    if mode == "true":
        return bool(kind)
    if mode == "false":
        return not kind
    return kind == mode if mode else True


def _tags_match(resource: Resource, wanted: Mapping[str, str]) -> bool:
    """Kuma's MatchTagsFuzzy: some inbound's (or the gateway's) tags have every wanted key with a
    value that contains the wanted one."""
    if not wanted:
        return True
    networking = _networking(resource)
    tag_sets = [i.get("tags") or {} for i in networking.get("inbound") or () if isinstance(i, Mapping)]
    gateway = networking.get("gateway")
    if isinstance(gateway, Mapping):
        tag_sets.append(gateway.get("tags") or {})
    return any(all(k in tags and v in str(tags[k]) for k, v in wanted.items()) for tags in tag_sets)


def paginate(request: web.Request, items: Sequence[Any], page: Page) -> tuple[list[Any], str | None]:
    """This page of `items` and Kuma's `next` link (None on the last page)."""
    chosen = list(items[page.offset : page.offset + page.size])
    end = page.offset + page.size
    if end >= len(items):
        return chosen, None
    query = [(k, v) for k, v in request.query.items() if k != "offset"] + [("offset", str(end))]
    query.sort(key=lambda kv: kv[0])  # Go's url.Values.Encode sorts by key
    return chosen, f"{request.scheme}://{request.host}{request.path}?{urlencode(query)}"
