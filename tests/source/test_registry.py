"""Registrations shared through the repository (reconciler/source/registry.py), on real
repositories: two mirrors of one bare repository reached through a `file://` URL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2

from reconciler.source import registry
from reconciler.source.mirror import Mirror
from tests.support import GitRepo

WEB = "type: Dataplane\nmesh: default\nname: web\n"


def _mirrors(tmp_path: Path) -> tuple[Path, Mirror, Mirror]:
    repo = GitRepo(tmp_path / "work")
    repo.commit({"mesh.yaml": "type: Mesh\nname: default\n"})
    bare = tmp_path / "config.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    mirrors = []
    for name in ("a", "b"):
        m = Mirror(f"file://{bare}", "main", str(tmp_path / name))
        m.open()
        mirrors.append(m)
    return bare, mirrors[0], mirrors[1]


def _remote_refs(bare: Path) -> list[str]:
    return [r for r in pygit2.Repository(str(bare)).references if r.startswith(registry.REPLICAS_PREFIX)]


def test_a_replicas_registrations_reach_another_replica_through_the_remote(tmp_path: Path) -> None:
    bare, a, b = _mirrors(tmp_path)
    registry.publish(a, "replica-a", {"default.web": WEB}, now=1000.0)
    assert _remote_refs(bare) == ["refs/reconciler/replicas/replica-a"]
    registry.fetch_peers(b)
    peers = registry.read_peers(b, "replica-b", ttl=90, now=1010.0)
    assert [(p.replica, p.heartbeat, dict(p.dataplanes)) for p in peers] == [("replica-a", 1000.0, {"default.web": WEB})]
    # A replica never counts its own ref as a peer's.
    assert registry.read_peers(a, "replica-a", ttl=90, now=1010.0) == []


def test_registrations_older_than_the_ttl_are_ignored(tmp_path: Path) -> None:
    _, a, b = _mirrors(tmp_path)
    registry.publish(a, "replica-a", {"default.web": WEB}, now=1000.0)
    registry.fetch_peers(b)
    assert registry.read_peers(b, "replica-b", ttl=90, now=1090.0) != []
    assert registry.read_peers(b, "replica-b", ttl=90, now=1091.0) == []


def test_no_registrations_deletes_the_ref_here_and_on_the_remote_and_fetch_prunes_it(tmp_path: Path) -> None:
    bare, a, b = _mirrors(tmp_path)
    registry.publish(a, "replica-a", {"default.web": WEB}, now=1000.0)
    registry.fetch_peers(b)
    registry.publish(a, "replica-a", {}, now=1001.0)
    assert _remote_refs(bare) == []
    registry.fetch_peers(b)
    assert registry.read_peers(b, "replica-b", ttl=90, now=1002.0) == []


def test_an_unreadable_registrations_ref_is_skipped(tmp_path: Path) -> None:
    _, a, b = _mirrors(tmp_path)
    registry.publish(a, "replica-a", {"default.web": WEB}, now=1000.0)
    repo = b.repository
    head = repo.references["refs/heads/main"].target
    repo.create_reference_direct(registry.REPLICAS_PREFIX + "broken", head, True)  # a commit without dataplanes.json
    registry.fetch_peers(b)
    assert [p.replica for p in registry.read_peers(b, "replica-b", ttl=90, now=1001.0)] == ["replica-a"]


def test_the_refs_of_replicas_long_dead_are_deleted_on_the_remote_and_a_live_one_comes_back(tmp_path: Path) -> None:
    bare, a, b = _mirrors(tmp_path)
    registry.publish(a, "replica-a", {"default.web": WEB}, now=1000.0)
    c = Mirror(f"file://{bare}", "main", str(tmp_path / "c"))
    c.open()
    for m in (b, c):
        registry.fetch_peers(m)
    # Past the TTL but not long dead: ignored, kept.
    assert registry.forget_dead(b, "replica-b", older_than=900, now=1500.0) == []
    assert _remote_refs(bare) == ["refs/reconciler/replicas/replica-a"]
    assert registry.forget_dead(b, "replica-b", older_than=900, now=2000.0) == ["replica-a"]
    assert _remote_refs(bare) == []
    assert registry.read_peers(b, "replica-b", ttl=90, now=2000.0) == []
    # Replica C forgets it too before fetching: deleting what is gone on the remote is no error.
    assert registry.forget_dead(c, "replica-c", older_than=900, now=2000.0) == ["replica-a"]
    # Replica A was only cut off: its next heartbeat writes the ref again.
    registry.publish(a, "replica-a", {"default.web": WEB}, now=2010.0)
    registry.fetch_peers(b)
    assert [p.replica for p in registry.read_peers(b, "replica-b", ttl=90, now=2011.0)] == ["replica-a"]
