"""The `reconciler` command: the click group and its commands, wired.

Each command is declared, with its options, beside its logic in reconciler/commands/<command>.py
(shared options in reconciler/commands/options.py) and listed in `COMMANDS`; `demo` is declared
here because the demo sits beside the commands, not below them. Exit codes travel as exceptions: click's own
(usage errors, `RepositoryError`, `InvalidConfig`, `InternalBug`) and `CommandExit` for a
command that printed its verdict; `ReconcilerGroup.invoke` turns the latter into the exit code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import click

from reconciler.commands.errors import CommandExit
from reconciler.commands.options import log_format_option, state_dir_option

__all__ = ["main", "cli", "ReconcilerGroup", "COMMANDS"]


COMMANDS = {
    "validate": "reconciler.commands.validate:validate_command",
    "diff": "reconciler.commands.diff:diff_command",
    "serve": "reconciler.commands.serve:serve_command",
    "status": "reconciler.commands.status:status_command",
    "bootstrap": "reconciler.commands.dataplane:bootstrap_command",
    "run-dataplane": "reconciler.commands.dataplane:run_dataplane_command",
    "token": "reconciler.commands.token:token_group",
    "inspect": "reconciler.commands.inspect:inspect_group",
    "plan": "reconciler.commands.plan:plan_command",
    "reconcile": "reconciler.commands.reconcile_out:reconcile_command",
    "history": "reconciler.commands.history:history_command",
    "rollback": "reconciler.commands.history:rollback_command",
    "resume": "reconciler.commands.history:resume_command",
    "hook": "reconciler.commands.hook:hook_group",
    "keys": "reconciler.commands.keys:keys_group",
    "transparent-proxy": "reconciler.commands.transparent_proxy:transparent_proxy_group",
}
"""Command name → where it is declared. Loaded when named: a command starts without importing
the others' dependencies (the hook runs on every push; `serve` alone needs gRPC)."""


class LazyCommands(MutableMapping[str, click.Command]):
    """The group's commands: those of `COMMANDS` are imported when first looked up."""

    def __init__(self, where: Mapping[str, str]) -> None:
        self._where = dict(where)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, _, attr = self._where[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command), self._where[name]
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._where.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if self._where.pop(name, None) is None:
            del self._loaded[name]
        else:
            self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._where, *self._loaded}))

    def __len__(self) -> int:
        return len({*self._where, *self._loaded})


class ReconcilerGroup(click.Group):
    """The `reconciler` group: its commands load when named, and it is the one place where a
    command's `CommandExit` becomes the process's exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(COMMANDS)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandExit as e:
            ctx.exit(e.code)


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    from reconciler.logsetup import configure

    configure(verbose, log_format)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@log_format_option()
@click.version_option(package_name="mesh-reconciler")
def cli(verbose: bool, log_format: str) -> None:
    """GitOps control plane for a Kuma-compatible service mesh."""
    _setup_logging(verbose, log_format)


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
