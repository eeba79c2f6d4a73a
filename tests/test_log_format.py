"""`reconciler --log-format json`: every log record is one JSON object on one line, with `time`,
`level`, `logger`, `message` and the record's fields, whatever the fields hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import ConfigRemote, ControlPlaneProcess


def run_logging(log_format: str, code: str) -> list[str]:
    """stderr lines of a fresh interpreter that configures logging as the CLI does and runs `code`."""
    script = f"import logging\nfrom reconciler.logsetup import configure\nconfigure(False, {log_format!r})\nlog = logging.getLogger('reconciler.test')\n{code}\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    return done.stderr.splitlines()


def test_fields_keep_their_types_and_hostile_values_stay_on_one_line() -> None:
    lines = run_logging(
        "json",
        'log.warning("stream refused", extra={"node": "evil\\nINFO forged line\\x1b[31m", "count": 3, "ok": True, "ratio": 0.5,'
        ' "none": None, "time": "a field named time", "path": __import__("pathlib").Path("/x")})',
    )
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert (doc["level"], doc["logger"], doc["message"]) == ("WARNING", "reconciler.test", "stream refused")
    assert doc["node"] == "evil\nINFO forged line\x1b[31m"  # kept exactly, escaped by JSON
    assert (doc["count"], doc["ok"], doc["ratio"], doc["none"], doc["path"]) == (3, True, 0.5, None, "/x")
    assert doc["time_"] == "a field named time" and doc["time"].endswith("Z")


def test_an_exception_is_a_field_of_its_record_not_extra_lines() -> None:
    lines = run_logging("json", 'try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception("failed", extra={"step": "x"})')
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["message"] == "failed" and doc["step"] == "x"
    assert "ZeroDivisionError: division by zero" in doc["exception"]


def test_a_huge_field_is_cut() -> None:
    (line,) = run_logging("json", 'log.info("big", extra={"ref": "r" * 100_000})')
    value = json.loads(line)["ref"]
    assert value.startswith("r" * 1024) and value.endswith("(100,000 characters)") and len(value) < 1100


def test_text_stays_the_default() -> None:
    (line,) = run_logging("text", 'log.info("hello", extra={"who": "web"})')
    assert line.endswith("INFO reconciler.test: hello who=web")


def test_serve_logs_json_when_the_environment_asks(tmp_path: Path) -> None:
    remote = ConfigRemote(tmp_path)
    first = remote.push({"meshes/default.yaml": "type: Mesh\nname: default\n"}, "mesh")
    cp = ControlPlaneProcess(remote.bare, tmp_path / "state", dataplane_auth=False, xds_tls=False)
    cp.env["RECONCILER_LOG_FORMAT"] = "json"
    cp.start()
    try:
        cp.wait_applied(first)
        bad = remote.push({"meshes/default.yaml": "type: Mesh\nname: default\nmtls: 3\n"}, "broken mesh")
        cp.wait_attempted(bad)
    finally:
        cp.stop()
    records = [json.loads(line) for line in cp.output().splitlines() if line.startswith("{")]
    outcomes = {r["revision"]: r["outcome"] for r in records if r["message"] == "reconciled"}
    assert outcomes[first[:12]] == "applied" and outcomes[bad[:12]] == "rejected"
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert not [line for line in cp.output().splitlines() if " INFO reconciler" in line and not line.startswith("{")]
