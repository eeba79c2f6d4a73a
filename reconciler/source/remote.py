"""Remote repositories: a bare mirror in the state directory, fetched with credentials.

`serve --repo URL` (https://, http://, ssh://, git@host:path, file://) clones the URL into
`<state-dir>/mirror.git` once and fetches the tracked branch into it afterwards; everything
else reads the mirror like a local repository.

Credentials come from files or the environment, never from the command line (where `ps`
shows them):

- HTTPS token: `--git-token-file FILE` or `RECONCILER_GIT_TOKEN`, sent as HTTP basic auth with
  the user `x-access-token` (GitHub's convention; GitLab and Gitea accept any user name with a
  token; `--git-username` changes it).
- SSH key: `--git-ssh-key FILE` (its public half is `FILE.pub` when present), passphrase from
  `RECONCILER_GIT_SSH_PASSPHRASE`. Host keys are checked against `--git-known-hosts FILE`
  (else `~/.ssh/known_hosts`); an unknown or changed host key refuses the connection.

Secrets never reach a log line or the status API: `redact` removes them (and any
`user:password@` in a URL) from every message that leaves this module.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

__all__ = [
    "GitCredentials",
    "CredentialError",
    "make_callbacks",
    "redact",
    "redact_url",
    "is_remote",
    "use_known_hosts",
    "verify_webhook",
    "webhook_ref",
]

TOKEN_ENV = "RECONCILER_GIT_TOKEN"
PASSPHRASE_ENV = "RECONCILER_GIT_SSH_PASSPHRASE"
_MAX_AUTH_TRIES = 3


class CredentialError(Exception):
    """A credential file cannot be read (a usage error at start, not a fetch failure)."""


def is_remote(repo: str) -> bool:
    """A URL (https://, ssh://, file://) or scp-like `git@host:path`; an existing path is local."""
    if os.path.exists(repo):
        return False
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


@dataclass(frozen=True, slots=True)
class GitCredentials:
    username: str = "x-access-token"
    token: str | None = field(default=None, repr=False)
    ssh_key: str | None = None
    ssh_public_key: str | None = None
    ssh_passphrase: str = field(default="", repr=False)
    known_hosts: str | None = None

    @classmethod
    def load(
        cls,
        *,
        token_file: str | None = None,
        username: str | None = None,
        ssh_key: str | None = None,
        known_hosts: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> GitCredentials:
        """Read the token from `token_file`, else from $RECONCILER_GIT_TOKEN; check the key files exist."""
        env = os.environ if env is None else env
        token = None
        if token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise CredentialError(f"cannot read the git token file {token_file}: {e.strerror}") from None
            if not token:
                raise CredentialError(f"the git token file {token_file} is empty")
        elif env.get(TOKEN_ENV):
            token = env[TOKEN_ENV].strip()
        public = None
        if ssh_key:
            if not os.path.isfile(ssh_key):
                raise CredentialError(f"the SSH key {ssh_key} does not exist")
            ssh_key = os.path.abspath(ssh_key)
            public = ssh_key + ".pub" if os.path.isfile(ssh_key + ".pub") else None
        if known_hosts:
            if not os.path.isfile(known_hosts):
                raise CredentialError(f"the known hosts file {known_hosts} does not exist")
            known_hosts = os.path.abspath(known_hosts)
        return cls(username or "x-access-token", token or None, ssh_key, public, env.get(PASSPHRASE_ENV, ""), known_hosts)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.ssh_passphrase) if s)

    def describe(self) -> str:
        """What is configured, for the log: kinds and file names, never the values."""
        parts = []
        if self.token:
            parts.append(f"https token (user {self.username})")
        if self.ssh_key:
            parts.append(f"ssh key {self.ssh_key}")
        if self.known_hosts:
            parts.append(f"known hosts {self.known_hosts}")
        return ", ".join(parts) or "none"


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, creds: GitCredentials) -> None:
        super().__init__()
        self.creds = creds
        self.tries = 0

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        self.tries += 1
        if self.tries > _MAX_AUTH_TRIES:
            raise pygit2.GitError(f"authentication failed for {redact_url(url)}: the credentials were refused")
        allowed = pygit2.enums.CredentialType(allowed_types)
        if allowed & pygit2.enums.CredentialType.SSH_KEY and self.creds.ssh_key:
            return pygit2.Keypair(username_from_url or "git", self.creds.ssh_public_key, self.creds.ssh_key, self.creds.ssh_passphrase)
        if allowed & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and self.creds.token:
            return pygit2.UserPass(self.creds.username, self.creds.token)
        if allowed & pygit2.enums.CredentialType.USERNAME:
            return pygit2.Username(username_from_url or "git")
        raise pygit2.GitError(f"{redact_url(url)} asks for credentials ({_kinds(allowed)}) and none of that kind are configured")

    def certificate_check(self, certificate: Any, valid: bool, host: bytes | str) -> bool:
        # HTTPS: libgit2 checked the chain against the system's (or --git-ca-file) CAs.
        # SSH: `valid` says whether the host key matches known_hosts; an unknown key is refused.
        if not valid:
            name = host.decode(errors="replace") if isinstance(host, bytes) else host
            raise pygit2.GitError(
                f"the certificate or host key of {name} is not trusted (SSH: add it to --git-known-hosts; HTTPS: --git-ca-file)"
            )
        return True


def _kinds(allowed: Any) -> str:
    return ", ".join(k.name.lower() for k in pygit2.enums.CredentialType if k & allowed and k.name) or "unknown"


def make_callbacks(creds: GitCredentials | None) -> pygit2.RemoteCallbacks:
    """Fresh callbacks for one clone or fetch (they count authentication attempts)."""
    return _Callbacks(creds or GitCredentials())


def use_known_hosts(known_hosts: str, home: str | os.PathLike[str]) -> None:
    """Make libgit2 check SSH host keys against `known_hosts`.

    libgit2 reads `<home>/.ssh/known_hosts`; the file is copied into a private home under the
    state directory and libgit2's home is pointed there (for this process).
    """
    ssh_dir = Path(home) / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copyfile(known_hosts, ssh_dir / "known_hosts")
    pygit2.settings.homedir = str(home)


# The user info right after `<scheme char>://`. Linear on any text (error messages carry
# untrusted revisions and URLs): the lookbehind is a fixed 4 characters, so only positions
# right after `://` start a match, and the possessive `++` scans to the next `/`, `@` or space
# once, without backtracking. (Matching the scheme itself, `[a-zA-Z][a-zA-Z0-9+.-]*://`, made
# every position rescan the rest of the text: 20 s for 100 KB of letters.)
_USERINFO = re.compile(r"(?<=[a-zA-Z0-9+.-]://)[^/@\s]++@")


def redact_url(url: str) -> str:
    """`https://user:secret@host/x` → `https://***@host/x`."""
    return _USERINFO.sub("***@", url)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` without credentials in URLs and without any of `secrets`."""
    out = redact_url(text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, "***")
    return out


# -- webhooks ---------------------------------------------------------------------------------
def verify_webhook(headers: Mapping[str, str], body: bytes, secret: bytes) -> str | None:
    """`github` or `gitlab` when the request proves it knows `secret`, else None.

    GitHub signs the body: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
    GitLab sends the secret itself: `X-Gitlab-Token: <secret>`. Both compare in constant time.
    `headers` has lower-case names.
    """
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        return "github" if hmac.compare_digest(signature.strip().encode(), expected.encode()) else None
    token = headers.get("x-gitlab-token")
    if token is not None:
        return "gitlab" if hmac.compare_digest(token.strip().encode(), secret) else None
    return None


def webhook_ref(body: bytes) -> str | None:
    """The pushed ref of a GitHub or GitLab push payload (`refs/heads/main`), None when absent."""
    try:
        doc = json.loads(body or b"null")
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python parses
        return None
    ref = doc.get("ref") if isinstance(doc, dict) else None
    return ref if isinstance(ref, str) else None
