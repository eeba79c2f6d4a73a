"""JSON Schema (draft 2020-12) checks, one schema per kind, with Kuma-style messages.

Schemas live in `schemas/<Kind>.json` and describe the whole Universal document (type, name,
mesh, labels and spec, or the proto kinds' top-level fields). Shared definitions (durations,
targetRef, ports, ...) are in `schemas/common.json` and referenced relatively. A schema may
put `x-error` next to a keyword's subschema to replace the generic message for it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

import jsonschema
import referencing
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler.errors import Path, Violation
from reconciler.validate.schema_check import Check, Unsupported, compile_check

__all__ = ["schema_dir", "load_schemas", "validator_for", "check_for", "schema_violations", "status_kinds", "SCHEMA_BASE", "STATUS_SCHEMA"]

SCHEMA_BASE = "https://mesh-reconciler.dev/schemas/"


def schema_dir() -> FsPath:
    """`reconciler/_schemas` inside an installed wheel, else `schemas/` of the source tree."""
    packaged = resources.files("reconciler").joinpath("_schemas")
    if packaged.is_dir():
        return FsPath(str(packaged))
    return FsPath(__file__).resolve().parents[2] / "schemas"


@cache
def load_schemas() -> Mapping[str, dict[str, Any]]:
    """All schema files by file stem (`MeshTimeout`, `common`, ...)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(schema_dir().glob("*.json")):
        out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _is_array(checker: Any, instance: Any) -> bool:
    return isinstance(instance, (list, tuple))


_TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER.redefine("array", _is_array)
_Validator = jsonschema.validators.extend(Draft202012Validator, type_checker=_TYPE_CHECKER)  # type: ignore[no-untyped-call]


@cache
def _documents() -> Mapping[str, dict[str, Any]]:
    """Every schema file by the URI its `$ref`s use."""
    return {schema.get("$id") or SCHEMA_BASE + stem + ".json": schema for stem, schema in load_schemas().items()}


@cache
def _registry() -> referencing.Registry[Any]:
    pairs = [
        (uri, referencing.Resource.from_contents(schema, default_specification=referencing.jsonschema.DRAFT202012))
        for uri, schema in _documents().items()
    ]
    return referencing.Registry().with_resources(pairs)


STATUS_SCHEMA = "status"
"""`schemas/status.json`: one `$defs` entry per kind that has a status in Kuma, named after it."""


@cache
def status_kinds() -> frozenset[str]:
    """The kinds whose top-level `status` Kuma defines (the kind entries of `schemas/status.json`)."""
    defs = load_schemas().get(STATUS_SCHEMA, {}).get("$defs", {})
    return frozenset(name for name in defs if name[:1].isupper())


def _with_status(kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the kind's `status` schema added when Kuma defines one for it.

    The kinds' own schemas stay about what users write; which kinds have a status is said
    once, in status.json, and added here. The other kinds keep refusing `status` (see `_explain`).
    """
    properties = schema.get("properties")
    if kind not in status_kinds() or not isinstance(properties, dict) or "status" in properties:
        return schema
    return {**schema, "properties": {**properties, "status": {"$ref": f"{STATUS_SCHEMA}.json#/$defs/{kind}"}}}


def _no_status(kind: str) -> str:
    return (
        f"a {kind} has no status in Kuma; only {', '.join(sorted(status_kinds()))} have one "
        "(written by Kuma's control plane, kept here and never served); remove `status:`"
    )


@cache
def _kind_schema(kind: str) -> dict[str, Any] | None:
    """The schema a document of `kind` is checked against, with its `$id` and status."""
    schema = load_schemas().get(kind)
    if schema is None or kind == STATUS_SCHEMA:
        return None
    if "$id" not in schema:
        schema = {**schema, "$id": SCHEMA_BASE + kind + ".json"}
    return _with_status(kind, schema)


@cache
def validator_for(kind: str) -> Any | None:
    schema = _kind_schema(kind)
    if schema is None:
        return None
    return _Validator(schema, registry=_registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


@cache
def check_for(kind: str) -> Check | None:
    """The kind's schema compiled to a yes/no check (validate/schema_check.py); None when the
    kind has no schema or its schema uses a keyword that only jsonschema knows."""
    schema = _kind_schema(kind)
    if schema is None:
        return None
    try:
        return compile_check(schema, schema["$id"], _documents())
    except Unsupported:
        return None


def schema_violations(kind: str, document: Mapping[str, Any]) -> list[Violation]:
    """Violations of the kind's schema by a Universal document; [] when the kind has none."""
    check = check_for(kind)
    if check is not None and check(document):
        return []  # valid: jsonschema would find nothing, and it costs 20 times more
    validator = validator_for(kind)
    if validator is None:
        return []
    out: list[Violation] = []
    for error in validator.iter_errors(document):
        out.extend(_explain(error))
    return sorted(out, key=lambda v: (v.path.pointer, v.message))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _quote(values: Any) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _explain(error: ValidationError) -> Iterator[Violation]:
    path = Path(tuple(error.absolute_path))
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    custom = schema.get("x-error") if isinstance(schema, Mapping) else None
    validator = error.validator
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        yield Violation(path.field(missing), custom or "must be defined")
        return
    if validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted((schema.get("properties") or {}).keys())
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        extras = [k for k in instance if k not in (schema.get("properties") or {})]
        pattern_props = schema.get("patternProperties") or {}
        if pattern_props:
            extras = [k for k in extras if not any(re.search(p, k) for p in pattern_props)]
        for extra in extras:
            if extra == "status" and not path.parts:
                yield Violation(path.field("status"), _no_status(str(schema.get("title") or "resource")))
                continue
            close = difflib.get_close_matches(extra, allowed, n=1, cutoff=0.6)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            listed = f"allowed fields: {', '.join(allowed)}" if allowed else "no fields are allowed here"
            yield Violation(path.field(str(extra)), f'unknown field "{extra}"; {hint}{listed}')
        return
    if custom:
        yield Violation(path, custom)
        return
    if validator == "type":
        wanted: Any = error.validator_value
        words = " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in (wanted if isinstance(wanted, list) else [wanted]))
        yield Violation(path, f"must be {words}, not {_type_name(error.instance)}")
    elif validator == "enum":
        field = next((p for p in reversed(path.parts) if isinstance(p, str)), "value")
        yield Violation(path, f'"{field}" must be one of {_quote(error.validator_value)}')
    elif validator == "const":
        yield Violation(path, f"must be {json.dumps(error.validator_value)}")
    elif validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is not None and high is not None:
            yield Violation(path, f"must be in inclusive range [{low}, {high}]")
        elif validator == "minimum":
            yield Violation(path, f"must be greater or equal to {low}")
        elif validator == "exclusiveMinimum":
            yield Violation(path, f"must be greater than {low}")
        else:
            yield Violation(path, f"must be less or equal to {high}")
    elif validator == "minLength":
        yield Violation(path, "must not be empty" if error.validator_value == 1 else f"must be at least {error.validator_value} characters")
    elif validator == "maxLength":
        yield Violation(path, f"must not be longer than {error.validator_value} characters")
    elif validator == "minItems":
        yield Violation(
            path, "must have at least one element" if error.validator_value == 1 else f"must have at least {error.validator_value} elements"
        )
    elif validator == "maxItems":
        yield Violation(path, f"must have at most {error.validator_value} elements")
    elif validator == "minProperties":
        yield Violation(path, "must not be empty")
    elif validator == "pattern":
        yield Violation(path, f"{json.dumps(error.instance)} does not match the expected format {error.validator_value}")
    elif validator == "format":
        yield Violation(path, f"must be a valid {error.validator_value}")
    elif validator == "uniqueItems":
        yield Violation(path, "must not contain duplicates")
    elif validator == "dependentRequired":
        yield Violation(path, error.message.replace("'", '"'))
    elif validator in ("oneOf", "anyOf"):
        best = _best_context(error)
        if best is not None:
            yield from _explain(best)
        else:
            yield Violation(path, "does not match any of the allowed forms")
    elif validator == "not":
        yield Violation(path, "must not be set")
    else:
        yield Violation(path, error.message)


def _best_context(error: ValidationError) -> ValidationError | None:
    if not error.context:
        return None
    best: ValidationError | None = jsonschema.exceptions.best_match(error.context)
    return best
