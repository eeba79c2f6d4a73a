"""Per-kind validation cases, discovered from files.

tests/cases/<Kind>/<case>.input.yaml holds one file of a commit (Meshes it names are added);
<case>.errors.yaml beside it is the full list of expected problems (`[]` when valid).
`UPDATE_GOLDEN_FILES=true make test PYTEST_ARGS='-k test_validation_case'` rewrites the
expected files; review the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.support import problem_dicts, validate_text

CASES = Path(__file__).parent / "cases"
UPDATE = os.environ.get("UPDATE_GOLDEN_FILES") == "true"


def _cases() -> list[Path]:
    return sorted(CASES.glob("*/*.input.yaml"))


@pytest.mark.parametrize("input_path", _cases(), ids=lambda p: f"{p.parent.name}/{p.name.removesuffix('.input.yaml')}")
def test_validation_case(input_path: Path) -> None:
    expected_path = input_path.with_name(input_path.name.replace(".input.yaml", ".errors.yaml"))
    report = validate_text(input_path.read_text(encoding="utf-8"))
    actual = problem_dicts(report.problems)
    if UPDATE:
        expected_path.write_text(
            yaml.safe_dump(actual, sort_keys=False, allow_unicode=True, width=200) if actual else "[]\n", encoding="utf-8"
        )
    assert expected_path.exists(), (
        f"no expected file for {input_path.name}; rerun with UPDATE_GOLDEN_FILES=true to create it: "
        f"UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest {__file__} -k '{input_path.parent.name}'"
    )
    expected = yaml.safe_load(expected_path.read_text(encoding="utf-8")) or []
    assert actual == expected, (
        f"problems differ for {input_path}; if the new output is right, rerun with "
        f"UPDATE_GOLDEN_FILES=true .venv/bin/python -m pytest {__file__} -k '{input_path.parent.name}'"
    )
