"""Checks that need more than one resource: duplicate identities and meshes that exist."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.checks import as_list, get
from reconciler.errors import Path, Problem, Violation
from reconciler.model import Resource
from reconciler.types import ResourceKey

__all__ = ["duplicate_problems", "missing_mesh_problems", "missing_secret_problems"]


def _where(resource: Resource) -> str:
    if resource.origin is None:
        return "<generated>"
    return f"{resource.origin.file}:{resource.origin.line}"


def duplicate_problems(resources: Iterable[Resource]) -> list[Problem]:
    """Every definition of an identity after the first is an error naming both places."""
    first: dict[ResourceKey, Resource] = {}
    out: list[Problem] = []
    for r in resources:
        seen = first.get(r.key)
        if seen is None:
            first[r.key] = r
            continue
        out.append(
            r.locate(
                Violation(
                    Path.root("name"),
                    f"duplicate resource: {r.key} is also defined at {_where(seen)}; "
                    "identities (type, mesh, name) must be unique, rename or delete one",
                )
            )
        )
    return out


def missing_mesh_problems(resources: Iterable[Resource], declared: Iterable[str] = ()) -> list[Problem]:
    """A mesh-scoped resource whose mesh has no `Mesh` resource in the same snapshot.

    `declared` names Meshes that are there but could not be read (their own errors are
    reported); resources in them are not blamed for it.
    """
    resources = list(resources)
    meshes = {r.name for r in resources if r.type == "Mesh"} | set(declared)
    out: list[Problem] = []
    for r in resources:
        if r.mesh and r.mesh not in meshes:
            known = ", ".join(sorted(meshes)) or "none"
            out.append(
                r.locate(
                    Violation(
                        Path.root("mesh"),
                        f'mesh "{r.mesh}" does not exist (meshes in this revision: {known}); '
                        f"add a Mesh named {r.mesh} or set mesh: to an existing one",
                    )
                )
            )
    return out


def _secret_refs(r: Resource) -> list[tuple[str, str, str]]:
    """(mesh, secret name, pointer) for each data source of `r` that names a mesh Secret.

    Runs on documents the schema may have rejected (every check runs in one pass), so each
    step goes through `get`/`as_list`, which read a mistyped field as absent.
    """
    spec = r.spec
    out: list[tuple[str, str, str]] = []

    def ref(source: Any, pointer: str, mesh: str) -> None:
        secret = get(source, "secret")
        if isinstance(secret, str) and secret:
            out.append((mesh, secret, pointer + "/secret"))

    if r.type == "Mesh":
        for i, backend in enumerate(as_list(get(spec, "mtls", "backends"))):
            if get(backend, "type") == "provided":
                for field in ("cert", "key"):
                    ref(get(backend, "conf", field), f"/mtls/backends/{i}/conf/{field}", r.name)
    elif r.type == "MeshExternalService":
        for field in ("caCert", "clientCert", "clientKey"):
            ref(get(spec, "tls", "verification", field), f"/spec/tls/verification/{field}", r.mesh)
    elif r.type == "MeshGateway":
        for i, listener in enumerate(as_list(get(spec, "conf", "listeners"))):
            for j, cert in enumerate(as_list(get(listener, "tls", "certificates"))):
                ref(cert, f"/conf/listeners/{i}/tls/certificates/{j}", r.mesh)
    elif r.type == "MeshIdentity":
        for field in ("certificate", "privateKey"):
            source = get(spec, "provider", "bundled", "ca", field)
            name = get(source, "secretRef", "name")
            if get(source, "type") == "Secret" and isinstance(name, str) and name:
                out.append((r.mesh, name, f"/spec/provider/bundled/ca/{field}/secretRef/name"))
    return out


def missing_secret_problems(resources: Iterable[Resource]) -> list[Problem]:
    """Warnings for data sources naming a Secret that is not in the resource's mesh.

    Warnings, not errors: Kuma accepts such resources (the Secret may come later). Until it
    exists, a provided CA rejects reconciles, a MeshExternalService fails closed (no
    endpoints) and a gateway listener serves no certificate for that hostname.
    """
    resources = list(resources)
    secrets = {(r.mesh, r.name) for r in resources if r.type == "Secret"}
    out = []
    for r in resources:
        for mesh, name, pointer in _secret_refs(r):
            if (mesh, name) not in secrets:
                path = Path(tuple(int(p) if p.isdigit() else p for p in pointer.strip("/").split("/")))
                message = (
                    f'Secret "{name}" does not exist in mesh "{mesh}"; add it (type: Secret, mesh: {mesh}, base64 data) or fix the name'
                )
                out.append(r.locate(Violation(path, message, "warning")))
    return out
