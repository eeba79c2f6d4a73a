"""`reconcile --server`: how the answers of proxies in `/status` become the command's outcome."""

from __future__ import annotations

from typing import Any

from reconciler.commands.rollout import ServerResult, _observe, result_text
from tests.gitops.serving import run_cli

A, B = "a" * 40, "b" * 40


def status(
    applied: str, proxies: dict[str, dict[str, Any]], conditions: list[dict[str, str]] | None = None, failure: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "lastAppliedRevision": f"main@sha1:{applied}",
        "conditions": conditions or [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": ""}],
        "lastFailure": failure,
        "proxies": proxies,
    }


def proxy(synced: bool, revision: str = A, nack: str | None = None, connected: bool = True) -> dict[str, Any]:
    lds: dict[str, Any] = {"sentRevision": revision, "ackedRevision": revision if synced else "", "pushes": 1}
    if nack:
        lds["nack"] = {"revision": revision, "message": nack, "count": 1}
    return {"connected": connected, "revision": revision, "synced": synced, "types": {"LDS": lds}}


def test_done_when_every_connected_proxy_acked_or_nacked_the_revision() -> None:
    r, done = _observe(status(A, {"default.web": proxy(True), "default.db": proxy(False)}), A)
    assert not done and r.pending == ["default.db"]
    r, done = _observe(
        status(
            A, {"default.web": proxy(True), "default.db": proxy(False, nack="cannot bind"), "default.gone": proxy(False, connected=False)}
        ),
        A,
    )
    assert done and r.acked == ["default.web"] and r.nacked == {"default.db": [("LDS", "cannot bind")]}
    # Not yet applied (another commit is served): wait.
    assert not _observe(status(B, {"default.web": proxy(True, B)}), A)[1]
    # A proxy with no config (declared nowhere) is not waited for.
    assert _observe(status(A, {"default.web": proxy(True), "default.stray": proxy(False, revision="")}), A)[1]


def test_a_nack_waits_for_the_servers_rollback_and_reports_it() -> None:
    rolling = [{"type": "Reconciling", "status": "True", "reason": "RollingBack", "message": ""}]
    assert not _observe(status(A, {"default.web": proxy(False, nack="bad")}, rolling), A)[1]
    failure = {"outcome": "rejected-by-proxies", "revision": f"main@sha1:{A}", "to": f"main@sha1:{B}"}
    r, done = _observe(status(B, {"default.web": proxy(True, B)}, failure=failure), A)
    assert done and r.rolled_back_to == B


def test_text_lists_each_proxy_and_the_exit_code_follows_the_answers() -> None:
    r, _ = _observe(status(A, {"default.web": proxy(False, nack="Error adding listener"), "default.db": proxy(True)}), A)
    result = ServerResult("reconcile", "applied", A, f"Applied revision: main@sha1:{A}", rollout=r, served=A)
    assert result_text(result).splitlines() == [
        f"applied {A[:12]}: Applied revision: main@sha1:{A}",
        f"proxies: 1 of 2 ACKed revision {A[:12]}, 1 NACKed",
        "  default.db                       ACK",
        "  default.web                      NACK LDS: Error adding listener",
    ]
    assert result.exit_code == 1
    r.nacked.clear()
    assert result.exit_code == 0
    r.timed_out = True
    assert result.exit_code == 2
    assert ServerResult("reconcile", "rejected", A, "validation failed").exit_code == 1


def test_server_and_out_are_exclusive() -> None:
    code, out = run_cli("reconcile", "--server", "http://127.0.0.1:9", "--out", "x")
    assert code == 2 and "--server asks a running server" in out
    code, out = run_cli("reconcile", "--server", "http://127.0.0.1:9", "--timeout", "1s")
    assert code == 2 and "cannot reach the control plane at http://127.0.0.1:9/reconcile" in out
