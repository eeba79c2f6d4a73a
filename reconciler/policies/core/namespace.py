"""Kubernetes namespaces as Kuma v2.14 uses them to scope policies.

A repository may hold resources in Kubernetes form with `metadata.namespace`. Kuma's
Kubernetes store keeps such a resource under the name `<name>.<namespace>` and labels it with
`k8s.kuma.io/namespace` and `kuma.io/display-name` (its name as written); the loader does the
same (reconciler/kubernetes_identity.py). On Universal nothing here applies: a resource
without the namespace label keeps every rule it had before.

What the namespace changes (Kuma: pkg/core/resources/labels/compute.go,
pkg/plugins/policies/core/matchers/dataplane.go, rules/resolve):

- **Role** (`compute_policy_role`): a policy in the system namespace is a `system` policy; else
  a policy with `from` entries, or with neither `to` nor `from` (`rules`, single-item), is a
  `workload-owner` policy; a policy whose every `to` entry names a MeshService or MeshHTTPRoute
  by name in its own namespace is a `producer` policy; one whose `to` entries name none is a
  `consumer` policy; a mix is refused. The computed role replaces any `kuma.io/policy-role`
  label, as Kuma's admission does.
- **Scope** (`dataplane_in_scope`): consumer and workload-owner policies select only proxies
  of their own namespace; system and producer policies select proxies of any namespace (a
  producer policy's `to` entries still name only its own namespace's services, so it reaches
  every client of them).
- **References**: a targetRef `name` without `namespace` means that name in the policy's own
  namespace; with `namespace`, in that one. A top-level Dataplane ref compares display name
  and namespace label (`refers_to`); a `to` entry, and a route rule's `backendRefs`, get the
  policy's namespace filled in (`in_policy_namespace`) and then name the stored resource
  (`ref_core_name`): `backend` of a policy in `kuma-demo` is `backend.kuma-demo`.
  MeshHTTPRoute named by a top-level ref is found by display name (`PolicyIndex.route_named`).

The system namespace is Kuma's `kuma-system` unless the environment variable
`KUMA_STORE_KUBERNETES_SYSTEM_NAMESPACE` (Kuma's own setting for it) names another.

Pure functions of labels and specs: no mesh model, no I/O besides reading that variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.kubernetes_identity import DISPLAY_NAME_LABEL, NAMESPACE_LABEL, ROLE_LABEL, core_name

__all__ = [
    "namespace_of",
    "display_name",
    "dataplane_in_scope",
    "ref_identity",
    "refers_to",
    "ref_core_name",
    "in_policy_namespace",
]


def namespace_of(labels: Mapping[str, str]) -> str:
    """The Kubernetes namespace a resource lives in; empty on Universal."""
    return str(labels.get(NAMESPACE_LABEL) or "")


def display_name(name: str, labels: Mapping[str, str]) -> str:
    """The name as its author wrote it (Kuma's GetDisplayName)."""
    return str(labels.get(DISPLAY_NAME_LABEL) or name)


def dataplane_in_scope(policy_labels: Mapping[str, str], dataplane_labels: Mapping[str, str]) -> bool:
    """Kuma's dppSelectedByNamespace: consumer and workload-owner policies reach only the
    proxies of their own namespace; system and producer policies reach every proxy.

    A policy without a namespace keeps reaching every proxy whatever its role label says
    (Kuma selects none: its Universal API refuses such a label, which this reconciler accepts,
    and Universal repositories keep the behaviour they had)."""
    namespace = policy_labels.get(NAMESPACE_LABEL)
    if policy_labels.get(ROLE_LABEL) not in ("consumer", "workload-owner") or not namespace:
        return True
    return namespace == dataplane_labels.get(NAMESPACE_LABEL, "")


def ref_identity(policy_labels: Mapping[str, str], ref: Mapping[str, Any]) -> tuple[str, str]:
    """(display name, namespace) a targetRef names: its `namespace`, else the policy's own
    (Kuma's TargetRefToKRI)."""
    return str(ref.get("name") or ""), str(ref.get("namespace") or namespace_of(policy_labels))


def refers_to(policy_labels: Mapping[str, str], ref: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    """Whether `ref` (in a policy with `policy_labels`) names the resource stored as `name`
    with `labels`: same display name, same namespace."""
    return ref_identity(policy_labels, ref) == (display_name(name, labels), namespace_of(labels))


def ref_core_name(ref: Mapping[str, Any]) -> str:
    """The stored name of the resource a targetRef names, once `in_policy_namespace` has given
    it the policy's namespace: `name.namespace` when a namespace applies, else the name."""
    return core_name(str(ref.get("name") or ""), str(ref.get("namespace") or ""))


def in_policy_namespace(policy_labels: Mapping[str, str], entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """A `to` entry whose targetRef, and whose rules' `backendRefs`, name resources without
    `namespace`, with the policy's namespace filled in (Kuma's TargetRefToKRI); the entry
    itself when nothing changes, which is always the case on Universal."""
    ns = policy_labels.get(NAMESPACE_LABEL)
    if not ns:
        return entry
    ref, rules = entry.get("targetRef"), entry.get("rules")
    fill_ref = _needs_namespace(ref)
    fill_rules = isinstance(rules, list | tuple) and any(_rule_needs_namespace(r) for r in rules)
    if not fill_ref and not fill_rules:
        return entry
    out = dict(entry)
    if fill_ref and isinstance(ref, Mapping):
        out["targetRef"] = {**ref, "namespace": ns}
    if fill_rules and isinstance(rules, list | tuple):
        out["rules"] = [_rule_in_namespace(r, ns) for r in rules]
    return out


def _needs_namespace(ref: Any) -> bool:
    return isinstance(ref, Mapping) and bool(ref.get("name")) and not ref.get("namespace") and ref.get("kind") != "Mesh"


def _backend_refs(rule: Any) -> Any:
    default = rule.get("default") if isinstance(rule, Mapping) else None
    return default.get("backendRefs") if isinstance(default, Mapping) else None


def _rule_needs_namespace(rule: Any) -> bool:
    refs = _backend_refs(rule)
    return isinstance(refs, list | tuple) and any(_needs_namespace(r) for r in refs)


def _rule_in_namespace(rule: Any, ns: str) -> Any:
    if not _rule_needs_namespace(rule):
        return rule
    refs = [{**r, "namespace": ns} if _needs_namespace(r) else r for r in _backend_refs(rule)]
    return {**rule, "default": {**rule["default"], "backendRefs": refs}}
