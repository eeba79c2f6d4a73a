"""Two replicas (two real `reconciler serve` processes, each with its own state directory)
follow one bare repository through a `file://` URL: a pin made through either is served by
both within a fetch interval and survives both restarting; a replica that cannot reach git
keeps serving and says it is not ready.
"""

from __future__ import annotations

import concurrent.futures
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.support import admin_token, request, token_id
from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, wait_until
from tests.gitops.helpers import dataplane, mesh
from tests.gitops.serving import ref
from tests.support import git

FETCH_INTERVAL = 0.5
WITHIN = 10.0
"""A fetch interval plus a reconcile, with room for a loaded machine."""


class Replicas:
    """Two control planes on the same remote; `restart_fresh` replaces both with new state dirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.remote = ConfigRemote(root)
        web = dataplane("web", 20011, 20012, 20013)
        self.first = self.remote.push({"meshes/default.yaml": mesh(), "dataplanes/web.yaml": web}, "first")
        self.second = self.remote.push({"meshes/other.yaml": mesh("other")}, "second")
        self.generation = itertools.count()
        self.a, self.b = self._start()

    def _start(self) -> tuple[ControlPlaneProcess, ControlPlaneProcess]:
        n = next(self.generation)
        extra = ["--fetch-interval", str(FETCH_INTERVAL), "--xds-tls", "none", "--dataplane-auth", "none"]
        cps = [ControlPlaneProcess(f"file://{self.remote.bare}", self.root / f"state-{name}{n}", extra=extra) for name in "ab"]
        for cp in cps:
            cp.start()
        return cps[0], cps[1]

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()

    def restart_fresh(self) -> None:
        self.stop()
        self.a, self.b = self._start()

    def post(self, cp: ControlPlaneProcess, action: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        reply = request(cp.api, "POST", f"/{action}", body or {}, token=admin_token(cp.state_dir), timeout=30)
        return reply.status, reply.json()

    def serving(self, cp: ControlPlaneProcess, sha: str) -> None:
        """Until `cp` serves `sha`."""
        cp.wait_applied(sha, timeout=WITHIN)

    def unpinned(self) -> None:
        """Both follow the branch again (what each test starts from)."""
        if ref(self.remote.bare, "refs/reconciler/pin") is not None:
            code, doc = self.post(self.a, "resume")
            assert code == 200, doc
        self.serving(self.a, self.second)
        self.serving(self.b, self.second)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    pair = Replicas(tmp_path_factory.mktemp("shared-pins"))
    try:
        yield pair
    finally:
        pair.stop()


def test_a_rollback_through_one_replica_is_served_by_the_other_and_resume_through_it_by_both(replicas: Replicas) -> None:
    replicas.unpinned()
    code, doc = replicas.post(replicas.a, "rollback", {"revision": replicas.first})
    assert code == 200, doc
    assert doc["pinnedRevision"] == f"main@sha1:{replicas.first}"
    assert ref(replicas.remote.bare, "refs/reconciler/pin") == replicas.first  # on the remote
    replicas.serving(replicas.b, replicas.first)  # by B's fetch alone
    assert (replicas.b.status() or {}).get("pinnedRevision") == f"main@sha1:{replicas.first}"

    # Who pinned it is readable from the remote: the admin token's id, the replica's host.
    last = git(replicas.remote.bare, "log", "-1", "--format=%s", "refs/reconciler/pin-log").stdout
    assert f"pin {replicas.first[:12]}" in last and token_id(admin_token(replicas.a.state_dir)) in last and "[host " in last

    code, doc = replicas.post(replicas.b, "resume")
    assert code == 200, doc
    assert ref(replicas.remote.bare, "refs/reconciler/pin") is None
    replicas.serving(replicas.a, replicas.second)  # A follows the branch again
    assert (replicas.a.status() or {}).get("pinnedRevision") == ""


def test_of_two_concurrent_pins_the_loser_gets_409_with_the_winners_pin(replicas: Replicas) -> None:
    # Both replicas fetch, see no pin, then push: whoever comes second finds the remote moved.
    # A race may also come out in sequence (the second saw the first's pin: a legitimate move);
    # it is run until one is lost, and every round must be consistent.
    lost = None
    for _ in range(15):
        replicas.unpinned()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            wanted = {replicas.a.api: replicas.first, replicas.b.api: replicas.second}
            futures = {cp.api: pool.submit(replicas.post, cp, "rollback", {"revision": wanted[cp.api]}) for cp in (replicas.a, replicas.b)}
            results = {api: f.result() for api, f in futures.items()}
        on_remote = ref(replicas.remote.bare, "refs/reconciler/pin")
        codes = sorted(code for code, _ in results.values())
        assert codes in ([200, 200], [200, 409]), results
        if codes == [200, 409]:
            (winner,) = [api for api, (code, _) in results.items() if code == 200]
            (loser,) = [doc for code, doc in results.values() if code == 409]
            assert on_remote == wanted[winner]  # the winner's pin stands
            assert loser["remotePin"] == f"main@sha1:{wanted[winner]}" and "changed meanwhile" in loser["error"]
            lost = loser
            break
        assert on_remote in (replicas.first, replicas.second)
    assert lost is not None, "no round raced: the 409 path was not exercised"
    # The loser's replica changed nothing itself, and serves the winner's pin after its next fetch.
    replicas.serving(replicas.a, on_remote)
    replicas.serving(replicas.b, on_remote)


def test_the_pin_survives_every_replica_restarting_with_a_fresh_state_directory(replicas: Replicas) -> None:
    replicas.unpinned()
    code, doc = replicas.post(replicas.b, "rollback", {"revision": replicas.first})
    assert code == 200, doc
    replicas.restart_fresh()
    replicas.serving(replicas.a, replicas.first)
    replicas.serving(replicas.b, replicas.first)
    assert (replicas.a.status() or {}).get("pinnedRevision") == f"main@sha1:{replicas.first}"


def test_a_replica_that_cannot_reach_git_keeps_serving_and_is_not_ready_until_it_can(replicas: Replicas) -> None:
    replicas.unpinned()
    assert request(replicas.a.api, "GET", "/readyz").status == 200
    before = request(replicas.a.api, "GET", "/config/default/web").json()
    bare = replicas.remote.bare
    moved = bare.rename(bare.with_name("unreachable.git"))
    try:

        def not_ready() -> dict[str, Any] | None:
            reply = request(replicas.a.api, "GET", "/readyz")
            return reply.json() if reply.status == 503 else None  # type: ignore[no-any-return]

        doc = wait_until(not_ready, WITHIN, what="/readyz 503 while git is unreachable")
        (reason,) = doc["reasons"]
        assert reason.startswith("git unreachable since ") and "fetch: " in reason, reason
        assert doc["revision"] == f"main@sha1:{replicas.second}"  # still the last good commit
        assert request(replicas.a.api, "GET", "/healthz").status == 200  # alive: not restarted
        config = request(replicas.a.api, "GET", "/config/default/web")
        assert config.status == 200 and config.json() == before  # proxies keep being served what they had
        metrics = request(replicas.a.api, "GET", "/metrics").body.decode()
        assert 'reconciler_condition{status="False",type="Ready"} 1\n' in metrics  # what to alert on
        # A pin cannot be shared now: refused, and nothing is pinned anywhere.
        code, refused = replicas.post(replicas.a, "rollback", {"revision": replicas.first})
        assert code == 502 and refused["error"].startswith("cannot write the pin to file://"), refused
        assert (replicas.a.status() or {}).get("pinnedRevision") == ""
    finally:
        moved.rename(bare)
    wait_until(lambda: request(replicas.a.api, "GET", "/readyz").status == 200, WITHIN, what="ready again after a good fetch")
    assert ref(bare, "refs/reconciler/pin") is None
