"""The `reconciler` command: click wiring only; each command's logic is in reconciler.commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from reconciler.commands.errors import EXIT_INVALID, EXIT_OK

__all__ = ["main", "cli"]

FORMATS = click.Choice(["text", "json"])


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
@click.argument("rev", required=False)
def validate(repo: str, path: str, worktree: bool, fmt: str, show_resources: bool, rev: str | None) -> None:
    """Validate one revision (default HEAD) or the work tree.

    Exit 0 when valid, 1 with errors, 2 when the repository or revision cannot be read.
    """
    from reconciler.commands.validate import report_json, report_text, resources_text, run_validate

    if worktree and rev:
        raise click.UsageError("give either REV or --worktree, not both")
    snapshot, report = run_validate(repo, path, rev, worktree)
    if fmt == "json":
        click.echo(report_json(report))
    else:
        if show_resources:
            click.echo(resources_text(snapshot))
        click.echo(report_text(report))
    sys.exit(EXIT_OK if report.valid else EXIT_INVALID)


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
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for proxies on other hosts).")
@click.option("--xds-port", default=5678, show_default=True, type=int)
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
def serve(
    repo: str,
    branch: str,
    path: str,
    state_dir: str,
    address: str,
    xds_port: int,
    api_port: int,
    poll_interval: float,
    dataplane_auth: str,
    xds_tls: str,
    xds_tls_san: tuple[str, ...],
) -> None:
    """Watch the repository, reconcile each new commit and serve it over xDS."""
    from reconciler.commands.serve import run_serve
    from reconciler.controlplane import ServeSettings

    run_serve(
        ServeSettings(
            repo, branch, path, state_dir, address, xds_port, api_port, poll_interval,
            dataplane_auth=dataplane_auth, xds_tls=xds_tls, xds_tls_names=xds_tls_san,
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


def _dataplane_identity(dataplane_file: str | None, mesh: str | None, name: str | None, api: str | None) -> tuple[str, str, str | None, int]:
    """(mesh, name, dataplane text or None, admin port) from --dataplane-file or --mesh/--name.

    For a Dataplane declared in git, its admin port is asked from the control plane's API.
    """
    from reconciler.source.loader import load_file

    if dataplane_file:
        text = open(dataplane_file, encoding="utf-8").read()
        result = load_file(dataplane_file, text.encode())
        if result.problems:
            raise click.ClickException("\n".join(p.render() for p in result.problems))
        dps = [r for r in result.resources if r.type == "Dataplane"]
        if len(dps) != 1:
            raise click.ClickException(f"{dataplane_file}: expected exactly one Dataplane, found {len(dps)}")
        dp = dps[0]
        admin = int(((dp.spec.get("networking") or {}).get("admin") or {}).get("port") or 9901)
        return dp.mesh, dp.name, json.dumps(dp.document()), admin
    if not name:
        raise click.UsageError("give --dataplane-file, or --name (and --mesh) of a Dataplane declared in git")
    mesh = mesh or "default"
    admin = 9901
    if api:
        from reconciler.commands.errors import RepositoryError
        from reconciler.commands.status import fetch_json

        try:
            admin = int(fetch_json(api, f"/dataplanes/{mesh}/{name}", timeout=5).get("adminPort") or 9901)
        except RepositoryError as e:
            click.echo(f"warning: {e.message}; using admin port {admin}", err=True)
    return mesh, name, None, admin


def _xds_client_options(f: Any) -> Any:
    """Options of `bootstrap` and `run-dataplane` that say how the proxy proves who it is and
    how it checks the control plane."""
    f = click.option(
        "--xds-tls",
        type=click.Choice(["verify", "none"]),
        default="verify",
        show_default=True,
        help="verify: connect over TLS and check the server against --ca-cert; none: plaintext, for a control plane run with --xds-tls none.",
    )(f)
    f = click.option(
        "--ca-cert",
        "--ca-cert-file",
        "ca_cert",
        type=click.Path(exists=True, dir_okay=False),
        help="CA certificate that verifies the control plane's xDS server (serve writes it to <state-dir>/xds-tls/ca.crt).",
    )(f)
    f = click.option(
        "--dataplane-token-file",
        type=click.Path(exists=True, dir_okay=False),
        help="File with this dataplane's token (`reconciler token issue`).",
    )(f)
    return f


def _xds_credentials(token_file: str | None, ca_cert: str | None, xds_tls: str) -> tuple[str | None, str | None]:
    """(token, CA certificate PEM) from the files given, checked so mistakes show here, not in Envoy's log."""
    token = None
    if token_file:
        token = open(token_file, encoding="utf-8").read().strip()
        if not token:
            raise click.UsageError(f"{token_file} is empty: write a token from `reconciler token issue` into it")
    if xds_tls == "none":
        if ca_cert:
            raise click.UsageError("--ca-cert needs TLS: drop --xds-tls none")
        return token, None
    if not ca_cert:
        raise click.UsageError(
            "the control plane serves xDS over TLS: give --ca-cert FILE (serve writes it to <state-dir>/xds-tls/ca.crt), "
            "or --xds-tls none for a control plane run with --xds-tls none"
        )
    pem = open(ca_cert, "rb").read()
    try:
        from cryptography import x509

        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise click.UsageError(f"{ca_cert}: not a PEM certificate") from None
    return token, pem.decode()


def _split_address(cp_address: str) -> tuple[str, int]:
    host, _, port = cp_address.rpartition(":")
    if not host or not port.isdigit():
        raise click.UsageError(f"--cp-address {cp_address}: use host:port")
    return host.strip("[]"), int(port)


@cli.command()
@click.option("--cp-address", default="127.0.0.1:5678", show_default=True, help="Control plane xDS address host:port.")
@click.option("--dataplane-file", type=click.Path(exists=True, dir_okay=False), help="A Dataplane resource to register when connecting.")
@click.option("--mesh", help="Mesh of a Dataplane declared in git.")
@click.option("--name", help="Name of a Dataplane declared in git.")
@click.option("--admin-port", type=int, help="Envoy admin port (default: networking.admin.port, or 9901).")
@click.option("--xds-mode", type=click.Choice(["sotw", "delta"]), default="sotw", show_default=True)
@click.option("--api-address", help="Control plane HTTP API, to look up a git-declared Dataplane (default: cp host, port 5681).")
@_xds_client_options
def bootstrap(
    cp_address: str,
    dataplane_file: str | None,
    mesh: str | None,
    name: str | None,
    admin_port: int | None,
    xds_mode: str,
    api_address: str | None,
    dataplane_token_file: str | None,
    ca_cert: str | None,
    xds_tls: str,
) -> None:
    """Print the Envoy bootstrap for a dataplane."""
    from reconciler.dataplane.bootstrap import bootstrap as make_bootstrap

    host, port = _split_address(cp_address)
    token, ca_pem = _xds_credentials(dataplane_token_file, ca_cert, xds_tls)
    m, n, dp_text, default_admin = _dataplane_identity(dataplane_file, mesh, name, None if admin_port else api_address or f"http://{host}:5681")
    config = make_bootstrap(
        mesh=m, name=n, cp_host=host, cp_port=port, admin_port=admin_port or default_admin, dataplane=dp_text, mode=xds_mode,  # type: ignore[arg-type]
        token=token, ca_cert_pem=ca_pem,
    )
    click.echo(json.dumps(config, indent=2))


@cli.command("run-dataplane")
@click.option("--cp-address", default="127.0.0.1:5678", show_default=True, help="Control plane xDS address host:port.")
@click.option("--dataplane-file", type=click.Path(exists=True, dir_okay=False), help="A Dataplane resource to register when connecting.")
@click.option("--mesh", help="Mesh of a Dataplane declared in git.")
@click.option("--name", help="Name of a Dataplane declared in git.")
@click.option("--admin-port", type=int, help="Envoy admin port (default: networking.admin.port, or 9901).")
@click.option("--xds-mode", type=click.Choice(["sotw", "delta"]), default="sotw", show_default=True)
@click.option("--work-dir", type=click.Path(file_okay=False), help="Where to write the bootstrap (default: a temp dir).")
@click.option("--log-level", default="info", show_default=True, help="Envoy log level.")
@click.option("--api-address", help="Control plane HTTP API, to look up a git-declared Dataplane (default: cp host, port 5681).")
@_xds_client_options
def run_dataplane(
    cp_address: str,
    dataplane_file: str | None,
    mesh: str | None,
    name: str | None,
    admin_port: int | None,
    xds_mode: str,
    work_dir: str | None,
    log_level: str,
    api_address: str | None,
    dataplane_token_file: str | None,
    ca_cert: str | None,
    xds_tls: str,
) -> None:
    """Run Envoy as the sidecar of a dataplane (like kuma-dp); exits with Envoy's exit code."""
    from reconciler.dataplane.bootstrap import bootstrap as make_bootstrap
    from reconciler.dataplane.launcher import run_envoy

    host, port = _split_address(cp_address)
    token, ca_pem = _xds_credentials(dataplane_token_file, ca_cert, xds_tls)
    m, n, dp_text, default_admin = _dataplane_identity(dataplane_file, mesh, name, None if admin_port else api_address or f"http://{host}:5681")
    config = make_bootstrap(
        mesh=m, name=n, cp_host=host, cp_port=port, admin_port=admin_port or default_admin, dataplane=dp_text, mode=xds_mode,  # type: ignore[arg-type]
        token=token, ca_cert_pem=ca_pem,
    )
    sys.exit(run_envoy(config, work_dir=work_dir, log_level=log_level))


@cli.command()
@click.option("--state-dir", default=".demo", show_default=True, help="Where the demo keeps its repositories, logs and state.")
@click.option("--example", default="", help="Configuration to seed the repository with (default: the bundled example-repo/).")
@click.option("--xds-port", default=5678, show_default=True, type=int)
@click.option("--api-port", default=5681, show_default=True, type=int)
@click.option("--envoy-log-level", default="warning", show_default=True)
def demo(state_dir: str, example: str, xds_port: int, api_port: int, envoy_log_level: str) -> None:
    """A bare repository seeded from example-repo/, the server, Envoys and demo services on loopback."""
    from reconciler.demo import DemoSettings, run_demo

    sys.exit(run_demo(DemoSettings(state_dir, example, xds_port, api_port, envoy_log_level)))


@cli.group()
def token() -> None:
    """Dataplane tokens: what a proxy presents to prove which dataplane it is."""


@token.command("issue")
@click.option("--state-dir", default=".reconciler", show_default=True, help="The control plane's state directory (its signing key is made there if absent).")
@click.option("-m", "--mesh", default="default", show_default=True, help="Mesh of the dataplane.")
@click.option("--name", help="Name of the dataplane the token is for.")
@click.option(
    "--tags",
    "--tag",
    "tags",
    multiple=True,
    help="Bind to tags instead of (or besides) a name: kuma.io/service=web,version=v1; a value without = adds to the previous tag (kuma.io/service=web,web-api).",
)
@click.option("--valid-for", default="24h", show_default=True, help="How long the token is valid (24h, 30m, 7d).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the token to this file (mode 0600) instead of printing it.")
def token_issue(state_dir: str, mesh: str, name: str | None, tags: tuple[str, ...], valid_for: str, output: str | None) -> None:
    """Issue a dataplane token, signed with the control plane's key in the state directory."""
    from reconciler.commands.token import run_issue, write_token

    issued = run_issue(state_dir, mesh, name, tags, valid_for)
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
    text = open(token_file, encoding="utf-8").read() if token_file else value or ""
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
@click.option("--policies", "show_policies", is_flag=True, default=True, help="Per inbound/outbound, the merged conf of each policy kind and where it came from.")
@click.option("--config", "show_config", is_flag=True, help="Also print the generated Envoy resources.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@click.argument("mesh")
@click.argument("name")
def inspect_dataplane_command(repo: str, path: str, rev: str | None, worktree: bool, show_policies: bool, show_config: bool, fmt: str, mesh: str, name: str) -> None:
    """Matched policies per inbound and outbound of dataplane MESH/NAME."""
    from reconciler.commands.inspect import inspect_dataplane, inspect_text

    doc = inspect_dataplane(repo, path, rev, worktree, mesh, name, config=show_config)
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else inspect_text(doc))


@cli.command()
@click.option("--repo", default=".", show_default=True, help="Repository (bare or with a work tree).")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--base", required=True, help="Revision the change starts from (the pull request's base).")
@click.option("--head", default="HEAD", show_default=True, help="Revision to plan (the pull request's head or merge commit).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True, help="markdown is made to be posted as a pull-request comment.")
@click.option("--envoy-check/--no-envoy-check", default=True, show_default=True, help="Validate each changed proxy's full config with the real Envoy (--mode validate).")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="Envoy validations run in parallel (default: CPUs, at most 8).")
def plan(repo: str, path: str, base: str, head: str, fmt: str, envoy_check: bool, jobs: int | None) -> None:
    """Dry run of a change from BASE to HEAD: resources, proxies, Envoy config, who may talk to whom.

    Exit 0 when HEAD is valid and Envoy accepts every changed proxy's config, 1 otherwise
    (the reasons are printed), 2 when a revision cannot be read or Envoy cannot be found.
    """
    from reconciler.commands.plan import plan_json, plan_markdown, plan_text, run_plan

    result = run_plan(repo, path, base, head, envoy_check=envoy_check, jobs=jobs)
    render = {"json": plan_json, "markdown": plan_markdown}.get(fmt, plan_text)
    click.echo(render(result))
    sys.exit(EXIT_OK if result.valid else EXIT_INVALID)


@cli.command()
@click.option("--repo", default=".", show_default=True, help="Repository (bare or with a work tree).")
@click.option("--rev", default=None, help="Revision to render (default HEAD).")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write one static Envoy bootstrap per dataplane here (<mesh>.<name>.yaml).")
@click.option("--state-dir", default=None, help="Take builtin mesh CAs from this state directory (the one `serve` uses); default: a throwaway CA.")
@click.option("--check", is_flag=True, help="Also validate each written file with the real Envoy (--mode validate).")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def reconcile(repo: str, rev: str | None, path: str, out_dir: str | None, state_dir: str | None, check: bool, fmt: str) -> None:
    """One-shot reconcile: with --out DIR, render every proxy's Envoy config without a server.

    Exit 0 when written, 1 when the revision is invalid (nothing is written) or Envoy rejects a
    file (with --check), 2 on usage or repository errors.
    """
    from reconciler.commands.reconcile_out import render_json, render_out, render_text

    if not out_dir:
        raise click.UsageError("missing option '--out' DIR: where to write the static Envoy configs")
    result = render_out(repo, path, rev, out_dir, state_dir=state_dir, check=check)
    click.echo(render_json(result) if fmt == "json" else render_text(result))
    sys.exit(EXIT_OK if result.ok else EXIT_INVALID)


@cli.group()
def hook() -> None:
    """A git pre-receive hook that refuses pushes of invalid configuration."""


@hook.command("install")
@click.option("--repo", required=True, help="The (bare) repository that receives pushes.")
@click.option("--branch", default="main", show_default=True, help="Branch whose pushes are validated; other refs pass.")
@click.option("--path", default="", help="Only read files under this directory of the repository.")
@click.option("--force", is_flag=True, help="Replace a pre-receive hook that reconciler did not install.")
def hook_install(repo: str, branch: str, path: str, force: bool) -> None:
    """Install the pre-receive hook into REPO (it runs this Python by absolute path)."""
    from reconciler.commands.hook import install_hook

    done = install_hook(repo, branch, path, force=force)
    click.echo(f"{'replaced' if done.replaced else 'installed'} {done.path}: pushes to refs/heads/{done.branch} are validated with {done.python}")


@hook.command("pre-receive")
@click.option("--repo", default=None, help="Repository the hook runs in (default: $GIT_DIR, else the current directory).")
@click.option("--branch", default="main", show_default=True)
@click.option("--path", default="")
def hook_pre_receive(repo: str | None, branch: str, path: str) -> None:
    """Run by the installed hook: reads `<old> <new> <ref>` lines on stdin, exits 1 to refuse."""
    import os

    from reconciler.commands.hook import check_updates, open_for_hook, parse_updates

    repository = open_for_hook(repo or os.environ.get("GIT_DIR") or ".")
    verdicts = check_updates(repository, parse_updates(sys.stdin.read()), branch, path)
    for v in verdicts:
        for line in v.lines:
            click.echo(line)
    sys.exit(EXIT_OK if all(v.accepted for v in verdicts) else EXIT_INVALID)


def main() -> None:
    cli(prog_name="reconciler")


if __name__ == "__main__":
    main()
