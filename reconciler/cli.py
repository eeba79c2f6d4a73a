"""The `reconciler` command: click wiring only; each command's logic is in reconciler.commands."""

from __future__ import annotations

import logging
import sys

import click

from reconciler.commands.errors import EXIT_INVALID, EXIT_OK

__all__ = ["main", "cli"]

FORMATS = click.Choice(["text", "json"])


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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


def main() -> None:
    cli(prog_name="reconciler")


if __name__ == "__main__":
    main()
