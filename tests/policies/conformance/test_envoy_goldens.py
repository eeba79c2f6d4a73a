"""Our Envoy config against Kuma v2.14.3's Envoy goldens for the routing and security policies.

Each folder under envoy/ is one case taken from Kuma's plugin tests
(pkg/plugins/policies/{meshhttproute,meshtcproute,meshtls,meshtrafficpermission}/plugin/v1alpha1):
`input.yaml` is the Kuma test's proxy and policies written as the resources a user commits
(Universal form), and `expected.yaml` the parts of Kuma's golden output where behaviour
matters, copied from the golden (see envoy_compare.py for how they are compared):

- `source`: the Kuma test entry and golden files the case comes from;
- `proxy`: the node under test; `names`: Kuma resource name → ours, where they differ;
- `listener` and `routes`: an outbound listener and Kuma's routes in it (verbatim), with
  `probes`: requests whose outcome (route picked, cluster, rewritten path, redirect) must agree;
- `rbac`: per inbound listener, Kuma's RBAC filters (verbatim) and client identities that
  must get the same decision from ours;
- `fields`: fragments `{check, resource: "<type> <Kuma name>", at, expect}` compared at the
  same path in our resource (`at` is a JSON pointer whose segments may be `[name=X]`, the list
  item with that name, as filters are found by name, or `[has=K]`, the first item with key K);
- `xfail`: check name → the reason we differ (an issue item being fixed, or a bug listed in
  docs/routing.md). Strict: a check that starts passing fails until its mark is removed.

Every check of a case is a test of its own, so one known difference never hides another.
`.venv/bin/python -m tests.policies.conformance.test_envoy_goldens` prints the counts that
docs/routing.md reports.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.mesh.model import build_mesh_model
from reconciler.validate import validate
from reconciler.views.proxy import proxy_views
from reconciler.xds.resources import SHORT_NAMES
from tests.policies.conformance.envoy_compare import Comparison, Request, canonical_routes, compare, probe, rbac_decision
from tests.support import generate_checked, snapshot_of_text

HERE = Path(__file__).parent / "envoy"
TYPE_WORD = {"LDS": "listener", "RDS": "route", "CDS": "cluster", "EDS": "endpoints", "SDS": "secret"}
ROUTES_AT = "/filterChains/0/filters/[name=envoy.filters.network.http_connection_manager]/typedConfig/routeConfig/virtualHosts/0/routes"


@dataclass(frozen=True)
class Check:
    case: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.case}/{self.name}"


@cache
def expected_of(case: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((HERE / case / "expected.yaml").read_text(encoding="utf-8"))
    return doc


@cache
def ours(case: str) -> dict[tuple[str, str], dict[str, Any]]:
    """{(type word, resource name): resource as Envoy JSON} for the case's proxy."""
    text = (HERE / case / "input.yaml").read_text(encoding="utf-8")
    snapshot = snapshot_of_text(text, add_meshes=True)
    report = validate(snapshot)
    assert report.valid, f"{case}: input is not valid:\n" + "\n".join(p.render() for p in report.errors)
    views = proxy_views(build_mesh_model(snapshot.resources))
    node = expected_of(case)["proxy"]
    return {(TYPE_WORD[SHORT_NAMES[r.type_url]], r.name): r.to_dict() for r in generate_checked(views[node])}


def checks_of(case: str) -> list[str]:
    doc = expected_of(case)
    names: list[str] = []
    if doc.get("routes"):
        names.append("routes")
        if any("timeout" in (r.get("route") or {}) for r in doc["routes"]):
            names.append("route-timeouts")
        if len(canonical_routes(doc["routes"])) != len(doc["routes"]):
            names.append("prefix-form")
    names.extend(probe_groups(doc))
    if doc.get("names"):
        names.append("resource-names")
    if doc.get("rbac"):
        names.append("rbac-decisions")
        if any("shadowRules" in f["typedConfig"] or "shadowMatcher" in f["typedConfig"] for e in doc["rbac"] for f in e["filters"]):
            names.append("rbac-shadow")
    for fragment in doc.get("fields") or ():
        if fragment["check"] not in names:
            names.append(fragment["check"])
    return names


def probe_groups(doc: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """`probes` is a list of requests (the check `probes`) or {check name: requests}, which
    keeps requests where we knowingly differ apart from those where we agree."""
    probes = doc.get("probes") or {}
    return dict(probes) if isinstance(probes, Mapping) else {"probes": list(probes)}


def all_checks() -> list[Check]:
    return [
        Check(case.name, name)
        for case in sorted(p for p in HERE.iterdir() if (p / "expected.yaml").exists())
        for name in checks_of(case.name)
    ]


def params() -> Iterator[Any]:
    for check in all_checks():
        reason = (expected_of(check.case).get("xfail") or {}).get(check.name)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        yield pytest.param(check, id=check.id, marks=marks)


def resource(case: str, ref: str) -> dict[str, Any]:
    """Our resource for "<type word> <Kuma name>" (through the case's name table)."""
    word, _, kuma_name = ref.partition(" ")
    name = (expected_of(case).get("names") or {}).get(kuma_name, kuma_name)
    found = ours(case).get((word, kuma_name)) or ours(case).get((word, name))
    assert found is not None, f"{case}: we generate no {word} {name!r} (Kuma: {kuma_name!r}); we have {sorted(ours(case))}"
    return found


def locate(doc: Any, at: str) -> Any:
    """The value at JSON pointer `at`; a segment `[name=X]` is the list item named X, `[has=K]`
    the first list item with the key K (the filter chain that terminates TLS)."""
    for segment in [s for s in at.split("/") if s]:
        if segment.startswith("[has=") and segment.endswith("]"):
            key = segment[len("[has=") : -1]
            holding = [item for item in doc if isinstance(item, Mapping) and key in item]
            assert holding, f"no item with {key!r} at {segment}"
            doc = holding[0]
        elif segment.startswith("[name=") and segment.endswith("]"):
            wanted = segment[len("[name=") : -1]
            matching = [item for item in doc if isinstance(item, Mapping) and item.get("name") == wanted]
            assert matching, f"no item named {wanted!r} at {segment} (we have {[i.get('name') for i in doc]})"
            doc = matching[0]
        else:
            doc = doc[int(segment)] if isinstance(doc, list) else doc[segment]
    return doc


def rbac_filters(listener: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The RBAC filters (network, then HTTP) of the listener's mTLS filter chain, in order."""
    chains = listener["filterChains"]
    chain = next((c for c in chains if "transportSocket" in c), chains[0])
    found = [f for f in chain["filters"] if f["name"] == "envoy.filters.network.rbac"]
    for hcm in (f for f in chain["filters"] if f["name"] == "envoy.filters.network.http_connection_manager"):
        found += [f for f in hcm["typedConfig"].get("httpFilters", ()) if f["name"] == "envoy.filters.http.rbac"]
    return found


def run(check: Check) -> Comparison:
    """Compare one check of a case; the Comparison lists every difference."""
    doc = expected_of(check.case)
    names: Mapping[str, str] = doc.get("names") or {}
    if check.name in {"routes", "route-timeouts", "prefix-form"} or check.name in probe_groups(doc):
        our_routes = locate(resource(check.case, f"listener {doc['listener']}"), ROUTES_AT)
        kuma_routes = doc["routes"]
        if check.name == "routes":
            return compare(canonical_routes(kuma_routes), canonical_routes(our_routes), names, "/routes")
        if check.name == "route-timeouts":
            want = [
                {"route": {"timeout": r["route"]["timeout"]}} if "timeout" in r.get("route", {}) else {"match": r["match"]}
                for r in canonical_routes(kuma_routes, keep_timeout=True)
            ]
            return compare(want, canonical_routes(our_routes, keep_timeout=True), names, "/routes")
        if check.name == "prefix-form":
            return compare([r["match"] for r in kuma_routes], [r["match"] for r in our_routes], names, "/routes/*/match")
        result = Comparison()
        for request in probe_groups(doc)[check.name]:
            req = Request.of(request)
            result.add(compare(probe(kuma_routes, req), probe(our_routes, req), names, f"probe {req.method} {req.path}"))
        return result
    if check.name in {"rbac-decisions", "rbac-shadow"}:
        key = "allowed" if check.name == "rbac-decisions" else "shadow denies"
        result = Comparison()
        for entry in doc["rbac"]:
            our_filters = rbac_filters(resource(check.case, f"listener {entry['listener']}"))
            for client in entry["clients"]:
                at = f"{entry['listener']} client {client}"
                result.add(compare(rbac_decision(entry["filters"], client)[key], rbac_decision(our_filters, client)[key], names, at))
        return result
    if check.name == "resource-names":
        result = Comparison()
        generated = {name for _, name in ours(check.case)}
        for kuma_name, our_name in names.items():
            result.compared += 1
            if kuma_name not in generated:
                result.differences.append(f"Kuma names it {kuma_name!r}, we {our_name!r}")
        return result
    result = Comparison()
    for fragment in doc.get("fields") or ():
        if fragment["check"] == check.name:
            at = fragment.get("at", "")
            result.add(
                compare(fragment["expect"], locate(resource(check.case, fragment["resource"]), at), names, f"{fragment['resource']}{at}")
            )
    return result


@pytest.mark.parametrize("check", list(params()))
def test_our_envoy_config_matches_kumas_golden(check: Check) -> None:
    result = run(check)
    assert result.compared > 0, f"{check.id}: compares nothing"
    assert not result.differences, f"{check.id} ({expected_of(check.case)['source']}):\n  " + "\n  ".join(result.differences)


def test_every_case_is_whole_and_every_xfail_names_one_of_its_checks() -> None:
    """A misspelt xfail key would leave its difference failing under another name, a case folder
    without both files would be skipped without a word: neither may happen."""
    folders = sorted(p for p in HERE.iterdir() if p.is_dir())
    assert len(folders) >= 20, f"expected at least 20 cases, found {len(folders)}"
    for folder in folders:
        assert {"input.yaml", "expected.yaml"} <= {p.name for p in folder.iterdir()}, f"{folder.name}: input.yaml and expected.yaml"
        unknown = set(expected_of(folder.name).get("xfail") or {}) - set(checks_of(folder.name))
        assert not unknown, f"{folder.name}: xfail for checks it does not have: {sorted(unknown)}"


def test_the_comparison_helper_finds_what_differs_and_only_that() -> None:
    """The helper every check relies on: a wrong weight, a missing key, a non-empty `rules` where
    Kuma denies all and a different mirror fraction are differences; Kuma's two-route prefix
    form, route names and 9990/TEN_THOUSAND against 999000/MILLION are not."""
    ours_route = {"match": {"pathSeparatedPrefix": "/v1"}, "name": "route", "route": {"cluster": "b"}}
    kuma_pair = [
        {"match": {"path": "/v1"}, "name": "h", "route": {"cluster": "b"}},
        {"match": {"prefix": "/v1/"}, "name": "h", "route": {"cluster": "b"}},
    ]
    assert compare(canonical_routes(kuma_pair), canonical_routes([ours_route])).differences == []
    assert compare({"weight": 40, "cluster": "a"}, {"weight": 41}).differences == [
        "/weight: Kuma 40, we have 41",
        "/cluster: missing (Kuma: 'a')",
    ]
    assert compare({"rules": {}}, {"rules": {"policies": {}}}).differences
    fraction = {"numerator": 9990, "denominator": "TEN_THOUSAND"}
    assert not compare(fraction, {"numerator": 999000, "denominator": "MILLION"}).differences
    assert compare(fraction, {"numerator": 99900, "denominator": "MILLION"}).differences


def test_probes_rewrite_like_envoy() -> None:
    """RE2's GlobalReplace (Envoy's regex_rewrite) replaces `.*` once, not also the empty match at
    the end as Python's re.sub does; prefix_rewrite replaces exactly the matched prefix."""
    full = [{"match": {"path": "/v1"}, "route": {"cluster": "b", "regexRewrite": {"pattern": {"regex": ".*"}, "substitution": "/v2"}}}]
    assert probe(full, Request("/v1")) == {"path": "/v2", "cluster": "b"}
    prefix = [{"match": {"prefix": "/v1/"}, "route": {"cluster": "b", "prefixRewrite": "/v2"}}]
    assert probe(prefix, Request("/v1/users?x=1")) == {"path": "/v2users?x=1", "cluster": "b"}
    assert probe(prefix, Request("/v2")) == {"no route": True}


def summary() -> str:
    """Cases, checks and fields compared, passed and known to differ (for docs/routing.md)."""
    cases = {c.case for c in all_checks()}
    lines, totals = [], {"checks": 0, "fields": 0, "passed": 0, "xfailed": 0}
    reasons: dict[str, int] = {}
    for check in all_checks():
        try:
            result = run(check)
        except (AssertionError, KeyError, IndexError, TypeError) as error:
            result = Comparison(1, [f"{type(error).__name__}: {error}"])
        reason = (expected_of(check.case).get("xfail") or {}).get(check.name)
        totals["checks"] += 1
        totals["fields"] += result.compared
        failed = len(result.differences)
        if reason:
            totals["xfailed"] += 1
            reasons[reason] = reasons.get(reason, 0) + 1
        totals["passed"] += result.compared - failed
        state = "PASS" if not failed else ("xfail" if reason else "FAIL")
        lines.append(f"{state:5} {check.id}: {result.compared} fields, {failed} differ" + (f" ({reason})" if reason else ""))
    lines.append(
        f"{len(cases)} cases, {totals['checks']} checks, {totals['fields']} fields compared, {totals['passed']} equal; "
        f"{totals['xfailed']} checks xfail"
    )
    lines.extend(f"  {n} × {reason}" for reason, n in sorted(reasons.items()))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(summary() + "\n")
