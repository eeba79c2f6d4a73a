"""Mutations of example-repo/, drawn by hypothesis: documents, files and whole commits.

A case starts from the files of example-repo/ (a real, valid configuration: every kind the
pipeline builds is there) and applies a few mutations. Document mutations work on the parsed
YAML (key deletions, type swaps, nulls in lists, unicode, deep nesting, values spliced from
other documents, Kubernetes form) and write it back; byte mutations flip, insert and cut
bytes of a file; commit mutations delete files and copy documents (duplicate identities).
Choices are drawn one at a time with `st.data()`, so hypothesis shrinks a failure to the few
mutations that cause it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

__all__ = ["EXAMPLE_REPO", "example_files", "Case", "cases", "documents_of", "dump_documents"]

EXAMPLE_REPO = Path(__file__).resolve().parents[2] / "example-repo"

Tree = Any
Route = tuple[str | int, ...]

# Values that have broken parsers before: empties, bounds, wrong types, odd text.
INTERESTING: tuple[Any, ...] = (
    None,
    "",
    " ",
    0,
    -1,
    1,
    80,
    65535,
    65536,
    2**31,
    2**32,
    2**63,
    -(2**63),
    1.5,
    -0.0,
    float("inf"),
    float("nan"),
    True,
    False,
    [],
    {},
    [None],
    [[]],
    {"": None},
    {"a": None},
    "0s",
    "-1s",
    "1ms",
    "1h",
    "10y",
    "1000y",
    "999999999999h",
    "1e400",
    512,
    100000,
    "*",
    "**",
    "..",
    "/",
    "default",
    "kuma.io/service",
    "kuma.io/zone",
    "Mesh",
    "MeshService",
    "Dataplane",
    "MeshSubset",
    "127.0.0.1",
    "::",
    "0.0.0.0",
    "256.0.0.1",
    "10.0.0.0/33",
    "http://",
    "https://x:99999/",
    "ü",
    "\u202e",
    "😀",
    "\u0000",
    "\t",
    "a" * 300,
    "%s%n",
    "{{ .Name }}",
    "{{",
    "null",
    "~",
    "yes",
)


@cache
def _example_bytes() -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted((str(p.relative_to(EXAMPLE_REPO)), p.read_bytes()) for p in EXAMPLE_REPO.rglob("*.yaml")))


def example_files() -> dict[str, bytes]:
    """example-repo/'s YAML files, by path relative to it."""
    return dict(_example_bytes())


@cache
def _example_documents() -> tuple[tuple[str, tuple[Tree, ...]], ...]:
    return tuple((path, tuple(yaml.safe_load_all(data))) for path, data in _example_bytes())


def documents_of(path: str) -> list[Tree]:
    """The parsed documents of one example file (deep copies)."""
    return [copy.deepcopy(d) for p, docs in _example_documents() if p == path for d in docs]


@cache
def _corpus() -> tuple[tuple[Tree, ...], tuple[str, ...]]:
    """Every subtree and every mapping key of the examples: material to splice in."""
    subtrees: list[Tree] = []
    keys: set[str] = set()
    for _, docs in _example_documents():
        for doc in docs:
            for route in _routes(doc):
                node = _get(doc, route)
                subtrees.append(node)
                if isinstance(node, dict):
                    keys.update(k for k in node if isinstance(k, str))
    return tuple(subtrees), tuple(sorted(keys))


def dump_documents(docs: list[Tree]) -> bytes:
    return yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False, width=1000).encode("utf-8", "surrogatepass")


# -- tree helpers ---------------------------------------------------------------------------
def _routes(tree: Tree, prefix: Route = ()) -> Iterator[Route]:
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _routes(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _routes(v, prefix + (i,))


def _get(tree: Tree, route: Route) -> Tree:
    for step in route:
        tree = tree[step]
    return tree


def _put(tree: Tree, route: Route, value: Tree) -> Tree:
    """`tree` with the node at `route` replaced (in place below the root)."""
    if not route:
        return value
    _get(tree, route[:-1])[route[-1]] = value
    return tree


# -- document mutations -------------------------------------------------------------------
text_values = st.text(max_size=40) | st.sampled_from(["ü", "名前", "\u202e", "😀", "a\nb", "\x7f", "\u2028", "\ufeff"])
scalar_values = st.sampled_from(INTERESTING) | text_values | st.integers() | st.floats(allow_nan=True)


def _pick(data: st.DataObject, tree: Tree, wanted: Callable[[Tree], bool], label: str) -> Route | None:
    routes = [r for r in _routes(tree) if wanted(_get(tree, r))]
    if not routes:
        return None
    return routes[data.draw(st.integers(0, len(routes) - 1), label=label)]


def _delete_key(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: isinstance(n, dict) and bool(n), "mapping")
    if route is not None:
        node = _get(doc, route)
        del node[data.draw(st.sampled_from(sorted(node, key=str)), label="deleted key")]
    return doc


def _replace_value(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: True, "node")
    assert route is not None
    return _put(doc, route, data.draw(scalar_values, label="value"))


def _swap_type(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: True, "node")
    assert route is not None
    node = _get(doc, route)
    if isinstance(node, dict):
        swapped: Tree = list(node.values()) if data.draw(st.booleans(), label="to list") else [node]
    elif isinstance(node, list):
        swapped = {str(i): v for i, v in enumerate(node)} if data.draw(st.booleans(), label="to mapping") else (node[0] if node else None)
    elif isinstance(node, bool):
        swapped = str(node).lower()
    elif isinstance(node, (int, float)):
        swapped = data.draw(st.sampled_from([str(node), [node], {"value": node}, bool(node)]), label="number as")
    elif isinstance(node, str):
        swapped = data.draw(st.sampled_from([[node], {node: node}, len(node), node.isdigit() and int(node), None]), label="string as")
    else:
        swapped = data.draw(st.sampled_from(["", 0, [], {}]), label="null as")
    return _put(doc, route, swapped)


def _null_in_list(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: isinstance(n, list), "list")
    if route is not None:
        node = _get(doc, route)
        node.insert(data.draw(st.integers(0, len(node)), label="at"), data.draw(st.sampled_from([None, {}, [], ""]), label="filler"))
    return doc


def _duplicate_in_list(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: isinstance(n, list) and bool(n), "list")
    if route is not None:
        node = _get(doc, route)
        node.append(copy.deepcopy(node[data.draw(st.integers(0, len(node) - 1), label="item")]))
    return doc


def _rename_key(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: isinstance(n, dict) and bool(n), "mapping")
    if route is not None:
        node = _get(doc, route)
        old = data.draw(st.sampled_from(sorted(node, key=str)), label="key")
        new = data.draw(st.sampled_from([f"{old}x", str(old).upper(), str(old)[:-1], "ü" + str(old)]) | text_values, label="new key")
        node[new] = node.pop(old)
    return doc


def _add_key(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: isinstance(n, dict), "mapping")
    if route is not None:
        subtrees, keys = _corpus()
        key = data.draw(st.sampled_from(keys), label="added key")
        value = (
            copy.deepcopy(data.draw(st.sampled_from(subtrees), label="spliced value"))
            if data.draw(st.booleans(), label="splice")
            else data.draw(scalar_values)
        )
        _get(doc, route)[key] = value
    return doc


def _splice(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: True, "node")
    assert route is not None
    subtrees, _ = _corpus()
    return _put(doc, route, copy.deepcopy(data.draw(st.sampled_from(subtrees), label="spliced subtree")))


def _nest(data: st.DataObject, doc: Tree) -> Tree:
    route = _pick(data, doc, lambda n: True, "node")
    assert route is not None
    node = _get(doc, route)
    for _ in range(data.draw(st.integers(1, 80), label="depth")):
        node = [node] if data.draw(st.booleans(), label="list level") else {"a": node}
    return _put(doc, route, node)


def _to_kubernetes(data: st.DataObject, doc: Tree) -> Tree:
    """The same resource in Kuma's Kubernetes form (spec for policies, the body for flat kinds)."""
    if not isinstance(doc, dict) or "type" not in doc:
        return doc
    body = {k: v for k, v in doc.items() if k not in ("type", "name", "mesh", "labels")}
    labels = dict(doc.get("labels") or {}) if isinstance(doc.get("labels"), dict) else {}
    if "mesh" in doc:
        labels["kuma.io/mesh"] = doc["mesh"]
    spec = body.get("spec", body) if set(body) <= {"spec"} else body
    return {"apiVersion": "kuma.io/v1alpha1", "kind": doc["type"], "metadata": {"name": doc.get("name"), "labels": labels}, "spec": spec}


DOCUMENT_MUTATIONS: tuple[Callable[[st.DataObject, Tree], Tree], ...] = (
    _delete_key,
    _replace_value,
    _swap_type,
    _null_in_list,
    _duplicate_in_list,
    _rename_key,
    _add_key,
    _splice,
    _nest,
    _to_kubernetes,
)


# -- file and commit mutations ----------------------------------------------------------------
def _flip_bytes(data: st.DataObject, raw: bytes) -> bytes:
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8), label="byte edits")):
        at = data.draw(st.integers(0, len(out)), label="offset")
        how = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]), label="byte edit")
        if how == "flip" and at < len(out):
            out[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif how == "insert":
            out[at:at] = data.draw(
                st.binary(min_size=1, max_size=8)
                | st.sampled_from([b": ", b"- ", b"\n  ", b"&a ", b"*a", b"---\n", b"\t", b"\xef\xbb\xbf", b"{", b"]"]),
                label="inserted",
            )
        elif how == "delete":
            del out[at : at + data.draw(st.integers(1, 16), label="deleted bytes")]
        else:
            del out[at:]
    return bytes(out)


@dataclass
class Case:
    """One commit's files (path → bytes) and what was done to them, for the failure message."""

    files: dict[str, bytes]
    steps: list[str]

    def describe(self) -> str:
        return "; ".join(self.steps)

    def __repr__(self) -> str:
        """The steps and the files they changed (not the whole repository)."""
        original = example_files()
        changed = {p: d for p, d in sorted(self.files.items()) if original.get(p) != d}
        gone = sorted(set(original) - set(self.files))
        return f"Case(steps={self.steps!r}, deleted={gone!r}, changed={changed!r})"


@st.composite
def cases(draw: st.DrawFn, *, max_steps: int = 4) -> Case:
    """example-repo/ with 1..max_steps mutations of documents, bytes or whole files."""
    data = draw(st.data())
    files = example_files()
    parsed: dict[str, list[Tree]] = {}
    steps: list[str] = []
    for _ in range(data.draw(st.integers(1, max_steps), label="steps")):
        path = data.draw(st.sampled_from(sorted(files)), label="file")
        kind = data.draw(st.sampled_from(["document", "document", "document", "bytes", "commit"]), label="level")
        if kind == "document":
            docs = parsed.setdefault(path, documents_of(path))
            if not docs:
                continue
            i = data.draw(st.integers(0, len(docs) - 1), label="document")
            mutation = data.draw(st.sampled_from(DOCUMENT_MUTATIONS), label="mutation")
            docs[i] = mutation(data, docs[i])
            files[path] = dump_documents(docs)
            steps.append(f"{mutation.__name__.lstrip('_')} in {path}#{i}")
        elif kind == "bytes":
            files[path] = _flip_bytes(data, files[path])
            parsed.pop(path, None)
            steps.append(f"byte edits in {path}")
        else:
            action = data.draw(st.sampled_from(["delete file", "copy document", "empty file", "junk file"]), label="commit edit")
            if action == "delete file" and len(files) > 1:
                del files[path]
                parsed.pop(path, None)
            elif action == "copy document":
                # The same identity defined twice, in this file or another one.
                source = documents_of(data.draw(st.sampled_from(sorted(p for p, _ in _example_documents())), label="from"))
                target = parsed.setdefault(path, documents_of(path))
                target.extend(source[:1])
                files[path] = dump_documents(target)
            elif action == "empty file":
                files[f"extra/empty-{len(files)}.yaml"] = b""
            else:
                files[f"extra/junk-{len(files)}.yaml"] = data.draw(st.binary(max_size=64), label="junk")
            steps.append(f"{action} ({path})")
    return Case(files, steps)
