"""Exit codes, carried by exceptions (documented once, in docs/cli.md).

0  success
1  rejected input: the configuration is invalid (the errors are printed)
2  usage, repository or revision errors: nothing was validated
3  an internal error, a bug in mesh-reconciler (reconciler.commands.validate.InternalBug)

A command that has printed its result and must still fail raises `CommandExit(code)`; the
`reconciler` group (reconciler.cli) turns it into the exit code, the only place that exits.
"""

from __future__ import annotations

import click

from reconciler.errors import escape_control

__all__ = ["InvalidConfig", "RepositoryError", "CommandExit", "exit_code_of", "EXIT_OK", "EXIT_INVALID", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class _Escaped(click.ClickException):
    """Messages often quote a path, a revision or a value from the repository: each line is
    printed with its control characters escaped, so no such name drives the terminal."""

    def format_message(self) -> str:
        return "\n".join(map(escape_control, self.message.split("\n")))


class InvalidConfig(_Escaped):
    exit_code = EXIT_INVALID


class RepositoryError(_Escaped):
    exit_code = EXIT_USAGE


class CommandExit(Exception):
    """End the command with `code`, its output already printed (no message of its own)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def exit_code_of(ok: bool) -> CommandExit:
    """0 when the command's verdict is good, else 1 (the reasons were printed)."""
    return CommandExit(EXIT_OK if ok else EXIT_INVALID)
