"""The `reconciler` command: the click group and its commands, wired.

Each command is declared, with its options, beside its logic in reconciler/commands/<command>.py
(shared options in reconciler/commands/options.py); `demo` is declared here because the demo
sits beside the commands, not below them. Exit codes travel as exceptions: click's own
(usage errors, `RepositoryError`, `InvalidConfig`, `InternalBug`) and `CommandExit` for a
command that printed its verdict; `ReconcilerGroup.invoke` turns the latter into the exit code.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from reconciler.commands.dataplane import bootstrap_command, run_dataplane_command
from reconciler.commands.diff import diff_command
from reconciler.commands.errors import CommandExit
from reconciler.commands.history import history_command, resume_command, rollback_command
from reconciler.commands.hook import hook_group
from reconciler.commands.inspect import inspect_group
from reconciler.commands.options import state_dir_option
from reconciler.commands.plan import plan_command
from reconciler.commands.reconcile_out import reconcile_command
from reconciler.commands.serve import serve_command
from reconciler.commands.status import status_command
from reconciler.commands.token import token_group
from reconciler.commands.validate import validate_command

__all__ = ["main", "cli", "ReconcilerGroup"]


class ReconcilerGroup(click.Group):
    """The one place a command's `CommandExit` becomes the process's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandExit as e:
            ctx.exit(e.code)


def _setup_logging(verbose: bool) -> None:
    from reconciler.logsetup import configure

    configure(verbose)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.version_option(package_name="mesh-reconciler")
def cli(verbose: bool) -> None:
    """GitOps control plane for a Kuma-compatible service mesh."""
    _setup_logging(verbose)


@cli.command()
@state_dir_option("Where the demo keeps its repositories, logs and state.", default=".demo")
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
    raise CommandExit(run_demo(settings))


for command in (
    validate_command,
    diff_command,
    serve_command,
    status_command,
    bootstrap_command,
    run_dataplane_command,
    token_group,
    inspect_group,
    plan_command,
    reconcile_command,
    history_command,
    rollback_command,
    resume_command,
    hook_group,
):
    cli.add_command(command)


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
