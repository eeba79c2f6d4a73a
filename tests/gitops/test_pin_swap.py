"""The pin on a remote is compare-and-swap: `Mirror.share_pin` succeeds only while the remote's
pin is what the mirror last saw, and every fetch mirrors the remote's pin.

Two mirrors (two replicas' state directories) follow one real remote: a bare repository
through `file://`, and the same through `git http-backend` with a token (a smart transport,
where the lease is checked in push negotiation and the old value verified by the server).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.source.git import SourceError
from reconciler.source.mirror import Mirror
from reconciler.source.pins import PIN_LOG_REF, PinConflict
from reconciler.source.remote import GitCredentials
from tests.e2e.harness import ConfigRemote
from tests.gitops.githttp import GitHttpServer, http_backend
from tests.gitops.helpers import mesh
from tests.gitops.serving import ref
from tests.support import git

TOKEN = "pin-swap-token"


def _mirror(url: str, state: Path, credentials: GitCredentials | None = None) -> Mirror:
    state.mkdir(parents=True)
    mirror = Mirror(url, "main", str(state))
    mirror.credentials = credentials
    mirror.open()
    return mirror


def _pin_log(bare: Path) -> list[str]:
    return git(bare, "log", "--format=%s", PIN_LOG_REF).stdout.splitlines()


@contextmanager
def _remote_url(tmp_path: Path, kind: str) -> Iterator[tuple[str, GitCredentials | None]]:
    if kind == "file":
        yield f"file://{tmp_path / 'config.git'}", None
        return
    with GitHttpServer(tmp_path, "x-access-token", TOKEN) as server:
        yield server.url("config.git"), GitCredentials(token=TOKEN)


@pytest.mark.parametrize(
    "kind", ["file", pytest.param("http", marks=pytest.mark.skipif(http_backend() is None, reason="no git http-backend"))]
)
def test_the_second_of_two_pins_made_from_the_same_view_loses_and_changes_nothing(tmp_path: Path, kind: str) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    second = remote.push({"meshes/other.yaml": mesh("other")}, "second")
    with _remote_url(tmp_path, kind) as (url, creds):
        a = _mirror(url, tmp_path / "a", creds)
        b = _mirror(url, tmp_path / "b", creds)
        assert a.pin() is None and b.pin() is None  # both saw no pin

        a.share_pin(first, None, "reconciler rollback: pin by A")
        assert ref(remote.bare, "refs/reconciler/pin") == first and a.pin() == first

        with pytest.raises(PinConflict) as lost:  # B still believes there is no pin
            b.share_pin(second, None, "reconciler rollback: pin by B")
        assert (lost.value.expected, lost.value.current) == (None, first)
        assert ref(remote.bare, "refs/reconciler/pin") == first  # the winner's
        assert b.pin() is None  # nothing changed locally either

        b.fetch()  # every fetch mirrors the remote's pin
        assert b.pin() == first
        b.share_pin(second, first, "reconciler rollback: pin by B")  # now from the right view: moves it
        with pytest.raises(PinConflict):
            a.share_pin(None, first, "reconciler resume by A")  # A's view is stale: resume refused
        assert ref(remote.bare, "refs/reconciler/pin") == second

        a.fetch()
        assert a.pin() == second
        a.share_pin(None, second, "reconciler resume by A")
        assert ref(remote.bare, "refs/reconciler/pin") is None
        b.fetch()
        assert b.pin() is None  # deleted on the remote: deleted in every mirror

        # Who pinned what stays readable from the remote, newest first; refused swaps left no entry.
        log = _pin_log(remote.bare)
        assert [line.partition(" [host ")[0] for line in log] == [
            "reconciler resume by A",
            "reconciler rollback: pin by B",
            "reconciler rollback: pin by A",
        ]


def test_a_fresh_state_directory_learns_the_pin_on_its_first_clone(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    remote.push({"meshes/other.yaml": mesh("other")}, "second")
    url = f"file://{remote.bare}"
    _mirror(url, tmp_path / "a").share_pin(first, None, "pin")
    assert _mirror(url, tmp_path / "fresh").pin() == first


@pytest.mark.skipif(http_backend() is None, reason="no git http-backend")
def test_a_push_refused_for_authentication_says_so(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    with GitHttpServer(tmp_path, "x-access-token", TOKEN) as server:
        mirror = _mirror(server.url("config.git"), tmp_path / "a", GitCredentials(token=TOKEN))
        mirror.credentials = GitCredentials(token="revoked-token")
        with pytest.raises(SourceError, match="authentication failed .* the credentials were refused") as refused:
            mirror.share_pin(first, None, "pin")
    assert "revoked-token" not in str(refused.value)
    assert ref(remote.bare, "refs/reconciler/pin") is None and mirror.pin() is None
