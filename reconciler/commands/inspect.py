"""`reconciler inspect`: what proxies are given and why, offline, from a revision, like
`kumactl inspect` asks a control plane:

- `inspect dataplane MESH NAME`: Kuma's rules of the dataplane (`--type rules`, the default;
  JSON is the document `GET /meshes/{mesh}/dataplanes/{name}/_rules` answers), the merged conf
  per inbound and outbound (`--type policies`), its Envoy config (`--type config`, the
  `_config` document; `--type config-dump`, Envoy's admin config dump);
- `inspect meshgateway MESH NAME`: Kuma's rules of a MeshGateway;
- `inspect policy KIND NAME` and `inspect dataplanes MESH`: commands/inspect_lists.py.
"""

from __future__ import annotations

import json
from typing import Any

import click

from reconciler.commands.errors import InvalidConfig, RepositoryError
from reconciler.commands.inspect_lists import inspect_dataplanes_command, inspect_policy_command
from reconciler.commands.options import compact_outbounds_option, format_option, path_option, repo_option
from reconciler.commands.read import read_snapshot
from reconciler.frozen import thaw
from reconciler.inspection.config_dump import config_dump, xds_config
from reconciler.inspection.rules import UnknownResource, gateway_rules, rules_of_view
from reconciler.inspection.rules_text import rules_text, warnings_text
from reconciler.mesh.model import build_mesh_model
from reconciler.model import Snapshot
from reconciler.policies.core.match import Conf, resolve
from reconciler.policies.meshproxypatch.shape import patches_missing_listeners
from reconciler.policies.registry import PLUGIN_ORDER
from reconciler.render import Rendering, render
from reconciler.validate import validate
from reconciler.views.proxy import destination_of
from reconciler.xds.resources import SHORT_NAMES

__all__ = ["inspect_dataplane", "inspect_rules_doc", "inspect_text", "inspect_group", "TYPES"]

TYPES = ("rules", "policies", "config", "config-dump")


def _conf_json(kind: str, conf: Conf | None) -> dict[str, Any] | None:
    if conf is None:
        return None
    return {"kind": kind, "conf": thaw(conf.value), "from": [{"policy": str(c.policy), "pointer": c.pointer} for c in conf.origins]}


def _rendered(
    repo: str, path: str | None, rev: str | None, worktree: bool, mesh: str, name: str, config: bool, compact_outbounds: int | None
) -> tuple[Snapshot, Rendering]:
    snapshot = read_snapshot(repo, path, rev, worktree)
    report = validate(snapshot)
    if not report.valid:
        raise InvalidConfig("the configuration is invalid; run `reconciler validate` for the errors")
    model = build_mesh_model(snapshot.resources)
    node = f"{mesh}.{name}"
    rendering = render(model, None, compact_outbounds, only=(node,), generate_config=config)
    if node not in rendering.views:
        raise RepositoryError(f"no Dataplane {mesh}/{name} in {snapshot.revision or 'the work tree'}")
    return snapshot, rendering


def inspect_rules_doc(
    repo: str, path: str | None, rev: str | None, worktree: bool, mesh: str, name: str, *, compact_outbounds: int | None = None
) -> tuple[dict[str, Any], str]:
    """Kuma's InspectRules of the dataplane, and the text header (revision, outbound shape)."""
    snapshot, rendering = _rendered(repo, path, rev, worktree, mesh, name, False, compact_outbounds)
    view = rendering.views[f"{mesh}.{name}"]
    header = f"Dataplane {mesh}.{name} at {snapshot.revision or 'work tree'}\noutbound shape: {view.shape.shape} ({view.shape.reason})"
    return rules_of_view(view, rendering.indexes[mesh]), header


def inspect_config(
    repo: str, path: str | None, rev: str | None, worktree: bool, mesh: str, name: str, *, dump: bool, compact_outbounds: int | None = None
) -> dict[str, Any]:
    """The generated Envoy config: Kuma's `_config` document, or Envoy's admin config dump."""
    snapshot, rendering = _rendered(repo, path, rev, worktree, mesh, name, True, compact_outbounds)
    resources = rendering.resources[f"{mesh}.{name}"]
    return config_dump(resources, snapshot.revision or "") if dump else {"xds": xds_config(resources)}


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
    """`--type policies`: the merged conf of each kind per inbound and outbound, and where from."""
    snapshot, rendering = _rendered(repo, path, rev, worktree, mesh, name, config, compact_outbounds)
    node = f"{mesh}.{name}"
    view = rendering.views[node]
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
    """`--type policies` as text."""
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


def _rules_output(doc: dict[str, Any], header: str) -> str:
    # Warnings last, as `validate` prints them: a script may look for them there.
    return "\n".join([header, *(rules_text(doc) or ["(no policy applies)"]), *warnings_text(doc)])


@click.group("inspect")
def inspect_group() -> None:
    """What proxies are given, and which policies contributed (offline, from a revision)."""


@inspect_group.command("dataplane")
@repo_option("Repository (bare or not), or a directory with --worktree.")
@path_option()
@click.option("--rev", default=None, help="Revision to read (default HEAD).")
@click.option("--worktree", is_flag=True, help="Read the files on disk instead of a commit.")
@click.option(
    "--type",
    "inspection_type",
    type=click.Choice(TYPES),
    default=None,
    help="rules: Kuma's rules per policy type with origins (default; JSON = the API's `_rules`); policies: the merged conf "
    "per inbound and outbound; config: the generated Envoy config (the API's `_config`); config-dump: as Envoy's admin shows it.",
)
@click.option("--policies", "show_policies", is_flag=True, help="Same as --type policies.")
@click.option("--config", "show_config", is_flag=True, help="--type policies with the generated Envoy resources after it.")
@format_option
@compact_outbounds_option
@click.argument("mesh")
@click.argument("name")
def inspect_dataplane_command(
    repo: str,
    path: str,
    rev: str | None,
    worktree: bool,
    inspection_type: str | None,
    show_policies: bool,
    show_config: bool,
    fmt: str,
    compact_outbounds: int | None,
    mesh: str,
    name: str,
) -> None:
    """The rules, merged confs or Envoy config of dataplane MESH/NAME, like `kumactl inspect dataplane`."""
    if inspection_type is not None and (show_policies or show_config):
        raise click.UsageError("--type cannot be combined with --policies or --config")
    kind = inspection_type or ("policies" if show_policies or show_config else "rules")
    if kind == "policies":
        doc = inspect_dataplane(repo, path, rev, worktree, mesh, name, config=show_config, compact_outbounds=compact_outbounds)
        click.echo(json.dumps(doc, indent=2) if fmt == "json" else inspect_text(doc))
    elif kind == "rules":
        rules, header = inspect_rules_doc(repo, path, rev, worktree, mesh, name, compact_outbounds=compact_outbounds)
        click.echo(json.dumps(rules, indent=2) if fmt == "json" else _rules_output(rules, header))
    else:
        dump = inspect_config(repo, path, rev, worktree, mesh, name, dump=kind == "config-dump", compact_outbounds=compact_outbounds)
        click.echo(json.dumps(dump, indent=2))


@inspect_group.command("meshgateway")
@repo_option("Repository (bare or not), or a directory with --worktree.")
@path_option()
@click.option("--rev", default=None, help="Revision to read (default HEAD).")
@click.option("--worktree", is_flag=True, help="Read the files on disk instead of a commit.")
@format_option
@click.argument("mesh")
@click.argument("name")
def inspect_meshgateway_command(repo: str, path: str, rev: str | None, worktree: bool, fmt: str, mesh: str, name: str) -> None:
    """Kuma's rules of MeshGateway MESH/NAME (JSON = the API's meshgateways/NAME/_rules)."""
    snapshot = read_snapshot(repo, path, rev, worktree)
    if not validate(snapshot).valid:
        raise InvalidConfig("the configuration is invalid; run `reconciler validate` for the errors")
    try:
        doc = gateway_rules(build_mesh_model(snapshot.resources), mesh, name)
    except (UnknownResource, ValueError) as e:
        raise RepositoryError(str(e)) from e
    header = f"MeshGateway {mesh}/{name} at {snapshot.revision or 'work tree'}"
    click.echo(
        json.dumps(doc, indent=2)
        if fmt == "json"
        else "\n".join([header, *(rules_text(doc) or ["(no policy applies)"]), *warnings_text(doc)])
    )


inspect_group.add_command(inspect_policy_command)
inspect_group.add_command(inspect_dataplanes_command)
