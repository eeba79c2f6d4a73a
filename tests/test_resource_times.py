"""Kuma's creationTime/modificationTime of a resource: when the control plane first applied it,
and when it last applied a change to it; a commit that leaves a resource alone keeps its times."""

from __future__ import annotations

from reconciler.mesh.model import build_mesh_model
from reconciler.model import Resource, Snapshot
from reconciler.store import Applied, Store


def _applied(revision: str, at: float, *resources: Resource) -> Applied:
    return Applied(revision, Snapshot(revision, resources), build_mesh_model(resources), at)


def test_times_follow_what_each_commit_changed() -> None:
    mesh = Resource.create("Mesh", "default", {})
    timeout = Resource.create("MeshTimeout", "t", {"targetRef": {"kind": "Mesh"}}, mesh="default")
    store = Store("main")
    store.apply(_applied("a", 100.0, mesh, timeout))
    assert (store.time_of(mesh).created, store.time_of(mesh).modified) == (100.0, 100.0)

    changed = Resource.create("MeshTimeout", "t", {"targetRef": {"kind": "Mesh"}, "to": []}, mesh="default")
    store.apply(_applied("b", 200.0, mesh, changed))
    assert (store.time_of(mesh).created, store.time_of(mesh).modified) == (100.0, 100.0)
    assert (store.time_of(changed).created, store.time_of(changed).modified) == (100.0, 200.0)

    store.apply(_applied("c", 300.0, mesh))  # removed, then added again: a new resource
    store.apply(_applied("d", 400.0, mesh, changed))
    assert (store.time_of(changed).created, store.time_of(changed).modified) == (400.0, 400.0)
