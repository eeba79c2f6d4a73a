"""What changed between two commits: resources added, removed and changed, field by field."""

from __future__ import annotations

from reconciler.diff import FieldChange, diff, diff_documents
from reconciler.source.git import GitSource
from reconciler.types import ResourceKey
from tests.support import GitRepo

MESH = "type: Mesh\nname: default\n"
TIMEOUT = """\
type: MeshTimeout
name: t
mesh: default
spec:
  targetRef:
    kind: Mesh
  to:
    - targetRef:
        kind: Mesh
      default:
        idleTimeout: 20s
        http:
          requestTimeout: 5s
"""


def test_diff_between_commits_lists_added_removed_and_changed_fields(repo: GitRepo) -> None:
    base = repo.commit({"m.yaml": MESH, "t.yaml": TIMEOUT, "old.yaml": "type: Mesh\nname: old\n"})
    head = repo.commit(
        {
            "t.yaml": TIMEOUT.replace("requestTimeout: 5s", "requestTimeout: 15s").replace("        idleTimeout: 20s\n", "")
            + "      # a comment changes nothing\n",
            "old.yaml": None,
            "new.yaml": "type: Mesh\nname: new\n",
        }
    )
    source = GitSource(repo.path)
    d = diff(source.snapshot(base).resources, source.snapshot(head).resources)
    assert [r.key for r in d.added] == [ResourceKey("Mesh", "", "new")]
    assert [r.key for r in d.removed] == [ResourceKey("Mesh", "", "old")]
    (change,) = d.changed
    assert change.key == ResourceKey("MeshTimeout", "default", "t")
    assert change.fields == (
        FieldChange("/spec/to/0/default/http/requestTimeout", "replace", "5s", "15s"),
        FieldChange("/spec/to/0/default/idleTimeout", "remove", "20s", None),
    )


def test_moving_a_resource_to_another_file_is_not_a_change(repo: GitRepo) -> None:
    base = repo.commit({"m.yaml": MESH, "t.yaml": TIMEOUT})
    head = repo.commit({"t.yaml": None, "policies/timeouts.yaml": "# moved\n" + TIMEOUT})
    source = GitSource(repo.path)
    assert diff(source.snapshot(base).resources, source.snapshot(head).resources).empty


def test_field_diff_of_lists_and_types() -> None:
    assert list(diff_documents({"a": [1, 2]}, {"a": [1, 3, 4]})) == [
        FieldChange("/a/1", "replace", 2, 3),
        FieldChange("/a/2", "add", None, 4),
    ]
    assert list(diff_documents({"a": 1}, {"a": "1"})) == [FieldChange("/a", "replace", 1, "1")]
    assert list(diff_documents({"a": {"b": 1}}, {"a": None})) == [FieldChange("/a", "replace", {"b": 1}, None)]
    assert list(diff_documents({"k/x": 1}, {})) == [FieldChange("/k~1x", "remove", 1, None)]
