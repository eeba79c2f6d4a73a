"""Safe YAML documents with a line for every field.

PyYAML composes the node graph (in C when libyaml is there); we build plain Python values
from it ourselves so that we can (a) record the line of every key and list item under its
JSON pointer, (b) refuse alias expansion past a budget (the "billion laughs" file), recursive
aliases and absurd nesting, and (c) refuse duplicate keys, which PyYAML would silently
collapse.

Composing is cheap even for an alias bomb: an alias is a second reference to the same node.
The cost is in building, where every use of an alias becomes a fresh copy with its own line
map entries. So the budget counts built values, aliases expanded, and it is a `NodeBudget`
passed in by the caller rather than a per-document constant: one budget is shared by all the
documents of a file, and another by all the files of a commit, so that splitting a bomb into
many documents or files does not multiply what it may cost.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from reconciler.errors import escape_pointer_token

__all__ = ["YamlDocument", "YamlError", "BudgetExceeded", "NodeBudget", "parse_documents", "MAX_DEPTH"]

MAX_DEPTH = 64
"""Nesting depth of a document; Kuma resources need fewer than 20 levels."""

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVED_MAX = 8192
_RESOLVED_LENGTH = 64


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, with the tag of plain scalars remembered.

    Even libyaml's loader asks Python for the tag of every scalar, which tries the implicit
    resolvers' regular expressions one by one: a fifth of composing a real repository. The
    answer depends on the text only, and real files repeat the same keys and values, so short
    plain scalars' tags are kept (in a bounded table shared by all loaders; emptied when full,
    so that a file of unique values cannot grow it). Quoted scalars are strings, as PyYAML says
    when no path resolvers are registered (the safe loader has none, and this one refuses them).
    """

    _resolved: dict[str, str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        if not implicit[0]:
            return _STR_TAG
        resolved = _Loader._resolved
        tag = resolved.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(value) <= _RESOLVED_LENGTH:
                if len(resolved) >= _RESOLVED_MAX:
                    resolved.clear()
                resolved[value] = tag
        return tag

    # Without path resolvers PyYAML's versions do nothing, at the cost of two calls per node.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


assert not _BaseLoader.yaml_path_resolvers, "quoted scalars resolve to str only without path resolvers"

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


class BudgetExceeded(YamlError):
    """A `NodeBudget` ran out; `line` is where the text being expanded at that moment is."""


@dataclass(slots=True)
class NodeBudget:
    """Values that parsing may still build, alias expansions counted.

    Mutable on purpose: pass the same budget to several `parse_documents` calls and they
    draw from one allowance. `message` says what ran out and what to do about it.
    """

    limit: int
    message: str
    spent: int = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.spent, 0)


class _OutOfBudget(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _Builder:
    """Builds values from nodes; one builder serves all the documents of a stream.

    A refusal names the line where the text that asked for the value is. The composer keeps
    no trace of an alias (the child is the anchored node itself), but an anchor is always
    written before its aliases: a child whose text starts before the end of its key, or of
    the previous item written in place, is an alias, and everything built under it is
    blamed on the line that used it, not on the innocent definition.
    """

    __slots__ = ("allowance", "spent", "lines", "active")

    def __init__(self, allowance: int) -> None:
        self.allowance = allowance
        self.spent = 0
        self.lines: dict[str, int] = {}
        self.active: set[int] = set()

    def build(self, node: yaml.Node, pointer: str, depth: int, line: int, expanding: bool) -> Any:
        """`line` is blamed if the budget runs out here: the node's own line, or while
        `expanding` an alias, the line that used it."""
        self.spent += 1
        if self.spent > self.allowance:
            raise _OutOfBudget(line)
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
                after = node.start_mark.index
                for i, item in enumerate(node.value):
                    child = f"{pointer}/{i}"
                    mark = item.start_mark
                    self.lines.setdefault(child, mark.line + 1)
                    if expanding or mark.index < after:  # an alias
                        out_list.append(self.build(item, child, depth + 1, line, True))
                    else:
                        after = item.end_mark.index
                        out_list.append(self.build(item, child, depth + 1, mark.line + 1, False))
                return out_list
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, pointer, depth, line, expanding)
            raise YamlError(f"unsupported YAML node {node.tag}", node.start_mark.line + 1)
        finally:
            self.active.discard(node_id)

    def _mapping(self, node: yaml.MappingNode, pointer: str, depth: int, line: int, expanding: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            own_line = key_node.start_mark.line + 1
            if expanding:
                value_line, value_expanding = line, True
            elif value_node.start_mark.index < key_node.end_mark.index:  # an alias
                value_line, value_expanding = own_line, True
            else:
                value_line, value_expanding = value_node.start_mark.line + 1, False
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged.update(self._merge_sources(value_node, pointer, depth, value_line, value_expanding))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain strings", key_node.start_mark.line + 1)
            key_value = _scalar(key_node)
            key = key_value if isinstance(key_value, str) else key_node.value
            if key in out:
                raise YamlError(f'duplicate key "{key}" in the same mapping', key_node.start_mark.line + 1)
            child = f"{pointer}/{escape_pointer_token(key)}"
            self.lines[child] = own_line
            if value_node.__class__ is yaml.ScalarNode and depth < MAX_DEPTH:
                # What build() does for a scalar, without a call per value (most values are scalars).
                self.spent += 1
                if self.spent > self.allowance:
                    raise _OutOfBudget(value_line)
                out[key] = value_node.value if value_node.tag == _STR_TAG else _scalar(value_node)
            else:
                out[key] = self.build(value_node, child, depth + 1, value_line, value_expanding)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out

    def _merge_sources(self, node: yaml.Node, pointer: str, depth: int, line: int, expanding: bool) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise YamlError("a YAML merge key (<<) needs a mapping", src.start_mark.line + 1)
            if src is node or expanding:
                src_line, src_expanding = line, expanding
            else:  # `<<: [*a, *b]`: aliases inside a sequence written in place
                src_line, src_expanding = line, src.start_mark.index < node.start_mark.index
            for key, value in self._mapping(src, pointer, depth + 1, src_line, src_expanding).items():
                merged.setdefault(key, value)
        return merged


def _scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == _STR_TAG:
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


def parse_documents(text: str, budgets: Sequence[NodeBudget]) -> Iterator[YamlDocument]:
    """Yield each non-empty document of a YAML stream with its line map.

    Every value built is charged to each of `budgets` (at the latest when the stream ends or
    fails): give a file's budget and a commit's, and the stream stops at whichever runs out
    first. Raises YamlError on the first document that cannot be read, BudgetExceeded (a
    YamlError) with that budget's message when a budget runs out.
    """
    if not budgets:
        raise ValueError("parse_documents needs at least one NodeBudget")
    loader = _Loader(text)
    builder = _Builder(min(b.remaining for b in budgets))
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            builder.lines = {}
            line = node.start_mark.line + 1
            try:
                value = builder.build(node, "", 0, line, False)
            except _OutOfBudget as e:
                tightest = min(budgets, key=lambda b: b.remaining)
                raise BudgetExceeded(tightest.message, e.line, index) from None
            except YamlError as e:
                e.document = index
                raise
            except RecursionError:
                raise YamlError("document is nested too deeply", line, index) from None
            if value is not None:
                yield YamlDocument(index, line, value, builder.lines)
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
        for budget in budgets:
            budget.spent += builder.spent
