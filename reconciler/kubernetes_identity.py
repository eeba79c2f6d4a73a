"""Kubernetes-form identity as Kuma v2.14's Kubernetes store and admission give it.

A resource in Kubernetes form with `metadata.namespace` is stored as `<name>.<namespace>` and
labelled `k8s.kuma.io/namespace` and `kuma.io/display-name` (its name as written); a policy
also gets the `kuma.io/policy-role` Kuma's admission computes from its namespace and entries
(Kuma: pkg/core/resources/labels/compute.go). The loader applies this when it reads a file;
how the role and namespace then scope policies is reconciler/policies/core/namespace.py.

Pure functions of names, labels and specs; the only input besides them is the environment
variable naming the system namespace (Kuma's own `KUMA_STORE_KUBERNETES_SYSTEM_NAMESPACE`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from reconciler.kind_names import KIND_NAMES, POLICY_KINDS

__all__ = [
    "NAMESPACE_LABEL",
    "DISPLAY_NAME_LABEL",
    "ROLE_LABEL",
    "SYSTEM_NAMESPACE_ENV",
    "DEFAULT_SYSTEM_NAMESPACE",
    "NAMESPACED_KINDS",
    "system_namespace",
    "core_name",
    "namespace_labels",
    "kubernetes_identity",
    "compute_policy_role",
]

NAMESPACE_LABEL = "k8s.kuma.io/namespace"
DISPLAY_NAME_LABEL = "kuma.io/display-name"
ROLE_LABEL = "kuma.io/policy-role"
SYSTEM_NAMESPACE_ENV = "KUMA_STORE_KUBERNETES_SYSTEM_NAMESPACE"
DEFAULT_SYSTEM_NAMESPACE = "kuma-system"

# Kuma's cluster-scoped CRDs (Mesh, MeshGateway) have no namespace; a Kuma Secret lives in the
# system namespace and keeps its plain name in Kuma's secret store. Every other kind is namespaced.
NAMESPACED_KINDS = KIND_NAMES - {"Mesh", "MeshGateway", "Secret"}
"""Kinds whose Kubernetes form takes `metadata.namespace` into its name and labels."""

_PRODUCER_KINDS = frozenset({"MeshService", "MeshHTTPRoute"})


def system_namespace(environ: Mapping[str, str] | None = None) -> str:
    """The namespace whose policies are system policies (Kuma's default `kuma-system`)."""
    env = os.environ if environ is None else environ
    return env.get(SYSTEM_NAMESPACE_ENV) or DEFAULT_SYSTEM_NAMESPACE


def core_name(name: str, namespace: str) -> str:
    """The name Kuma's Kubernetes store gives `name` in `namespace`: `name.namespace`."""
    return f"{name}.{namespace}" if namespace else name


def namespace_labels(name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, str]:
    """`labels` plus the namespace and display-name labels Kuma sets, keeping any already set."""
    out = dict(labels)
    out.setdefault(NAMESPACE_LABEL, namespace)
    out.setdefault(DISPLAY_NAME_LABEL, name)
    return out


def kubernetes_identity(
    kind: str, name: str, namespace: str, labels: Mapping[str, str], spec: Any, system: str | None = None
) -> tuple[str, dict[str, str], str | None]:
    """What Kuma's Kubernetes store and admission make of a namespaced resource: its stored
    name, its labels (namespace, display name and, for a policy, the role computed from its
    namespace and entries, replacing any role label), and why Kuma would refuse it, if it would."""
    out = namespace_labels(name, namespace, labels)
    if kind not in POLICY_KINDS or not isinstance(spec, Mapping):
        return core_name(name, namespace), out, None
    role, why = compute_policy_role(spec, namespace, system_namespace() if system is None else system)
    if why:
        return (
            core_name(name, namespace),
            out,
            f"{why} (Kuma computes the role of a policy in namespace {namespace} from its `to` and `from` entries)",
        )
    out[ROLE_LABEL] = role
    return core_name(name, namespace), out, None


def compute_policy_role(spec: Mapping[str, Any], namespace: str, system: str) -> tuple[str, str | None]:
    """Kuma's ComputePolicyRole: (role, None), or ("", why) when Kuma refuses the policy."""
    if not namespace or namespace == system:
        return "system", None
    to = spec.get("to") or ()
    has_to = isinstance(to, list) and len(to) > 0
    has_from = isinstance(spec.get("from"), list) and len(spec["from"]) > 0
    if has_to and has_from:
        return "", "it's not allowed to mix 'to' and 'from' arrays in the same policy"
    if not has_to:
        return "workload-owner", None
    producer = sum(1 for entry in to if _is_producer_item(entry, namespace))
    if producer == len(to):
        return "producer", None
    if producer == 0:
        return "consumer", None
    return "", "it's not allowed to mix producer and consumer items in the same policy"


def _is_producer_item(entry: Any, namespace: str) -> bool:
    ref = entry.get("targetRef") if isinstance(entry, Mapping) else None
    if not isinstance(ref, Mapping) or ref.get("kind") not in _PRODUCER_KINDS or not ref.get("name"):
        return False
    return ref.get("namespace") in (None, "", namespace)
