"""The CA store on its own: one builtin CA per mesh backend, kept in memory or in the state
directory, the CAs a mesh retired, and the files it refuses to sign with."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.ca.authority import Authority
from reconciler.ca.store import CaKeyMissing, CaKeyUnusable, CaStore

DAY = 86400.0


def test_without_a_state_directory_cas_live_in_memory_one_per_backend() -> None:
    store = CaStore()
    first = store.builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    assert store.builtin("default", "ca-1", rsa_bits=2048, validity=DAY) is first
    assert store.builtin("default", "ca-2", rsa_bits=2048, validity=DAY).fingerprint != first.fingerprint
    assert CaStore().builtin("default", "ca-1", rsa_bits=2048, validity=DAY).fingerprint != first.fingerprint


def test_a_ca_made_in_the_state_directory_is_the_same_after_a_restart(tmp_path: Path) -> None:
    made = CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    assert (tmp_path / "ca" / "default" / "ca-1" / "ca.crt").read_bytes() == made.cert_pem
    assert (tmp_path / "ca" / "default" / "ca-1" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY).fingerprint == made.fingerprint


def test_switching_cas_retires_the_previous_one_with_the_time_of_the_switch(root: Authority, other_root: Authority) -> None:
    store = CaStore()
    store.activate("default", root, now=100.0)
    store.activate("default", root, now=200.0)  # the same CA again: nothing retires
    assert store.retired("default") == []
    store.activate("default", other_root, now=300.0)
    assert [(r.fingerprint, r.cert_pem, r.retired_at) for r in store.retired("default")] == [(root.fingerprint, root.cert_pem, 300.0)]
    assert store.retired("other") == []


def test_a_ca_key_that_belongs_to_another_certificate_is_unusable(tmp_path: Path, other_root: Authority) -> None:
    CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    key_file = tmp_path / "ca" / "default" / "ca-1" / "ca.key"
    key_file.write_bytes(other_root.key_pem())
    with pytest.raises(CaKeyUnusable, match="the private key does not match"):
        CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)


def test_a_certificate_that_is_not_pem_is_unusable(tmp_path: Path) -> None:
    CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    (tmp_path / "ca" / "default" / "ca-1" / "ca.crt").write_bytes(b"garbage")
    with pytest.raises(CaKeyUnusable, match="not a PEM certificate"):
        CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)


def test_a_lost_key_is_never_replaced_behind_the_proxies_back(tmp_path: Path) -> None:
    CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    (tmp_path / "ca" / "default" / "ca-1" / "ca.key").unlink()
    with pytest.raises(CaKeyMissing, match="the key of the builtin CA ca-1 of mesh default is missing"):
        CaStore(tmp_path).builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    with pytest.raises(CaKeyMissing):
        CaStore(tmp_path).check_keys()


def test_rotating_a_lost_ca_sets_it_aside_and_the_next_build_makes_a_new_one(tmp_path: Path) -> None:
    store = CaStore(tmp_path)
    old = store.builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    store.activate("default", old, now=100.0)
    (tmp_path / "ca" / "default" / "ca-1" / "ca.key").unlink()
    restarted = CaStore(tmp_path)
    [said] = restarted.check_keys(rotate_missing=True)
    assert said.startswith("the builtin CA ca-1 of mesh default lost its ca.key")
    new = restarted.builtin("default", "ca-1", rsa_bits=2048, validity=DAY)
    assert new.fingerprint != old.fingerprint
    restarted.activate("default", new, now=200.0)
    assert old.fingerprint in {r.fingerprint for r in CaStore(tmp_path).retired("default")}
