"""The serve log's key=value fields: what a proxy or a pusher chose stays one field of one line."""

from __future__ import annotations

import logging

from reconciler.logsetup import MAX_FIELD, _FieldsFormatter


def render(**fields: object) -> str:
    record = logging.makeLogRecord({"msg": "stream refused", "levelname": "WARNING", "name": "reconciler.xds.server", **fields})
    return _FieldsFormatter("%(levelname)s %(name)s: %(message)s").format(record)


def test_a_newline_in_a_field_cannot_forge_a_log_line() -> None:
    line = render(node="default.web\n2026-12-06 INFO reconciler: applied", reason="x")
    assert line.splitlines() == [line]
    assert line == 'WARNING reconciler.xds.server: stream refused node="default.web\\n2026-12-06 INFO reconciler: applied" reason=x'


def test_escape_sequences_and_quotes_are_shown_as_text() -> None:
    assert (
        render(node="a\x1b[31mb", reason='say "hi"')
        == 'WARNING reconciler.xds.server: stream refused node=a\\x1b[31mb reason="say \\"hi\\""'
    )


def test_a_huge_field_is_cut() -> None:
    line = render(node="a" * 300_000)
    assert len(line) < MAX_FIELD + 100
    assert line.endswith('…(300,000 characters)"')
