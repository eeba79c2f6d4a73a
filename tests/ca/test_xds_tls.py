"""The control plane's xDS CA and server certificate, kept in the state directory."""

from __future__ import annotations

import ipaddress
import stat
import time
from pathlib import Path

from cryptography import x509

from reconciler.ca.xds_tls import CA_VALIDITY, RENEW_BEFORE, SERVER_VALIDITY, ca_cert_path, default_names, load_or_create


def _leaf(chain: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain)[0]


def test_ca_and_server_key_are_private_and_the_ca_certificate_is_readable(tmp_path: Path) -> None:
    load_or_create(tmp_path, ("localhost",))
    directory = tmp_path / "xds-tls"
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in directory.iterdir()} == {"ca.crt": 0o644, "ca.pem": 0o600, "server.pem": 0o600}
    assert stat.S_IMODE(directory.stat().st_mode) == 0o755
    assert ca_cert_path(tmp_path) == directory / "ca.crt"


def test_server_certificate_names_the_hosts_proxies_connect_to_and_chains_to_the_ca(tmp_path: Path) -> None:
    names = default_names("10.1.2.3", ["cp.mesh.svc"])
    assert names[:3] == ("localhost", "127.0.0.1", "::1")
    assert "10.1.2.3" in names and "cp.mesh.svc" in names
    assert "0.0.0.0" not in default_names("0.0.0.0")
    cert = load_or_create(tmp_path, names)
    leaf = _leaf(cert.cert_chain_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) >= {"localhost", "cp.mesh.svc"}
    assert set(san.get_values_for_type(x509.IPAddress)) >= {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.1.2.3")}
    ca = x509.load_pem_x509_certificate(cert.ca_cert_pem)
    leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert abs(ca.not_valid_after_utc.timestamp() - time.time() - CA_VALIDITY) < 600
    assert abs(leaf.not_valid_after_utc.timestamp() - time.time() - SERVER_VALIDITY) < 600


def test_restart_reuses_the_ca_and_the_server_certificate(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, ("localhost", "127.0.0.1"))
    again = load_or_create(tmp_path, ("localhost", "127.0.0.1"))
    assert (again.ca_cert_pem, again.cert_chain_pem, again.key_pem) == (first.ca_cert_pem, first.cert_chain_pem, first.key_pem)


def test_new_names_get_a_new_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, ("localhost",))
    renamed = load_or_create(tmp_path, ("localhost", "cp.example"))
    assert renamed.ca_cert_pem == first.ca_cert_pem
    assert renamed.cert_chain_pem != first.cert_chain_pem
    _leaf(renamed.cert_chain_pem).verify_directly_issued_by(x509.load_pem_x509_certificate(first.ca_cert_pem))


def test_server_certificate_is_reissued_before_it_expires(tmp_path: Path) -> None:
    first = load_or_create(tmp_path, ("localhost",))
    assert first.renew_at <= first.not_after - RENEW_BEFORE + 1
    later = load_or_create(tmp_path, ("localhost",), now=first.not_after - RENEW_BEFORE + 60)
    assert later.cert_chain_pem != first.cert_chain_pem
    assert later.ca_cert_pem == first.ca_cert_pem


def test_a_server_certificate_from_another_ca_is_replaced(tmp_path: Path) -> None:
    load_or_create(tmp_path / "a", ("localhost",))
    other = load_or_create(tmp_path / "b", ("localhost",))
    (tmp_path / "a" / "xds-tls" / "server.pem").write_bytes((tmp_path / "b" / "xds-tls" / "server.pem").read_bytes())
    fixed = load_or_create(tmp_path / "a", ("localhost",))
    assert fixed.cert_chain_pem != other.cert_chain_pem
    _leaf(fixed.cert_chain_pem).verify_directly_issued_by(x509.load_pem_x509_certificate(fixed.ca_cert_pem))
