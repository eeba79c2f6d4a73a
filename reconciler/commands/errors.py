"""Exit codes, carried by exceptions (documented once, in docs/cli.md).

0  success
1  rejected input: the configuration is invalid (the errors are printed)
2  usage, repository or revision errors: nothing was validated
"""

from __future__ import annotations

import click

__all__ = ["InvalidConfig", "RepositoryError", "EXIT_OK", "EXIT_INVALID", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


class InvalidConfig(click.ClickException):
    exit_code = EXIT_INVALID


class RepositoryError(click.ClickException):
    exit_code = EXIT_USAGE
