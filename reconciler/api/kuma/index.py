"""`GET /` (Kuma's Index: what answers here), `GET /_resources` (Kuma's
ResourceTypeDescriptionList: every kind served, its path and scope; all read-only here) and
`GET /policies` (Kuma's older list of the policy kinds)."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from typing import Any

from reconciler import __version__
from reconciler.api.backend import ApiBackend
from reconciler.api.kuma.descriptors import KindDescriptor, descriptors

__all__ = ["PRODUCT", "BASED_ON_KUMA", "index_json", "resources_json", "policies_json", "instance_id"]

PRODUCT = "mesh-reconciler"
BASED_ON_KUMA = "2.14.3"
"""The Kuma version whose API, resources and semantics this follows."""


def instance_id() -> str:
    """This process: Kuma names a control plane instance `<hostname>-<suffix>`."""
    return f"{socket.gethostname()}-{os.getpid()}"


def cluster_id(cp: ApiBackend) -> str:
    """Stable for a repository and branch: every replica serving them is one cluster."""
    digest = hashlib.sha256(f"{cp.repository}\0{cp.branch}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def index_json(cp: ApiBackend) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "product": PRODUCT,
        "version": __version__,
        "basedOnKuma": BASED_ON_KUMA,
        "instanceId": instance_id(),
        "clusterId": cluster_id(cp),
        "gui": "/gui",
    }


def _description(d: KindDescriptor) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": d.name,
        "scope": d.scope,
        "readOnly": True,  # written in git, never through the API
        "path": d.path,
        "singularDisplayName": d.singular,
        "pluralDisplayName": d.plural,
        "shortName": d.short_name,
        "includeInFederation": d.federated,
    }
    if d.policy is not None:
        out["policy"] = {
            "isTargetRef": True,
            "hasToTargetRef": d.policy.to,
            "hasFromTargetRef": d.policy.from_,
            "hasRulesTargetRef": d.policy.rules,
            "isFromAsRules": d.policy.from_as_rules,
        }
    return out


def resources_json() -> dict[str, Any]:
    return {"resources": [_description(d) for d in descriptors()]}


def policies_json() -> dict[str, Any]:
    return {
        "policies": [
            {
                "name": d.name,
                "readOnly": True,
                "path": d.path,
                "singularDisplayName": d.singular,
                "pluralDisplayName": d.plural,
                "isExperimental": False,
                "isTargetRefBased": True,
                "isInbound": d.policy.from_,
                "isOutbound": d.policy.to,
            }
            for d in descriptors()
            if d.policy is not None
        ]
    }
