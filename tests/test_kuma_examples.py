"""Kuma's own examples (../shared/kuma-examples): valid ones give no errors, invalid ones give
errors at the fields Kuma reports.

Each example is validated as Kuma's README for the folder says: alone in a commit, with a Mesh
for each mesh it names. Field paths in INDEX.tsv use Kuma's dotted notation and, for the proto
kinds, a few names of Kuma's own (`config` for `conf`); `kuma_field_to_pointer` maps them.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.support import validate_text

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "kuma-examples"
INDEX = EXAMPLES / "INDEX.tsv"

if not INDEX.exists():
    pytest.skip(
        f"Kuma's examples are not here ({EXAMPLES}); they live beside the project in the "
        "team's workspace, not in a user's clone",
        allow_module_level=True,
    )

# Kuma's validators name a few fields differently from the YAML the user writes.
ALIASES = {
    "/mtls/dpcert/rotation/expiration": "/mtls/backends/*/dpcert/rotation/expiration",
}


def _rows() -> list[dict[str, str]]:
    with INDEX.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def kuma_field_to_pointer(field: str) -> str:
    """`spec.to[0].default` → `/spec/to/0/default`; `tags["kuma.io/service"]` → `/tags/kuma.io~1service`."""
    out = []
    for m in re.finditer(r'\["([^"]*)"\]|\[(\d+)\]|([^.\[\]]+)', field):
        key, index, name = m.groups()
        token = key if key is not None else index if index is not None else name
        out.append(token.replace("~", "~0").replace("/", "~1"))
    return "".join("/" + t for t in out)


def _norm(pointer: str) -> str:
    return "/".join("conf" if t == "config" else t for t in pointer.lower().split("/"))


def _hits(expected: str, reported: list[str]) -> bool:
    want = _norm(ALIASES.get(_norm(expected), expected))
    pattern = re.compile("^" + re.escape(want).replace(r"\*", "[^/]+") + "(/.*)?$")
    for pointer in reported:
        got = _norm(pointer)
        if pattern.match(got):
            return True  # at the field or inside it
        if got and want.startswith(got + "/") and want.count("/") - got.count("/") == 1:
            return True  # at the field's parent (a rule about the combination of its fields)
    return False


def _expected_fields(expected_error: str) -> list[str]:
    fields = []
    for part in expected_error.split(" | "):
        field = part.split(":", 1)[0].strip().strip('"').replace('""', '"')
        if field:
            fields.append(field)
    return fields


ROWS = _rows()


@pytest.mark.parametrize("row", [r for r in ROWS if r["valid"] == "yes"], ids=lambda r: r["file"])
def test_kuma_valid_example_is_accepted(row: dict[str, str]) -> None:
    text = (EXAMPLES / row["file"]).read_text(encoding="utf-8")
    report = validate_text(text, path=row["file"])
    assert report.errors == (), "\n".join(p.render() for p in report.errors)


@pytest.mark.parametrize("row", [r for r in ROWS if r["valid"] == "no"], ids=lambda r: r["file"])
def test_kuma_invalid_example_is_rejected_at_kumas_fields(row: dict[str, str]) -> None:
    text = (EXAMPLES / row["file"]).read_text(encoding="utf-8")
    report = validate_text(text, path=row["file"])
    assert report.errors, f"{row['file']} was accepted; Kuma rejects it with: {row['expected_error']}"
    reported = [p.pointer for p in report.errors]
    missing = [f for f in _expected_fields(row["expected_error"]) if not _hits(kuma_field_to_pointer(f), reported)]
    assert not missing, (
        f"{row['file']}: no error at {missing}; Kuma says: {row['expected_error']}\nwe said:\n"
        + "\n".join(p.render() for p in report.errors)
    )
