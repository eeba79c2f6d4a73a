"""A mesh CA as a value: made, loaded from PEM, refused when it cannot sign, and the proxy
certificates it issues (SPIFFE ids, tag URIs, lifetime, renewal point)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from reconciler.ca.authority import Authority, CaError, issue_workload, load_authority, parse_kuma_duration
from reconciler.x509_checks import ca_certificate_problems

NOW = 1_800_000_000.0


def test_a_generated_root_is_a_ca_that_loads_back_from_its_pem(root: Authority) -> None:
    assert ca_certificate_problems(root.certificate) == []
    loaded = load_authority("ca-1", root.cert_pem, root.key_pem())
    assert loaded.fingerprint == root.fingerprint
    assert root.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier
    ) == ["spiffe://default"]


def test_a_key_of_another_ca_is_refused(root: Authority, other_root: Authority) -> None:
    with pytest.raises(CaError, match="CA 'mine': the private key does not match the certificate"):
        load_authority("mine", root.cert_pem, other_root.key_pem())


def test_text_that_is_not_pem_is_refused_naming_the_ca(root: Authority) -> None:
    with pytest.raises(CaError, match="CA 'mine': cannot read certificate or key"):
        load_authority("mine", b"not a certificate", root.key_pem())


def test_a_leaf_certificate_cannot_be_a_ca(root: Authority) -> None:
    leaf = issue_workload(root, ["spiffe://default/web"], [], 3600.0, now=NOW)
    with pytest.raises(CaError) as refused:
        load_authority("leaf", leaf.cert_pem, leaf.key_pem)
    assert "basic constraint 'CA' must be set to 'true'" in str(refused.value)
    assert "key usage extension 'keyCertSign' must be set" in str(refused.value)


def _self_signed(key_usage: x509.KeyUsage | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(key, hashes.SHA256())


def _usage(*, cert_sign: bool, agreement: bool) -> x509.KeyUsage:
    return x509.KeyUsage(True, False, False, False, agreement, cert_sign, True, False, False)


@pytest.mark.parametrize(
    ("usage", "problems"),
    [
        pytest.param(_usage(cert_sign=True, agreement=False), [], id="a CA"),
        pytest.param(None, ["key usage extension 'keyCertSign' must be set (see X509-SVID: 4.3. Key Usage)"], id="no key usage"),
        pytest.param(
            _usage(cert_sign=True, agreement=True),
            ["key usage extension 'keyAgreement' must NOT be set (see X509-SVID: Appendix A. X.509 Field Reference)"],
            id="key agreement",
        ),
    ],
)
def test_x509_svid_rules_for_a_signing_ca(usage: x509.KeyUsage | None, problems: list[str]) -> None:
    assert ca_certificate_problems(_self_signed(usage)) == problems


def test_a_workload_certificate_carries_its_ids_and_lifetime_and_is_signed_by_the_ca(root: Authority) -> None:
    cert = issue_workload(root, ["spiffe://default/web"], ["kuma://version/v2", "kuma://team/a", "kuma://version/v2"], 3600.0, now=NOW)
    parsed = x509.load_pem_x509_certificate(cert.cert_pem)
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    # The SPIFFE ids first (in order), then the tag URIs, sorted and without repeats.
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://default/web", "kuma://team/a", "kuma://version/v2"]
    assert parsed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert (cert.not_before, cert.not_after) == (NOW - 60.0, NOW + 3600.0)  # backdated by a minute for lagging clocks
    # NOW starts a window (of 0.8 × 3600 s): renewed at its end, 80% of the lifetime after NOW.
    assert cert.renew_at == NOW + 0.8 * 3600.0
    assert cert.issuer == root.fingerprint and cert.spiffe_ids == ("spiffe://default/web",)
    public = root.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(parsed.signature, parsed.tbs_certificate_bytes, padding.PKCS1v15(), hashes.SHA256())
    key = serialization.load_pem_private_key(cert.key_pem, password=None)
    assert key.public_key().public_numbers() == parsed.public_key().public_numbers()  # type: ignore[union-attr]


def test_a_short_lived_certificate_is_backdated_by_a_tenth_of_its_life(root: Authority) -> None:
    cert = issue_workload(root, ["spiffe://default/web"], [], 100.0, now=NOW)
    assert cert.not_before == NOW - 10.0


def test_a_certificate_without_any_id_has_no_san_so_peers_refuse_it(root: Authority) -> None:
    parsed = x509.load_pem_x509_certificate(issue_workload(root, [], [], 3600.0, now=NOW).cert_pem)
    with pytest.raises(x509.ExtensionNotFound):
        parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("24h", 86400), ("30d", 30 * 86400), ("1y", 365 * 86400), ("2w", 14 * 86400), ("90m", 5400), ("45s", 45), ("500ms", 0.5), ("0s", 0)],
)
def test_kuma_certificate_lifetimes(value: str, seconds: float) -> None:
    assert parse_kuma_duration(value, 1.0) == seconds


@pytest.mark.parametrize("unset", [None, ""])
def test_an_unset_lifetime_is_the_default(unset: str | None) -> None:
    assert parse_kuma_duration(unset, 123.0) == 123.0


@pytest.mark.parametrize("value", ["1h30m", "-1h", "24", "1.5h", "h", "24 h"])
def test_other_durations_are_not_kuma_lifetimes(value: str) -> None:
    with pytest.raises(CaError, match="is not a duration like 24h, 30d or 1y"):
        parse_kuma_duration(value, 1.0)
