"""The `reconciler` command: click wiring only; each command's logic is in reconciler.commands."""

from __future__ import annotations

import json
import sys

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
def serve(repo: str, branch: str, path: str, state_dir: str, address: str, xds_port: int, api_port: int, poll_interval: float) -> None:
    """Watch the repository, reconcile each new commit and serve it over xDS."""
    from reconciler.commands.serve import run_serve
    from reconciler.controlplane import ServeSettings

    run_serve(ServeSettings(repo, branch, path, state_dir, address, xds_port, api_port, poll_interval))


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


@cli.command()
@click.option("--cp-address", default="127.0.0.1:5678", show_default=True, help="Control plane xDS address host:port.")
@click.option("--dataplane-file", type=click.Path(exists=True, dir_okay=False), help="A Dataplane resource to register when connecting.")
@click.option("--mesh", help="Mesh of a Dataplane declared in git.")
@click.option("--name", help="Name of a Dataplane declared in git.")
@click.option("--admin-port", type=int, help="Envoy admin port (default: networking.admin.port, or 9901).")
@click.option("--xds-mode", type=click.Choice(["sotw", "delta"]), default="sotw", show_default=True)
@click.option("--api-address", help="Control plane HTTP API, to look up a git-declared Dataplane (default: cp host, port 5681).")
def bootstrap(cp_address: str, dataplane_file: str | None, mesh: str | None, name: str | None, admin_port: int | None, xds_mode: str, api_address: str | None) -> None:
    """Print the Envoy bootstrap for a dataplane."""
    from reconciler.dataplane.bootstrap import bootstrap as make_bootstrap

    host, _, port = cp_address.rpartition(":")
    m, n, dp_text, default_admin = _dataplane_identity(dataplane_file, mesh, name, None if admin_port else api_address or f"http://{host}:5681")
    config = make_bootstrap(mesh=m, name=n, cp_host=host, cp_port=int(port), admin_port=admin_port or default_admin, dataplane=dp_text, mode=xds_mode)  # type: ignore[arg-type]
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
def run_dataplane(cp_address: str, dataplane_file: str | None, mesh: str | None, name: str | None, admin_port: int | None, xds_mode: str, work_dir: str | None, log_level: str, api_address: str | None) -> None:
    """Run Envoy as the sidecar of a dataplane (like kuma-dp); exits with Envoy's exit code."""
    from reconciler.dataplane.bootstrap import bootstrap as make_bootstrap
    from reconciler.dataplane.launcher import run_envoy

    host, _, port = cp_address.rpartition(":")
    m, n, dp_text, default_admin = _dataplane_identity(dataplane_file, mesh, name, None if admin_port else api_address or f"http://{host}:5681")
    config = make_bootstrap(mesh=m, name=n, cp_host=host, cp_port=int(port), admin_port=admin_port or default_admin, dataplane=dp_text, mode=xds_mode)  # type: ignore[arg-type]
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


def main() -> None:
    cli(prog_name="reconciler")


if __name__ == "__main__":
    main()
