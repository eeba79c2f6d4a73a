"""Options shared by several commands, declared once.

Each is a decorator (or a factory of one, when commands word the help differently): the same
flag name, destination, type and default everywhere, so `--repo` or `--format` cannot drift
from one command to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "FORMATS",
    "Decorator",
    "repo_option",
    "path_option",
    "format_option",
    "server_option",
    "state_dir_option",
    "branch_option",
    "timeout_option",
    "admin_token_file_option",
    "signature_options",
    "compact_outbounds_option",
    "log_format_option",
]

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

FORMATS = click.Choice(["text", "json"])

PATH_HELP = "Only read files under this directory of the repository."


def repo_option(help: str, default: str | None = ".", *, required: bool = False) -> Decorator[Any]:
    """`--repo`: the repository a command reads."""
    return click.option("--repo", default=None if required else default, required=required, show_default=default is not None, help=help)


def path_option(help: str | None = PATH_HELP) -> Decorator[Any]:
    """`--path`: read only the files under this directory (as `serve --path`)."""
    return click.option("--path", default="", help=help)


format_option: Decorator[Any] = click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
"""`--format text|json`."""


def log_format_option() -> Decorator[Any]:
    """`--log-format text|json` (the group's, beside `--verbose`): how log records are written to stderr."""
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        envvar="RECONCILER_LOG_FORMAT",
        help="Log records on stderr as text lines, or as one JSON object per line (time, level, logger, message, fields).",
    )


def server_option(help: str) -> Decorator[Any]:
    """`--server URL`: ask a running control plane's HTTP API instead of the repository."""
    return click.option("--server", default=None, help=help)


def state_dir_option(help: str, default: str | None = ".reconciler") -> Decorator[Any]:
    """`--state-dir`: the control plane's state directory."""
    return click.option("--state-dir", default=default, show_default=default is not None, help=help)


def branch_option(help: str | None = None) -> Decorator[Any]:
    return click.option("--branch", default="main", show_default=True, help=help)


timeout_option: Decorator[Any] = click.option(
    "--timeout", default="30s", show_default=True, help="With --server: how long to wait for the proxies' ACKs."
)

admin_token_file_option: Decorator[Any] = click.option(
    "--admin-token-file",
    type=click.Path(dir_okay=False),
    help="With --server: the server's admin token (else $RECONCILER_ADMIN_TOKEN, else <--state-dir>/admin-token).",
)


def signature_options(allowed_signers_help: str | None, gpg_keyring_help: str | None, *, paths: bool = True) -> Decorator[Any]:
    """`--verify-signatures ALLOWED_SIGNERS` (as `allowed_signers`) and `--gpg-keyring FILE`."""
    kind = {"type": click.Path(dir_okay=False)} if paths else {"default": None}

    def decorate(f: Any) -> Any:
        f = click.option("--gpg-keyring", help=gpg_keyring_help, **kind)(f)
        return click.option("--verify-signatures", "allowed_signers", help=allowed_signers_help, **kind)(f)

    return decorate


compact_outbounds_option: Decorator[Any] = click.option(
    "--compact-outbounds",
    type=click.IntRange(min=1),
    envvar="RECONCILER_COMPACT_OUTBOUNDS",
    default=None,
    help="Give proxies with at least this many outbounds the compact outbound shape: one listener for all of them, "
    "instead of Kuma's one per outbound (also $RECONCILER_COMPACT_OUTBOUNDS; a Dataplane's label reconciler.io/outbound-shape "
    "overrides it). Default: Kuma's shape.",
)
