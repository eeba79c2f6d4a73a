"""Safe YAML documents with a line for every field.

PyYAML composes the node graph (in C when libyaml is there); we build plain Python values
from it ourselves so that we can (a) record the line of every key and list item under its
JSON pointer, (b) refuse alias expansion past a fixed budget (the "billion laughs" file),
recursive aliases and absurd nesting, and (c) refuse duplicate keys, which PyYAML would
silently collapse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import escape_pointer_token

__all__ = ["YamlDocument", "YamlError", "parse_documents", "MAX_NODES", "MAX_DEPTH"]

MAX_NODES = 200_000
"""Values one document may expand to, aliases included: far above any real resource."""

MAX_DEPTH = 64
"""Nesting depth of a document; Kuma resources need fewer than 20 levels."""

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL_TRUE = {"yes", "true", "on", "y"}
_constructor = yaml.constructor.SafeConstructor()


@dataclass(frozen=True, slots=True)
class YamlDocument:
    index: int
    line: int
    value: Any
    lines: dict[str, int]


class YamlError(Exception):
    """A document cannot be read; carries the 1-based line and the document index."""

    def __init__(self, message: str, line: int, document: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.document = document


class _Builder:
    __slots__ = ("budget", "lines", "active")

    def __init__(self) -> None:
        self.budget = MAX_NODES
        self.lines: dict[str, int] = {}
        self.active: set[int] = set()

    def build(self, node: yaml.Node, pointer: str, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise YamlError(
                f"document expands to more than {MAX_NODES} values; "
                "YAML aliases (*ref) probably multiply it, write the values out instead",
                node.start_mark.line + 1,
            )
        if depth > MAX_DEPTH:
            raise YamlError(f"document is nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        node_id = id(node)
        if node_id in self.active:
            raise YamlError("recursive YAML alias: a value contains itself", node.start_mark.line + 1)
        self.active.add(node_id)
        try:
            if isinstance(node, yaml.SequenceNode):
                out_list = []
                for i, item in enumerate(node.value):
                    child = f"{pointer}/{i}"
                    self.lines.setdefault(child, item.start_mark.line + 1)
                    out_list.append(self.build(item, child, depth + 1))
                return out_list
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, pointer, depth)
            raise YamlError(f"unsupported YAML node {node.tag}", node.start_mark.line + 1)
        finally:
            self.active.discard(node_id)

    def _mapping(self, node: yaml.MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self._merge_sources(value_node, pointer, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain strings", key_node.start_mark.line + 1)
            key_value = _scalar(key_node)
            key = key_value if isinstance(key_value, str) else key_node.value
            if key in out:
                raise YamlError(f'duplicate key "{key}" in the same mapping', key_node.start_mark.line + 1)
            child = f"{pointer}/{escape_pointer_token(key)}"
            self.lines[child] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, child, depth + 1)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _merge_sources(self, node: yaml.Node, pointer: str, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise YamlError("a YAML merge key (<<) needs a mapping", src.start_mark.line + 1)
            for key, value in self._mapping(src, pointer, depth + 1).items():
                merged.setdefault(key, value)
        return merged


def _scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == "tag:yaml.org,2002:str":
        return node.value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        return node.value.lower() in _BOOL_TRUE
    if tag == "tag:yaml.org,2002:int":
        return _constructor.construct_yaml_int(node)
    if tag == "tag:yaml.org,2002:float":
        return _constructor.construct_yaml_float(node)
    # Timestamps, binary and custom tags stay the text the user wrote: JSON has no such types.
    return node.value


def parse_documents(text: str) -> Iterator[YamlDocument]:
    """Yield each non-empty document of a YAML stream with its line map.

    Raises YamlError on the first document that cannot be read.
    """
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder = _Builder()
            try:
                value = builder.build(node, "", 0)
            except YamlError as e:
                e.document = index
                raise
            except RecursionError:
                raise YamlError("document is nested too deeply", node.start_mark.line + 1, index) from None
            if value is not None:
                yield YamlDocument(index, node.start_mark.line + 1, value, builder.lines)
            index += 1
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = e.problem or str(e)
        if e.context:
            what = f"{e.context}, {what}"
        raise YamlError(f"malformed YAML: {what}", line, index) from None
    except yaml.YAMLError as e:
        raise YamlError(f"malformed YAML: {e}", 1, index) from None
    finally:
        loader.dispose()
