"""Reading the shared keys directory: mesh CAs, token signing keys and the xDS CA come from it
and nothing is generated or changed there; rotation of a token key is seen without a restart."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from reconciler.ca.authority import CaError
from reconciler.ca.keys_init import BuiltinCa, make_keys
from reconciler.ca.signing_keys import SigningKeys
from reconciler.ca.statefiles import KeyMissing, StateFileError
from reconciler.ca.store import CaKeyMissing, CaNotInKeysDir, CaStore
from reconciler.ca.token_errors import TokenInvalid
from reconciler.ca.tokens import issue_token, verify_token
from reconciler.ca.xds_tls import check_state, load_or_create


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shared") / "keys"
    make_keys(out, [BuiltinCa("default", "ca-1")])
    return out


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_a_mesh_ca_is_read_from_the_keys_dir_and_history_stays_in_the_state_dir(keys: Path, tmp_path: Path) -> None:
    before = snapshot(keys)
    store = CaStore(tmp_path / "state", keys)
    authority = store.builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    assert authority.cert_pem == (keys / "ca.default.ca-1.crt").read_bytes()
    store.activate("default", authority)
    assert (tmp_path / "state" / "ca" / "default" / "history.json").is_file()
    assert not (tmp_path / "state" / "ca" / "default" / "ca-1").exists()
    assert snapshot(keys) == before


def test_a_mesh_ca_missing_from_the_keys_dir_is_a_ca_error_and_is_not_made(keys: Path, tmp_path: Path) -> None:
    before = snapshot(keys)
    with pytest.raises(CaNotInKeysDir) as raised:
        CaStore(tmp_path / "state", keys).builtin("other", "ca-1", rsa_bits=2048, validity=86400)
    assert isinstance(raised.value, CaError)
    assert raised.value.path == keys / "ca.other.ca-1.crt"
    assert f"reconciler keys init --out {keys} --repo" in str(raised.value) and "update the Secret" in str(raised.value)
    assert snapshot(keys) == before
    assert not (tmp_path / "state").exists()


def test_a_ca_certificate_without_its_key_in_the_keys_dir_stops_the_start(keys: Path, tmp_path: Path) -> None:
    broken = tmp_path / "keys"
    broken.mkdir()
    (broken / "ca.default.ca-1.crt").write_bytes((keys / "ca.default.ca-1.crt").read_bytes())
    with pytest.raises(CaKeyMissing) as raised:
        CaStore(tmp_path / "state", broken).check_keys()
    assert raised.value.path == broken / "ca.default.ca-1.key"


def test_a_key_readable_by_others_in_the_keys_dir_keeps_its_mode(keys: Path, tmp_path: Path) -> None:
    """A Secret is mounted with the mode its volume says; the reader must not try to change it."""
    shared = tmp_path / "keys"
    shared.mkdir()
    for name in ("ca.default.ca-1.crt", "ca.default.ca-1.key"):
        (shared / name).write_bytes((keys / name).read_bytes())
        (shared / name).chmod(0o644)
    CaStore(tmp_path / "state", shared).builtin("default", "ca-1", rsa_bits=2048, validity=86400)
    assert stat.S_IMODE((shared / "ca.default.ca-1.key").stat().st_mode) == 0o644


def test_a_token_key_added_to_the_keys_dir_verifies_without_a_restart_and_a_removed_one_stops(tmp_path: Path) -> None:
    shared = tmp_path / "keys"
    make_keys(shared)
    running = SigningKeys.open_shared(shared)
    old = issue_token(running, mesh="default", name="web", tags={}, valid_for=3600)
    SigningKeys(shared, {}, shared=True).add_key()  # what `keys rotate-token-key` does in the Secret
    new = issue_token(SigningKeys.open_shared(shared), mesh="default", name="web", tags={}, valid_for=3600)
    assert verify_token(new, running).key_id == "2"
    assert verify_token(old, running).key_id == "1"
    (shared / "dataplane-token.1.pem").unlink()  # the last step of a rotation, seen at the next verification
    with pytest.raises(TokenInvalid, match="no signing key with KID 1"):
        verify_token(old, running)
    assert sorted(p.name for p in shared.iterdir()) == ["admin-token", "dataplane-token.2.pem", "xds-ca.crt", "xds-ca.key"]


def test_no_token_key_in_the_keys_dir_is_a_missing_key(tmp_path: Path) -> None:
    with pytest.raises(KeyMissing) as raised:
        SigningKeys.open_shared(tmp_path)
    assert raised.value.path == tmp_path / "dataplane-token.1.pem"
    assert list(tmp_path.iterdir()) == []


def test_the_xds_server_certificate_is_issued_into_the_state_dir_from_the_shared_ca(keys: Path, tmp_path: Path) -> None:
    before = snapshot(keys)
    assert check_state(tmp_path / "state", keys_dir=keys) is None
    served = load_or_create(tmp_path / "state", ("localhost", "10.0.0.7"), keys_dir=keys)
    assert served.ca_cert_pem == (keys / "xds-ca.crt").read_bytes()
    assert (tmp_path / "state" / "xds-tls" / "server.pem").is_file()
    assert (tmp_path / "state" / "xds-tls" / "ca.crt").read_bytes() == served.ca_cert_pem
    assert snapshot(keys) == before


def test_the_xds_ca_missing_from_the_keys_dir_is_named(keys: Path, tmp_path: Path) -> None:
    partial = tmp_path / "keys"
    partial.mkdir()
    (partial / "xds-ca.crt").write_bytes((keys / "xds-ca.crt").read_bytes())
    with pytest.raises(StateFileError) as raised:
        check_state(tmp_path / "state", keys_dir=partial)
    assert raised.value.path == partial / "xds-ca.key"
