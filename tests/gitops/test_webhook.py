"""`POST /hooks/git`: a push to a remote is fetched at once when GitHub or GitLab says so.

The server mirrors a `file://` remote with a fetch interval of an hour, so only the webhook
(or `reconcile --server`) can make it see a new commit within the test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from pathlib import Path

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess
from tests.gitops.helpers import mesh
from tests.gitops.serving import as_admin, ref, run_cli, sha_of

SECRET = "s3cr3t-hook-value"
SLOW = ["--poll-interval", "3600", "--fetch-interval", "3600"]


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def github(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Event": "push"}


def applied(cp: ControlPlaneProcess) -> str:
    status = cp.status()
    assert status is not None
    return sha_of(status["lastAppliedRevision"])


def test_webhook_with_the_secret_fetches_now_and_a_wrong_secret_changes_nothing(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": mesh()}, "first")
    (tmp_path / "hook-secret").write_text(SECRET + "\n")
    cp = ControlPlaneProcess(
        f"file://{remote.bare}", tmp_path / "state", extra=[*SLOW, "--webhook-secret-file", str(tmp_path / "hook-secret")]
    )
    cp.start()
    try:
        assert applied(cp) == first
        hook = cp.api + "/hooks/git"
        second = remote.push({"meshes/other.yaml": mesh("other")}, "second")
        payload = json.dumps({"ref": "refs/heads/main", "after": second}).encode()

        # Wrong or missing secrets: 401, and nothing is fetched.
        assert post(hook, payload, github(payload, "wrong"))[0] == 401
        assert post(hook, payload, {"X-Gitlab-Token": "wrong", "X-Gitlab-Event": "Push Hook"})[0] == 401
        code, doc = post(hook, payload, {})
        assert (code, doc["error"]) == (401, "wrong or missing webhook secret (X-Hub-Signature-256 or X-Gitlab-Token)")
        # A signature of another body does not count either.
        assert post(hook, payload, github(b"{}"))[0] == 401
        time.sleep(1.0)
        assert applied(cp) == first
        assert ref(tmp_path / "state" / "mirror.git", "refs/heads/main") == first  # not even fetched

        # GitHub, signed: accepted, fetched and applied at once.
        started = time.monotonic()
        code, doc = post(hook, payload, github(payload))
        assert (code, doc) == (202, {"accepted": True, "source": "github", "event": "push", "ref": "refs/heads/main"})
        cp.wait_applied(second, timeout=10)
        assert time.monotonic() - started < 10
        status = cp.status()
        assert status is not None and status["lastAttemptedRevision"] == f"main@sha1:{second}"

        # GitLab: the token header.
        third = remote.push({"meshes/third.yaml": mesh("third")}, "third")
        code, doc = post(
            hook,
            json.dumps({"object_kind": "push", "ref": "refs/heads/main"}).encode(),
            {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"},
        )
        assert (code, doc["source"]) == (202, "gitlab")
        cp.wait_applied(third, timeout=10)

        # A push to another branch and GitHub's ping are answered, and fetch nothing.
        other = json.dumps({"ref": "refs/heads/feature"}).encode()
        code, doc = post(hook, other, github(other))
        assert (code, doc["accepted"], doc["message"]) == (200, False, "not the tracked branch refs/heads/main")
        ping = b'{"zen": "Keep it logically awesome."}'
        code, doc = post(hook, ping, github(ping) | {"X-GitHub-Event": "ping"})
        assert (code, doc["message"]) == (200, "pong")

        # `reconcile --server` fetches too.
        fourth = remote.push({"meshes/fourth.yaml": mesh("fourth")}, "fourth")
        code, out = run_cli("reconcile", "--server", cp.api, *as_admin(cp.state_dir))
        assert code == 0, out
        assert out.splitlines()[0] == f"applied {fourth[:12]}: Applied revision: main@sha1:{fourth}"

        # The watcher reacts to the pin in the mirror at once, though polls are an hour apart.
        code, out = run_cli("rollback", "--repo", f"file://{remote.bare}", "--state-dir", str(tmp_path / "state"), second)
        assert code == 0, out
        cp.wait_applied(second, timeout=5)
        assert run_cli("resume", "--repo", f"file://{remote.bare}", "--state-dir", str(tmp_path / "state"))[0] == 0
        cp.wait_applied(fourth, timeout=5)

        metrics = cp.get("/metrics")
        assert 'reconciler_webhooks_total{result="unauthorized"} 4' in metrics
        assert 'reconciler_webhooks_total{result="accepted"} 2' in metrics
    finally:
        cp.stop()
    log = cp.output()
    assert "webhook refused: wrong or missing secret" in log
    assert SECRET not in log


def test_webhook_without_a_configured_secret_is_not_found(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    remote.push({"meshes/default.yaml": mesh()}, "first")
    cp = ControlPlaneProcess(f"file://{remote.bare}", tmp_path / "state", extra=SLOW)
    cp.start()
    try:
        body = b'{"ref": "refs/heads/main"}'
        code, doc = post(cp.api + "/hooks/git", body, github(body))
        assert (code, doc["error"]) == (404, "no webhook configured: start serve with --webhook-secret-file")
    finally:
        cp.stop()
