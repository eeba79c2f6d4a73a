"""Dataplanes registered at connect, shared among replicas through the repository.

A proxy that is not declared in git sends its Dataplane in its node metadata and is registered
by the replica it connects to (reconciler/xds/registration.py). With several replicas, every
replica must know it, or consumers served by another replica would miss its endpoints. Git is
the only store the replicas share, so each replica keeps its registrations in a ref of its
own, `refs/reconciler/replicas/<replica-id>`: a commit with one file, `dataplanes.json`
(`{"replica", "heartbeat", "dataplanes": {node id: Dataplane YAML}}`), written again when its
registrations change and every heartbeat while it has any. A replica writes only its own
ref, so no write races another; a ref whose heartbeat is older than the TTL belongs to a
replica that died and is ignored (its proxies register again with the replica they move to),
and one much older is deleted (`forget_dead`): a replica whose state directory is new after
every restart (an emptyDir) has a new id each time, and its old refs would otherwise pile up.

For a remote repository the ref is pushed (`+`, the replica owns it) and every replica's refs
are fetched with pruning; a local repository is shared by the processes that open it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import pygit2

from reconciler.source.mirror import Mirror
from reconciler.source.refs import commit_of_ref, delete_ref
from reconciler.source.remote import make_callbacks

__all__ = ["REPLICAS_PREFIX", "FILE", "PeerRegistrations", "publish", "fetch_peers", "read_peers", "forget_dead"]

REPLICAS_PREFIX = "refs/reconciler/replicas/"
FILE = "dataplanes.json"
_SIGNATURE = pygit2.Signature("mesh-reconciler", "mesh-reconciler@localhost")


@dataclass(frozen=True, slots=True)
class PeerRegistrations:
    replica: str
    heartbeat: float
    dataplanes: Mapping[str, str]
    """node id → the Dataplane YAML its proxy sent."""


def publish(mirror: Mirror, replica: str, dataplanes: Mapping[str, str], now: float | None = None) -> None:
    """Write this replica's registrations (deleting its ref when there are none) and, for a
    remote, push the ref. Raises pygit2.GitError / OSError when the remote refuses."""
    repo = mirror.repository
    ref = REPLICAS_PREFIX + replica
    if not dataplanes:
        existed = commit_of_ref(repo, ref) is not None
        delete_ref(repo, ref)
        if mirror.remote and existed:
            _push(mirror, f":{ref}")
        return
    doc = {"replica": replica, "heartbeat": time.time() if now is None else now, "dataplanes": dict(sorted(dataplanes.items()))}
    blob = repo.create_blob(json.dumps(doc, indent=1).encode())
    builder = repo.TreeBuilder()
    builder.insert(FILE, blob, pygit2.enums.FileMode.BLOB)
    commit = repo.create_commit(None, _SIGNATURE, _SIGNATURE, f"registrations of replica {replica}", builder.write(), [])
    repo.create_reference_direct(ref, commit, True)
    if mirror.remote:
        _push(mirror, f"+{ref}:{ref}")


def _push(mirror: Mirror, spec: str) -> None:
    mirror.repository.remotes["origin"].push([spec], callbacks=make_callbacks(mirror.credentials))


def fetch_peers(mirror: Mirror) -> None:
    """Bring every replica's ref from a remote, dropping those deleted there (nothing for a
    local repository, which the replicas share as it is)."""
    if mirror.remote:
        mirror.repository.remotes["origin"].fetch(
            [f"+{REPLICAS_PREFIX}*:{REPLICAS_PREFIX}*"],
            callbacks=make_callbacks(mirror.credentials),
            prune=pygit2.enums.FetchPrune.PRUNE,
        )


def read_peers(mirror: Mirror, exclude: str, ttl: float, now: float | None = None) -> list[PeerRegistrations]:
    """The registrations of the other replicas whose heartbeat is younger than `ttl` seconds;
    an unreadable ref is skipped (it cannot take serving down)."""
    now = time.time() if now is None else now
    return [p for p in _peers(mirror, exclude) if now - p.heartbeat <= ttl]


def forget_dead(mirror: Mirror, exclude: str, older_than: float, now: float | None = None) -> list[str]:
    """Delete the refs of replicas whose heartbeat is older than `older_than` seconds, here and
    on the remote; returns their ids. A replica that was only cut off from git writes its ref
    again at its next heartbeat, so nothing live is lost."""
    now = time.time() if now is None else now
    dead = [p.replica for p in _peers(mirror, exclude) if now - p.heartbeat > older_than]
    for replica in dead:
        delete_ref(mirror.repository, REPLICAS_PREFIX + replica)
        if mirror.remote:
            _push(mirror, f":{REPLICAS_PREFIX}{replica}")
    return dead


def _peers(mirror: Mirror, exclude: str) -> list[PeerRegistrations]:
    repo = mirror.repository
    out = []
    for name in repo.references:
        if not name.startswith(REPLICAS_PREFIX) or name == REPLICAS_PREFIX + exclude:
            continue
        try:
            commit = repo.references[name].peel(pygit2.Commit)
            blob = repo[commit.tree[FILE].id]
            doc = json.loads(blob.data)  # type: ignore[attr-defined]
            heartbeat = float(doc["heartbeat"])
            dataplanes = {str(k): str(v) for k, v in dict(doc["dataplanes"]).items()}
        except (KeyError, ValueError, TypeError, pygit2.GitError):
            continue
        out.append(PeerRegistrations(name.removeprefix(REPLICAS_PREFIX), heartbeat, dataplanes))
    return out
