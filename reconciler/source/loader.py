"""Turn the bytes of one YAML file into Kuma resources in Universal form.

Accepts Kuma's Universal form (`type`, `name`, `mesh`, `labels`, `spec` or the proto kinds'
top-level fields) and the Kubernetes form (`apiVersion: kuma.io/v1alpha1`, `kind`,
`metadata`, `spec`); both become the same `Resource`. Every problem found here is located at
`file:line`; one bad document fails its file, never the process.

What one file may cost is bounded twice: by its size in bytes, checked before it is read,
and by the values its YAML expands to (aliases counted each time they are used), checked while
it is parsed. The second budget is what stops an alias bomb, which is small on disk. The
limits sit far above real configuration (docs/validation.md, "Limits").
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from reconciler import kubernetes_identity as k8s_namespace
from reconciler.errors import Problem
from reconciler.kind_names import FLAT_KINDS, GLOBAL_KINDS, KIND_NAMES
from reconciler.model import Form, Origin, Resource
from reconciler.source.budgets import MAX_FILE_BYTES, amount, file_budget
from reconciler.source.linemap import LineMap
from reconciler.source.yamldoc import BudgetExceeded, NodeBudget, YamlDocument, YamlError, parse_documents
from reconciler.types import DEFAULT_MESH, ResourceKey

__all__ = [
    "FileResult",
    "load_file",
    "oversized_file",
    "is_config_file",
    "KUBERNETES_API_VERSION",
]

KUBERNETES_API_VERSION = "kuma.io/v1alpha1"
MESH_LABEL = "kuma.io/mesh"

# Fields `kumactl get -o yaml` prints that a user may commit back unchanged; they carry no config.
_READ_ONLY_META = frozenset({"creationTime", "modificationTime", "kri"})
_UNIVERSAL_META = frozenset({"type", "name", "mesh", "labels"}) | _READ_ONLY_META


@dataclass(frozen=True, slots=True)
class FileResult:
    """What one file contributed: its resources and the problems that stopped the rest."""

    path: str
    resources: tuple[Resource, ...]
    problems: tuple[Problem, ...]
    nodes: int = 0
    """Values its YAML expanded to: its weight in a commit's budget and in the parse cache."""
    size: int = 0
    """Bytes read (0 when refused by its size, unread): its weight in a commit's byte budget."""
    over_budget: bool = False
    """Refused because a node budget ran out: the result depends on the budget it was read
    with (a commit's depends on the other files), so it must never be cached."""


def is_config_file(path: str) -> bool:
    """`*.yaml`/`*.yml` files outside dot-directories (`.github/`, `.git/`, `.hidden.yaml`)."""
    if not path.endswith((".yaml", ".yml")):
        return False
    return not any(part.startswith(".") for part in path.split("/"))


def load_file(
    path: str,
    data: bytes,
    commit: NodeBudget | None = None,
    *,
    budget: NodeBudget | None = None,
    max_bytes: int = MAX_FILE_BYTES,
) -> FileResult:
    """Parse one file within `budget` (a fresh `file_budget()` by default) and, when given,
    what is left of its commit's budget, which it draws from. Pure apart from that draw: the
    same path, bytes and budgets always give the same result."""
    if len(data) > max_bytes:
        return oversized_file(path, len(data), max_bytes)
    budgets = [budget or file_budget()]
    if commit is not None:
        budgets.append(commit)
    before = budgets[0].spent
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return _failed(path, line, f"file is not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); save it as UTF-8", len(data))
    resources: list[Resource] = []
    problems: list[Problem] = []
    try:
        for doc in parse_documents(text, budgets):
            resource, doc_problems = _to_resource(path, doc)
            problems.extend(doc_problems)
            if resource is not None:
                resources.append(resource)
    except YamlError as e:
        # A broken document makes the rest of the stream unreadable: the file fails as a whole,
        # and what was built before a budget ran out is dropped with `resources`.
        failed = (Problem(path, e.line, None, "", e.message),)
        return FileResult(path, (), failed, budgets[0].spent - before, len(data), isinstance(e, BudgetExceeded))
    return FileResult(path, tuple(resources), tuple(problems), budgets[0].spent - before, len(data))


def oversized_file(path: str, size: int, limit: int = MAX_FILE_BYTES) -> FileResult:
    """The result for a file too large to read; callers check the size before reading it."""
    return _failed(path, 1, f"file is {size:,} bytes; the limit is {amount(limit)}: split it into smaller files")


def _failed(path: str, line: int, message: str, size: int = 0) -> FileResult:
    return FileResult(path, (), (Problem(path, line, None, "", message),), size=size)


def _to_resource(path: str, doc: YamlDocument) -> tuple[Resource | None, list[Problem]]:
    value = doc.value
    if not isinstance(value, dict):
        what = "a list" if isinstance(value, list) else f"a {type(value).__name__} scalar"
        return None, [Problem(path, doc.line, None, "", f"document is {what}; a resource is a mapping with type, name and spec")]
    if "apiVersion" in value or "kind" in value:
        return _from_kubernetes(path, doc, value)
    return _from_universal(path, doc, value)


def _problem(path: str, doc: YamlDocument, pointer: str, message: str, key: ResourceKey | None = None) -> Problem:
    line = doc.lines.get(pointer, doc.line)
    return Problem(path, line, key, pointer, message)


def _unknown_type_message(field: str, value: str) -> str:
    names = sorted(KIND_NAMES)
    close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f'unknown {field} "{value}"; {hint}known types: {", ".join(names)}'


def _from_universal(path: str, doc: YamlDocument, value: dict[str, Any]) -> tuple[Resource | None, list[Problem]]:
    problems: list[Problem] = []
    type_ = value.get("type")
    name = value.get("name")
    if not isinstance(type_, str) or not type_:
        problems.append(
            _problem(path, doc, "/type" if "type" in value else "", "missing type: every resource needs `type:` (e.g. type: MeshTimeout)")
        )
    if not isinstance(name, str) or not name:
        problems.append(
            _problem(path, doc, "/name" if "name" in value else "", "missing name: every resource needs a non-empty string `name:`")
        )
    if problems:
        return None, problems
    assert isinstance(type_, str) and isinstance(name, str)
    if type_ not in KIND_NAMES:
        return None, [_problem(path, doc, "/type", _unknown_type_message("type", type_))]
    flat = type_ in FLAT_KINDS
    key = ResourceKey(type_, "", name)
    mesh, mesh_problem = _mesh_of(type_ in GLOBAL_KINDS, value.get("mesh"), type_)
    if mesh_problem:
        return None, [_problem(path, doc, "/mesh", mesh_problem, key)]
    key = ResourceKey(type_, mesh, name)
    body = {k: v for k, v in value.items() if k not in _UNIVERSAL_META}
    status: Any = None
    if flat:
        # A proto kind's fields are top-level, so `status` stays among them and its schema says why not.
        spec: Any = body
    else:
        unknown = sorted(set(body) - {"spec", "status"})
        problems += [
            _problem(path, doc, "/" + k, f"unknown field `{k}`: a {type_} has type, name, mesh, labels and spec", key) for k in unknown
        ]
        spec = body.get("spec", {})
        status = body.get("status")
    return _checked_build(path, doc, "universal", key, value.get("labels"), "/labels", spec, flat, False, problems, status)


def _from_kubernetes(path: str, doc: YamlDocument, value: dict[str, Any]) -> tuple[Resource | None, list[Problem]]:
    api_version = value.get("apiVersion")
    kind_name = value.get("kind")
    if api_version == "v1" and kind_name == "Secret":
        return _kubernetes_secret(path, doc, value)
    if api_version != KUBERNETES_API_VERSION:
        return None, [
            _problem(
                path,
                doc,
                "/apiVersion" if "apiVersion" in value else "",
                f'apiVersion "{api_version}" is not a Kuma resource; use apiVersion: {KUBERNETES_API_VERSION} '
                "or keep non-Kuma YAML outside the configured path",
            )
        ]
    if not isinstance(kind_name, str) or not kind_name:
        return None, [_problem(path, doc, "", "missing kind: a Kubernetes-form resource needs `kind:`")]
    if kind_name not in KIND_NAMES:
        return None, [_problem(path, doc, "/kind", _unknown_type_message("kind", kind_name))]
    metadata = value.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        return None, [
            _problem(
                path,
                doc,
                "/metadata" if "metadata" in value else "",
                "missing metadata.name: a Kubernetes-form resource needs `metadata: {name: ...}`",
            )
        ]
    name = metadata["name"]
    raw_labels = metadata.get("labels")
    labels: Any = dict(raw_labels) if isinstance(raw_labels, dict) else raw_labels
    mesh_in_labels = isinstance(labels, dict) and MESH_LABEL in labels
    raw_mesh = labels.pop(MESH_LABEL) if mesh_in_labels else value.get("mesh")
    mesh, mesh_problem = _mesh_of(kind_name in GLOBAL_KINDS, raw_mesh, kind_name)
    key = ResourceKey(kind_name, mesh, name)
    if mesh_problem:
        return None, [_problem(path, doc, "/metadata/labels" if mesh_in_labels else "/mesh", mesh_problem, key)]
    problems = [
        _problem(path, doc, "/" + k, f"unknown field `{k}`: a Kubernetes-form {kind_name} has apiVersion, kind, metadata and spec", key)
        for k in sorted(set(value) - {"apiVersion", "kind", "metadata", "spec", "mesh", "status"})
    ]
    spec = value.get("spec", {})
    namespace = metadata.get("namespace")
    if namespace is not None and kind_name in k8s_namespace.NAMESPACED_KINDS and isinstance(labels, dict | None):
        if not isinstance(namespace, str) or not namespace:
            return None, [
                _problem(path, doc, "/metadata/namespace", "metadata.namespace must be a non-empty string naming a namespace", key)
            ]
        stored, labels, role_problem = k8s_namespace.kubernetes_identity(kind_name, name, namespace, labels or {}, spec)
        key = ResourceKey(kind_name, mesh, stored)
        if role_problem:
            problems.append(_problem(path, doc, "/spec", role_problem, key))
    flat = kind_name in FLAT_KINDS
    return _checked_build(
        path, doc, "kubernetes", key, labels, "/metadata/labels", spec, flat, mesh_in_labels, problems, value.get("status")
    )


def _checked_build(
    path: str,
    doc: YamlDocument,
    form: Form,
    key: ResourceKey,
    labels: Any,
    labels_pointer: str,
    spec: Any,
    flat: bool,
    mesh_in_labels: bool,
    problems: list[Problem],
    status: Any = None,
) -> tuple[Resource | None, list[Problem]]:
    if labels is None:
        labels = {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        problems.append(
            _problem(path, doc, labels_pointer, "labels must be a mapping of strings to strings (quote numbers and booleans)", key)
        )
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        spec_pointer = "/spec" if (form == "kubernetes" or not flat) else ""
        problems.append(_problem(path, doc, spec_pointer, f"spec must be a mapping, not {type(spec).__name__}", key))
    if status is not None and not isinstance(status, dict):
        problems.append(_problem(path, doc, "/status", f"status must be a mapping, not {type(status).__name__}", key))
    if problems:
        return None, problems
    return _build(path, doc, form, key, labels, spec, flat, mesh_in_labels, status), []


def _kubernetes_secret(path: str, doc: YamlDocument, value: dict[str, Any]) -> tuple[Resource | None, list[Problem]]:
    """A Kubernetes Secret of type system.kuma.io/secret is Kuma's Secret on Kubernetes."""
    if value.get("type") != "system.kuma.io/secret":
        return None, [_problem(path, doc, "/type", "a Kubernetes Secret needs `type: system.kuma.io/secret` to be a Kuma Secret")]
    raw_metadata = value.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return None, [_problem(path, doc, "/metadata", "missing metadata.name")]
    labels = dict(metadata.get("labels") or {})
    raw_mesh = labels.pop(MESH_LABEL, None)
    raw_data = value.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    spec = {"data": data.get("value", "")}
    key = ResourceKey("Secret", raw_mesh or DEFAULT_MESH, name)
    return _build(path, doc, "kubernetes", key, labels, spec, True, True), []


def _mesh_of(global_scope: bool, raw: Any, type_: str) -> tuple[str, str | None]:
    if global_scope:
        if raw not in (None, ""):
            return "", f"{type_} is a global kind and takes no mesh; remove `mesh: {raw}`"
        return "", None
    if raw is None or raw == "":
        return DEFAULT_MESH, None
    if not isinstance(raw, str):
        return "", "mesh must be a string naming a Mesh"
    return raw, None


def _build(
    path: str,
    doc: YamlDocument,
    form: Form,
    key: ResourceKey,
    labels: dict[str, str],
    spec: dict[str, Any],
    flat: bool,
    mesh_in_labels: bool,
    status: dict[str, Any] | None = None,
) -> Resource:
    origin = Origin(
        file=path,
        document=doc.index,
        line=doc.line,
        form=form,
        flat=flat,
        lines=LineMap(doc.lines),
        mesh_in_labels=mesh_in_labels,
    )
    return Resource.create(key.type, key.name, spec, mesh=key.mesh, labels=labels, flat=flat, origin=origin, status=status)
