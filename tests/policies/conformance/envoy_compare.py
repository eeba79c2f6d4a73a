"""Comparing our Envoy config with a fragment of Kuma's, field by field, where behaviour matters.

The conformance cases in tests/policies/conformance/envoy/ hold fragments we derived from Kuma
v2.14.3's Envoy goldens. `compare` walks such a fragment and checks our value at the same
place: every key of an expected object must be in ours with an equal value (keys Kuma does not
set are not compared, so fields only we set never fail a check), lists must have the same
length and equal items, and a string that is a Kuma resource name is first translated through
the case's name table (documented naming differences, see docs/routing.md).

Fractional percentages are compared by value (Kuma writes 99.9 % as 9990 per ten thousand, we
as 999000 per million). Two forms differ on purpose and are made comparable first (`canonical_routes`):

- Kuma writes a `PathPrefix` match on `/api` as two routes (`path: /api`, then
  `prefix: /api/`); we write one `path_separated_prefix: /api`. Envoy matches the same
  requests with both, so the pair is folded into the one form before comparing.
- Route names: Kuma names a route by a hash of its matches, we by the MeshHTTPRoute that made
  it (what `inspect` and Envoy's stats show). They are not compared.

RBAC is compared by its decisions (`rbac_decision`): Kuma writes MeshTrafficPermission `rules`
with Envoy's matching API, we with RBAC policies (a deny filter, then an allow filter), so for
a list of client identities both must allow and shadow-deny the same ones.

Path rewrites and redirect paths are compared by what they do (`probe`): for a request path,
which route Envoy picks and the path, host and cluster the request ends up with, because
Kuma's two-route form needs two different rewrites for one filter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Comparison", "compare", "canonical_routes", "probe", "Request", "rbac_decision"]

REWRITE_KEYS = frozenset({"regexRewrite", "prefixRewrite"})
"""Route-action and redirect keys compared by `probe`, not field by field."""


@dataclass
class Comparison:
    """How many leaf values were compared, and every one that differed (with its path)."""

    compared: int = 0
    differences: list[str] = field(default_factory=list)

    def add(self, other: Comparison) -> None:
        self.compared += other.compared
        self.differences.extend(other.differences)


def compare(expected: Any, ours: Any, names: Mapping[str, str] | None = None, at: str = "") -> Comparison:
    """Walk `expected` and check `ours` at the same paths (see the module docstring)."""
    names = names or {}
    result = Comparison()
    if _is_fraction(expected) and _is_fraction(ours):
        # 99.9 % is 9990/TEN_THOUSAND in Kuma's config and 999000/MILLION in ours: one value.
        result.compared += 1
        if _fraction(expected) != _fraction(ours):
            result.differences.append(f"{at}: Kuma {expected!r}, we have {ours!r}")
        return result
    if isinstance(expected, (Mapping, list)) and not expected:
        # An empty object or list says something (`rules: {}` denies everything): ours must be empty too.
        result.compared += 1
        if ours != expected:
            result.differences.append(f"{at}: Kuma {expected!r}, we have {ours!r}")
        return result
    if isinstance(expected, Mapping):
        if not isinstance(ours, Mapping):
            result.compared += 1
            result.differences.append(f"{at or '/'}: Kuma has an object, we have {ours!r}")
            return result
        for key, value in expected.items():
            if key not in ours:
                result.compared += max(1, _leaves(value))
                result.differences.append(f"{at}/{key}: missing (Kuma: {value!r})")
                continue
            result.add(compare(value, ours[key], names, f"{at}/{key}"))
        return result
    if isinstance(expected, list):
        if not isinstance(ours, list) or len(ours) != len(expected):
            result.compared += max(1, _leaves(expected))
            shown = len(ours) if isinstance(ours, list) else repr(ours)
            result.differences.append(f"{at}: Kuma has {len(expected)} items, we have {shown}")
            return result
        for index, (want, have) in enumerate(zip(expected, ours, strict=True)):
            result.add(compare(want, have, names, f"{at}/{index}"))
        return result
    result.compared += 1
    want = names.get(expected, expected) if isinstance(expected, str) else expected
    if not _same_scalar(want, ours) and not _same_scalar(expected, ours):
        result.differences.append(f"{at}: Kuma {expected!r}" + (f" (ours: {want!r})" if want != expected else "") + f", we have {ours!r}")
    return result


DENOMINATORS = {"HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000}


def _is_fraction(value: Any) -> bool:
    return isinstance(value, Mapping) and "numerator" in value and set(value) <= {"numerator", "denominator"}


def _fraction(value: Mapping[str, Any]) -> float:
    return int(value["numerator"]) / DENOMINATORS[value.get("denominator", "HUNDRED")]


def _same_scalar(want: Any, have: Any) -> bool:
    # Kuma's goldens are YAML from protobuf JSON: 64-bit integers may be strings there.
    if isinstance(want, (int, float)) and isinstance(have, str) or isinstance(have, (int, float)) and isinstance(want, str):
        return str(want) == str(have)
    return bool(want == have)


def _leaves(value: Any) -> int:
    if isinstance(value, Mapping):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 1


def canonical_routes(routes: Sequence[Mapping[str, Any]], *, keep_timeout: bool = False) -> list[dict[str, Any]]:
    """`routes` with Kuma's two-route prefix form folded into `pathSeparatedPrefix`, without
    route names and path rewrites (compared by `probe`) and, unless `keep_timeout`, without the
    route timeout (compared on its own)."""
    out: list[dict[str, Any]] = []
    index = 0
    while index < len(routes):
        route = _strip(routes[index], keep_timeout)
        following = _strip(routes[index + 1], keep_timeout) if index + 1 < len(routes) else None
        if following is not None and _is_prefix_pair(route, following):
            match = {k: v for k, v in following["match"].items() if k != "prefix"}
            out.append({**following, "match": {"pathSeparatedPrefix": route["match"]["path"], **match}})
            index += 2
            continue
        out.append(route)
        index += 1
    return out


def _strip(route: Mapping[str, Any], keep_timeout: bool) -> dict[str, Any]:
    doc = {k: v for k, v in route.items() if k != "name"}
    for action in ("route", "redirect"):
        if isinstance(doc.get(action), Mapping):
            doc[action] = {k: v for k, v in doc[action].items() if k not in REWRITE_KEYS and (keep_timeout or k != "timeout")}
    return doc


def _is_prefix_pair(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Kuma's `path: X` followed by `prefix: X/`, otherwise equal: one PathPrefix match."""
    exact, prefix = first.get("match", {}).get("path"), second.get("match", {}).get("prefix")
    if not isinstance(exact, str) or prefix != exact + "/":
        return False
    rest = {k: v for k, v in first["match"].items() if k != "path"}
    other = {k: v for k, v in second["match"].items() if k != "prefix"}
    return rest == other and {k: v for k, v in first.items() if k != "match"} == {k: v for k, v in second.items() if k != "match"}


@dataclass(frozen=True)
class Request:
    """A request as Envoy's router sees it, for `probe`."""

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Request:
        return cls(doc["path"], doc.get("method", "GET"), dict(doc.get("headers") or {}))


def probe(routes: Sequence[Mapping[str, Any]], request: Request) -> dict[str, Any]:
    """What the first route matching `request` does with it: the cluster(s) it goes to with the
    rewritten path and host, or the redirect it gets; `{"no route": True}` when none matches."""
    for route in routes:
        match = route.get("match", {})
        if not _matches(match, request):
            continue
        if "redirect" in route:
            return {"redirect": _redirect(route["redirect"], match, request)}
        action = route.get("route", {})
        outcome: dict[str, Any] = {"path": _rewritten(action, match, request.path)}
        if "cluster" in action:
            outcome["cluster"] = action["cluster"]
        if "weightedClusters" in action:
            outcome["weightedClusters"] = [(c["name"], int(c.get("weight", 0))) for c in action["weightedClusters"]["clusters"]]
        if "hostRewriteLiteral" in action:
            outcome["host"] = action["hostRewriteLiteral"]
        return outcome
    return {"no route": True}


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def _matches(match: Mapping[str, Any], request: Request) -> bool:
    path = _path_only(request.path)
    if "path" in match and path != match["path"]:
        return False
    if "prefix" in match and not path.startswith(match["prefix"]):
        return False
    if "pathSeparatedPrefix" in match:
        prefix = match["pathSeparatedPrefix"]
        if not (path == prefix or path.startswith(prefix + "/")):
            return False
    if "safeRegex" in match and not re.fullmatch(match["safeRegex"]["regex"], path):
        return False
    headers = {":method": request.method, ":path": request.path, **{k.lower(): v for k, v in request.headers.items()}}
    for header in match.get("headers", ()):
        if _header_matches(header, headers.get(header["name"].lower())) == bool(header.get("invertMatch")):
            return False
    query = dict(part.partition("=")[::2] for part in request.path.partition("?")[2].split("&") if part)
    return all(_header_matches(param, query.get(param["name"])) for param in match.get("queryParameters", ()))


def _header_matches(matcher: Mapping[str, Any], value: str | None) -> bool:
    if "presentMatch" in matcher:
        return (value is not None) == bool(matcher["presentMatch"])
    if value is None:
        return False
    string = matcher.get("stringMatch", {})
    if "exact" in string:
        return bool(value == string["exact"])
    if "prefix" in string:
        return value.startswith(string["prefix"])
    if "suffix" in string:
        return value.endswith(string["suffix"])
    if "contains" in string:
        return string["contains"] in value
    if "safeRegex" in string:
        return re.fullmatch(string["safeRegex"]["regex"], value) is not None
    return True


def _rewritten(action: Mapping[str, Any], match: Mapping[str, Any], path: str) -> str:
    plain, _, query = path.partition("?")
    if "regexRewrite" in action:
        plain = _envoy_regex_sub(action["regexRewrite"], plain)
    elif "prefixRewrite" in action:
        matched = match.get("prefix") or match.get("pathSeparatedPrefix") or match.get("path") or ""
        plain = action["prefixRewrite"] + plain[len(matched) :]
    return plain + (f"?{query}" if query else "")


def _envoy_regex_sub(rewrite: Mapping[str, Any], path: str) -> str:
    """RE2's GlobalReplace, which Envoy uses: unlike Python's re.sub, an empty match right after
    the previous match is not replaced (`.*` on `/v1` gives one replacement, not two)."""
    pattern, substitution = re.compile(rewrite["pattern"]["regex"]), rewrite["substitution"]
    out, last = [], 0
    for found in pattern.finditer(path):
        if found.start() == found.end() == last and last > 0:
            continue
        out.append(path[last : found.start()] + found.expand(substitution))
        last = found.end()
    return "".join(out) + path[last:]


def _redirect(redirect: Mapping[str, Any], match: Mapping[str, Any], request: Request) -> dict[str, Any]:
    path = request.path
    if "pathRedirect" in redirect:
        path = redirect["pathRedirect"]
    elif "regexRewrite" in redirect or "prefixRewrite" in redirect:
        path = _rewritten(redirect, match, path)
    return {
        "scheme": redirect.get("schemeRedirect", "http" if not redirect.get("httpsRedirect") else "https"),
        "host": redirect.get("hostRedirect"),
        "port": redirect.get("portRedirect"),
        "path": path,
        "code": redirect.get("responseCode", "MOVED_PERMANENTLY"),
    }


def rbac_decision(filters: Sequence[Mapping[str, Any]], client: str) -> dict[str, bool]:
    """Whether the RBAC filters (in order, all must allow) let a client with the URI SAN `client`
    through, and whether a shadow rule would deny it. Understands both of Envoy's forms: `rules`
    (policies of principals; what we write) and `matcher` (Kuma's matching API)."""
    allowed, shadow_denied = True, False
    for rbac in filters:
        config = rbac.get("typedConfig", {})
        if "matcher" in config:
            allowed = allowed and _matcher_allows(config["matcher"], client)
        elif "rules" in config:
            allowed = allowed and _rules_allow(config["rules"], client)
        if "shadowMatcher" in config:
            shadow_denied = shadow_denied or not _matcher_allows(config["shadowMatcher"], client)
        if "shadowRules" in config:
            shadow_denied = shadow_denied or not _rules_allow(config["shadowRules"], client)
    return {"allowed": allowed, "shadow denies": shadow_denied}


def _rules_allow(rules: Mapping[str, Any], client: str) -> bool:
    matched = any(
        any(_principal_matches(p, client) for p in policy.get("principals", ())) for policy in (rules.get("policies") or {}).values()
    )
    return not matched if rules.get("action") == "DENY" else matched


def _principal_matches(principal: Mapping[str, Any], client: str) -> bool:
    if principal.get("any"):
        return True
    if "orIds" in principal:
        return any(_principal_matches(p, client) for p in principal["orIds"]["ids"])
    if "andIds" in principal:
        return all(_principal_matches(p, client) for p in principal["andIds"]["ids"])
    name = principal.get("authenticated", {}).get("principalName")
    return name is not None and _header_matches({"stringMatch": name}, client)


def _matcher_allows(matcher: Mapping[str, Any], client: str) -> bool:
    for entry in matcher.get("matcherList", {}).get("matchers", ()):
        if _predicate(entry["predicate"], client):
            return bool(entry["onMatch"]["action"]["typedConfig"].get("action", "ALLOW") == "ALLOW")
    return bool(matcher.get("onNoMatch", {}).get("action", {}).get("typedConfig", {}).get("action", "ALLOW") == "ALLOW")


def _predicate(predicate: Mapping[str, Any], client: str) -> bool:
    if "orMatcher" in predicate:
        return any(_predicate(p, client) for p in predicate["orMatcher"]["predicate"])
    if "andMatcher" in predicate:
        return all(_predicate(p, client) for p in predicate["andMatcher"]["predicate"])
    single = predicate["singlePredicate"]
    if single["input"]["name"] != "envoy.matching.inputs.uri_san":
        raise ValueError(f"unsupported RBAC matcher input {single['input']['name']}")
    return _header_matches({"stringMatch": single["valueMatch"]}, client)
