"""The repository `reconciler serve` reads: a local one, or a bare mirror of a remote.

A local path is opened where it is. A remote URL is cloned once into `<state-dir>/mirror.git`
(aside first, then renamed, so a clone cut short never looks like a mirror) and its tracked
branch is fetched into it with the configured credentials afterwards. Either way the control
plane reads the branch, `refs/reconciler/applied` and `refs/reconciler/pin` through this class
and writes the latter two with reflog messages; it never touches pygit2 itself.

`watch` wakes the serve loop when refs change on disk (watchfiles), so a `git push` or a pin
is seen before the next poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygit2

from reconciler.source.git import SourceError, open_repository
from reconciler.source.pins import REMOTE_PIN_REF, fetch_refspecs, share_pin
from reconciler.source.refs import APPLIED_REF, PIN_REF, commit_of_ref, delete_ref, write_ref
from reconciler.source.remote import GitCredentials, is_remote, make_callbacks, redact, use_known_hosts

__all__ = ["Mirror"]

log = logging.getLogger("reconciler.controlplane")


class Mirror:
    """One repository and its tracked branch; `open` it (in a worker thread) before use."""

    def __init__(
        self,
        location: str,
        branch: str,
        state_dir: str,
        *,
        known_hosts: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.location = location
        self.branch = branch
        self.state_dir = state_dir
        self.known_hosts = known_hosts
        self.ca_file = ca_file
        self.remote = is_remote(location)
        self.credentials: GitCredentials | None = None
        """Set before `open` for a remote (they are read at start, with the other setup files)."""
        self.last_fetch = 0.0
        """`time.monotonic()` of the last successful clone or fetch."""
        self._repo: pygit2.Repository | None = None

    @property
    def repository(self) -> pygit2.Repository:
        assert self._repo is not None, "Mirror.open() first"
        return self._repo

    @property
    def opened(self) -> bool:
        return self._repo is not None

    @property
    def branch_ref(self) -> str:
        return f"refs/heads/{self.branch}"

    def redact(self, text: str) -> str:
        """`text` without the credentials' secrets or a URL's password."""
        return redact(text, self.credentials.secrets if self.credentials else ())

    # -- opening and fetching -----------------------------------------------------------
    def open(self) -> pygit2.Repository:
        if not self.remote:
            self._repo = open_repository(self.location)
            return self._repo
        if self.known_hosts:
            use_known_hosts(self.known_hosts, Path(self.state_dir) / "ssh-home")
        if self.ca_file:
            pygit2.settings.set_ssl_cert_locations(os.path.abspath(self.ca_file), None)
        mirror = Path(self.state_dir) / "mirror.git"
        try:
            if mirror.exists():
                repo = pygit2.Repository(str(mirror))
                if repo.remotes["origin"].url != self.location:
                    repo.remotes.set_url("origin", self.location)
            else:  # cloned aside, then renamed: a clone cut short never looks like a mirror
                partial = mirror.with_name(f"mirror.git.partial-{os.getpid()}")
                shutil.rmtree(partial, ignore_errors=True)
                try:
                    pygit2.clone_repository(self.location, str(partial), bare=True, callbacks=make_callbacks(self.credentials))
                    partial.rename(mirror)
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
                repo = pygit2.Repository(str(mirror))
                self._repo = repo
                self.fetch()  # the clone brought the branches only: learn the remote's pin now
        except (pygit2.GitError, KeyError, ValueError) as e:
            raise SourceError(f"cannot mirror {self.redact(self.location)}: {self.redact(str(e))}") from None
        self.last_fetch = time.monotonic()
        self._repo = repo
        return repo

    def fetch(self) -> None:
        """Fetch the tracked branch of a remote into the mirror, and mirror the remote's pin
        (set, moved or deleted as the remote has it); nothing for a local repository."""
        if not self.remote:
            return
        origin = self.repository.remotes["origin"]
        origin.fetch(fetch_refspecs(self.branch), callbacks=make_callbacks(self.credentials))
        # The heads advertised on the fetch's own connection: the remote's pin at that moment.
        advertised = {h.name: str(h.oid) for h in origin.list_heads(connect=False)}
        remote_pin = advertised.get(PIN_REF)
        if remote_pin is None:
            delete_ref(self.repository, REMOTE_PIN_REF)
            if self.delete_pin():
                log.info("pin deleted on the remote: following the branch", extra={"repo": self.redact(self.location)})
        elif remote_pin != self.pin():
            self.write_ref(PIN_REF, remote_pin, f"reconciler: pin {remote_pin[:12]} from the remote")
            log.info("pin from the remote", extra={"pin": remote_pin[:12]})
        self.last_fetch = time.monotonic()

    # -- refs ---------------------------------------------------------------------------
    def ref(self, name: str) -> str | None:
        return commit_of_ref(self.repository, name)

    def head(self) -> str | None:
        """The tracked branch's commit."""
        return self.ref(self.branch_ref)

    def pin(self) -> str | None:
        return self.ref(PIN_REF)

    def applied(self) -> str | None:
        return self.ref(APPLIED_REF)

    def write_ref(self, name: str, revision: str, message: str) -> None:
        write_ref(self.repository, name, revision, message)

    def delete_pin(self) -> bool:
        return delete_ref(self.repository, PIN_REF)

    def share_pin(self, new: str | None, expected: str | None, message: str) -> None:
        """Pin (`new`) or unpin (None) on the remote, only if its pin is still `expected`
        (raises `PinConflict` otherwise, changing nothing); then here too."""
        share_pin(self.repository, self.location, new, expected, message, self.credentials)

    def descends_from(self, commit: str, ancestor: str) -> bool:
        """Whether `commit` has `ancestor` in its history (raises on an unreadable commit)."""
        return bool(self.repository.descendant_of(commit, ancestor))

    # -- watching -----------------------------------------------------------------------
    async def watch(self, stop: asyncio.Event, wake: Callable[[], None], poll_interval: float) -> None:
        """Call `wake` whenever refs change on disk, until `stop` is set; returns at once
        without watchfiles (polling still works)."""
        try:
            from watchfiles import awatch
        except ImportError:
            return
        git_dir = self.repository.path
        remote = self.remote

        def refs_only(_change: Any, path: str) -> bool:
            rel = os.path.relpath(path, git_dir)
            if remote:  # the mirror: only what people change in it (a pin); fetches are timed
                return rel.startswith(os.path.join("refs", "reconciler")) or rel == "packed-refs"
            return rel.startswith(("refs", "FETCH_HEAD")) or rel in ("packed-refs", "HEAD")

        try:
            async for _ in awatch(git_dir, watch_filter=refs_only, stop_event=stop, debounce=50, step=20):
                wake()
        except (OSError, RuntimeError):
            log.warning("file watching unavailable; polling", extra={"interval": poll_interval})
