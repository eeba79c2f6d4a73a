"""What reading a repository may cost: the limits on files, commits and a proxy's Dataplane.

A file is bounded by its size in bytes (checked before it is read) and by the values its YAML
expands to, aliases counted each time they are used (checked while it is parsed: what stops an
alias bomb, which is small on disk); a commit by the same two sums over its files and by the
entries walked. The limits sit far above real configuration (docs/validation.md, "Limits").
"""

from __future__ import annotations

from reconciler.errors import Problem
from reconciler.source.yamldoc import NodeBudget

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_FILE_NODES",
    "MAX_COMMIT_NODES",
    "MAX_COMMIT_BYTES",
    "MAX_COMMIT_ENTRIES",
    "MAX_DATAPLANE_METADATA_BYTES",
    "MAX_DATAPLANE_METADATA_NODES",
    "file_budget",
    "commit_budget",
    "commit_too_large",
    "commit_too_many_entries",
    "dataplane_metadata_budget",
    "amount",
]

MAX_FILE_BYTES = 1024 * 1024
"""Size of one file; the largest real Kuma files are a few KiB."""
MAX_FILE_NODES = 200_000
"""Values one file may expand to, all its documents and alias uses counted. A real file has one
value per 15-40 bytes, so a full 1 MiB file of real YAML stays under 70,000."""
MAX_COMMIT_NODES = 1_000_000
"""Values all the files of one commit may expand to: ten times a repository of 5,000 files
(which has about 92,000), so only alias tricks or a repository far past any measured reach it."""
MAX_COMMIT_BYTES = 32 * 1024 * 1024
"""Bytes of all the files of one commit: twenty times that repository (1.4 MiB). Git compresses
what it stores, so a push of a few KiB can hold a thousand paths to one 1 MiB blob of one
scalar: few values, but all of it read and kept."""
MAX_COMMIT_ENTRIES = 500_000
"""Files and folders walked under the configured path, YAML or not: a hundred times that
repository. An entry costs 2 (a README) to 25 (an empty YAML file) microseconds here, so a tree
of millions of empty files, a few KiB to push, cannot hold the reconciler for minutes."""
MAX_DATAPLANE_METADATA_BYTES = 128 * 1024
"""Size of the Dataplane a proxy sends in its node metadata (`dataplane.resource`)."""
MAX_DATAPLANE_METADATA_NODES = 20_000
"""Values that Dataplane may expand to: one Dataplane with a thousand outbounds has about 4,000."""

_ALIASES = "counting each use of an alias (*ref) in full"


def file_budget(limit: int = MAX_FILE_NODES) -> NodeBudget:
    """The budget of one repository file, shared by its documents."""
    return NodeBudget(
        limit,
        f"file expands to more than {limit:,} values, {_ALIASES}; it reached the limit here: write the values out instead of aliases, or split the file",
    )


def commit_budget(limit: int = MAX_COMMIT_NODES) -> NodeBudget:
    """The budget of one commit (or work tree), shared by all its files."""
    return NodeBudget(
        limit,
        f"the commit's YAML files expand to more than {limit:,} values in all, {_ALIASES}; this file reached the limit here: "
        "write the values out instead of aliases, or keep fewer files under the configured path",
    )


def commit_too_large(path: str, limit: int = MAX_COMMIT_BYTES) -> Problem:
    """The problem of the file that takes a commit past `limit` bytes; it is not read."""
    return Problem(
        path,
        1,
        None,
        "",
        f"the commit's YAML files are over {amount(limit, ' bytes')} in all, and this file passed the limit: "
        "keep fewer or smaller files under the configured path",
    )


def commit_too_many_entries(path: str, limit: int = MAX_COMMIT_ENTRIES) -> Problem:
    """The problem of the entry that takes a commit past `limit` files and folders."""
    return Problem(
        path,
        None,
        None,
        "",
        f"the configured path holds more than {limit:,} files and folders, and reading stopped here: "
        "point the reconciler at the directory of the mesh configuration (--path)",
    )


def dataplane_metadata_budget(limit: int = MAX_DATAPLANE_METADATA_NODES) -> NodeBudget:
    """The budget of the one Dataplane a proxy may send in its node metadata."""
    return NodeBudget(limit, f"Dataplane expands to more than {limit:,} values, {_ALIASES}; write the values out instead of aliases")


def amount(n: int, unit: str = "") -> str:
    """`1,048,576 (1 MiB)`, or just `6,016` when no binary unit divides it."""
    for binary, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n:,}{unit} ({n // scale} {binary})"
    return f"{n:,}{unit}"
