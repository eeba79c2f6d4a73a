"""The `reconciler` command: click wiring only; each command's logic is in reconciler.commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from reconciler.commands.dataplane import dataplane_options
from reconciler.commands.errors import EXIT_INVALID, EXIT_OK

__all__ = ["main", "cli"]

FORMATS = click.Choice(["text", "json"])

compact_outbounds_option = click.option(
    "--compact-outbounds",
    type=click.IntRange(min=1),
    envvar="RECONCILER_COMPACT_OUTBOUNDS",
    default=None,
    help="Give proxies with at least this many outbounds the compact outbound shape: one listener for all of them, "
    "instead of Kuma's one per outbound (also $RECONCILER_COMPACT_OUTBOUNDS; a Dataplane's label reconciler.io/outbound-shape "
    "overrides it). Default: Kuma's shape.",
)


def _setup_logging(verbose: bool) -> None:
    from reconciler.logsetup import configure

    configure(verbose)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.version_option(package_name="mesh-reconciler")
def cli(verbose: bool) -> None:
    """GitOps control plane for a Kuma-compatible service mesh."""
    _setup_logging(verbose)


@cli.command()
@click.option("--repo", default=".", show_default=True, help="Repository (bare or with a work tree), or a directory with --worktree.")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--worktree", is_flag=True, help="Validate the files on disk, including uncommitted changes.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.option("--show-resources", is_flag=True, help="Also list the resources that were read.")
@click.option(
    "--verify-signatures",
    "allowed_signers",
    type=click.Path(dir_okay=False),
    help="Also require an SSH signature by a key in this allowed-signers file (as serve --verify-signatures).",
)
@click.option("--gpg-keyring", type=click.Path(dir_okay=False), help="Also accept GPG signatures by the keys of this (binary) keyring.")
@click.argument("rev", required=False)
def validate(
    repo: str,
    path: str,
    worktree: bool,
    fmt: str,
    show_resources: bool,
    allowed_signers: str | None,
    gpg_keyring: str | None,
    rev: str | None,
) -> None:
    """Validate one revision (default HEAD) or the work tree.

    Exit 0 when valid (and, with --verify-signatures/--gpg-keyring, signed by a trusted key),
    1 with errors, 2 when the repository or revision cannot be read, 3 on an internal error
    (a bug in mesh-reconciler: one line says where; `reconciler -v validate` logs the traceback).
    """
    from reconciler.commands.validate import EXIT_BUG, bugs_as_one_line, report_json, report_text, resources_text, run_validate
    from reconciler.commands.verify import check_signature, policy_of

    with bugs_as_one_line("validating"):
        if worktree and rev:
            raise click.UsageError("give either REV or --worktree, not both")
        policy = policy_of(allowed_signers, gpg_keyring)
        if policy is not None and worktree:
            raise click.UsageError("--verify-signatures checks a commit: drop --worktree")
        snapshot, report = run_validate(repo, path, rev, worktree)
        verdict = check_signature(repo, rev or "HEAD", policy) if policy is not None else None
        if fmt == "json":
            doc = json.loads(report_json(report))
            if verdict is not None:
                doc["signature"] = {"trusted": verdict.trusted, "signer": verdict.signer, "message": verdict.message}
                doc["valid"] = report.valid and verdict.trusted
            click.echo(json.dumps(doc, indent=2))
        else:
            if show_resources:
                click.echo(resources_text(snapshot))
            click.echo(report_text(report))
            if verdict is not None:
                click.echo(f"signature: {verdict.message}")
    if report.internal_errors:
        sys.exit(EXIT_BUG)
    sys.exit(EXIT_OK if report.valid and (verdict is None or verdict.trusted) else EXIT_INVALID)


@cli.command()
@click.option("--repo", default=".", show_default=True, help="Repository (bare or with a work tree).")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.argument("base")
@click.argument("head", default="HEAD")
def diff(repo: str, path: str, fmt: str, base: str, head: str) -> None:
    """Resources added, removed and changed (field by field) from BASE to HEAD."""
    from reconciler.commands.diff import diff_json, diff_text, run_diff

    a, b, d = run_diff(repo, path, base, head)
    click.echo(diff_json(a, b, d) if fmt == "json" else diff_text(d))


@cli.command()
@click.option("--repo", required=True, help="Local repository (bare or not), or a remote URL mirrored into the state directory.")
@click.option("--branch", default="main", show_default=True, help="Branch to follow.")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--state-dir", default=".reconciler", show_default=True, help="Where the control plane keeps its state (mirror, keys).")
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
@click.option(
    "--verify-signatures",
    "allowed_signers",
    type=click.Path(dir_okay=False),
    help="Apply only commits with an SSH signature by a key in this allowed-signers file.",
)
@click.option("--gpg-keyring", type=click.Path(dir_okay=False), help="Also trust GPG signatures by the keys of this (binary) keyring.")
@click.option("--rollback-on-nack", is_flag=True, help="When proxies NACK a new commit, serve again the last commit every proxy accepted.")
@compact_outbounds_option
@click.option(
    "--rotate-missing-keys",
    is_flag=True,
    help="Replace a lost key (a mesh or xDS CA whose certificate proxies hold, a token signing key with a public record) instead of refusing to start; what it signed stops working.",
)
def serve(
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
) -> None:
    """Watch the repository, reconcile each new commit and serve it over xDS.

    Exit 2 when the repository cannot be opened, a credential, secret or key file cannot be
    read, or a key is lost (without --rotate-missing-keys).
    """
    from reconciler.commands.serve import run_serve
    from reconciler.controlplane import ServeSettings

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
        )
    )


@cli.command()
@click.option("--server", default="http://127.0.0.1:5681", show_default=True, help="The control plane's HTTP API.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def status(server: str, fmt: str) -> None:
    """What the running server applies and attempted, and each proxy's ACK/NACK per type."""
    from reconciler.commands.status import fetch_json, status_text

    doc = fetch_json(server, "/status")
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else status_text(doc))


@cli.command()
@dataplane_options
def bootstrap(**options: Any) -> None:
    """Print the Envoy bootstrap for a dataplane."""
    from reconciler.commands.dataplane import dataplane_bootstrap

    click.echo(json.dumps(dataplane_bootstrap(**options)[0], indent=2))


@cli.command("run-dataplane")
@dataplane_options
@click.option("--work-dir", type=click.Path(file_okay=False), help="Where to write the bootstrap (default: a temp dir).")
@click.option("--log-level", default="info", show_default=True, help="Envoy log level.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Envoy worker threads (default: the container's CPU quota rounded up, else the CPUs this process may run on; fewer when the open-files limit needs it).",
)
@click.option(
    "--drain-time",
    default="30s",
    show_default=True,
    help="How long a replaced listener keeps serving its connections (kuma-dp's flag; a route or policy change replaces the listener that carries it). Whole seconds: 30s, 1m.",
)
def run_dataplane(work_dir: str | None, log_level: str, concurrency: int | None, drain_time: str, **options: Any) -> None:
    """Run Envoy as the sidecar of a dataplane (like kuma-dp); exits with Envoy's exit code."""
    from reconciler.commands.dataplane import dataplane_bootstrap
    from reconciler.dataplane.envoy_binary import find_envoy
    from reconciler.dataplane.launcher import plan_workers, run_envoy
    from reconciler.durations import parse_duration

    drain = parse_duration(drain_time)
    if drain is None or drain < 0 or drain != int(drain):
        raise click.BadParameter(f"{drain_time!r}: give whole seconds as a duration, e.g. 30s or 1m", param_hint="--drain-time")

    find_envoy()  # no Envoy: say what to install before asking the control plane anything
    config, identity = dataplane_bootstrap(**options, count_listeners=True)
    choice, facts = plan_workers(concurrency, identity.listeners, admin_address=f"127.0.0.1:{identity.admin_port}")
    if choice.message:
        click.echo(choice.message, err=True)
    if choice.fatal:
        sys.exit(EXIT_INVALID)
    sys.exit(run_envoy(config, work_dir=work_dir, log_level=log_level, drain_time=int(drain), extra=choice.args, facts=facts))


@cli.command()
@click.option("--state-dir", default=".demo", show_default=True, help="Where the demo keeps its repositories, logs and state.")
@click.option("--example", default="", help="Configuration to seed the repository with (default: the bundled example-repo/).")
@click.option(
    "--base-port",
    type=click.IntRange(1024, 65536 - 5000),
    envvar="RECONCILER_DEMO_BASE_PORT",
    help="Move every port the demo binds into BASE…BASE+4999: the example's 15000-19999 by BASE-15000, "
    "the control plane to BASE+678 (xDS) and BASE+681 (API). Also $RECONCILER_DEMO_BASE_PORT. A demo already "
    "seeded keeps its base.",
)
@click.option("--xds-port", type=int, help="Control plane xDS port (default 5678, or BASE+678).")
@click.option("--api-port", type=int, help="Control plane API port (default 5681, or BASE+681).")
@click.option("--envoy-log-level", default="warning", show_default=True)
def demo(state_dir: str, example: str, base_port: int | None, xds_port: int | None, api_port: int | None, envoy_log_level: str) -> None:
    """A bare repository seeded from example-repo/, the server, Envoys and demo services on loopback.

    Exit 2 when a port it needs is taken (named, with a --base-port that is free), or Envoy is missing.
    """
    from reconciler.demo import DemoSettings, run_demo

    settings = DemoSettings(state_dir, example, xds_port, api_port, envoy_log_level, base_port=base_port)
    sys.exit(run_demo(settings))


@cli.group()
def token() -> None:
    """Dataplane tokens: what a proxy presents to prove which dataplane it is."""


@token.command("issue")
@click.option(
    "--state-dir",
    default=".reconciler",
    show_default=True,
    help="The control plane's state directory (its signing key is made there if absent).",
)
@click.option("-m", "--mesh", default="default", show_default=True, help="Mesh of the dataplane.")
@click.option("--name", help="Name of the dataplane the token is for.")
@click.option(
    "--tags",
    "--tag",
    "tags",
    multiple=True,
    help="Bind to tags instead of (or besides) a name: kuma.io/service=web,version=v1; a value without = adds to the previous tag (kuma.io/service=web,web-api).",
)
@click.option(
    "--workload",
    default="",
    help="Also bind to a workload: only dataplanes labelled kuma.io/workload=<this> (needed when a MeshIdentity makes the SPIFFE id from that label).",
)
@click.option("--valid-for", default="24h", show_default=True, help="How long the token is valid (24h, 30m, 7d).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the token to this file (mode 0600) instead of printing it.",
)
def token_issue(
    state_dir: str, mesh: str, name: str | None, tags: tuple[str, ...], workload: str, valid_for: str, output: str | None
) -> None:
    """Issue a dataplane token, signed with the control plane's key in the state directory."""
    from reconciler.commands.token import run_issue, write_token

    issued = run_issue(state_dir, mesh, name, tags, valid_for, workload)
    if output:
        write_token(output, issued)
    else:
        click.echo(issued)


@token.command("rotate-key")
@click.option("--state-dir", default=".reconciler", show_default=True, help="The control plane's state directory.")
def token_rotate_key(state_dir: str) -> None:
    """Make a new signing key: new tokens use it, tokens of older keys stay valid until their key file is removed."""
    from reconciler.commands.token import run_rotate_key

    click.echo(run_rotate_key(state_dir))


@token.command("inspect")
@click.option("--file", "token_file", type=click.Path(exists=True, dir_okay=False), help="Read the token from this file.")
@click.option("--state-dir", help="Also verify signature and expiry with the signing keys of this state directory.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.argument("value", required=False)
def token_inspect(token_file: str | None, state_dir: str | None, fmt: str, value: str | None) -> None:
    """Show a token's ID (what revocation names), mesh, name, tags and expiry."""
    from reconciler.commands.token import inspect_text, run_inspect

    if bool(token_file) == bool(value):
        raise click.UsageError("give the token, or --file")
    text = Path(token_file).read_text(encoding="utf-8") if token_file else value or ""
    doc = run_inspect(text, state_dir)
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else inspect_text(doc))


@cli.group()
def inspect() -> None:
    """What a proxy is given, and which policies contributed (offline, from a revision)."""


@inspect.command("dataplane")
@click.option("--repo", default=".", show_default=True, help="Repository (bare or not), or a directory with --worktree.")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--rev", default=None, help="Revision to read (default HEAD).")
@click.option("--worktree", is_flag=True, help="Read the files on disk instead of a commit.")
@click.option(
    "--policies",
    "show_policies",
    is_flag=True,
    default=True,
    help="Per inbound/outbound, the merged conf of each policy kind and where it came from.",
)
@click.option("--config", "show_config", is_flag=True, help="Also print the generated Envoy resources.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@compact_outbounds_option
@click.argument("mesh")
@click.argument("name")
def inspect_dataplane_command(
    repo: str,
    path: str,
    rev: str | None,
    worktree: bool,
    show_policies: bool,
    show_config: bool,
    fmt: str,
    compact_outbounds: int | None,
    mesh: str,
    name: str,
) -> None:
    """Matched policies per inbound and outbound of dataplane MESH/NAME, and its outbound shape."""
    from reconciler.commands.inspect import inspect_dataplane, inspect_text

    doc = inspect_dataplane(repo, path, rev, worktree, mesh, name, config=show_config, compact_outbounds=compact_outbounds)
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else inspect_text(doc))


@cli.command()
@click.option("--repo", default=".", show_default=True, help="Repository (bare or with a work tree).")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--base", required=True, help="Revision the change starts from (the pull request's base).")
@click.option("--head", default="HEAD", show_default=True, help="Revision to plan (the pull request's head or merge commit).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="markdown is made to be posted as a pull-request comment.",
)
@click.option(
    "--envoy-check/--no-envoy-check",
    default=True,
    show_default=True,
    help="Validate each changed proxy's full config with the real Envoy (--mode validate).",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Envoy validations run in parallel (default: CPUs, at most 8).")
@compact_outbounds_option
def plan(repo: str, path: str, base: str, head: str, fmt: str, envoy_check: bool, jobs: int | None, compact_outbounds: int | None) -> None:
    """Dry run of a change from BASE to HEAD: resources, proxies, Envoy config, who may talk to whom.

    Exit 0 when HEAD is valid and Envoy accepts every changed proxy's config, 1 otherwise
    (the reasons are printed), 2 when a revision cannot be read or Envoy cannot be found.
    """
    from reconciler.commands.plan import run_plan
    from reconciler.commands.plan_render import plan_json, plan_markdown, plan_text

    result = run_plan(repo, path, base, head, envoy_check=envoy_check, jobs=jobs, compact_outbounds=compact_outbounds)
    render = {"json": plan_json, "markdown": plan_markdown}.get(fmt, plan_text)
    click.echo(render(result))
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


_ADMIN_TOKEN_FILE = click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False),
    help="With --server: the server's admin token (else $RECONCILER_ADMIN_TOKEN, else <--state-dir>/admin-token).",
)


@cli.command()
@click.option("--repo", default=None, help="Repository (bare or with a work tree); default: the current directory.")
@click.option("--rev", default=None, help="Revision to render (default HEAD).")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Write one static Envoy bootstrap per dataplane here (<mesh>.<name>.yaml)."
)
@click.option(
    "--state-dir",
    default=None,
    help="Take builtin mesh CAs from this state directory (the one `serve` uses); default: a throwaway CA. With --server: where the admin token is (default .reconciler).",
)
@click.option("--check", is_flag=True, help="Also validate each written file with the real Envoy (--mode validate).")
@click.option("--server", default=None, help="Instead: ask the running server at this HTTP API URL to fetch and reconcile now.")
@_ADMIN_TOKEN_FILE
@click.option("--timeout", default="30s", show_default=True, help="With --server: how long to wait for the proxies' ACKs.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@compact_outbounds_option
def reconcile(
    repo: str | None,
    rev: str | None,
    path: str,
    out_dir: str | None,
    state_dir: str | None,
    check: bool,
    server: str | None,
    admin_token_file: str | None,
    timeout: str,
    fmt: str,
    compact_outbounds: int | None,
) -> None:
    """One-shot reconcile: with --server URL, a running server reconciles now and this waits for
    the proxies; with --out DIR, every proxy's Envoy config is rendered without a server.

    --server: exit 0 applied and ACKed by every connected proxy, 1 rejected or NACKed (the
    errors and NACK messages are printed), 2 server unreachable, admin token refused, or timeout.
    --out: exit 0 when written, 1 when the revision is invalid (nothing is written) or Envoy
    rejects a file (with --check), 2 on usage or repository errors.
    """
    if server and (out_dir or repo or rev or check or path):
        raise click.UsageError("--server asks a running server; --repo, --rev, --path, --out and --check are for rendering without one")
    if admin_token_file and not server:
        raise click.UsageError("--admin-token-file is for --server")
    if server:
        from reconciler.commands.rollout import act, admin_token, parse_timeout, result_json, result_text

        outcome = act(server, "reconcile", parse_timeout(timeout), token=admin_token(admin_token_file, state_dir))
        click.echo(result_json(outcome) if fmt == "json" else result_text(outcome))
        sys.exit(outcome.exit_code)
    from reconciler.commands.reconcile_out import render_json, render_out, render_text

    if not out_dir:
        raise click.UsageError(
            "missing option '--out' DIR (render the static Envoy configs without a server), or give --server URL (reconcile a running server now)"
        )
    result = render_out(repo or ".", path, rev, out_dir, state_dir=state_dir, check=check, compact_outbounds=compact_outbounds)
    click.echo(render_json(result) if fmt == "json" else render_text(result))
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


def _repo_or_server(repo: str | None, server: str | None) -> str:
    if server and repo:
        raise click.UsageError("give --server (ask the running server) or --repo (write the refs in the repository), not both")
    return repo or "."


@cli.command()
@click.option(
    "--repo", default=None, help="The repository `serve` reads (a remote URL reads <state-dir>/mirror.git); default: the current directory."
)
@click.option(
    "--state-dir", default=".reconciler", show_default=True, help="The state directory of `serve` (its history.jsonl holds the outcomes)."
)
@click.option("--branch", default="main", show_default=True)
@click.option("--server", default=None, help="Ask the running server at this HTTP API URL instead.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="Commits to list, newest first.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def history(repo: str | None, state_dir: str, branch: str, server: str | None, limit: int, fmt: str) -> None:
    """Commits of the tracked branch with their outcome; `*` marks the one served.

    Outcomes: applied, rejected (with the reason), held (valid, not applied while pinned),
    rolled back, rejected by proxies, superseded (never tried: a newer commit came first),
    pending (not tried yet). Exit 2 when the repository or server cannot be read.
    """
    from reconciler.history import history_text

    where = _repo_or_server(repo, server)
    if server:
        from reconciler.commands.rollout import call

        code, doc = call(server, "GET", f"/history?limit={limit}")
        if code != 200:
            from reconciler.commands.errors import RepositoryError

            raise RepositoryError(f"{server}/history: HTTP {code}: {(doc or {}).get('error', '')}")
    else:
        from reconciler.commands.history import offline_history

        doc = offline_history(where, state_dir, branch, limit)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2))
    else:
        click.echo(history_text(doc))
        if doc.get("note"):
            click.echo(f"note: {doc['note']}")


@cli.command()
@click.option(
    "--repo", default=None, help="The repository `serve` reads (a remote URL: its mirror in --state-dir); default: the current directory."
)
@click.option("--state-dir", default=".reconciler", show_default=True, help="The state directory of `serve`.")
@click.option("--branch", default="main", show_default=True, help="The tracked branch (REV must be on its history unless --force).")
@click.option("--path", default="", help="Only read files under this directory (as `serve --path`).")
@click.option("--server", default=None, help="Ask the running server at this HTTP API URL, and wait for the proxies' ACKs.")
@_ADMIN_TOKEN_FILE
@click.option("--force", is_flag=True, help="Pin a commit that is not on the branch's history.")
@click.option("--timeout", default="30s", show_default=True, help="With --server: how long to wait for the proxies' ACKs.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.argument("rev")
def rollback(
    repo: str | None,
    state_dir: str,
    branch: str,
    path: str,
    server: str | None,
    admin_token_file: str | None,
    force: bool,
    timeout: str,
    fmt: str,
    rev: str,
) -> None:
    """Pin serving to REV, an earlier commit that validates (refs/reconciler/pin).

    New commits are then validated and recorded, not applied, until `reconciler resume`. The
    pin survives restarts. Exit 0 pinned (with --server: applied and ACKed), 1 REV is invalid,
    not on the branch (without --force) or NACKed, 2 REV unknown, server unreachable, admin
    token refused, or timeout. With --server, --state-dir is where the admin token is.
    """
    where = _repo_or_server(repo, server)
    if server:
        from reconciler.commands.rollout import act, admin_token, parse_timeout, result_json, result_text

        token = admin_token(admin_token_file, state_dir)
        result = act(server, "rollback", parse_timeout(timeout), {"revision": rev, "force": force}, token=token)
        click.echo(result_json(result) if fmt == "json" else result_text(result))
        sys.exit(result.exit_code)
    from reconciler.commands.history import pin_offline

    pinned = pin_offline(where, state_dir, branch, path, rev, force=force)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "pinnedRevision": pinned.revision,
                    "previousPin": pinned.previous_pin,
                    "servedRevision": pinned.served,
                    "validation": pinned.report,
                },
                indent=2,
            )
        )
        return
    click.echo(f"pinned {branch} to {pinned.revision[:12]} (refs/reconciler/pin): {pinned.report}")
    click.echo(f"a server reading this repository applies it at its next check; `reconciler resume` follows {branch} again")


@cli.command()
@click.option(
    "--repo", default=None, help="The repository `serve` reads (a remote URL: its mirror in --state-dir); default: the current directory."
)
@click.option("--state-dir", default=".reconciler", show_default=True, help="The state directory of `serve`.")
@click.option("--server", default=None, help="Ask the running server at this HTTP API URL, and wait for the proxies' ACKs.")
@_ADMIN_TOKEN_FILE
@click.option("--timeout", default="30s", show_default=True, help="With --server: how long to wait for the proxies' ACKs.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def resume(repo: str | None, state_dir: str, server: str | None, admin_token_file: str | None, timeout: str, fmt: str) -> None:
    """Delete the pin: serving follows the branch again.

    Exit 0 resumed (with --server: the branch head applied and ACKed), 1 the head is invalid or
    NACKed (the pinned commit keeps serving), 2 server unreachable, admin token refused, or
    timeout. With --server, --state-dir is where the admin token is.
    """
    where = _repo_or_server(repo, server)
    if server:
        from reconciler.commands.rollout import act, admin_token, parse_timeout, result_json, result_text

        result = act(server, "resume", parse_timeout(timeout), token=admin_token(admin_token_file, state_dir))
        click.echo(result_json(result) if fmt == "json" else result_text(result))
        sys.exit(result.exit_code)
    from reconciler.commands.history import unpin_offline

    pin = unpin_offline(where, state_dir)
    if fmt == "json":
        click.echo(json.dumps({"unpinned": pin}, indent=2))
    elif pin is None:
        click.echo("not pinned: serving already follows the branch")
    else:
        click.echo(f"unpinned {pin[:12]}: a server reading this repository follows the branch again at its next check")


@cli.group()
def hook() -> None:
    """A git pre-receive hook that refuses pushes of invalid configuration."""


@hook.command("install")
@click.option("--repo", required=True, help="The (bare) repository that receives pushes.")
@click.option("--branch", default="main", show_default=True, help="Branch whose pushes are validated; other refs pass.")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--force", is_flag=True, help="Replace a pre-receive hook that reconciler did not install.")
@click.option(
    "--verify-signatures",
    "allowed_signers",
    type=click.Path(dir_okay=False),
    help="Also refuse a tip without an SSH signature by a key in this allowed-signers file.",
)
@click.option("--gpg-keyring", type=click.Path(dir_okay=False), help="Also accept GPG signatures by the keys of this (binary) keyring.")
def hook_install(repo: str, branch: str, path: str, force: bool, allowed_signers: str | None, gpg_keyring: str | None) -> None:
    """Install the pre-receive hook into REPO (it runs this Python by absolute path)."""
    from reconciler.commands.hook import install_hook
    from reconciler.source.signatures import SignaturePolicy

    done = install_hook(repo, branch, path, force=force, signatures=SignaturePolicy(allowed_signers, gpg_keyring))
    click.echo(
        f"{'replaced' if done.replaced else 'installed'} {done.path}: pushes to refs/heads/{done.branch} are validated with {done.python}"
    )


@hook.command("pre-receive")
@click.option("--repo", default=None, help="Repository the hook runs in (default: $GIT_DIR, else the current directory).")
@click.option("--branch", default="main", show_default=True)
@click.option("--path", default="")
@click.option("--verify-signatures", "allowed_signers", default=None)
@click.option("--gpg-keyring", default=None)
def hook_pre_receive(repo: str | None, branch: str, path: str, allowed_signers: str | None, gpg_keyring: str | None) -> None:
    """Run by the installed hook: reads `<old> <new> <ref>` lines on stdin, exits 1 to refuse."""
    import os

    from reconciler.commands.hook import check_updates, open_for_hook, parse_updates
    from reconciler.source.signatures import SignaturePolicy

    repository = open_for_hook(repo or os.environ.get("GIT_DIR") or ".")
    verdicts = check_updates(repository, parse_updates(sys.stdin.read()), branch, path, SignaturePolicy(allowed_signers, gpg_keyring))
    for v in verdicts:
        for line in v.lines:
            click.echo(line)
    sys.exit(EXIT_OK if all(v.accepted for v in verdicts) else EXIT_INVALID)


def main() -> None:
    """The console script: click reports usage and command errors; anything else is a bug in
    mesh-reconciler, shown as one line naming where (exit 3), never a traceback (`-v` logs it)."""
    from reconciler.commands.validate import EXIT_BUG, InternalBug, bugs_as_one_line

    command = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    try:
        with bugs_as_one_line(f"running `reconciler {command}`"):
            cli(prog_name="reconciler")
    except InternalBug as bug:
        bug.show()
        sys.exit(EXIT_BUG)


if __name__ == "__main__":
    main()
