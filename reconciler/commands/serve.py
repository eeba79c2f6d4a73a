"""`reconciler serve`: run the control plane until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import click

from reconciler.ca.statefiles import StateFileError
from reconciler.commands.errors import RepositoryError
from reconciler.commands.options import (
    branch_option,
    compact_outbounds_option,
    path_option,
    repo_option,
    signature_options,
    state_dir_option,
)
from reconciler.source.git import SourceError

if TYPE_CHECKING:
    from reconciler.controlplane import ServeSettings

__all__ = ["run_serve", "serve_command"]


def run_serve(settings: ServeSettings) -> None:
    """Exit code 2 (RepositoryError) when a setting cannot be used or the repository cannot be opened."""
    # Imported here: the gRPC and HTTP servers load only for `serve`, not for every command.
    from reconciler.controlplane import ControlPlane, SetupError

    async def main() -> None:
        cp = ControlPlane(settings)
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, cp.request_stop)
        await cp.run_forever()

    try:
        asyncio.run(main())
    except (SetupError, SourceError, StateFileError) as e:  # StateFileError: a key file read after the setup check
        raise RepositoryError(str(e)) from None


@click.command("serve")
@repo_option("Local repository (bare or not), or a remote URL mirrored into the state directory.", required=True)
@branch_option("Branch to follow.")
@path_option()
@state_dir_option("Where the control plane keeps its state (mirror, keys).")
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address xDS listens on (0.0.0.0 for proxies on other hosts); the API has its own, --api-address.",
)
@click.option("--xds-port", default=5678, show_default=True, type=int)
@click.option(
    "--api-address",
    default="127.0.0.1",
    show_default=True,
    help="Address the HTTP API listens on. Elsewhere than loopback, reads are open to whoever reaches it; changes need the admin token (<state-dir>/admin-token).",
)
@click.option("--api-port", default=5681, show_default=True, type=int)
@click.option("--poll-interval", default=1.0, show_default=True, type=float, help="Seconds between branch checks.")
@click.option(
    "--dataplane-auth",
    type=click.Choice(["dpToken", "none"]),
    default="dpToken",
    show_default=True,
    help="dpToken: serve a proxy only when it presents a dataplane token naming it (`reconciler token issue`); none: trust the node id.",
)
@click.option(
    "--xds-tls",
    type=click.Choice(["builtin", "none"]),
    default="builtin",
    show_default=True,
    help="builtin: serve xDS over TLS with a certificate from the control plane's CA, whose certificate is written to <state-dir>/xds-tls/ca.crt; none: plaintext.",
)
@click.option("--xds-tls-san", multiple=True, help="Another DNS name or IP address proxies use to reach the control plane (repeatable).")
@click.option(
    "--xds-first-request-timeout",
    default=15.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a new xDS stream has to send its first request before it is closed.",
)
@click.option(
    "--hds-interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds between the health reports sidecars send over HDS (Kuma's dpServer.hds.interval).",
)
@click.option(
    "--hds/--no-hds",
    "hds_enabled",
    default=True,
    show_default=True,
    help="Serve Kuma's service health probes over HDS (dpServer.hds.enabled). Each sidecar then holds a second stream "
    "(about 35 KiB and a report every --hds-interval; docs/performance.md); without it, Envoy's HDS stream is refused "
    "and retried with backoff, and no inbound is taken out for failing probes.",
)
@click.option(
    "--fetch-interval",
    default=60.0,
    show_default=True,
    type=float,
    help="Remote repositories: seconds between fetches (a webhook fetches at once).",
)
@click.option(
    "--git-token-file",
    type=click.Path(dir_okay=False),
    help="HTTPS token for a remote repository (else $RECONCILER_GIT_TOKEN), sent as basic auth.",
)
@click.option("--git-username", default="x-access-token", show_default=True, help="User name sent with the HTTPS token.")
@click.option(
    "--git-ssh-key",
    type=click.Path(dir_okay=False),
    help="Private SSH key for an ssh:// or git@host:path remote (passphrase: $RECONCILER_GIT_SSH_PASSPHRASE).",
)
@click.option(
    "--git-known-hosts",
    type=click.Path(dir_okay=False),
    help="known_hosts file that SSH host keys are checked against (default ~/.ssh/known_hosts).",
)
@click.option(
    "--git-ca-file", type=click.Path(dir_okay=False), help="CA certificates (PEM) that verify an HTTPS git server, instead of the system's."
)
@click.option(
    "--webhook-secret-file",
    type=click.Path(dir_okay=False),
    help="Shared secret of POST /hooks/git (GitHub X-Hub-Signature-256 or GitLab X-Gitlab-Token); without it the endpoint answers 404.",
)
@signature_options(
    "Apply only commits with an SSH signature by a key in this allowed-signers file.",
    "Also trust GPG signatures by the keys of this (binary) keyring.",
)
@click.option("--rollback-on-nack", is_flag=True, help="When proxies NACK a new commit, serve again the last commit every proxy accepted.")
@compact_outbounds_option
@click.option(
    "--rotate-missing-keys",
    is_flag=True,
    help="Replace a lost key (a mesh or xDS CA whose certificate proxies hold, a token signing key with a public record) instead of refusing to start; what it signed stops working.",
)
@click.option(
    "--keys-dir",
    envvar="RECONCILER_KEYS_DIR",
    type=click.Path(file_okay=False),
    help="Read the mesh CAs, token signing keys, xDS TLS CA and admin token from this directory "
    "(made by `reconciler keys init`, mounted from a Secret) and never generate them: how replicas share keys.",
)
@click.option(
    "--registration-heartbeat",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds between rewrites of this replica's ref of dataplanes registered at connect; "
    "another replica's count until 3 heartbeats old (docs/operations.md).",
)
def serve_command(
    repo: str,
    branch: str,
    path: str,
    state_dir: str,
    address: str,
    xds_port: int,
    api_address: str,
    api_port: int,
    poll_interval: float,
    dataplane_auth: str,
    xds_tls: str,
    xds_tls_san: tuple[str, ...],
    xds_first_request_timeout: float,
    hds_interval: float,
    hds_enabled: bool,
    fetch_interval: float,
    git_token_file: str | None,
    git_username: str,
    git_ssh_key: str | None,
    git_known_hosts: str | None,
    git_ca_file: str | None,
    webhook_secret_file: str | None,
    allowed_signers: str | None,
    gpg_keyring: str | None,
    rollback_on_nack: bool,
    compact_outbounds: int | None,
    rotate_missing_keys: bool,
    keys_dir: str | None,
    registration_heartbeat: float,
) -> None:
    """Watch the repository, reconcile each new commit and serve it over xDS.

    Exit 2 when the repository cannot be opened, a credential, secret or key file cannot be
    read, or a key is lost (without --rotate-missing-keys).
    """
    from reconciler.controlplane import ServeSettings
    from reconciler.xds.hds_specifier import HdsSettings

    run_serve(
        ServeSettings(
            repo,
            branch,
            path,
            state_dir,
            address,
            xds_port,
            api_port,
            poll_interval,
            dataplane_auth=dataplane_auth,
            xds_tls=xds_tls,
            xds_tls_names=xds_tls_san,
            xds_first_request_timeout=xds_first_request_timeout,
            hds=HdsSettings(enabled=hds_enabled, interval=hds_interval),
            fetch_interval=fetch_interval,
            git_username=git_username,
            git_token_file=git_token_file,
            git_ssh_key=git_ssh_key,
            git_known_hosts=git_known_hosts,
            git_ca_file=git_ca_file,
            webhook_secret_file=webhook_secret_file,
            verify_signatures=allowed_signers,
            gpg_keyring=gpg_keyring,
            rollback_on_nack=rollback_on_nack,
            rotate_missing_keys=rotate_missing_keys,
            api_address=api_address,
            compact_outbounds=compact_outbounds,
            keys_dir=keys_dir,
            registration_heartbeat=registration_heartbeat,
        )
    )
