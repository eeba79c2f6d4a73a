"""Ask a running server to act (reconcile, rollback, resume) and wait until proxies answer.

After the server applied a revision, `/status` is polled until every connected proxy that has
a config either ACKed all of it (`synced`) or NACKed that revision, or until the timeout. With
`serve --rollback-on-nack`, a NACK makes the server go back; that shows as the revision's
`rejected-by-proxies` outcome in `lastFailure`.

The actions change what is served, so they carry the admin token (`admin_token`:
`--admin-token-file`, `$RECONCILER_ADMIN_TOKEN`, or the server's state directory).

Exit codes: 0 applied and ACKed by every proxy; 1 rejected (invalid, refused, or NACKed by a
proxy); 2 the server cannot be reached, refused the admin token, or the proxies did not
answer before the timeout.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.api.admin_token import AdminTokenError, ClientToken, find_for_client
from reconciler.commands.errors import EXIT_INVALID, EXIT_OK, EXIT_USAGE, RepositoryError
from reconciler.history import is_commit_level, problem_line

__all__ = ["call", "admin_token", "parse_timeout", "Rollout", "wait_rollout", "ServerResult", "act", "result_text", "result_json"]


def parse_timeout(text: str) -> float:
    """`30s`, `2m`, `1m30s`, or plain seconds."""
    from reconciler.ca.tokens import parse_duration

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(parse_duration(text))
    except ValueError as e:
        raise RepositoryError(str(e)) from None


def admin_token(token_file: str | None, state_dir: str | None) -> ClientToken:
    """The admin token for the actions; an unreadable or empty `--admin-token-file` is a
    RepositoryError (exit 2)."""
    try:
        return find_for_client(token_file, state_dir)
    except AdminTokenError as e:
        raise RepositoryError(str(e)) from None


def call(
    server: str, method: str, path: str, body: Mapping[str, Any] | None = None, timeout: float = 30.0, token: str | None = None
) -> tuple[int, Any]:
    """(HTTP status, JSON body); an unreachable server is a RepositoryError (exit 2). `token` is
    sent as `Authorization: Bearer`."""
    url = server.rstrip("/") + path
    if "://" not in url:
        url = "http://" + url
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw or b"null")
        except ValueError:
            return e.code, {"error": raw.decode(errors="replace").strip()}
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise RepositoryError(f"cannot reach the control plane at {url}: {reason}") from None


def _sha(revision: str) -> str:
    return revision.rpartition(":")[2] if revision else ""


@dataclass
class Rollout:
    """How the connected proxies took one revision."""

    revision: str
    acked: list[str] = field(default_factory=list)
    nacked: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    rolled_back_to: str = ""
    """The revision serving went back to after the NACKs (serve --rollback-on-nack)."""
    timed_out: bool = False
    status: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "acked": self.acked,
            "nacked": {node: [{"type": t, "message": m} for t, m in items] for node, items in self.nacked.items()},
            "pending": self.pending,
            "rolledBackTo": self.rolled_back_to,
            "timedOut": self.timed_out,
        }


def _observe(status: Mapping[str, Any], sha: str) -> tuple[Rollout, bool]:
    """What `status` says about `sha`, and whether the rollout is over."""
    r = Rollout(sha, status=dict(status))
    failure = status.get("lastFailure") or {}
    if failure.get("outcome") == "rejected-by-proxies" and _sha(failure.get("revision", "")) == sha:
        r.rolled_back_to = _sha(failure.get("to", "")) or _sha(status.get("lastAppliedRevision", ""))
    for node, p in sorted((status.get("proxies") or {}).items()):
        if not p.get("connected") or not p.get("revision"):
            continue  # gone, or no config for it (a proxy not declared anywhere)
        nacks = [(t, s["nack"]["message"]) for t, s in (p.get("types") or {}).items() if (s.get("nack") or {}).get("revision") == sha]
        if nacks:
            r.nacked[node] = nacks
        elif p.get("synced"):
            r.acked.append(node)
        else:
            r.pending.append(node)
    applied = _sha(status.get("lastAppliedRevision", ""))
    if r.rolled_back_to:
        return r, True
    rolling_back = any(c.get("reason") == "RollingBack" for c in status.get("conditions", []))
    return r, applied == sha and not r.pending and not rolling_back


def wait_rollout(server: str, sha: str, timeout: float, *, interval: float = 0.1, clock: Callable[[], float] = time.monotonic) -> Rollout:
    deadline = clock() + timeout
    while True:
        code, status = call(server, "GET", "/status", timeout=max(1.0, min(10.0, timeout)))
        if code != 200:
            raise RepositoryError(f"{server}/status: HTTP {code}")
        rollout, done = _observe(status, sha)
        if done:
            return rollout
        if clock() >= deadline:
            rollout.timed_out = True
            return rollout
        time.sleep(interval)


@dataclass
class ServerResult:
    """The outcome of one request to the server, with the proxies' answers when something was applied."""

    action: str
    outcome: str
    """applied, rejected, refused, failed, held, rejected-by-proxies, or unchanged."""
    revision: str
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    rollout: Rollout | None = None
    served: str = ""
    pinned: str = ""

    @property
    def exit_code(self) -> int:
        if self.outcome in ("failed", "unreachable"):
            return EXIT_USAGE
        if self.outcome in ("rejected", "refused", "rejected-by-proxies"):
            return EXIT_INVALID
        if self.rollout is not None:
            if self.rollout.nacked or self.rollout.rolled_back_to:
                return EXIT_INVALID
            if self.rollout.timed_out:
                return EXIT_USAGE
        return EXIT_OK


def act(server: str, action: str, timeout: float, body: Mapping[str, Any] | None = None, token: ClientToken | None = None) -> ServerResult:
    """POST /<action> (reconcile, rollback, resume) with the admin token, then wait for the
    proxies when a revision is served. A refused token is a RepositoryError (exit 2)."""
    started = time.monotonic()
    code, doc = call(server, "POST", f"/{action}", body, timeout=max(5.0, timeout), token=token.value if token else None)
    doc = doc or {}
    if code == 401:
        raise RepositoryError(_refused_token(server, token))
    if code == 400:
        raise RepositoryError(doc.get("error") or f"HTTP {code}")
    if code != 200:
        return ServerResult(
            action, "refused", _sha(doc.get("revision", "")), doc.get("error") or f"HTTP {code}", list(doc.get("errors") or [])
        )
    status = doc.get("status") or {}
    result = ServerResult(
        action,
        doc.get("outcome", ""),
        _sha(doc.get("revision", "")),
        doc.get("message", ""),
        list(doc.get("errors") or []),
        served=_sha(status.get("lastAppliedRevision", "")),
        pinned=_sha(status.get("pinnedRevision", "")),
    )
    if result.outcome in ("rejected", "failed", "rejected-by-proxies") or not result.served:
        return result
    left = max(0.0, timeout - (time.monotonic() - started))
    result.rollout = wait_rollout(server, result.served, left)
    final = result.rollout.status
    result.served = _sha(final.get("lastAppliedRevision", "")) or result.served
    result.pinned = _sha(final.get("pinnedRevision", ""))
    if result.rollout.rolled_back_to:
        failure = final.get("lastFailure") or {}
        result.outcome, result.message = "rejected-by-proxies", failure.get("message", result.message)
        result.errors = list(failure.get("errors") or [])
    return result


def _refused_token(server: str, token: ClientToken | None) -> str:
    """One line: which token the server refused, or that none was found, and where to get it."""
    fix = (
        "it is in the server's <state-dir>/admin-token: give --state-dir of the server, --admin-token-file FILE or $RECONCILER_ADMIN_TOKEN"
    )
    if token is None or token.value is None:
        where = token.searched if token is not None else "--admin-token-file, $RECONCILER_ADMIN_TOKEN, --state-dir"
        return f"no admin token found (looked in {where}) and {server} needs one for this; {fix}"
    return f"{server} refused the admin token from {token.source} (HTTP 401); {fix}"


_VERB = {
    "applied": "applied",
    "held": "held",
    "rejected": "rejected",
    "refused": "refused",
    "failed": "failed",
    "rejected-by-proxies": "rejected by proxies",
    "unchanged": "unchanged",
}


def result_text(r: ServerResult, branch_hint: str = "") -> str:
    lines = []
    head = f"{_VERB.get(r.outcome, r.outcome)} {r.revision[:12]}" if r.revision else _VERB.get(r.outcome, r.outcome)
    message = r.message.split("; first: ")[0] if r.errors else r.message
    lines.append(f"{head}: {message}" if message else head)
    errors = [e for e in r.errors if not (is_commit_level(e) and e.get("message", "") in message)]
    for e in errors[:10]:
        lines.append("  " + problem_line(e))
    if len(errors) > 10:
        lines.append(f"  … {len(errors) - 10} more")
    if r.pinned:
        lines.append(f"pinned: serving stays on {r.pinned[:12]} until `reconciler resume`")
    ro = r.rollout
    if ro is not None and not ro.rolled_back_to:
        total = len(ro.acked) + len(ro.nacked) + len(ro.pending)
        summary = f"proxies: {len(ro.acked)} of {total} ACKed revision {ro.revision[:12]}"
        if ro.nacked:
            summary += f", {len(ro.nacked)} NACKed"
        if ro.pending:
            summary += f", {len(ro.pending)} pending"
        lines.append(summary)
        for node in sorted(set(ro.acked) | set(ro.nacked) | set(ro.pending)):
            if node in ro.nacked:
                for t, m in ro.nacked[node]:
                    lines.append(f"  {node:<32} NACK {t}: {m}")
            else:
                lines.append(f"  {node:<32} {'ACK' if node in ro.acked else 'pending'}")
        if ro.timed_out:
            lines.append(f"timed out waiting for {', '.join(ro.pending) or 'the revision to be applied'}")
    if r.served and r.outcome != "applied":
        lines.append(f"serving {r.served[:12]}")
    return "\n".join(lines)


def result_json(r: ServerResult) -> str:
    return json.dumps(
        {
            "action": r.action,
            "outcome": r.outcome,
            "revision": r.revision,
            "message": r.message,
            "errors": r.errors,
            "servedRevision": r.served,
            "pinnedRevision": r.pinned,
            "proxies": r.rollout.to_json() if r.rollout else None,
            "exitCode": r.exit_code,
        },
        indent=2,
    )
