"""`reconciler inspect policy KIND NAME` (the dataplanes a policy selects, like `kumactl
inspect <policy> NAME` and the API's `_resources/dataplanes`) and `reconciler inspect
dataplanes MESH` (every dataplane with how many policies select it)."""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.commands.errors import InvalidConfig, RepositoryError
from reconciler.commands.options import format_option, path_option, repo_option
from reconciler.commands.read import read_snapshot
from reconciler.inspection.dataplanes import dataplane_meta, policy_dataplanes
from reconciler.inspection.rules import UnknownResource
from reconciler.kind_names import POLICY_KINDS
from reconciler.mesh.model import MeshModel, build_mesh_model
from reconciler.policies.core.match import matched_policies
from reconciler.validate import validate
from reconciler.views.proxy import policy_indexes

__all__ = ["inspect_policy_command", "inspect_dataplanes_command", "policy_kind", "dataplanes_with_policies"]


def policy_kind(word: str) -> str:
    """A policy kind from its name in any case or its plural (`meshretries`, `MeshRetry`)."""
    lower = word.lower()
    for kind in POLICY_KINDS:
        k = kind.lower()
        if lower in (k, k + "s", k + "es") or (k.endswith("y") and lower == k[:-1] + "ies"):
            return kind
    raise click.BadParameter(f"{word!r} is not a policy kind (one of {', '.join(sorted(POLICY_KINDS))})", param_hint="KIND")


def _model(repo: str, path: str | None, rev: str | None, worktree: bool) -> MeshModel:
    snapshot = read_snapshot(repo, path, rev, worktree)
    if not validate(snapshot).valid:
        raise InvalidConfig("the configuration is invalid; run `reconciler validate` for the errors")
    return build_mesh_model(snapshot.resources)


def dataplanes_with_policies(model: MeshModel, mesh: str) -> list[dict[str, Any]]:
    """Each dataplane of `mesh` with the number of policies (Kuma's defaults too) selecting it."""
    if mesh not in model.meshes:
        raise RepositoryError(f"no Mesh {mesh}")
    index = policy_indexes(model)[mesh]
    out = []
    for dp in sorted((d for d in model.dataplanes.values() if d.mesh == mesh), key=lambda d: d.name):
        count = sum(len(matched_policies(kind, dp, index)) for kind in index.by_kind)
        out.append({**dataplane_meta(dp), "policies": count})
    return out


_REPO = "Repository (bare or not), or a directory with --worktree."


@click.command("policy")
@repo_option(_REPO)
@path_option()
@click.option("--rev", default=None, help="Revision to read (default HEAD).")
@click.option("--worktree", is_flag=True, help="Read the files on disk instead of a commit.")
@click.option("--mesh", "-m", default="default", show_default=True, help="The policy's mesh.")
@format_option
@click.argument("kind")
@click.argument("name")
def inspect_policy_command(repo: str, path: str, rev: str | None, worktree: bool, mesh: str, fmt: str, kind: str, name: str) -> None:
    """The dataplanes policy KIND NAME selects (KIND: MeshRetry, meshretry or meshretries)."""
    model = _model(repo, path, rev, worktree)
    try:
        found = policy_dataplanes(model, mesh, policy_kind(kind), name)
    except UnknownResource as e:
        raise RepositoryError(str(e)) from e
    if fmt == "json":
        click.echo(json.dumps({"total": len(found), "items": [dataplane_meta(dp) for dp in found]}, indent=2))
        return
    click.echo("Affected data plane proxies:\n")
    for dp in found:
        click.echo(f"  {dp.name}")


@click.command("dataplanes")
@repo_option(_REPO)
@path_option()
@click.option("--rev", default=None, help="Revision to read (default HEAD).")
@click.option("--worktree", is_flag=True, help="Read the files on disk instead of a commit.")
@format_option
@click.argument("mesh", default="default")
def inspect_dataplanes_command(repo: str, path: str, rev: str | None, worktree: bool, fmt: str, mesh: str) -> None:
    """Every dataplane of MESH (default: default) and how many policies select it."""
    rows = dataplanes_with_policies(_model(repo, path, rev, worktree), mesh)
    if fmt == "json":
        click.echo(json.dumps({"total": len(rows), "items": rows}, indent=2))
        return
    width = max([len("NAME"), *(len(r["name"]) for r in rows)])
    click.echo(f"{'MESH':<10} {'NAME':<{width}} POLICIES")
    for r in rows:
        click.echo(f"{r['mesh']:<10} {r['name']:<{width}} {r['policies']}")
