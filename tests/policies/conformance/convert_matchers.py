"""One-off converter: Kuma v2.14.3's matcher testdata → this project's conformance cases.

Run from the repository root when the Kuma mirror exists (the converted cases are committed;
the test never needs the mirror):

    .venv/bin/python -m tests.policies.conformance.convert_matchers

For every Kuma case it writes `tests/policies/conformance/matchers/<case>/`:

- `input.yaml`: the Kuma inputs in Universal form — a Mesh (no default policies), the
  Dataplane, the policies (and MeshGateway / MeshExternalService), all in the Dataplane's
  mesh (Kuma's matcher ignores meshes). Duplicate names in one Kuma file get a suffix and
  keep the original as `kuma.io/display-name`, which is what ordering reads. For route
  checks, the Dataplane gets one outbound per destination service and each destination one
  HTTP provider Dataplane, so that the proxy view has routes; they do not change matching.
- `expected.yaml`: our expected values, derived from Kuma's golden file (see
  test_matchers.py for what each check means and how Kuma's subsets map to them).

Kuma's rule subsets are evaluated with Kuma's own semantics (`Rules.Compute`: the first rule
whose subset contains the element) on the elements our engine computes confs for, so the
expected value of each element is exactly what Kuma's golden says for it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.policies.conformance.kuma_semantics import VARIANTS, apply_meta, compute, matches_hash, merge_patch, origins

MIRROR = Path("/work/.mirror/kumahq+kuma/repo")
TAG = "v2.14.3"
BASE = "pkg/plugins/policies/core/matchers/testdata"
OUT = Path(__file__).parent / "matchers"
SERVICE = "kuma.io/service"
HASH_TAG = "__rule-matches-hash__"


def git_show(path: str) -> str:
    return subprocess.run(["git", "-C", str(MIRROR), "show", f"{TAG}:{BASE}/{path}"], capture_output=True, text=True, check=True).stdout


def git_ls(path: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(MIRROR), "ls-tree", "--name-only", f"{TAG}:{BASE}/{path}"], capture_output=True, text=True)
    return out.stdout.split()


def docs(text: str) -> list[dict[str, Any]]:
    # Kuma splits on '---' and unmarshals each part; a duplicated key keeps the last value, as here.
    return [d for d in yaml.safe_load_all(text) if d]


# -- assembling a case -------------------------------------------------------------------------
def mesh_doc(mesh: str) -> dict[str, Any]:
    return {"type": "Mesh", "name": mesh, "skipCreatingInitialPolicies": ["*"]}


def unique_names(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str], int] = {}
    out = []
    for r in resources:
        key = (r["type"], r["name"])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            labels = dict(r.get("labels") or {})
            labels.setdefault("kuma.io/display-name", r["name"])
            r = {**r, "name": f"{r['name']}-dup{seen[key]}", "labels": labels}
        out.append(r)
    return out


def golden_names(items: list[dict[str, Any]], resources: list[dict[str, Any]]) -> list[str]:
    """Golden items → the names of our (possibly renamed) resources with the same spec."""
    names = []
    for item in items:
        candidates = [
            r
            for r in resources
            if r.get("spec") == item["spec"]
            and (r.get("labels") or {}).get("kuma.io/display-name", r["name"])
            in (item["name"], (item.get("labels") or {}).get("kuma.io/display-name"))
        ]
        if not candidates:
            candidates = [r for r in resources if r["name"] == item["name"]]
        assert len(candidates) >= 1, item["name"]
        names.append(candidates[0]["name"])
    return names


def policy_kind(resources: list[dict[str, Any]]) -> str:
    kinds = sorted({r["type"] for r in resources if r["type"] not in ("Dataplane", "MeshGateway", "MeshExternalService", "Mesh")})
    others = [k for k in kinds if k != "MeshHTTPRoute"]
    return others[0] if others else "MeshHTTPRoute"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_case(name: str, source: str, resources: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    header = f"# Converted from Kuma {TAG} {BASE}/{source} by convert_matchers.py\n"
    (folder / "input.yaml").write_text(header + yaml.dump_all(resources, Dumper=_Dumper, sort_keys=False))
    (folder / "expected.yaml").write_text(header + yaml.dump({"kuma": source, **expected}, Dumper=_Dumper, sort_keys=False))


def base_resources(dp: dict[str, Any], policies: list[dict[str, Any]], extra: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    mesh = dp["mesh"]
    moved = [{**p, "mesh": mesh} if p["type"] != "Mesh" else p for p in [*extra, *policies]]
    return [mesh_doc(mesh), dp, *unique_names(moved)]


def convert_matched(group: str, case: str) -> None:
    dp = docs(git_show(f"matchedpolicies/{group}/{case}.dataplane.yaml"))[0]
    policies = docs(git_show(f"matchedpolicies/{group}/{case}.policies.yaml"))
    resources = base_resources(dp, policies)
    golden = yaml.safe_load(git_show(f"matchedpolicies/{group}/{case}.golden.yaml"))
    expected = {"check": "matched", "kind": policy_kind(policies), "dataplane": dp["name"]}
    expected["matched"] = golden_names(golden["items"] or [], resources)
    write_case(f"{group}-{case}", f"matchedpolicies/{group}/{case}", resources, expected)


def convert_dataplane_kind(case: str) -> None:
    dp0 = docs(git_show(f"matchedpolicies/dataplane-kind/{case}.dataplane.yaml"))[0]
    policies0 = docs(git_show(f"matchedpolicies/dataplane-kind/{case}.policies.yaml"))
    kind = policy_kind(policies0)
    for variant, (dp_meta, policy_meta) in VARIANTS.items():
        dp = apply_meta(dp0, dp_meta)
        # Kuma updates the meta of the policies of the tested type only (not MeshHTTPRoutes beside them).
        policies = [apply_meta(p, policy_meta) if p["type"] == kind else p for p in policies0]
        resources = base_resources(dp, policies)
        golden = yaml.safe_load(git_show(f"matchedpolicies/dataplane-kind/{case}/{variant}.golden.yaml"))
        expected = {"check": "matched", "kind": kind, "dataplane": dp["name"], "matched": golden_names(golden["items"] or [], resources)}
        write_case(f"dataplane-kind-{case}-{variant}", f"matchedpolicies/dataplane-kind/{case}/{variant}", resources, expected)


def client_for(subset: list[dict[str, Any]]) -> dict[str, str]:
    client = {t["Key"]: t["Value"] for t in subset if not t["Not"]}
    if SERVICE not in client:
        client[SERVICE] = "some-other-client"
    return client


def convert_fromrules(case: str) -> None:
    dp = docs(git_show(f"matchedpolicies/fromrules/{case}.dataplane.yaml"))[0]
    policies = docs(git_show(f"matchedpolicies/fromrules/{case}.policies.yaml"))
    golden = yaml.safe_load(git_show(f"matchedpolicies/fromrules/{case}.golden.yaml"))
    inbounds: dict[str, Any] = {}
    for listener in sorted(set(golden.get("Rules") or {}) | set(golden.get("InboundRules") or {})):
        rules = (golden.get("Rules") or {}).get(listener) or []
        inbound_rules = (golden.get("InboundRules") or {}).get(listener) or []
        if inbound_rules:
            confs = [r["conf"] for r in inbound_rules]
            inbounds[listener] = {
                "rules": {
                    "allow": [m for c in confs for m in (c.get("allow") or []) + (c.get("allowWithShadowDeny") or [])],
                    "deny": [m for c in confs for m in c.get("deny") or []],
                    "shadowDeny": [m for c in confs for m in c.get("allowWithShadowDeny") or []],
                },
                "origins": [r["origin"]["Resource"]["name"] for r in inbound_rules],
            }
            continue
        clients: list[dict[str, Any]] = []
        for rule in rules:
            client = client_for(rule["Subset"] or [])
            # A rule that an earlier rule shadows for this client still gives the earlier rule's
            # action: Compute takes the first rule containing the client.
            computed = compute(rules, client)
            assert computed is not None
            if any(c["client"] == client for c in clients):
                continue
            clients.append(
                {
                    "client": client,
                    "action": computed["Conf"]["action"],
                    "kuma_subset": computed["Subset"] or [],
                    "origins": origins(computed),
                }
            )
        inbounds[listener] = {"clients": clients}
    write_case(
        f"fromrules-{case}",
        f"matchedpolicies/fromrules/{case}",
        base_resources(dp, policies),
        {"check": "inbounds", "kind": "MeshTrafficPermission", "dataplane": dp["name"], "inbounds": inbounds},
    )


def convert_torules(group: str, case: str) -> None:
    dp = dict(docs(git_show(f"matchedpolicies/{group}/{case}.dataplane.yaml"))[0])
    policies = docs(git_show(f"matchedpolicies/{group}/{case}.policies.yaml"))
    extra = docs(git_show(f"matchedpolicies/{group}/{case}.mes.yaml")) if group == "meshexternalservice" else []
    golden = yaml.safe_load(git_show(f"matchedpolicies/{group}/{case}.golden.yaml"))
    rules = golden.get("Rules") or []
    kind = policy_kind(policies)
    # Destinations: every service named by a `to` entry or a Kuma subset, and one named by nothing.
    services: list[str] = []
    for p in policies:
        for entry in p.get("spec", {}).get("to") or []:
            ref = entry.get("targetRef") or {}
            if ref.get("kind") == "MeshService" and ref.get("name") and ref["name"] not in services:
                services.append(ref["name"])
    for rule in rules:
        for t in rule["Subset"] or []:
            if t["Key"] == SERVICE and t["Value"] not in services:
                services.append(t["Value"])
    services.append("unnamed-service")
    route_rules: dict[str, list[list[dict[str, Any]]]] = {}
    for p in policies:
        if p["type"] != "MeshHTTPRoute":
            continue
        for entry in p["spec"].get("to") or []:
            name = str((entry.get("targetRef") or {}).get("name"))
            for rule in entry.get("rules") or []:
                if rule.get("matches") not in route_rules.setdefault(name, []):
                    route_rules[name].append(rule["matches"])
    known = {t["Value"] for r in rules for t in r["Subset"] or [] if t["Key"] == HASH_TAG}
    computed = {matches_hash(m) for ms in route_rules.values() for m in ms}
    assert known <= computed, (case, known - computed)

    def expect(element: dict[str, str]) -> dict[str, Any]:
        rule = compute(rules, element)
        if rule is None:
            return {"conf": None}
        return {"conf": rule["Conf"], "kuma_subset": rule["Subset"] or [], "origins": origins(rule)}

    checks: list[dict[str, Any]] = []
    for service in services:
        checks.append({"destination": {"service": service}, **expect({SERVICE: service})})
        for matches in route_rules.get(service, []):
            checks.append(
                {"destination": {"service": service}, "route": matches, **expect({SERVICE: service, HASH_TAG: matches_hash(matches)})}
            )
        if service in route_rules:
            checks.append({"destination": {"service": service}, "route": "catch-all", **expect({SERVICE: service, HASH_TAG: "catch-all"})})
    # Kuma's test resolves `to` targetRefs without the Mesh resource in its reader, so
    # `{kind: Mesh}` entries reach no real resource there; on a control plane the Mesh exists
    # and they are relevant to every resource of the mesh (ResourceRule isRelevant), merged
    # first (they sort before the more specific entries in these cases). The legacy rule for
    # the empty subset is exactly those entries: add its conf and origins.
    mesh_rule = next((r for r in rules if not r["Subset"]), None)
    for resource in (golden.get("ResourceRules") or {}).values():
        res = resource["Resource"]
        dest = {"kind": res["type"], "name": res["name"]}
        if resource.get("ResourceSectionName"):
            dest["sectionName"] = resource["ResourceSectionName"]
        assert len(resource["Conf"]) == 1
        conf, names = resource["Conf"][0], origins(resource)
        if mesh_rule is not None:
            conf, names = merge_patch(mesh_rule["Conf"], conf), [*origins(mesh_rule), *names]
        checks.append({"destination": dest, "conf": conf, "origins": names})
    extra_dps: list[dict[str, Any]] = []
    if route_rules:
        # Outbounds (and HTTP providers) so that the proxy view has the routes to compare.
        networking = dict(dp["networking"])
        networking["outbound"] = [{"port": 10001 + i, "tags": {SERVICE: s}} for i, s in enumerate(route_rules)]
        dp["networking"] = networking
        for i, s in enumerate(route_rules):
            extra_dps.append(
                {
                    "type": "Dataplane",
                    "mesh": dp["mesh"],
                    "name": f"{s}-provider",
                    "networking": {
                        "address": f"10.9.0.{i + 1}",
                        "inbound": [{"port": 8080, "tags": {SERVICE: s, "kuma.io/protocol": "http"}}],
                    },
                }
            )
    resources = base_resources(dp, policies, extra) + extra_dps
    write_case(
        f"{group}-{case}",
        f"matchedpolicies/{group}/{case}",
        resources,
        {"check": "outbounds", "kind": kind, "dataplane": dp["name"], "outbounds": checks},
    )


def convert_gateway(case: str) -> None:
    dp = docs(git_show(f"matchedpolicies/meshgateways/{case}.dataplane.yaml"))[0]
    policies = docs(git_show(f"matchedpolicies/meshgateways/{case}.policies.yaml"))
    golden = yaml.safe_load(git_show(f"matchedpolicies/meshgateways/{case}.golden.yaml"))
    listeners = {}
    for listener, rules in (golden["ToRules"]["ByListener"] or {}).items():
        rule = compute(rules["Rules"] or [], {SERVICE: "some-backend"})
        listeners[listener] = {"conf": rule["Conf"] if rule else None, "origins": origins(rule) if rule else []}
    write_case(
        f"meshgateways-{case}",
        f"matchedpolicies/meshgateways/{case}",
        base_resources(dp, policies),
        {"check": "gateway", "kind": "MeshAccessLog", "dataplane": dp["name"], "listeners": listeners},
    )


def convert_egress(group: str, case: str) -> None:
    # Zone egress: out of scope here; the case keeps its inputs and Kuma's golden for reference.
    resources = [
        *docs(git_show(f"egressmatchedpolicies/{group}/{case}.es.yaml")),
        *docs(git_show(f"egressmatchedpolicies/{group}/{case}.policies.yaml")),
    ]
    golden = yaml.safe_load(git_show(f"egressmatchedpolicies/{group}/{case}.golden.yaml"))
    write_case(
        f"egress-{group}-{case}", f"egressmatchedpolicies/{group}/{case}", resources, {"check": "zone-egress", "kuma_golden": golden}
    )


def cases(folder: str) -> list[str]:
    return sorted({f.split(".")[0] for f in git_ls(folder) if "." in f})


def main() -> int:
    if not MIRROR.exists():
        print(f"no Kuma mirror at {MIRROR}", file=sys.stderr)
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    for case in cases("matchedpolicies/dataplanepolicies"):
        convert_matched("dataplanepolicies", case)
    for case in cases("matchedpolicies/dataplane-kind"):
        convert_dataplane_kind(case)
    for case in cases("matchedpolicies/fromrules"):
        convert_fromrules(case)
    for case in cases("matchedpolicies/torules"):
        convert_torules("torules", case)
    for case in cases("matchedpolicies/meshexternalservice"):
        convert_torules("meshexternalservice", case)
    for case in cases("matchedpolicies/meshgateways"):
        convert_gateway(case)
    for group in ("fromrules", "fromtorules", "torules"):
        for case in cases(f"egressmatchedpolicies/{group}"):
            convert_egress(group, case)
    print(f"{len(list(OUT.iterdir()))} cases in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
