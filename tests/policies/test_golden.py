"""Golden files: input resources → the Envoy resources generated for one proxy.

tests/policies/<kind>/NAME.input.yaml holds the resources of one commit (a Mesh `default` is
added when none is given). The proxy under test is named by a first-line comment
`# proxy: <mesh>.<name>`, else it is the first Dataplane. Each Envoy resource of that proxy is
compared with NAME.<type>.<resource name>.golden.yaml (YAML equality, not bytes).

`UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest tests/policies` rewrites them (and
removes goldens no longer produced); review the diff before committing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.mesh.model import build_mesh_model
from reconciler.mesh.proxy import proxy_views
from reconciler.validate import validate
from reconciler.xds.resources import SHORT_NAMES
from tests.support import generate_checked, snapshot_of_text

HERE = Path(__file__).parent
UPDATE = os.environ.get("UPDATE_GOLDEN_FILES") == "true"
TYPE_WORD = {"LDS": "listener", "RDS": "route", "CDS": "cluster", "EDS": "endpoints", "SDS": "secret"}


def _cases() -> list[Path]:
    return sorted(HERE.glob("*/*.input.yaml"))


def render(text: str) -> dict[str, Any]:
    """{golden file suffix: resource as Envoy JSON} for the proxy under test."""
    snapshot = snapshot_of_text(text if "type: Mesh\n" in text else text + "\n---\ntype: Mesh\nname: default\n", add_meshes=True)
    report = validate(snapshot)
    assert report.valid, "input is not valid:\n" + "\n".join(p.render() for p in report.errors)
    first = re.match(r"#\s*proxy:\s*(\S+)", text)
    dataplanes = [r for r in snapshot if r.type == "Dataplane"]
    node = first.group(1) if first else f"{dataplanes[0].mesh}.{dataplanes[0].name}"
    views = proxy_views(build_mesh_model(snapshot.resources))
    out = {}
    for res in generate_checked(views[node]):
        word = TYPE_WORD[SHORT_NAMES[res.type_url]]
        out[f"{word}.{_safe(res.name)}"] = _redact(res.to_dict()) if word == "secret" else res.to_dict()
    return out


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
    rendered = render(case.read_text(encoding="utf-8"))
    existing = {p.name.removeprefix(base + ".").removesuffix(".golden.yaml"): p for p in case.parent.glob(f"{base}.*.golden.yaml")}
    rerun = f"UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest {Path(__file__).relative_to(Path.cwd()) if Path(__file__).is_relative_to(Path.cwd()) else __file__} -k '{case.parent.name} and {base}'"
    if UPDATE:
        for suffix, doc in rendered.items():
            (case.parent / f"{base}.{suffix}.golden.yaml").write_text(yaml.safe_dump(doc, sort_keys=True, width=120), encoding="utf-8")
        for suffix, path in existing.items():
            if suffix not in rendered:
                path.unlink()
        return
    assert sorted(existing) == sorted(rendered), f"generated resources differ from the golden files; if right, rerun: {rerun}"
    for suffix, doc in rendered.items():
        expected = yaml.safe_load(existing[suffix].read_text(encoding="utf-8"))
        assert doc == expected, f"{case.parent.name}/{base}.{suffix} differs from its golden file; if right, rerun: {rerun}"
