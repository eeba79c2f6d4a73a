"""deploy/systemd: systemd itself reads the unit without a warning and rates its sandbox; the
sysusers and tmpfiles snippets give the user and directories the unit names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, SYSTEMD, unit_settings

UNIT = SYSTEMD / "mesh-reconciler.service"
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian package systemd; `make deploy-tools` as root)"
)


def unit_here(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart's binary pointed at this venv's: verify checks that it exists."""
    text = (text or UNIT.read_text()).replace("/opt/mesh-reconciler/bin/reconciler", str(ROOT / ".venv" / "bin" / "reconciler"))
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)


@needs_systemd_analyze
def test_systemd_reads_the_unit_without_a_warning(tmp_path: Path) -> None:
    result = verify(unit_here(tmp_path))
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stderr


@needs_systemd_analyze
def test_verify_would_report_a_misspelt_setting(tmp_path: Path) -> None:
    result = verify(unit_here(tmp_path, UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict")))
    assert "Unknown key 'ProtectSystm'" in result.stderr


@needs_systemd_analyze
def test_the_sandbox_rates_ok_in_systemd_analyze_security(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit_here(tmp_path))], capture_output=True, text=True, timeout=60
    )
    line = next(line for line in result.stdout.splitlines() if "Overall exposure level" in line)
    exposure = float(line.split(":")[1].split()[0])
    assert exposure <= 2.0, line  # "OK" starts below 2.1; a default unit is 9.6 ("UNSAFE")


def test_the_unit_keeps_the_sandboxing_the_docs_promise() -> None:
    settings = {key: values[-1] for key, values in unit_settings(UNIT).items()}
    expected = {
        "User": "reconciler",
        "StateDirectory": "reconciler",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert unit_settings(UNIT)["SystemCallFilter"][0] == "@system-service"
    assert set(settings["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert settings["LoadCredential"].startswith("git-token:")


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers and systemd-tmpfiles are not installed (Debian package systemd)",
)
def test_sysusers_and_tmpfiles_make_the_user_and_the_keys_directory(tmp_path: Path) -> None:
    """Both applied by systemd's own tools to an empty root directory."""
    (tmp_path / "etc").mkdir()
    for tool, args in (("systemd-sysusers", []), ("systemd-tmpfiles", ["--create"])):
        conf = SYSTEMD / f"mesh-reconciler.{tool.removeprefix('systemd-')}.conf"
        result = subprocess.run([tool, f"--root={tmp_path}", *args, str(conf)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    user = next(line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines() if line.startswith("reconciler:"))
    assert user[5:] == ["/var/lib/reconciler", "/usr/sbin/nologin"]
    keys = (tmp_path / "etc/reconciler/keys").stat()
    assert (keys.st_uid, keys.st_gid, oct(keys.st_mode & 0o777)) == (int(user[2]), int(user[3]), "0o700")
