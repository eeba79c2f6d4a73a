"""Golden files: what the resources of one kind change in the Envoy config of one proxy.

tests/policies/<kind>/NAME.input.yaml holds the resources of one commit (a Mesh `default` is
added when none is given). The proxy under test is named by a first-line comment
`# proxy: <mesh>.<name>`, else it is the first Dataplane. NAME.golden.yaml records the
difference between that proxy's Envoy resources generated from the input and from the
baseline: the same input without the resources of the folder's kind (`meshtimeout/` →
every MeshTimeout) and without Kuma's default policies of that kind (the kind is added to
each Mesh's `skipCreatingInitialPolicies`). So a golden holds only what its kind does, and a
change to base generation does not churn every policy's goldens. The file lists

- `added`: whole resources the kind adds (by `<type word>.<resource name>`),
- `removed`: names of resources it takes away,
- `changed`: per resource, the field-level changes (reconciler/diff.py `diff_documents`:
  JSON pointer, op, old and new value; lists compare by position).

Folders that are not a kind of resource, `core/` (base generation: no policies, mTLS, the
outbound shape), have an empty baseline, so their goldens hold every resource as `added`; so
do cases whose baseline is their input (no resource of the kind, its defaults already
skipped: `meshcircuitbreaker/skip-default`, `meshtrafficpermission/no-permission-denies-all`),
as what they pin is the config without the kind.
The other non-policy folders (meshgateway, meshexternalservice, meshidentity) take the input
without their kind's resources as baseline, like the policies: what a MeshGateway,
MeshExternalService or MeshIdentity adds to the proxy. Secrets' key material is redacted.

`UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest tests/policies` rewrites them; review
the diff before committing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.diff import diff_documents
from reconciler.mesh.model import build_mesh_model
from reconciler.policies.plugins import plugins
from reconciler.validate import validate
from reconciler.views.proxy import proxy_views
from reconciler.xds.resources import SHORT_NAMES
from tests.support import generate_checked, snapshot_of_text

HERE = Path(__file__).parent
UPDATE = os.environ.get("UPDATE_GOLDEN_FILES") == "true"
TYPE_WORD = {"LDS": "listener", "RDS": "route", "CDS": "cluster", "EDS": "endpoints", "SDS": "secret"}
FULL_GOLDEN_FOLDERS = frozenset({"core"})
"""Folders whose goldens hold the whole config (empty baseline): base generation itself."""


def _cases() -> list[Path]:
    return sorted(HERE.glob("*/*.input.yaml"))


def _with_mesh(text: str) -> str:
    return text if "type: Mesh\n" in text else text + "\n---\ntype: Mesh\nname: default\n"


def _proxy_under_test(text: str) -> str:
    first = re.match(r"#\s*proxy:\s*(\S+)", text)
    if first:
        return first.group(1)
    dataplane = next(d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("type") == "Dataplane")
    return f"{dataplane.get('mesh', 'default')}.{dataplane['name']}"


def render(text: str, node: str) -> dict[str, Any]:
    """{`<type word>.<resource name>`: resource as Envoy JSON} for the proxy `node`."""
    snapshot = snapshot_of_text(text, add_meshes=True)
    report = validate(snapshot)
    assert report.valid, "input is not valid:\n" + "\n".join(p.render() for p in report.errors)
    views = proxy_views(build_mesh_model(snapshot.resources))
    out = {}
    for res in generate_checked(views[node]):
        word = TYPE_WORD[SHORT_NAMES[res.type_url]]
        out[f"{word}.{_safe(res.name)}"] = _redact(res.to_dict()) if word == "secret" else res.to_dict()
    return out


def baseline_text(text: str, kind: str) -> str:
    """The input without the resources of `kind` (a lower-case type) and without Kuma's default
    policies of that kind."""
    docs = []
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or str(doc.get("type", "")).lower() == kind:
            continue
        if doc.get("type") == "Mesh":
            skipped = list(doc.get("skipCreatingInitialPolicies") or ())
            kinds = [k for k in _kinds_named(kind) if k not in skipped]
            if "*" not in skipped and kinds:
                doc = {**doc, "skipCreatingInitialPolicies": skipped + kinds}
        docs.append(doc)
    return yaml.safe_dump_all(docs, sort_keys=False)


def _kinds_named(kind: str) -> list[str]:
    return [p.kind for p in plugins() if p.kind.lower() == kind]


def golden_doc(case: Path) -> dict[str, Any]:
    """What NAME.golden.yaml holds for this case (see the module docstring)."""
    text = _with_mesh(case.read_text(encoding="utf-8"))
    node = _proxy_under_test(text)
    kind = case.parent.name
    with_kind = render(text, node)
    baseline = baseline_text(text, kind)
    unchanged = list(yaml.safe_load_all(baseline)) == [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    without = {} if kind in FULL_GOLDEN_FOLDERS or unchanged else render(_with_mesh(baseline), node)
    return difference(without, with_kind)


def difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "added": {k: new[k] for k in sorted(new.keys() - old.keys())},
        "removed": sorted(old.keys() - new.keys()),
        "changed": {
            k: changes for k in sorted(old.keys() & new.keys()) if (changes := [c.to_json() for c in diff_documents(old[k], new[k])])
        },
    }


def _redact(doc: Any) -> Any:
    """Certificates and keys are new on every run: goldens keep their shape, not their bytes."""
    if isinstance(doc, dict):
        return {k: ("<redacted>" if k == "inlineBytes" else _redact(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_redact(v) for v in doc]
    return doc


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@pytest.mark.parametrize("case", _cases(), ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('.input.yaml')}")
def test_generated_envoy_resources_match_golden_files(case: Path) -> None:
    base = case.name.removesuffix(".input.yaml")
    golden = case.parent / f"{base}.golden.yaml"
    rendered = golden_doc(case)
    here = Path(__file__)
    shown = here.relative_to(Path.cwd()) if here.is_relative_to(Path.cwd()) else here
    rerun = f"UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest {shown} -k '{case.parent.name} and {base}'"
    if UPDATE:
        golden.write_text(yaml.safe_dump(rendered, sort_keys=True, width=120), encoding="utf-8")
        return
    assert golden.exists(), f"{case.parent.name}/{golden.name} is missing; if the output is right, rerun: {rerun}"
    expected = yaml.safe_load(golden.read_text(encoding="utf-8"))
    for part in ("added", "removed", "changed"):
        assert rendered[part] == expected.get(part), f"{case.parent.name}/{golden.name}: `{part}` differs; if right, rerun: {rerun}"
