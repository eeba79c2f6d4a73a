"""Issue 16 item 7: the YAML loader remembers the tag of short plain scalars instead of trying
PyYAML's implicit resolvers for each one. A value must read the same whether its tag was
remembered or not: `yes` and `on` are booleans, `~` is null, `0x1f` and `017` integers, and quoted text is
always a string."""

from __future__ import annotations

from typing import Any

from reconciler.source.budgets import file_budget
from reconciler.source.yamldoc import _RESOLVED_MAX, _Loader, parse_documents

DOCUMENT = """\
plain:
  - yes
  - on
  - Off
  - ~
  - null
  - 0x1f
  - 017
  - 1_000
  - 1.5
  - .inf
  - 2026-12-07
  - 10s
  - true
quoted:
  - "yes"
  - 'on'
  - "~"
  - "0x1f"
  - '1.5'
  - "true"
"""

EXPECTED: dict[str, Any] = {
    "plain": [True, True, False, None, None, 31, 15, 1000, 1.5, float("inf"), "2026-12-07", "10s", True],
    "quoted": ["yes", "on", "~", "0x1f", "1.5", "true"],
}


def _read(text: str) -> Any:
    (document,) = parse_documents(text, [file_budget()])
    return document.value


def test_values_read_the_same_with_their_tags_remembered_or_not() -> None:
    _Loader._resolved.clear()
    cold = _read(DOCUMENT)
    warm = _read(DOCUMENT)
    assert cold == warm == EXPECTED
    assert [type(v) for v in warm["plain"]] == [type(v) for v in EXPECTED["plain"]]


def test_a_file_of_unique_values_does_not_grow_the_table_past_its_bound() -> None:
    text = "".join(f"k{i}: v{i}\n" for i in range(_RESOLVED_MAX + 500))
    value = _read(text)
    assert value[f"k{_RESOLVED_MAX + 499}"] == f"v{_RESOLVED_MAX + 499}"
    assert len(_Loader._resolved) <= _RESOLVED_MAX
