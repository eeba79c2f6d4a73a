"""`reconciler keys`: make the shared keys an HA install reads from `serve --keys-dir DIR`.

`keys init --out DIR` creates every key once (admin token, xDS CA, a token signing key, and
with `--repo` the builtin CA of every mesh backend of the branch's head), keeps what exists,
and prints the `kubectl create secret` command that puts DIR in a Secret. `keys
rotate-token-key --dir DIR` adds the next token signing key. The layout is described in
reconciler/ca/keys_dir.py and docs/operations.md ("Keys").
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from reconciler.ca.keys_dir import TOKEN_KEY_PREFIX
from reconciler.ca.keys_init import builtin_cas, make_keys
from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.statefiles import StateFileError
from reconciler.commands.errors import RepositoryError
from reconciler.commands.options import branch_option, path_option
from reconciler.commands.read import read_snapshot

__all__ = ["keys_group", "run_init", "secret_command", "run_rotate_token_key", "SECRET_NAME"]

SECRET_NAME = "reconciler-keys"


def run_init(out: str, repo: str | None = None, branch: str = "main", path: str = "") -> list[Path]:
    """Create the keys of `out` that are missing (with `repo`, the CAs its branch head needs); the files made."""
    cas = builtin_cas(read_snapshot(repo, path, f"refs/heads/{branch}", False)) if repo else []
    try:
        return make_keys(Path(out), cas)
    except (StateFileError, OSError) as e:
        raise RepositoryError(str(e)) from None


def secret_command(out: str, name: str = SECRET_NAME) -> str:
    """The kubectl command that makes (or, piped to apply, updates) the Secret from every file of `out`."""
    files = sorted(p for p in Path(out).iterdir() if p.is_file() and not p.name.startswith("."))
    lines = [f"kubectl create secret generic {name}", *(f"--from-file={shlex.quote(str(p))}" for p in files)]
    return " \\\n    ".join(lines) + " \\\n    --dry-run=client -o yaml | kubectl apply -f -"


def run_rotate_token_key(directory: str) -> str:
    """Add the next token signing key to a keys directory; a line naming it and what to do next."""
    keys = SigningKeys(Path(directory), {}, shared=True)
    if not Path(directory).is_dir():
        raise RepositoryError(f"no keys directory {directory}: make it with `reconciler keys init --out {directory}`")
    try:
        keys.reload(strict=True)
        older = keys.key_ids()
        kid = keys.add_key()
    except StateFileError as e:
        raise RepositoryError(str(e)) from None
    return f"token signing key {keys.file(kid).name} created: update the Secret; new tokens are signed with it, " + (
        f"and tokens of {', '.join(f'{TOKEN_KEY_PREFIX}{k}.pem' for k in older)} stay valid until that file is removed from the Secret"
        if older
        else "and it is the only one"
    )


@click.group("keys")
def keys_group() -> None:
    """Shared keys for `serve --keys-dir` (several replicas, a Kubernetes Secret)."""


@keys_group.command("init")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to make the keys in (created, mode 0700).")
@click.option("--repo", default=None, help="Configuration repository: also make the builtin CA of every mesh backend its branch uses.")
@branch_option("Branch whose head names the meshes.")
@path_option()
@click.option("--secret-name", default=SECRET_NAME, show_default=True, help="Name of the Secret in the printed kubectl command.")
def keys_init(out: str, repo: str | None, branch: str, path: str, secret_name: str) -> None:
    """Create every shared key once (existing files are kept, never overwritten; mode 0600)."""
    made = run_init(out, repo, branch, path)
    for p in made:
        click.echo(f"created {p}")
    if not made:
        click.echo(f"every key is already in {out}: nothing changed")
    click.echo(
        f"\nBack {out} up somewhere safe (losing a CA key forces new certificates on every proxy), then create or update the Secret:\n\n"
        + secret_command(out, secret_name)
    )


@keys_group.command("rotate-token-key")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False), help="The keys directory.")
def keys_rotate_token_key(directory: str) -> None:
    """Add the next dataplane-token signing key (new tokens use it; older keys verify until removed)."""
    click.echo(run_rotate_token_key(directory))
