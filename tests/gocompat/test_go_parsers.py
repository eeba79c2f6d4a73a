"""Go's net, net/url, regexp, encoding/json base64 and tls.X509KeyPair, as Kuma's validators
call them: what each accepts and refuses."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.ca.authority import generate_root
from reconciler.gocompat.encoding import decode_base64
from reconciler.gocompat.net import is_dns_name, parse_ip, parse_request_uri, split_host_port
from reconciler.gocompat.regexp import go_regexp_error
from reconciler.gocompat.tls import load_key_pair


@pytest.mark.parametrize(
    ("value", "ok"),
    [("1.2.3.4", True), ("::1", True), ("::ffff:1.2.3.4", True), ("01.2.3.4", False), ("fe80::1%eth0", False), ("", False), (5, False)],
)
def test_parse_ip(value: Any, ok: bool) -> None:
    assert (parse_ip(value) is not None) is ok


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("host:80", ("host", "80")),
        ("[::1]:80", ("::1", "80")),
        ("host:", ("host", "")),
        ("host:http", ("host", "http")),  # the port may be any text
        (":80", ("", "80")),
        ("host", None),
        ("::1:80", None),  # too many colons
        ("[::1]80", None),
        ("[host]]:80", None),
    ],
)
def test_split_host_port(value: str, parts: tuple[str, str] | None) -> None:
    assert split_host_port(value) == parts


@pytest.mark.parametrize(
    ("value", "result"),
    [
        ("http://zipkin:9411/api/v2/spans", (True, "9411")),
        ("http://zipkin/api/v2/spans", (True, "")),
        ("http://[::1]:9411/", (True, "9411")),
        ("http://user@zipkin:9411/x?q=1", (True, "9411")),
        ("/api/v2/spans", (True, "")),
        ("*", (True, "")),
        ("zipkin:9411", (True, "")),  # a scheme and an opaque part
        ("zipkin/api", (False, "")),  # neither absolute URL nor absolute path
        (":9411/api", (False, "")),  # missing protocol scheme
        ("", (False, "")),
        ("http://zip kin/", (False, "")),
        ("http://zipkin/%zz", (False, "")),
        ("http://zipkin\n/", (False, "")),
    ],
)
def test_parse_request_uri(value: str, result: tuple[bool, str]) -> None:
    assert parse_request_uri(value) == result


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("example.com", True),
        ("Ex_ample.com.", True),
        ("a", True),
        ("-bad", False),
        ("a..b", False),
        ("1.2.3.4", False),
        ("", False),
        ("a" * 64, False),
    ],
)
def test_is_dns_name(value: str, ok: bool) -> None:
    assert is_dns_name(value) is ok


@pytest.mark.parametrize(
    "pattern", ["abc", "\\pL+", "[[:alpha:]]+", "(?i)abc", "a(?i)b", "\\z", "(?P<n>x)", "(?<n>x)", "\\Qa.b\\E", "a{2,1000}"]
)
def test_patterns_re2_accepts(pattern: str) -> None:
    assert go_regexp_error(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("a(?=b)", "invalid or unsupported Perl syntax"),
        ("(a)\\1", "invalid escape sequence: `\\1`"),
        ("a**", "invalid nested repetition operator: `**`"),
        ("a{1001}", "invalid repeat count"),
        ("\\Z", "invalid escape sequence: `\\Z`"),
        ("(abc", "missing ), unterminated subpattern"),
    ],
)
def test_patterns_re2_refuses(pattern: str, why: str) -> None:
    problem = go_regexp_error(pattern)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("value", "decoded"),
    [("aGk=", b"hi"), ("aG\nk=", b"hi"), ("aGk", None), ("a-_=", None), ("", b"")],
)
def test_base64_as_encoding_json_reads_bytes(value: str, decoded: bytes | None) -> None:
    assert decode_base64(value) == decoded


def test_x509_key_pair() -> None:
    ca, other = generate_root("default", "a"), generate_root("default", "b")
    chain, problem = load_key_pair(ca.cert_pem, ca.key_pem())
    assert problem is None and len(chain) == 1
    assert (
        load_key_pair(ca.key_pem(), ca.cert_pem)[1] == "cert holds a private key, not a certificate (cert and key may have been switched)"
    )
    assert load_key_pair(ca.cert_pem, other.key_pem())[1] == "the private key does not match the certificate's public key"
    assert load_key_pair(b"", ca.key_pem())[1] == "no PEM data found in cert"
    assert load_key_pair(ca.cert_pem, b"")[1] == "no PEM block with a type ending in PRIVATE KEY found in key"
