"""Issue 16 item 7: each kind's schema is compiled into a yes/no check that lets valid documents
skip jsonschema. It must answer exactly as jsonschema does, or an invalid document would be
accepted (a wrong yes) or reported by jsonschema with no complaint after all (a wrong no).

The corpus is every resource in the repository's YAML test cases, policy cases and example
repository (about 1,800 documents of every kind), and mutations of them: a value replaced by
one of another type or range, a field removed, a field added.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from reconciler.frozen import freeze, thaw
from reconciler.source.loader import load_file
from reconciler.validate.schema import SCHEMA_BASE, check_for, load_schemas, schema_violations, validator_for
from reconciler.validate.schema_check import Unsupported, compile_check
from tests.support import validate_text

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ("tests/cases", "tests/policies", "example-repo")
REPLACEMENTS: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    2.0,
    70000,
    4294967296,
    "",
    "x",
    "10s",
    "MeshService",
    (),
    ("a",),
    {},
    {"bogus": 1},
)


@cache
def corpus() -> tuple[tuple[str, Any], ...]:
    out = []
    for top in CORPUS:
        for path in sorted((ROOT / top).glob("**/*.y*ml")):
            for resource in load_file(str(path), path.read_bytes()).resources:
                out.append((resource.type, resource.document()))
    return tuple(out)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _mutate(document: Any, rnd: random.Random) -> Any:
    path = rnd.choice(list(_paths(document)))
    if not path:
        return rnd.choice(REPLACEMENTS)
    copy = thaw(document)
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    roll = rnd.random()
    if roll < 0.2:
        del parent[path[-1]]
    elif roll < 0.35 and isinstance(parent[path[-1]], dict):
        parent[path[-1]][rnd.choice(("bogus", "status", "name", "port", "kind"))] = rnd.choice(REPLACEMENTS)
    else:
        parent[path[-1]] = rnd.choice(REPLACEMENTS)
    return copy


def test_every_kind_with_a_schema_is_compiled() -> None:
    kinds = [k for k in load_schemas() if k not in ("common", "status")]
    assert [k for k in kinds if check_for(k) is None] == []


@pytest.mark.parametrize("seed", range(4))
def test_the_check_says_what_jsonschema_says(seed: int) -> None:
    rnd = random.Random(seed)
    compared = accepted = 0
    for kind, document in corpus():
        check, validator = check_for(kind), validator_for(kind)
        assert check is not None and validator is not None
        for candidate in (document, *(_mutate(document, rnd) for _ in range(2))):
            frozen = freeze(candidate)
            assert check(frozen) == validator.is_valid(frozen), (kind, candidate)
            compared += 1
            accepted += check(frozen)
    # Both answers are exercised: valid examples and refused mutations.
    assert compared > 4000 and 0.2 * compared < accepted < 0.8 * compared


def test_an_invalid_document_still_gets_jsonschemas_message() -> None:
    report = validate_text(
        "type: MeshTimeout\nname: t\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n"
        "  to:\n    - targetRef:\n        kind: Mesh\n      default:\n        idleTimeout: 10\n        bogus: 1\n"
    )
    assert [(p.line, p.message) for p in report.problems] == [
        (11, "must be a duration like 5s, 1m30s or 250ms (units: ns, us, ms, s, m, h)"),
        (12, 'unknown field "bogus"; allowed fields: connectionTimeout, http, idleTimeout'),
    ]


def test_a_valid_document_has_no_violations() -> None:
    kind, document = next((k, d) for k, d in corpus() if k == "MeshTimeout" and check_for(k)(d))  # type: ignore[misc]
    assert schema_violations(kind, document) == []


def test_a_keyword_the_compiler_does_not_know_leaves_the_kind_to_jsonschema() -> None:
    uri = SCHEMA_BASE + "Odd.json"
    with pytest.raises(Unsupported, match="patternProperties"):
        compile_check({"$id": uri, "type": "object", "patternProperties": {"^x-": {"type": "string"}}}, uri, {})
    with pytest.raises(Unsupported, match="unknown document"):
        compile_check({"$id": uri, "$ref": "Missing.json#/$defs/A"}, uri, {})


def test_recursive_references_compile() -> None:
    uri = SCHEMA_BASE + "Tree.json"
    schema = {
        "$id": uri,
        "type": "object",
        "properties": {"child": {"$ref": "#"}, "leaf": {"type": "string"}},
        "additionalProperties": False,
    }
    check = compile_check(schema, uri, {})
    assert check(freeze({"child": {"child": {"leaf": "a"}}}))
    assert not check(freeze({"child": {"child": {"leaf": 1}}}))
    assert not check(freeze({"child": {"other": "a"}}))
