"""Dataplanes registered at connect are shared among replicas through the repository
(reconciler/source/registry.py, docs/operations.md).

Two `reconciler serve` replicas follow one bare repository through `file://` URLs, each with
its own mirror. The backend's sidecar registers its Dataplane (node metadata, as kuma-dp's
`--dataplane-file`) with replica A; the web sidecar is declared in git and served by replica B.
Requests from web reach the backend only if B learned the registration A pushed.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess, EnvoyProcess, Workload, free_port, http_get, wait_until
from tests.support import dataplane_yaml

pytestmark = pytest.mark.envoy

REF_PREFIX = "refs/reconciler/replicas/"


@dataclass
class Pair:
    remote: ConfigRemote
    a: ControlPlaneProcess
    b: ControlPlaneProcess
    root: Path
    web: EnvoyProcess
    to_backend: int


def _refs(bare: Path) -> dict[str, str]:
    out = subprocess.run(["git", "-C", str(bare), "for-each-ref", "--format=%(refname) %(objectname)", REF_PREFIX], capture_output=True)
    return dict(line.split(" ", 1) for line in out.stdout.decode().splitlines())


def _registrations(bare: Path, ref: str) -> dict[str, object]:
    shown = subprocess.run(["git", "-C", str(bare), "show", f"{ref}:dataplanes.json"], capture_output=True, check=True)
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def _answer(port: int) -> str:
    try:
        status, body = http_get(f"http://127.0.0.1:{port}/", timeout=2)
    except OSError as e:
        return str(e)
    return f"{status} {body.strip()}"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("registrations")
    remote = ConfigRemote(root)
    to_backend = free_port()
    sha = remote.push(
        {
            "meshes/default.yaml": "type: Mesh\nname: default\n",
            "dataplanes/web.yaml": dataplane_yaml("web", "web", free_port(), free_port(), {"backend": to_backend}),
        },
        "web only: the backend registers itself",
    )
    url = f"file://{remote.bare}"
    extra = ["--fetch-interval", "0.5", "--registration-heartbeat", "2"]
    a = ControlPlaneProcess(url, root / "a", extra=extra)
    b = ControlPlaneProcess(url, root / "b", extra=extra)
    a.start()
    b.start()
    web = EnvoyProcess(b, root / "envoys", name="web")
    try:
        web.start()
        b.wait_applied(sha, ["default.web"])
        a.wait_applied(sha)
        yield Pair(remote, a, b, root, web, to_backend)
    finally:
        web.stop()
        a.stop()
        b.stop()


def test_a_dataplane_registered_with_one_replica_is_served_to_consumers_of_another(pair: Pair) -> None:
    with Workload("backend") as app:
        file = pair.root / "backend-1.yaml"
        file.write_text(dataplane_yaml("backend-1", "backend", free_port(), app.port))
        backend = EnvoyProcess(pair.a, pair.root / "envoys", name="backend-1", dataplane_file=file)
        backend.start()
        try:
            wait_until(lambda: _answer(pair.to_backend) == "200 backend", 20, what="web (on B) reaches the backend registered with A")
            # B shows it as registered, by another replica: it is not connected to B.
            listed = {d["node"]: d for d in pair.b.get("/status/dataplanes")}
            assert listed["default.backend-1"]["source"] == "registered"
            assert not listed["default.backend-1"]["connected"]
            refs = _refs(pair.remote.bare)
            assert len(refs) == 1, refs  # A's ref only: B registered nothing
            doc = _registrations(pair.remote.bare, next(iter(refs)))
            assert list(doc["dataplanes"]) == ["default.backend-1"]  # type: ignore[call-overload]
        finally:
            backend.stop()
        # The proxy left A: A drops its ref, and B stops sending traffic there.
        wait_until(lambda: not _refs(pair.remote.bare), 20, what="A's registrations ref deleted")
        wait_until(lambda: _answer(pair.to_backend) != "200 backend", 20, what="the backend gone from web's endpoints")


def test_a_killed_replicas_registrations_expire_and_a_restart_clears_them(pair: Pair) -> None:
    with Workload("backend") as app:
        file = pair.root / "backend-2.yaml"
        file.write_text(dataplane_yaml("backend-2", "backend", free_port(), app.port))
        backend = EnvoyProcess(pair.a, pair.root / "envoys", name="backend-2", dataplane_file=file)
        backend.start()
        try:
            wait_until(lambda: _answer(pair.to_backend) == "200 backend", 20, what="web reaches backend-2 through B")
            pair.a.stop(signal.SIGKILL)  # A and the proxy die together: nobody says goodbye
            backend.stop()
            assert _refs(pair.remote.bare), "A's ref outlives A"
            # B ignores it once 3 heartbeats (6 s) old: the endpoint goes.
            wait_until(lambda: _answer(pair.to_backend) != "200 backend", 30, what="A's registrations expired on B")
            # A restarted (same state directory, same replica id) deletes what its last life left.
            pair.a.start()
            wait_until(lambda: not _refs(pair.remote.bare), 20, what="the restarted replica cleared its ref")
        finally:
            backend.stop()
