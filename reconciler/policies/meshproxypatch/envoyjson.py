"""Envoy messages as a MeshProxyPatch sees them: YAML `value`s, proto merges and JSON patches.

Kuma reads a modification's `value` as YAML, converts it to JSON and decodes that into the
Envoy message it stands for, ignoring fields the message does not have. A `Patch` with a
`value` merges it into the matched message the way protobuf merges (scalars and messages
are overwritten field by field, lists are appended to, map entries replaced), except that a
`google.protobuf.Duration` is replaced as a whole (`5s` over `1.5s` is `5s`, not `5.5s`).
A `Patch` with `jsonPatches` applies RFC 6902 operations to the message's JSON form
(camelCase names, as `reconciler inspect` prints them) with Kuma's options: a negative list
index counts from the end, removing a missing path does nothing, and adding below a missing
object creates it; the result is decoded back, replacing the message.

An `@type` inside a value names a message from the Envoy API packages; its module is imported
on first use so that any extension Envoy ships (a Lua filter, a header mutation) can be used.
"""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any

import jsonpatch
import jsonpointer
import yaml
from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

__all__ = ["PatchError", "from_yaml", "from_json", "to_json", "merge", "merge_anys", "json_patch", "json_patch_any", "pack_any"]


class PatchError(ValueError):
    """A modification that cannot be applied to the message it matched."""


def from_yaml(text: str, message_type: type[Message]) -> Message:
    """`text` (YAML, or JSON with tabs) decoded into a new `message_type`; unknown fields are ignored, as in Kuma."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise PatchError(f"value is neither YAML nor JSON: {e}") from e
    return from_json(doc if doc is not None else {}, message_type)


def from_json(doc: Any, message_type: type[Message]) -> Message:
    out = message_type()
    _import_types(doc)
    try:
        json_format.ParseDict(doc, out, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as e:
        raise PatchError(f"not a valid {out.DESCRIPTOR.full_name}: {' '.join(str(e).split())}") from e
    return out


def to_json(message: Message) -> Any:
    _import_any_types(message)
    return json_format.MessageToDict(message, preserving_proto_field_name=False)


def merge(dst: Message, src: Message) -> None:
    """Kuma's proto merge of `src` into `dst` (see the module docstring)."""
    for field, value in src.ListFields():
        if field.is_repeated:
            target = getattr(dst, field.name)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                _merge_map(target, value, field)
            elif field.message_type is not None:
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.extend(value)
        elif field.message_type is not None:
            if field.message_type.full_name == "google.protobuf.Duration":
                getattr(dst, field.name).CopyFrom(value)
            else:
                merge(getattr(dst, field.name), value)
        else:
            setattr(dst, field.name, value)


def _merge_map(target: Any, source: Any, field: FieldDescriptor) -> None:
    value_field = field.message_type.fields_by_name["value"]
    for key in source:
        if value_field.message_type is not None:
            target[key].CopyFrom(source[key])
        else:
            target[key] = source[key]


def merge_anys(dst: any_pb2.Any, src: any_pb2.Any) -> any_pb2.Any:
    """`src`'s message merged into `dst`'s: both must hold the same type, as in Kuma."""
    if not src.type_url:
        return dst
    if not dst.type_url:
        return src
    if src.type_url != dst.type_url:
        raise PatchError(f"type URL of dst {dst.type_url!r} is different than src {src.type_url!r}")
    target, source = _unpack(dst), _unpack(src)
    merge(target, source)
    return pack_any(target)


def json_patch(message: Message, patches: Iterable[Mapping[str, Any]]) -> None:
    """RFC 6902 `patches` applied to `message`'s JSON form; `message` is replaced by the result."""
    doc = _apply_patches(to_json(message), patches)
    result = from_json(doc, type(message))
    message.Clear()
    message.MergeFrom(result)


def json_patch_any(typed: any_pb2.Any, patches: Iterable[Mapping[str, Any]]) -> any_pb2.Any:
    message = _unpack(typed)
    json_patch(message, patches)
    return pack_any(message)


def _apply_patches(doc: Any, patches: Iterable[Mapping[str, Any]]) -> Any:
    for raw in patches:
        op = {k: copy.deepcopy(v) for k, v in raw.items() if k in ("op", "path", "from", "value")}
        op["path"] = _absolute_indices(doc, str(op.get("path", "")))
        if "from" in op:
            op["from"] = _absolute_indices(doc, str(op["from"]))
        if op.get("op") == "remove" and not _exists(doc, op["path"]):
            continue  # Kuma: AllowMissingPathOnRemove
        if op.get("op") == "add":
            _ensure_parents(doc, op["path"])
        try:
            doc = jsonpatch.apply_patch(doc, [op])
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
            raise PatchError(f"json patch {raw.get('op')} {raw.get('path')}: {e}") from e
    return doc


def _parts(path: str) -> list[str]:
    return list(jsonpointer.JsonPointer(path).parts) if path else []


def _absolute_indices(doc: Any, path: str) -> str:
    """Negative list indices (Kuma: SupportNegativeIndices) made absolute."""
    parts, node, out = _parts(path), doc, []
    for part in parts:
        if isinstance(node, list) and part.startswith("-") and part[1:].isdigit():
            part = str(len(node) + int(part))
        out.append(part)
        node = _child(node, part)
    return jsonpointer.JsonPointer.from_parts(out).path if out else path


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def _exists(doc: Any, path: str) -> bool:
    try:
        jsonpointer.resolve_pointer(doc, path)
    except jsonpointer.JsonPointerException:
        return False
    return True


def _ensure_parents(doc: Any, path: str) -> None:
    """Objects created along `path` up to its last part (Kuma: EnsurePathExistsOnAdd)."""
    parts, node = _parts(path), doc
    for i, part in enumerate(parts[:-1]):
        child = _child(node, part)
        if child is None and isinstance(node, dict):
            following = parts[i + 1]
            child = [] if following in ("0", "-") else {}
            node[part] = child
        if child is None:
            return  # jsonpatch reports the path
        node = child


def _unpack(typed: any_pb2.Any) -> Message:
    message_type = _message_type(typed.type_url)
    message = message_type()
    if not typed.Unpack(message):
        raise PatchError(f"cannot decode {typed.type_url}")
    return message


def pack_any(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message, deterministic=True)
    return out


def _message_type(type_url: str) -> type[Message]:
    name = type_url.rsplit("/", 1)[-1]
    _import_type(name)
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
    except KeyError as e:
        raise PatchError(f"unknown message type {name}") from e
    message_class: type[Message] = message_factory.GetMessageClass(descriptor)
    return message_class


def _import_types(doc: Any) -> None:
    if isinstance(doc, dict):
        if isinstance(doc.get("@type"), str):
            _import_type(doc["@type"].rsplit("/", 1)[-1])
        for value in doc.values():
            _import_types(value)
    elif isinstance(doc, list):
        for value in doc:
            _import_types(value)


def _import_any_types(message: Message) -> None:
    """The messages inside `message`'s Any fields, so that its JSON form can show them."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        items = value if field.is_repeated else [value]
        if field.message_type.GetOptions().map_entry:
            items = list(value.values()) if field.message_type.fields_by_name["value"].message_type is not None else []
        for item in items:
            if isinstance(item, any_pb2.Any):
                _message_type(item.type_url)
                _import_any_types(_unpack(item))
            elif isinstance(item, Message):
                _import_any_types(item)


_imported: set[str] = set()


def _import_type(full_name: str) -> None:
    """Import the generated module of the package that defines `full_name`, if not done yet."""
    package = full_name.rpartition(".")[0]
    if package in _imported:
        return
    _imported.add(package)
    try:
        descriptor_pool.Default().FindMessageTypeByName(full_name)
        return
    except KeyError:
        pass
    # envoy.extensions.filters.http.lua.v3.Lua → the *_pb2 modules of envoy/extensions/filters/http/lua/v3
    for module_path in _candidate_packages(package):
        try:
            module = importlib.import_module(module_path)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if info.name.endswith("_pb2"):
                importlib.import_module(f"{module_path}.{info.name}")
        return


def _candidate_packages(package: str) -> list[str]:
    # A nested message (envoy.config.Foo.Bar) lives in its parent's package: try shorter prefixes too.
    parts = package.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
