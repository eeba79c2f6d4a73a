"""A kind's JSON Schema compiled once into a plain yes/no check, for the common case.

jsonschema walks a schema anew for every document: it resolves each `$ref` through the
registry and builds a validator per subschema, about 0.4 ms for a 20-line Dataplane, most of
the time of validating a large repository. Almost every document is valid, and for those a
yes is all we need. So each kind's schema is compiled here, once, into nested closures that
answer "is this document valid?" exactly as jsonschema would; only a document they say no to
goes through jsonschema (validate/schema.py), which then says what is wrong, in the same
words as before.

The compiler knows the keywords our schemas use and nothing else: a schema with any other
keyword (`oneOf`, `patternProperties`, a nested `$id`, ...) is not compiled, and its kind is
checked by jsonschema alone. `tests/validate/test_schema_check.py` holds the two answers
equal on every example and on mutations of them.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from jsonschema import Draft202012Validator
from jsonschema._utils import equal

__all__ = ["Check", "Unsupported", "compile_check"]

Check = Callable[[Any], bool]

_FORMATS = Draft202012Validator.FORMAT_CHECKER

# Keywords that never change the answer: annotations, and definitions reached through $ref.
_ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "$schema", "$defs", "deprecated", "readOnly", "writeOnly"}
)


class Unsupported(Exception):
    """The schema uses a keyword this compiler does not know; jsonschema must check it."""


def _always(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


def _is_integer(value: Any) -> bool:
    # As jsonschema's draft 6+ type checker: bools are not integers, 1.0 is.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, (list, tuple)),  # documents are frozen: arrays are tuples
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_integer,
    "number": _is_number,
}


def _all(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:  # the most common case (a type and the keywords of that type)
        first, second = checks
        return lambda value: first(value) and second(value)
    frozen = tuple(checks)

    def check(value: Any) -> bool:
        # A plain loop: all() over a generator costs a frame per value, and this runs for every value.
        for c in frozen:  # noqa: SIM110
            if not c(value):
                return False
        return True

    return check


class _Compiler:
    """Compiles schemas that live in `documents` (by URI); `$ref` targets once each."""

    def __init__(self, documents: Mapping[str, Any]) -> None:
        self.documents = documents
        self.targets: dict[str, list[Check]] = {}  # [] while its target is being compiled

    def compile(self, schema: Any, base: str) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        for keyword in schema:
            if keyword not in _KNOWN and not keyword.startswith("x-"):
                raise Unsupported(keyword)
        checks = [c for keywords, handler in _GROUPS if not keywords.isdisjoint(schema) for c in handler(self, schema, base)]
        return _all(checks)

    def reference(self, ref: str, base: str) -> Check:
        uri = urljoin(base, ref)
        cell = self.targets.get(uri)
        if cell is None:
            # The cell is registered before compiling its target, so a recursive schema ends
            # at its own $ref instead of compiling forever.
            cell = self.targets[uri] = []
            document_uri, fragment = urldefrag(uri)
            document = self.documents.get(document_uri)
            if document is None:
                raise Unsupported(f"$ref to an unknown document {document_uri}")
            cell.append(self.compile(_pointer(document, fragment), document_uri))
        if cell:
            return cell[0]  # compiled: the $ref costs nothing at check time

        def recursive(value: Any) -> bool:
            return cell[0](value)

        return recursive


def _pointer(document: Any, fragment: str) -> Any:
    if fragment and not fragment.startswith("/"):
        raise Unsupported(f"$ref to an anchor #{fragment}")
    node = document
    for token in fragment.split("/")[1:]:
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise Unsupported(f"$ref to a missing #{fragment}")
    return node


Handler = Callable[[_Compiler, dict[str, Any], str], list[Check]]


def _ref(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    return [c.reference(schema["$ref"], base)]


def _id(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    if urljoin(base, schema["$id"]) != base:  # only a document's own root $id is understood
        raise Unsupported("nested $id")
    return []


def _type(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    wanted = schema["type"]
    names = wanted if isinstance(wanted, list) else [wanted]
    if any(n not in _TYPES for n in names):
        raise Unsupported(f"type {wanted!r}")
    preds = tuple(_TYPES[n] for n in names)
    if len(preds) == 1:
        return [preds[0]]
    return [lambda v: any(p(v) for p in preds)]


def _object(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    properties = {name: c.compile(sub, base) for name, sub in (schema.get("properties") or {}).items()}
    required = tuple(schema.get("required") or ())
    extra = schema.get("additionalProperties", True)
    refuse_extra = extra is False
    extra_check = None if isinstance(extra, bool) else c.compile(extra, base)
    min_properties = schema.get("minProperties", 0)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        if len(value) < min_properties:
            return False
        for name in required:
            if name not in value:
                return False
        for name, item in value.items():
            sub = properties.get(name)
            if sub is None:
                if name in properties:
                    continue
                if refuse_extra or (extra_check is not None and not extra_check(item)):
                    return False
            elif not sub(item):
                return False
        return True

    return [check]


def _items(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    sub = c.compile(schema.get("items", True), base)
    low, high = schema.get("minItems", 0), schema.get("maxItems")

    def check(value: Any) -> bool:
        if not isinstance(value, (list, tuple)):
            return True
        if len(value) < low or (high is not None and len(value) > high):
            return False
        return all(sub(v) for v in value)

    return [check]


def _string(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    search = re.compile(schema["pattern"]).search if "pattern" in schema else None

    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        if len(value) < low or (high is not None and len(value) > high):
            return False
        return search is None or search(value) is not None

    return [check]


def _number(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")

    def check(value: Any) -> bool:
        if not _is_number(value):
            return True
        return not (
            (low is not None and value < low)
            or (high is not None and value > high)
            or (above is not None and value <= above)
            or (below is not None and value >= below)
        )

    return [check]


def _enum(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    options = tuple(schema["enum"])
    if all(isinstance(o, str) for o in options):
        strings = frozenset(options)
        return [lambda v: isinstance(v, str) and v in strings]
    return [lambda v: any(equal(o, v) for o in options)]


def _const(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    const = schema["const"]
    return [lambda v: equal(v, const)]


def _format(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    name = schema["format"]
    return [lambda v: _FORMATS.conforms(v, name)]


def _all_of(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    return [c.compile(sub, base) for sub in schema["allOf"]]


def _any_of(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    subs = tuple(c.compile(sub, base) for sub in schema["anyOf"])
    return [lambda v: any(s(v) for s in subs)]


def _one_of(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    subs = tuple(c.compile(sub, base) for sub in schema["oneOf"])
    return [lambda v: sum(1 for s in subs if s(v)) == 1]


def _not(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    sub = c.compile(schema["not"], base)
    return [lambda v: not sub(v)]


def _if(c: _Compiler, schema: dict[str, Any], base: str) -> list[Check]:
    condition = c.compile(schema["if"], base)
    then = c.compile(schema.get("then", True), base)
    otherwise = c.compile(schema.get("else", True), base)
    return [lambda v: then(v) if condition(v) else otherwise(v)]


# Keywords → what they compile to. An object's properties, required and additionalProperties
# are one check, and so on: a group's handler runs once when the schema has any of its keywords.
_GROUPS: tuple[tuple[frozenset[str], Handler], ...] = (
    (frozenset({"$id"}), _id),
    (frozenset({"$ref"}), _ref),
    (frozenset({"type"}), _type),
    (frozenset({"properties", "required", "additionalProperties", "minProperties"}), _object),
    (frozenset({"items", "minItems", "maxItems"}), _items),
    (frozenset({"minLength", "maxLength", "pattern"}), _string),
    (frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}), _number),
    (frozenset({"enum"}), _enum),
    (frozenset({"const"}), _const),
    (frozenset({"format"}), _format),
    (frozenset({"allOf"}), _all_of),
    (frozenset({"anyOf"}), _any_of),
    (frozenset({"oneOf"}), _one_of),
    (frozenset({"not"}), _not),
    (frozenset({"if"}), _if),
)
_KNOWN = _ANNOTATIONS.union(*(keywords for keywords, _ in _GROUPS), {"then", "else"})


def compile_check(schema: dict[str, Any], uri: str, documents: Mapping[str, Any]) -> Check:
    """`schema` (the document at `uri`) as a check; `$ref`s resolve in `documents` by URI.

    Raises Unsupported when the schema, or a schema it refers to, uses a keyword this module
    does not compile.
    """
    return _Compiler({**documents, uri: schema}).compile(schema, uri)
