"""A proxy's own Dataplane, sent in its node metadata (`dataplane.resource`, as kuma-dp does
for a dataplane not declared in git): read and checked before it is registered.

What a proxy sends is untrusted and costs CPU to read, so it is bounded before anything is
converted (`MAX_DATAPLANE_METADATA_BYTES`) and parsed with a node budget for one Dataplane,
both far below a repository file's; the control plane runs this in a worker thread. Every
refusal is `XdsRejected` with INVALID_ARGUMENT and a short message.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import grpc
from google.protobuf import json_format

from reconciler.errors import Problem
from reconciler.model import Resource
from reconciler.source.budgets import MAX_DATAPLANE_METADATA_BYTES, dataplane_metadata_budget
from reconciler.source.loader import load_file
from reconciler.validate import validate_resource
from reconciler.xds.server import XdsRejected

__all__ = ["DATAPLANE_METADATA_KEY", "registered_dataplane", "metadata_text", "dataplane_from_text"]

DATAPLANE_METADATA_KEY = "dataplane.resource"
"""Node metadata field carrying the Dataplane of a proxy not declared in git (as kuma-dp does)."""


def registered_dataplane(node_id: str, raw: Any, meshes: Collection[str] | None) -> Resource:
    """The Dataplane in `raw` (the metadata value: a YAML/JSON string or a struct), checked:
    one Dataplane, named by the node id, valid, in one of `meshes` (the applied revision's;
    None before any is applied)."""
    return dataplane_from_text(node_id, metadata_text(raw), meshes)


def _too_large(size: int) -> XdsRejected:
    limit = MAX_DATAPLANE_METADATA_BYTES
    return XdsRejected(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{DATAPLANE_METADATA_KEY} is {size:,} bytes; the limit is {limit:,} ({limit // 1024} KiB) for one Dataplane",
    )


def metadata_text(raw: Any) -> str:
    """The metadata value as text (a struct as JSON), bounded before it is converted: what
    another replica is given to register the same Dataplane (reconciler/source/registry.py)."""
    if raw.ByteSize() > MAX_DATAPLANE_METADATA_BYTES:
        raise _too_large(raw.ByteSize())
    return str(raw.string_value) if raw.HasField("string_value") else json.dumps(json_format.MessageToDict(raw.struct_value))


def dataplane_from_text(node_id: str, text: str, meshes: Collection[str] | None) -> Resource:
    """`registered_dataplane` of the metadata's text."""
    mesh, _, name = node_id.partition(".")
    limit = MAX_DATAPLANE_METADATA_BYTES
    data = text.encode()
    if len(data) > limit:
        raise _too_large(len(data))
    result = load_file(f"<node {node_id} metadata>", data, budget=dataplane_metadata_budget(), max_bytes=limit)
    problems: list[Problem] = list(result.problems)
    resources = [r for r in result.resources if r.type == "Dataplane"]
    if not problems and len(resources) != 1:
        raise XdsRejected(grpc.StatusCode.INVALID_ARGUMENT, f"{DATAPLANE_METADATA_KEY} must hold exactly one Dataplane")
    if resources:
        r = resources[0]
        if (r.mesh, r.name) != (mesh, name):
            raise XdsRejected(
                grpc.StatusCode.INVALID_ARGUMENT, f"node id {node_id} does not match the Dataplane {r.mesh}.{r.name} in its metadata"
            )
        problems += [p for p in validate_resource(r) if p.is_error]
        if meshes is not None and mesh not in meshes:
            problems.append(Problem(None, None, r.key, "/mesh", f'mesh "{mesh}" does not exist in the applied revision'))
    if problems:
        raise XdsRejected(
            grpc.StatusCode.INVALID_ARGUMENT, "invalid Dataplane in node metadata:\n" + "\n".join(p.render() for p in problems)
        )
    return resources[0]
