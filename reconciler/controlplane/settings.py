"""`reconciler serve`'s settings (one frozen value, from the CLI or a test) and its setup error."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.xds.hds_specifier import HdsSettings
from reconciler.xds.server import FIRST_REQUEST_TIMEOUT

__all__ = ["ServeSettings", "SetupError", "REBUILD_RETRY"]


@dataclass(frozen=True, slots=True)
class ServeSettings:
    repo: str
    branch: str = "main"
    path: str = ""
    state_dir: str = ".reconciler"
    address: str = "127.0.0.1"
    xds_port: int = 5678
    api_port: int = 5681
    poll_interval: float = 1.0
    """Seconds between checks of the branch (file events wake the loop sooner)."""
    dataplane_auth: str = "dpToken"
    """`dpToken` (Kuma's default): a proxy is served only with a dataplane token that names it;
    `none`: any proxy gets the config of the node id it claims."""
    xds_tls: str = "builtin"
    """`builtin`: xDS over TLS, with a certificate from the control plane's own CA in the state
    directory (`<state>/xds-tls/ca.crt` verifies it); `none`: plaintext, for local experiments."""
    xds_tls_names: tuple[str, ...] = ()
    """Extra DNS names or IP addresses for the xDS server certificate."""
    xds_first_request_timeout: float = FIRST_REQUEST_TIMEOUT
    """Seconds a new xDS stream has to send its first request (with the node) before it is closed."""
    hds: HdsSettings = HdsSettings()
    """Kuma's `dpServer.hds`: the service probes sidecars run and report (reconciler/xds/hds.py)."""
    fetch_interval: float = 60.0
    """Remote repositories: seconds between fetches. A webhook, `reconcile --server`, `rollback`
    and `resume` fetch at once; `poll_interval` still governs how often the mirror's refs
    (the pin) are read."""
    git_username: str = "x-access-token"
    git_token_file: str | None = None
    """HTTPS token (else $RECONCILER_GIT_TOKEN), sent as basic auth with `git_username`."""
    git_ssh_key: str | None = None
    git_known_hosts: str | None = None
    git_ca_file: str | None = None
    """CA certificates (PEM) that verify an HTTPS git server, instead of the system's."""
    webhook_secret_file: str | None = None
    """Shared secret of `POST /hooks/git`; without it the endpoint answers 404."""
    verify_signatures: str | None = None
    """Allowed-signers file: only commits with a trusted SSH signature are applied."""
    gpg_keyring: str | None = None
    """Binary OpenPGP keyring: commits with a GPG signature by one of its keys are trusted."""
    rollback_on_nack: bool = False
    """When proxies NACK a new commit, serve again the last commit every proxy accepted."""
    rotate_missing_keys: bool = False
    """Replace a key that other state shows existed (a CA whose certificate proxies hold, a token
    signing key with a public record) instead of refusing to start; what depended on it stops
    working, and status says so (Ready=False, KeysRotated) until the next start."""
    api_address: str = "127.0.0.1"
    """Where the HTTP API listens, apart from `address` (xDS): exposing xDS to other hosts
    leaves the API on loopback unless this says otherwise."""
    keys_dir: str | None = None
    """Read the shared keys (mesh CAs, token signing keys, the xDS TLS CA, the admin token) from
    this directory, a mounted Kubernetes Secret made by `reconciler keys init`, and never
    generate them: every replica of an HA install reads the same keys (docs/operations.md)."""
    registration_heartbeat: float = 30.0
    """Seconds between rewrites of this replica's registrations ref while it has any; another
    replica's registrations count until 3 heartbeats old (reconciler/source/registry.py)."""
    compact_outbounds: int | None = None
    """Proxies with at least this many outbounds get the compact outbound shape (one listener
    for all of them); None: Kuma's shape unless a Dataplane's label asks (reconciler/mesh/shape.py)."""


REBUILD_RETRY = 10.0
"""Seconds between attempts to rebuild the applied revision after a rebuild failed."""


class SetupError(Exception):
    """A setting cannot be used (a missing credential or key file): serve exits with code 2."""
