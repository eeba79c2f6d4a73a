"""Pins shared through the remote: every replica following a remote URL reads the same pin.

`refs/reconciler/pin` is written on the remote with compare-and-swap: the update succeeds only
while the remote's pin is still the commit this replica last saw (`expected`); otherwise
`PinConflict` says what it is now and nothing changed anywhere. How the swap is atomic:

- `file://` URLs: libgit2's local transport overwrites refs without comparing, so the
  repository is updated in place instead, the way git's own receive-pack does it: the ref's
  lock file is taken, the value under the lock compared with `expected`, then replaced
  (`git_reference_create_matching` / `git_reference_delete`, which compare under the lock).
- Smart transports (https://, ssh://, git://): one push connection. The push-negotiation
  callback sees the value the remote advertised on that connection and aborts unless it is
  `expected`; the push then sends "<advertised> <new> refs/reconciler/pin", and the server's
  receive-pack replaces the ref only if it still holds the advertised value (it compares under
  the ref's lock). A server that rejects the update (it moved meanwhile) is a conflict too.

Every successful swap then appends a commit to `refs/reconciler/pin-log` (an empty tree; the
message says what was pinned or resumed, by whom, on which host). That chain only fast-forwards,
so `git fetch origin refs/reconciler/pin-log && git log FETCH_HEAD` on any clone is the audit
trail of pins made through every replica (a reflog is never pushed).
"""

from __future__ import annotations

import socket
import urllib.parse
from typing import Any

import pygit2

from reconciler.source.git import SourceError
from reconciler.source.refs import PIN_REF, commit_of_ref, delete_ref, write_ref
from reconciler.source.remote import GitCredentials, make_callbacks

__all__ = ["PIN_LOG_REF", "REMOTE_PIN_REF", "PinConflict", "share_pin", "fetch_refspecs"]

PIN_LOG_REF = "refs/reconciler/pin-log"
"""A commit per pin or resume made through any replica; fast-forward only."""
REMOTE_PIN_REF = "refs/reconciler/remote-pin"
"""The remote's pin as of the last fetch (the mirror's own `refs/reconciler/pin` follows it)."""
_PUSHING = "refs/reconciler/pushing"
"""A scratch ref in the mirror: the source of a push (libgit2 pushes refs, not object ids)."""
_SIGNATURE = ("mesh-reconciler", "mesh-reconciler@localhost")
_LOG_TRIES = 5


class PinConflict(Exception):
    """The remote's pin is no longer what this replica saw: someone else pinned or resumed."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(f"the remote's pin changed: expected {expected or 'none'}, it is {current or 'none'}")
        self.expected = expected
        self.current = current


def fetch_refspecs(branch: str) -> list[str]:
    """What a fetch brings into the mirror: the branch, the remote's pin (aside, to be mirrored
    with a reflog entry) and the pin log."""
    return [f"+refs/heads/{branch}:refs/heads/{branch}", f"+{PIN_REF}:{REMOTE_PIN_REF}", f"+{PIN_LOG_REF}:{PIN_LOG_REF}"]


def share_pin(
    mirror: pygit2.Repository,
    url: str,
    new: str | None,
    expected: str | None,
    message: str,
    credentials: GitCredentials | None,
) -> None:
    """Set (or with `new` None, delete) the remote's pin if it still is `expected`, log it, then
    do the same in the mirror (with a reflog entry), as the next fetch would."""
    if new == expected:
        return
    line = f"{message} [host {socket.gethostname()}]"
    if url.startswith("file://"):
        remote = _open_local(url)
        _swap_in_place(remote, PIN_REF, new, expected)
        _append_log_in_place(remote, line)
    else:
        _push(mirror, PIN_REF, new, expected, credentials)
        _append_log_by_push(mirror, line, credentials)
    if new is None:
        delete_ref(mirror, PIN_REF)
    else:
        write_ref(mirror, PIN_REF, new, message)


# -- file:// : compare under the ref's lock, in the remote repository ----------------------------
def _open_local(url: str) -> pygit2.Repository:
    path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
    try:
        return pygit2.Repository(path)
    except (pygit2.GitError, KeyError, ValueError) as e:
        raise SourceError(f"cannot open {url}: {e}") from None


def _swap_in_place(repo: pygit2.Repository, name: str, new: str | None, expected: str | None) -> None:
    try:
        ref: Any = repo.references[name]
    except KeyError:
        ref = None
    current = str(ref.target) if ref is not None else None
    if current != expected:
        raise PinConflict(expected, current)
    if new is not None and pygit2.Oid(hex=new) not in repo:
        raise SourceError(f"the remote does not have commit {new[:12]}")
    try:
        if new is None:
            ref.delete()  # compares with the value looked up, under the lock
        elif ref is None:
            repo.references.create(name, new, force=False)  # fails if created meanwhile
        else:
            ref.set_target(new)  # git_reference_create_matching: compares under the lock
    except (pygit2.GitError, KeyError, ValueError):  # AlreadyExistsError is a ValueError
        raise PinConflict(expected, commit_of_ref(repo, name)) from None


def _log_commit(repo: pygit2.Repository, parent: str | None, line: str) -> str:
    who = pygit2.Signature(*_SIGNATURE)
    tree = repo.TreeBuilder().write()
    return str(repo.create_commit(None, who, who, line + "\n", tree, [pygit2.Oid(hex=parent)] if parent else []))


def _append_log_in_place(repo: pygit2.Repository, line: str) -> None:
    for _ in range(_LOG_TRIES):
        parent = commit_of_ref(repo, PIN_LOG_REF)
        try:
            _swap_in_place(repo, PIN_LOG_REF, _log_commit(repo, parent, line), parent)
            return
        except PinConflict:
            continue  # another replica logged at the same moment: on top of theirs


# -- smart transports: lease checked in push negotiation, old value verified by the server -------
class _LeasedPush:
    """Callbacks for one push whose updates must find the remote's refs at `leases`."""

    def __init__(self, credentials: GitCredentials | None, leases: dict[str, str | None]) -> None:
        self.callbacks = make_callbacks(credentials)
        self.leases = leases
        self.rejected: dict[str, str] = {}
        self.callbacks.push_negotiation = self._negotiate  # type: ignore[method-assign]
        self.callbacks.push_update_reference = self._updated  # type: ignore[method-assign]

    def _negotiate(self, updates: list[Any]) -> None:
        for update in updates:
            if update.dst_refname in self.leases:
                seen = None if update.src.raw == b"\0" * len(update.src.raw) else str(update.src)
                if seen != self.leases[update.dst_refname]:
                    raise PinConflict(self.leases[update.dst_refname], seen)

    def _updated(self, refname: str, message: str | None) -> None:
        if message is not None:
            self.rejected[refname] = message


def _advertised(origin: Any, credentials: GitCredentials | None, name: str) -> str | None:
    heads = origin.list_heads(callbacks=make_callbacks(credentials))
    return next((str(h.oid) for h in heads if h.name == name), None)


def _push(mirror: pygit2.Repository, name: str, new: str | None, expected: str | None, credentials: GitCredentials | None) -> None:
    origin = mirror.remotes["origin"]
    push = _LeasedPush(credentials, {name: expected})
    if new is not None:
        mirror.create_reference_direct(_PUSHING, pygit2.Oid(hex=new), True)
    try:
        origin.push([f"+{_PUSHING}:{name}" if new is not None else f":{name}"], callbacks=push.callbacks)
    except pygit2.GitError as e:
        raise SourceError(f"push to the remote failed: {e}") from None
    finally:
        if new is not None:
            mirror.references.delete(_PUSHING)
    if name in push.rejected:  # the server found another value under its lock
        raise PinConflict(expected, _advertised(origin, credentials, name))


def _append_log_by_push(mirror: pygit2.Repository, line: str, credentials: GitCredentials | None) -> None:
    origin = mirror.remotes["origin"]
    for _ in range(_LOG_TRIES):
        parent = _advertised(origin, credentials, PIN_LOG_REF)
        if parent is not None and pygit2.Oid(hex=parent) not in mirror:
            origin.fetch([f"+{PIN_LOG_REF}:{PIN_LOG_REF}"], callbacks=make_callbacks(credentials))
        commit = _log_commit(mirror, parent, line)
        try:
            _push(mirror, PIN_LOG_REF, commit, parent, credentials)
        except PinConflict:
            continue
        mirror.create_reference_direct(PIN_LOG_REF, pygit2.Oid(hex=commit), True)
        return
