"""`reconciler inspect dataplane MESH NAME`: what a proxy gets, and from which policies."""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.commands.errors import InvalidConfig, RepositoryError
from reconciler.commands.options import compact_outbounds_option, format_option, path_option, repo_option
from reconciler.commands.read import read_snapshot
from reconciler.frozen import thaw
from reconciler.mesh.model import build_mesh_model
from reconciler.policies.core.match import Conf, resolve
from reconciler.policies.meshproxypatch.shape import patches_missing_listeners
from reconciler.policies.registry import PLUGIN_ORDER
from reconciler.render import render
from reconciler.validate import validate
from reconciler.views.proxy import destination_of
from reconciler.xds.resources import SHORT_NAMES

__all__ = ["inspect_dataplane", "inspect_text", "inspect_group"]


def _conf_json(kind: str, conf: Conf | None) -> dict[str, Any] | None:
    if conf is None:
        return None
    return {"kind": kind, "conf": thaw(conf.value), "from": [{"policy": str(c.policy), "pointer": c.pointer} for c in conf.origins]}


def inspect_dataplane(
    repo: str,
    path: str | None,
    rev: str | None,
    worktree: bool,
    mesh: str,
    name: str,
    *,
    config: bool = False,
    compact_outbounds: int | None = None,
) -> dict[str, Any]:
    snapshot = read_snapshot(repo, path, rev, worktree)
    report = validate(snapshot)
    if not report.valid:
        raise InvalidConfig("the configuration is invalid; run `reconciler validate` for the errors")
    model = build_mesh_model(snapshot.resources)
    node = f"{mesh}.{name}"
    rendering = render(model, None, compact_outbounds, only=(node,), generate_config=config)
    view = rendering.views.get(node)
    if view is None:
        raise RepositoryError(f"no Dataplane {mesh}/{name} in {snapshot.revision or 'the work tree'}")
    index = rendering.indexes[mesh]
    dp = view.dataplane
    kinds = list(PLUGIN_ORDER)
    out: dict[str, Any] = {
        "dataplane": node,
        "revision": snapshot.revision,
        "outboundShape": {"shape": view.shape.shape, "reason": view.shape.reason},
        "inbounds": [],
        "outbounds": [],
        "proxy": [],
    }
    for i in dp.inbounds:
        confs = [c for k in kinds if (c := _conf_json(k, resolve(k, dp, i, index))) is not None]
        out["inbounds"].append({"address": i.address, "port": i.port, "service": i.service, "protocol": i.protocol, "policies": confs})
    for o in view.outbounds:
        dest = destination_of(o)
        confs = [c for k in kinds if (c := _conf_json(k, resolve(k, dp, dest, index))) is not None]
        out["outbounds"].append(
            {"address": o.outbound.address, "port": o.outbound.port, "service": o.service_name, "protocol": o.protocol, "policies": confs}
        )
    out["proxy"] = [c for k in kinds if (c := _conf_json(k, resolve(k, dp, None, index))) is not None]
    out["warnings"] = [p.render() for p in patches_missing_listeners(dp, view.shape, index)]
    if config:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for r in rendering.resources[node]:
            grouped.setdefault(SHORT_NAMES[r.type_url], []).append(r.public_dict())
        out["envoy"] = grouped
    return out


def _policies_text(policies: list[dict[str, Any]], indent: str) -> list[str]:
    if not policies:
        return [f"{indent}(no policy)"]
    lines = []
    for p in policies:
        lines.append(f"{indent}{p['kind']}: {json.dumps(p['conf'], sort_keys=True)}")
        for origin in p["from"]:
            lines.append(f"{indent}  from {origin['policy']} {origin['pointer']}")
    return lines


def inspect_text(doc: dict[str, Any]) -> str:
    shape = doc["outboundShape"]
    lines = [f"Dataplane {doc['dataplane']} at {doc['revision'] or 'work tree'}", f"outbound shape: {shape['shape']} ({shape['reason']})"]
    for i in doc["inbounds"]:
        lines.append(f"inbound {i['address']}:{i['port']} ({i['service']}, {i['protocol']})")
        lines += _policies_text(i["policies"], "  ")
    for o in doc["outbounds"]:
        lines.append(f"outbound {o['address']}:{o['port']} -> {o['service']} ({o['protocol']})")
        lines += _policies_text(o["policies"], "  ")
    if doc["proxy"]:
        lines.append("proxy")
        lines += _policies_text(doc["proxy"], "  ")
    lines += doc["warnings"]
    if "envoy" in doc:
        lines.append("")
        lines.append(json.dumps(doc["envoy"], indent=2))
    return "\n".join(lines)


@click.group("inspect")
def inspect_group() -> None:
    """What a proxy is given, and which policies contributed (offline, from a revision)."""


@inspect_group.command("dataplane")
@repo_option("Repository (bare or not), or a directory with --worktree.")
@path_option()
@click.option("--rev", default=None, help="Revision to read (default HEAD).")
@click.option("--worktree", is_flag=True, help="Read the files on disk instead of a commit.")
@click.option(
    "--policies",
    "show_policies",
    is_flag=True,
    default=True,
    help="Per inbound/outbound, the merged conf of each policy kind and where it came from.",
)
@click.option("--config", "show_config", is_flag=True, help="Also print the generated Envoy resources.")
@format_option
@compact_outbounds_option
@click.argument("mesh")
@click.argument("name")
def inspect_dataplane_command(
    repo: str,
    path: str,
    rev: str | None,
    worktree: bool,
    show_policies: bool,
    show_config: bool,
    fmt: str,
    compact_outbounds: int | None,
    mesh: str,
    name: str,
) -> None:
    """Matched policies per inbound and outbound of dataplane MESH/NAME, and its outbound shape."""
    doc = inspect_dataplane(repo, path, rev, worktree, mesh, name, config=show_config, compact_outbounds=compact_outbounds)
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else inspect_text(doc))
