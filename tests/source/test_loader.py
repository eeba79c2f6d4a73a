"""Reading YAML files into resources: both forms, and every kind of bad input as a located error."""

from __future__ import annotations

from reconciler.source.budgets import MAX_FILE_BYTES, file_budget
from reconciler.source.loader import load_file
from reconciler.types import ResourceKey

UNIVERSAL = """\
type: MeshTimeout
name: backend-timeouts
mesh: default
labels:
  team: payments
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        idleTimeout: 20s
"""

KUBERNETES = """\
apiVersion: kuma.io/v1alpha1
kind: MeshTimeout
metadata:
  name: backend-timeouts
  labels:
    kuma.io/mesh: default
    team: payments
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: MeshService
        name: backend
      default:
        idleTimeout: 20s
"""


def messages(result) -> list[tuple[int | None, str, str]]:
    return [(p.line, p.pointer, p.message) for p in result.problems]


def alias_bomb(documents: int) -> str:
    """Meshes whose `logging` aliases expand to 190,126 values each, on 9 lines and 590 bytes:
    each document stays under the old per-document limit (200,000 values), so only a budget
    shared by the documents of a file stops it. 100 documents are the issue's 58 KB file."""

    def document(i: int) -> str:
        lines = ["type: Mesh", f"name: bomb-{i}", "logging:", "  level1: &level1 [x, x, x, x, x, x, x, x, x, x]"]
        for n in range(2, 6):
            lines.append(f"  level{n}: &level{n} [" + ", ".join([f"*level{n - 1}"] * 10) + "]")
        lines.append("  level6: [" + ", ".join(["*level4"] * 6) + "]")
        return "\n".join(lines) + "\n"

    return "---\n".join(document(i) for i in range(documents))


FILE_BUDGET_MESSAGE = (
    "file expands to more than 200,000 values, counting each use of an alias (*ref) in full; "
    "it reached the limit here: write the values out instead of aliases, or split the file"
)


def test_universal_and_kubernetes_forms_normalize_to_the_same_resource() -> None:
    a = load_file("u.yaml", UNIVERSAL.encode()).resources[0]
    b = load_file("k.yaml", KUBERNETES.encode()).resources[0]
    assert a == b
    assert a.digest == b.digest
    assert a.key == ResourceKey("MeshTimeout", "default", "backend-timeouts")
    assert dict(a.labels) == {"team": "payments"}
    assert a.document() == b.document()


def test_kubernetes_form_of_a_proto_kind_lifts_spec_to_the_top_level() -> None:
    text = """\
apiVersion: kuma.io/v1alpha1
kind: Mesh
metadata:
  name: prod
spec:
  mtls:
    enabledBackend: ca-1
    backends:
      - name: ca-1
        type: builtin
"""
    r = load_file("m.yaml", text.encode()).resources[0]
    universal = load_file(
        "m2.yaml", b"type: Mesh\nname: prod\nmtls:\n  enabledBackend: ca-1\n  backends:\n    - name: ca-1\n      type: builtin\n"
    ).resources[0]
    assert r == universal
    assert r.document()["mtls"]["enabledBackend"] == "ca-1"
    # A problem found in the lifted field points back into the file as written.
    assert r.origin is not None
    assert r.origin.file_pointer("/mtls/enabledBackend") == "/spec/mtls/enabledBackend"
    assert r.origin.line_of("/mtls/enabledBackend") == 7


def test_policy_without_mesh_goes_to_the_default_mesh() -> None:
    r = load_file("p.yaml", b"type: MeshRetry\nname: r\nspec: {}\n").resources[0]
    assert r.key == ResourceKey("MeshRetry", "default", "r")


def test_multi_document_files_give_one_resource_per_document_with_its_own_line() -> None:
    text = "type: Mesh\nname: a\n---\n# comment\n---\ntype: Mesh\nname: b\n"
    result = load_file("m.yaml", text.encode())
    assert [(r.name, r.origin.line, r.origin.document) for r in result.resources] == [("a", 1, 0), ("b", 6, 2)]
    assert result.problems == ()


def test_kubectl_read_only_fields_are_ignored() -> None:
    text = "type: Mesh\nname: a\ncreationTime: '2024-01-01T00:00:00Z'\nmodificationTime: '2024-01-01T00:00:00Z'\n"
    result = load_file("m.yaml", text.encode())
    assert result.problems == ()
    assert dict(result.resources[0].spec) == {}


def test_malformed_yaml_is_reported_at_its_line() -> None:
    text = "type: Mesh\nname: a\nmtls:\n  enabledBackend: [unclosed\n"
    ((line, pointer, message),) = messages(load_file("bad.yaml", text.encode()))
    assert (line, pointer) == (5, "")
    assert message.startswith("malformed YAML: while parsing a flow sequence")


def test_document_that_is_not_a_mapping() -> None:
    assert messages(load_file("l.yaml", b"- a\n- b\n")) == [(1, "", "document is a list; a resource is a mapping with type, name and spec")]
    assert messages(load_file("s.yaml", b"just text\n")) == [
        (1, "", "document is a str scalar; a resource is a mapping with type, name and spec")
    ]


def test_missing_type_and_name_are_both_reported() -> None:
    result = load_file("x.yaml", b"spec: {}\n")
    assert [m for _, _, m in messages(result)] == [
        "missing type: every resource needs `type:` (e.g. type: MeshTimeout)",
        "missing name: every resource needs a non-empty string `name:`",
    ]


def test_unknown_type_suggests_the_closest_kind() -> None:
    result = load_file("x.yaml", b"type: MeshTimeOut\nname: a\n")
    ((line, pointer, message),) = messages(result)
    assert (line, pointer) == (1, "/type")
    assert message.startswith('unknown type "MeshTimeOut"; did you mean "MeshTimeout"?')


def test_unknown_top_level_field_of_a_spec_kind() -> None:
    result = load_file("x.yaml", b"type: MeshRetry\nname: a\nspecs: {}\n")
    assert messages(result) == [(3, "/specs", "unknown field `specs`: a MeshRetry has type, name, mesh, labels and spec")]


def test_spec_and_labels_of_the_wrong_shape() -> None:
    result = load_file("x.yaml", b"type: MeshRetry\nname: a\nlabels: [a]\nspec: 5\n")
    assert messages(result) == [
        (3, "/labels", "labels must be a mapping of strings to strings (quote numbers and booleans)"),
        (4, "/spec", "spec must be a mapping, not int"),
    ]


def test_global_kind_with_a_mesh_is_an_error() -> None:
    result = load_file("x.yaml", b"type: Mesh\nname: a\nmesh: default\n")
    assert messages(result) == [(3, "/mesh", "Mesh is a global kind and takes no mesh; remove `mesh: default`")]


def test_non_kuma_kubernetes_object_is_an_error() -> None:
    result = load_file("d.yaml", b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n")
    assert messages(result)[0][:2] == (1, "/apiVersion")
    assert "is not a Kuma resource" in messages(result)[0][2]


def test_duplicate_keys_are_an_error() -> None:
    result = load_file("d.yaml", b"type: Mesh\nname: a\nname: b\n")
    assert messages(result) == [(3, "", 'duplicate key "name" in the same mapping')]


def test_non_utf8_file_is_reported_with_the_line_of_the_bad_byte() -> None:
    result = load_file("latin1.yaml", "type: Mesh\nname: caf\xe9\n".encode("latin-1"))
    assert messages(result) == [(2, "", "file is not valid UTF-8 (byte 0xe9 at offset 20); save it as UTF-8")]


def test_file_over_one_mebibyte_is_refused_unread() -> None:
    data = b"# " + b"x" * MAX_FILE_BYTES + b"\n"
    ((line, _, message),) = messages(load_file("big.yaml", data))
    assert line == 1
    assert message.startswith(f"file is {len(data):,} bytes; the limit is 1,048,576 (1 MiB)")


def test_billion_laughs_is_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    prev = "a"
    for n in "bcdefghi":
        lines.append(f"{n}: &{n} [" + ", ".join([f"*{prev}"] * 10) + "]")
        prev = n
    text = "type: Mesh\nname: laughs\nlogging:\n" + "\n".join("  " + line for line in lines) + "\n"
    ((line, _, message),) = messages(load_file("lol.yaml", text.encode()))
    assert message == FILE_BUDGET_MESSAGE
    assert line >= 4


def test_alias_bomb_split_across_documents_is_refused_where_the_file_budget_runs_out() -> None:
    result = load_file("bomb.yaml", alias_bomb(3).encode())
    # Document 1 (lines 1-9) spends 190,126 values; document 2 runs out on its line 7
    # (`level5: &level5 [*level4, ...]`, line 17 of the file), before document 3 is built.
    assert messages(result) == [(17, "", FILE_BUDGET_MESSAGE)]
    assert result.resources == ()
    assert result.over_budget


def test_budget_names_the_line_that_uses_the_alias_not_the_line_that_defines_it() -> None:
    lines = ["type: Mesh", "name: a", "logging:", "  level1: &level1 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(2, 6):  # 123,455 values on lines 4-8: within the budget
        lines.append(f"  level{n}: &level{n} [" + ", ".join([f"*level{n - 1}"] * 10) + "]")
    lines += ["  fine: 1", "  again: *level5", "  later: 2"]  # line 10 asks for 111,111 more
    ((line, _, message),) = messages(load_file("a.yaml", ("\n".join(lines) + "\n").encode()))
    assert (line, message) == (10, FILE_BUDGET_MESSAGE)


def test_merge_keys_count_against_the_budget_at_the_line_that_merges() -> None:
    lines = ["type: Mesh", "name: a", "logging:", "  base: &base"]
    lines += [f"    k{i}: &v{i} [x, x, x, x, x, x, x, x, x, x]" for i in range(10)]  # lines 5-14
    lines += ["  copies:"] + [f"    - <<: *base  # {i}" for i in range(2000)]  # line 16 on: 111 values each
    ((line, _, message),) = messages(load_file("m.yaml", ("\n".join(lines) + "\n").encode()))
    assert message == FILE_BUDGET_MESSAGE
    # 116 values up to line 15, then the copy on line 16 + k runs out for k = 1,800.
    assert line == 16 + (200_000 - 116) // 111


def test_budget_can_be_smaller_for_one_resource() -> None:
    text = "type: Mesh\nname: a\nlogging:\n  list: &l [x, x, x, x, x, x, x, x, x, x]\n  copies: [*l, *l, *l]\n"
    assert load_file("a.yaml", text.encode()).problems == ()
    small = file_budget(30)
    ((line, _, message),) = messages(load_file("a.yaml", text.encode(), budget=small))
    assert line == 5
    assert message.startswith("file expands to more than 30 values")


def test_a_mebibyte_of_real_resources_in_one_file_is_within_the_budget() -> None:
    one = UNIVERSAL.replace("name: backend-timeouts", "name: t-{i}").replace("name: backend\n", "name: svc-{i}\n")
    documents: list[str] = []
    size = 0
    while size + len(one) + 4 <= MAX_FILE_BYTES:
        documents.append(one.format(i=len(documents)))
        size += len(documents[-1]) + 4  # and the `---` line
    text = "---\n".join(documents)
    assert MAX_FILE_BYTES - 300 < len(text) <= MAX_FILE_BYTES
    result = load_file("many.yaml", text.encode())
    assert result.problems == ()
    assert len(result.resources) == len(documents)


def test_recursive_alias_is_refused() -> None:
    ((_, _, message),) = messages(load_file("r.yaml", b"type: Mesh\nname: a\nx: &x\n  y: *x\n"))
    assert message == "recursive YAML alias: a value contains itself"


def test_deep_nesting_is_refused() -> None:
    text = "type: Mesh\nname: a\nx: " + "[" * 100 + "]" * 100 + "\n"
    ((_, _, message),) = messages(load_file("deep.yaml", text.encode()))
    assert message == "document is nested deeper than 64 levels"


def test_small_aliases_are_expanded_like_kuma_does() -> None:
    text = "type: MeshRetry\nname: a\nspec:\n  targetRef: &mesh\n    kind: Mesh\n  to:\n    - targetRef: *mesh\n"
    result = load_file("a.yaml", text.encode())
    assert result.problems == ()
    assert result.resources[0].spec["to"][0]["targetRef"] == {"kind": "Mesh"}


def test_kubernetes_secret_of_kuma_type_becomes_a_kuma_secret() -> None:
    text = """\
apiVersion: v1
kind: Secret
metadata:
  name: sec-1
  labels:
    kuma.io/mesh: default
type: system.kuma.io/secret
data:
  value: dGVzdAo=
"""
    r = load_file("s.yaml", text.encode()).resources[0]
    assert r.key == ResourceKey("Secret", "default", "sec-1")
    assert r.document() == {"type": "Secret", "name": "sec-1", "mesh": "default", "data": "dGVzdAo="}


def test_resources_are_immutable() -> None:
    import pytest

    r = load_file("u.yaml", UNIVERSAL.encode()).resources[0]
    with pytest.raises(TypeError):
        r.spec["targetRef"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        r.spec["to"][0]["default"]["idleTimeout"] = "1s"  # type: ignore[index]
