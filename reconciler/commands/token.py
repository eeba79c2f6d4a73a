"""`reconciler token`: issue dataplane tokens with the control plane's signing key, and read them.

Tokens are issued offline from the state directory (where `serve` keeps the signing key),
like `kumactl generate dataplane-token --signing-key-path`: the HTTP API has no
authentication, so it does not hand out tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.statefiles import StateFileError
from reconciler.ca.tokens import (
    TokenError,
    decode_unverified,
    issue_token,
    parse_duration,
    parse_tags,
    revocation_secret_name,
    verify_token,
)
from reconciler.commands.errors import InvalidConfig, RepositoryError
from reconciler.commands.options import format_option, state_dir_option
from reconciler.errors import escape_control

__all__ = ["run_issue", "write_token", "run_rotate_key", "run_inspect", "inspect_text", "token_group"]


def run_issue(
    state_dir: str, mesh: str, name: str | None, tags: Iterable[str], valid_for: str, workload: str = "", keys_dir: str | None = None
) -> str:
    """A signed token for dataplane `name` (or any dataplane with `tags`) of `mesh`; with
    `workload`, only for dataplanes labelled `kuma.io/workload: <workload>`. With `keys_dir`,
    signed with the newest key of the shared keys directory (accepted by every replica)."""
    try:
        seconds = parse_duration(valid_for)
        tag_map = parse_tags(tags)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not name and not tag_map:
        raise click.UsageError("give --name (one dataplane) or --tags (every dataplane with these tags)")
    if seconds <= 0:
        raise click.UsageError("--valid-for must be positive")
    with _usable_keys():
        keys = _shared_keys(keys_dir) if keys_dir else _state_keys(state_dir)
    try:
        return issue_token(keys, mesh=mesh, name=name or "", tags=tag_map, valid_for=seconds, workload=workload)
    except ValueError as e:  # a validity past year 9999
        raise click.UsageError(str(e)) from None


def _shared_keys(keys_dir: str) -> SigningKeys:
    if not Path(keys_dir).is_dir():
        raise click.UsageError(f"no keys directory {keys_dir}: make it with `reconciler keys init --out {keys_dir}`")
    return SigningKeys.open_shared(keys_dir)


def _state_keys(state_dir: str) -> SigningKeys:
    if not SigningKeys.open(state_dir, create=False).key_ids():
        click.echo(
            f"note: no signing key in {state_dir}: created one; only a control plane with --state-dir {state_dir} accepts this token",
            err=True,
        )
    return SigningKeys.open(state_dir)


@contextlib.contextmanager
def _usable_keys() -> Iterator[None]:
    """A key file that cannot be used, or a lost key, ends the command with exit 2 and the message."""
    try:
        yield
    except StateFileError as e:
        raise RepositoryError(str(e)) from None


def write_token(path: str, token: str) -> None:
    """Write a token to a file only its owner can read (mode 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")


def run_rotate_key(state_dir: str) -> str:
    """Add the next signing key to the state directory; a running control plane uses it for
    tokens it meets, and new tokens are signed with it. Returns a line naming the key."""
    with _usable_keys():
        keys = SigningKeys.open(state_dir)
        kid = keys.add_key()
    older = [k for k in keys.key_ids() if k != kid]
    return (
        f"signing key {kid} created in {keys.directory}; tokens of key(s) {', '.join(older)} stay valid until "
        f"{' and '.join(f'{k}.pem and {k}.pub' for k in older)} are removed and the control plane restarted"
    )


def run_inspect(token: str, state_dir: str | None, keys_dir: str | None = None) -> dict[str, Any]:
    """The claims of a token; with a state (or keys) directory, also whether its signature and expiry check out."""
    try:
        _, claims, _, _ = decode_unverified(token)
    except TokenError as e:
        raise InvalidConfig(str(e)) from None
    doc = claims.to_json() | {"revocationSecret": revocation_secret_name(claims.mesh)}
    if keys_dir is not None or state_dir is not None:
        if keys_dir is None and not (Path(str(state_dir)) / "dataplane-tokens").is_dir():
            raise click.UsageError(f"no signing keys in {state_dir}")
        with _usable_keys():
            keys = _shared_keys(keys_dir) if keys_dir else SigningKeys.open(str(state_dir), create=False)
        try:
            verify_token(token, keys)
            doc["verified"] = "valid"
        except TokenError as e:
            doc["verified"] = str(e)
    return doc


def inspect_text(doc: dict[str, Any]) -> str:
    lines = [
        f"id:        {doc['id']}",
        f"mesh:      {doc['mesh']}",
        f"name:      {doc['name'] or '(any, bound by tags)'}",
    ]
    if doc["tags"]:
        lines.append("tags:      " + json.dumps(doc["tags"]))
    if doc.get("workload"):
        lines.append(f"workload:  {doc['workload']}")
    lines += [f"issued:    {doc['issuedAt']}", f"expires:   {doc['expiresAt']}", f"key id:    {doc['kid']}"]
    if "verified" in doc:
        lines.append(f"verified:  {doc['verified']}")
    lines.append(f"revoke by adding the id to Secret {doc['revocationSecret']} in mesh {doc['mesh']}")
    # An unverified token is anybody's text: its claims are shown as text, one line each.
    return "\n".join(map(escape_control, lines))


keys_dir_option = click.option(
    "--keys-dir",
    default=None,
    envvar="RECONCILER_KEYS_DIR",  # as serve: one setting for the commands run beside a replica
    help="The shared keys directory of `serve --keys-dir` (made by `reconciler keys init`): its signing keys, not the state directory's.",
)


@click.group("token")
def token_group() -> None:
    """Dataplane tokens: what a proxy presents to prove which dataplane it is."""


@token_group.command("issue")
@state_dir_option("The control plane's state directory (its signing key is made there if absent).")
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
@keys_dir_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the token to this file (mode 0600) instead of printing it.",
)
def token_issue(
    state_dir: str,
    mesh: str,
    name: str | None,
    tags: tuple[str, ...],
    workload: str,
    valid_for: str,
    keys_dir: str | None,
    output: str | None,
) -> None:
    """Issue a dataplane token, signed with the control plane's key in the state directory (or the keys directory)."""
    issued = run_issue(state_dir, mesh, name, tags, valid_for, workload, keys_dir)
    if output:
        write_token(output, issued)
    else:
        click.echo(issued)


@token_group.command("rotate-key")
@state_dir_option("The control plane's state directory.")
def token_rotate_key(state_dir: str) -> None:
    """Make a new signing key: new tokens use it, tokens of older keys stay valid until their key file is removed."""
    click.echo(run_rotate_key(state_dir))


@token_group.command("inspect")
@click.option("--file", "token_file", type=click.Path(exists=True, dir_okay=False), help="Read the token from this file.")
@state_dir_option("Also verify signature and expiry with the signing keys of this state directory.", default=None)
@keys_dir_option
@format_option
@click.argument("value", required=False)
def token_inspect(token_file: str | None, state_dir: str | None, keys_dir: str | None, fmt: str, value: str | None) -> None:
    """Show a token's ID (what revocation names), mesh, name, tags and expiry."""
    if bool(token_file) == bool(value):
        raise click.UsageError("give the token, or --file")
    text = Path(token_file).read_text(encoding="utf-8") if token_file else value or ""
    doc = run_inspect(text, state_dir, keys_dir)
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else inspect_text(doc))
