"""Mesh: semantic checks (Kuma v2.14 validator rules) that its JSON Schema cannot express.

A Mesh carries mesh-wide settings at the top level of the document: mTLS certificate
authorities, tracing, logging and metrics backends, routing switches and membership
constraints. The rules here are Kuma's `MeshResource.Validate` plus what Kuma's mesh manager
checks when a Mesh is created: the name length and each CA backend's plugin validation
(skipped when `mtls.skipValidation` is true), because a commit that Kuma refuses to apply
must not pass.

Kuma reads the proto kinds with protobuf JSON rules, which this module also provides to the
other proto kinds: a null field is an unset field, numbers may be quoted, enums are names or
numbers. Go's parsers for URLs, host:port pairs, IPs and DNS names are mirrored closely
because Kuma's messages depend on exactly what they accept.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from reconciler.ca.authority import CaError, ca_certificate_problems
from reconciler.ca.authority import parse_kuma_duration as lifetime_seconds
from reconciler.errors import Path, Violation, Violations
from reconciler.kinds.base import Kind
from reconciler.model import Resource
from reconciler.validate.checks import as_list, as_map, check_selector, enumerate_list, get

__all__ = [
    "KIND",
    "validate",
    "CA_TYPES",
    "text",
    "uint",
    "enum_index",
    "quote",
    "tag_map",
    "parse_ip",
    "ip_overlaps",
    "is_go_ip",
    "is_dns_name",
    "split_host_port",
    "parse_request_uri",
    "parse_kuma_duration",
    "decode_base64",
    "go_regexp_error",
    "check_port_number",
    "check_prometheus_conf",
    "check_data_source",
]

ROOT = Path()
CA_TYPES = ("builtin", "provided")
"""CA plugins a Kuma v2.14 control plane ships."""

_MAX_MTLS_BACKENDS = 1
_MAX_NAME_LENGTH = 63
_MAX_BUILTIN_SECRET_NAME = 255
_PORT_RANGE = "port must be in the range [1, 65535]"
_KUMA_DURATION_HINT = "a whole number and one unit of y, w, d, h, m, s or ms, e.g. 24h, 30d or 1y"
_ZIPKIN_API_VERSIONS = ("httpJsonV1", "httpJson", "httpProto")
_TLS_MODES = ("activeMTLSBackend", "providedTLS", "disabled")


# -- protobuf JSON values ---------------------------------------------------------------------
def text(value: Any) -> str:
    """A string field as Kuma sees it: "" when unset (or of a type the schema rejects)."""
    return value if isinstance(value, str) else ""


def uint(value: Any) -> int | None:
    """An unsigned number field (quoted or not) as Kuma sees it: 0 when unset, None when unreadable."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value.is_integer() and value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def enum_index(value: Any, names: Sequence[str]) -> int | None:
    """A protobuf enum written as a name or a number: its number (0 when unset), None when unknown."""
    if value is None:
        return 0
    if isinstance(value, str):
        return names.index(value) if value in names else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def quote(value: str) -> str:
    """Go's %q for the strings Kuma quotes in its messages."""
    return json.dumps(value, ensure_ascii=False)


def tag_map(value: Any) -> Any:
    """Tags as Kuma reads them: a null value is an empty string. Non-maps pass through for the schema."""
    if not isinstance(value, Mapping):
        return value
    return {k: ("" if v is None else v) for k, v in value.items()}


def check_port_number(value: Any, path: Path) -> list[Violation]:
    """Kuma's ValidatePort: 1-65535, where an unset port counts as 0."""
    port = uint(value)
    if port is None:
        return []  # the schema reports what is not a number
    if port == 0 or port > 65535:
        return [Violation(path, _PORT_RANGE)]
    return []


# -- Go's parsers -----------------------------------------------------------------------------
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(value: Any) -> IP | None:
    """Go's net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone."""
    if not isinstance(value, str) or not value or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_go_ip(value: Any) -> bool:
    return parse_ip(value) is not None


def _canonical(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def ip_overlaps(address: IP, other: IP | None) -> bool:
    """Kuma's overlap(): equal IPs, or either side a wildcard (0.0.0.0, ::)."""
    if other is None:
        return False
    a, b = _canonical(address), _canonical(other)
    return a.is_unspecified or b.is_unspecified or a == b


_DNS_NAME = re.compile(r"([a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})(\.[a-zA-Z0-9_][a-zA-Z0-9_-]{0,62})*[._]?")


def is_dns_name(value: Any) -> bool:
    """govalidator.IsDNSName, which Kuma uses for proxy addresses and CA secret names."""
    if not isinstance(value, str) or not value or len(value.replace(".", "")) > 255:
        return False
    return parse_ip(value) is None and _DNS_NAME.fullmatch(value) is not None


def split_host_port(value: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort: (host, port), or None when it fails. The port may be any text."""
    i = value.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = value[1:end]
        j, k = 1, end + 1
    else:
        host = value[:i]
        if ":" in host:
            return None
    if "[" in value[j:] or "]" in value[k:]:
        return None
    return host, value[i + 1 :]


_SCHEME_CHARS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_HEX = "0123456789abcdefABCDEF"
_HOST_SAFE = set("!$&'()*+,;=:[]<>\"-_.~")


def _valid_escapes(value: str) -> bool:
    """Every `%` starts a two-digit hex escape, as Go's URL parser requires."""
    i = 0
    while i < len(value):
        if value[i] == "%":
            pair = value[i + 1 : i + 3]
            if len(pair) < 2 or any(c not in _HEX for c in pair):
                return False
            i += 3
        else:
            i += 1
    return True


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0 or not _valid_optional_port(host[end + 1 :]):
            return False
    else:
        colon = host.rfind(":")
        if colon >= 0 and not _valid_optional_port(host[colon:]):
            return False
    if not _valid_escapes(host):
        return False
    return all(c.isalnum() or c in _HOST_SAFE or c == "%" or ord(c) >= 0x80 for c in host)


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all(c.isdigit() and c.isascii() for c in port[1:]))


def _port_of(host: str) -> str:
    colon = host.rfind(":")
    if colon >= 0 and _valid_optional_port(host[colon:]):
        return host[colon + 1 :]
    return ""


def parse_request_uri(value: str) -> tuple[bool, str]:
    """Go's url.ParseRequestURI: (accepted, port of the host). An absolute URL or an absolute path."""
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return False, ""
    if value == "*":
        return True, ""
    scheme, rest = "", value
    if ":" in value:
        m = _SCHEME_CHARS.match(value)
        if value[0] == ":":
            return False, ""  # missing protocol scheme
        if m is not None and m.end() < len(value) and value[m.end()] == ":":
            scheme, rest = value[: m.end()], value[m.end() + 1 :]
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        return (True, "") if scheme else (False, "")
    host = ""
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        host = authority.rpartition("@")[2]
        if not _valid_host(host):
            return False, ""
    if not _valid_escapes(rest):
        return False, ""
    return True, _port_of(host)


_KUMA_DURATION = re.compile(r"(\d+)(y|w|d|h|m|s|ms)")


def parse_kuma_duration(value: str) -> bool:
    """Kuma's own ParseDuration (certificate lifetimes): `0`, or digits and one of y w d h m s ms."""
    return value == "0" or _KUMA_DURATION.fullmatch(value) is not None


def decode_base64(value: str) -> bytes | None:
    """What Go's encoding/json accepts for bytes: standard base64 with padding; line breaks ignored."""
    compact = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")
_BIG_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def go_regexp_error(pattern: str) -> str | None:
    """Why Go's regexp (RE2 syntax) would refuse `pattern`, as far as Python's `re` can tell.

    RE2 has no lookaround, atomic groups or backreferences (Python has them), and some RE2
    syntax (\\pL, \\z, \\Q..\\E, POSIX classes, (?<name>) is rewritten to Python equivalents
    before compiling, so that only real mistakes are reported.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt.isdigit() and nxt != "0":
                return f"invalid escape sequence: `\\{nxt}` (RE2 has no backreferences)"
            if nxt in "Z":
                return "invalid escape sequence: `\\Z` (RE2 writes end of text as \\z)"
            if nxt in "pP":
                end = pattern.find("}", i) + 1 if pattern[i + 2 : i + 3] == "{" else i + 3
                if end <= i:
                    return "invalid character class range"
                out.append("a" if in_class else ".")
                i = end
                continue
            if nxt == "z":
                out.append("\\Z")
            elif nxt == "Q":
                stop = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if stop < 0 else pattern[i + 2 : stop]
                out.append(re.escape(literal))
                i = n if stop < 0 else stop + 2
                continue
            elif nxt == "C":
                out.append(".")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            posix = _POSIX_CLASS.match(pattern, i)
            if posix is not None:
                out.append("a-z")
                i = posix.end()
                continue
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            if pattern[i : i + 1] == "^":
                out.append("^")
                i += 1
            if pattern[i : i + 1] == "]":
                out.append("\\]")
                i += 1
            continue
        elif c == "(" and pattern.startswith("(?", i):
            head = pattern[i + 2 : i + 4]
            if head[:1] in ("=", "!", ">") or head in ("<=", "<!"):
                return f"invalid or unsupported Perl syntax: `{pattern[i : i + 4]}` (RE2 has no lookaround or atomic groups)"
            if head[:1] == "<":
                out.append("(?P<")
                i += 3
                continue
        elif c in "*+?" and i > 0 and pattern[i - 1] in "*+}" and (i < 2 or pattern[i - 2] != "\\") and c != "?":
            return f"invalid nested repetition operator: `{pattern[i - 1 : i + 1]}`"
        out.append(c)
        i += 1
    for m in _BIG_REPEAT.finditer(pattern):
        if any(g and int(g) > 1000 for g in (m.group(1), m.group(3))):
            return f"invalid repeat count: `{m.group(0)}`"
    try:
        re.compile("".join(out))
    except re.error as e:
        if "global flags not at the start" in str(e):
            return None  # RE2 allows flags anywhere
        return str(e)
    return None


# -- Mesh ---------------------------------------------------------------------------------------
def validate(resource: Resource) -> list[Violation]:
    """Kuma's Mesh validator and the checks its mesh manager runs when the Mesh is applied."""
    spec = as_map(resource.spec)
    out = Violations()
    if len(resource.name) > _MAX_NAME_LENGTH:
        out.add(ROOT.field("name"), f"cannot be longer than {_MAX_NAME_LENGTH} characters")
    out.extend(_check_mtls(spec.get("mtls"), resource.name))
    out.extend(_check_logging(spec.get("logging")))
    out.extend(_check_tracing(spec.get("tracing")))
    out.extend(_check_metrics(spec.get("metrics")))
    out.extend(_check_constraints(spec.get("constraints")))
    if get(spec, "routing", "zoneEgress") is True and not text(get(spec, "mtls", "enabledBackend")):
        out.add(
            ROOT.field("mtls"), "has to be set when zoneEgress enabled: routing through ZoneEgress needs mTLS (set mtls.enabledBackend)"
        )
    return list(out)


def _names_hint(names: Sequence[str]) -> str:
    listed = [quote(n) for n in dict.fromkeys(names) if n]
    return ": " + ", ".join(listed) if listed else ", and it has none"


def _check_mtls(mtls: Any, mesh_name: str) -> list[Violation]:
    path = ROOT.field("mtls")
    out = Violations()
    backends = as_list(get(mtls, "backends"))
    if len(backends) > _MAX_MTLS_BACKENDS:
        out.add(path.field("backends"), f"cannot have more than {_MAX_MTLS_BACKENDS} backends")
    used: list[str] = []
    skip_validation = get(mtls, "skipValidation") is True
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        name = text(get(backend, "name"))
        if name in used:
            out.add(bpath.field("name"), f"{quote(name)} name is already used for another backend")
        used.append(name)
        dp_cert = get(backend, "dpCert")
        expiration = text(get(dp_cert, "rotation", "expiration"))
        if isinstance(dp_cert, Mapping) and not parse_kuma_duration(expiration):
            # Kuma parses the expiration whenever dpCert is there, so leaving it out fails too.
            hint = _KUMA_DURATION_HINT if expiration else "dpCert needs rotation.expiration, e.g. 24h"
            out.add(bpath.field("dpCert").field("rotation").field("expiration"), f"has to be a valid format: {hint}")
        else:
            out.extend(
                _check_lifetime(
                    expiration, bpath.field("dpCert").field("rotation").field("expiration"), _MIN_DP_CERT_LIFETIME, _SHORT_DP_CERT
                )
            )
        out.extend(_check_ca_plugin(backend, bpath, mesh_name, skip_validation))
    enabled = text(get(mtls, "enabledBackend"))
    if enabled and enabled not in used:
        out.add(path.field("enabledBackend"), "has to be set to one of the backends in the mesh" + _names_hint(used))
    return list(out)


def _check_ca_plugin(backend: Any, path: Path, mesh_name: str, skip_validation: bool) -> list[Violation]:
    """What the builtin and provided CA plugins check when Kuma creates or updates the Mesh."""
    kind = get(backend, "type")
    if not isinstance(kind, str) and kind is not None:
        return []
    if kind not in CA_TYPES:
        return [Violation(path.field("type"), 'could not find installed plugin for this type; Kuma ships "builtin" and "provided"')]
    if skip_validation:
        return []
    conf = get(backend, "conf")
    if kind == "builtin":
        return _check_builtin_ca(backend, conf, path, mesh_name)
    out = []
    for field in ("cert", "key"):
        source = get(conf, field)
        where = path.field("conf").field(field)
        if source is None:
            out.append(Violation(where, "has to be defined"))
        else:
            out.extend(check_data_source(source, where, chosen_required=True))
    if not any(v.severity == "error" for v in out):
        out.extend(_check_inline_ca(conf, path.field("conf")))
    return out


# -- provided CA given inline: Kuma loads the pair and checks it is a CA ---------------------
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)
_PAIR_HINT = "put the CA certificate (PEM, -----BEGIN CERTIFICATE-----) in cert and its private key (PEM) in key"


def _inline_bytes(source: Any) -> bytes | None:
    """The data of an inline or inlineString source; None for secret or file (not readable here)."""
    if not isinstance(source, Mapping):
        return None
    present = [f for f in _SOURCES if source.get(f) is not None]
    chosen = present[-1] if present else None
    value = source.get(chosen) if chosen else None
    if chosen == "inline" and isinstance(value, str):
        return decode_base64(value)
    if chosen == "inlineString" and isinstance(value, str):
        return value.encode()
    return None


def _check_inline_ca(conf: Any, path: Path) -> list[Violation]:
    """Kuma refuses a provided CA whose pair does not load or is not a CA (X509-SVID rules).

    Only inline data can be checked here; a Secret or a file is read by the control plane.
    """
    cert_pem, key_pem = _inline_bytes(get(conf, "cert")), _inline_bytes(get(conf, "key"))
    if cert_pem is None or key_pem is None:
        return []
    where = path.field("cert")
    chain, problem = _load_key_pair(cert_pem, key_pem)
    if problem:
        return [Violation(where, f"not a valid TLS key pair: {problem}; {_PAIR_HINT}")]
    out = []
    for i, der in enumerate(chain):
        prefix = f"certificate #{i + 1} of the chain: " if len(chain) > 1 else ""
        try:
            problems = ca_certificate_problems(x509.load_der_x509_certificate(der))
        except ValueError as e:
            problems = [f"not a valid x509 certificate: {e}"]
        out += [Violation(where, prefix + message) for message in problems]
    return out


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(type, DER) of each PEM block; blocks whose body is not base64 are skipped, as Go does."""
    out = []
    for m in _PEM_BLOCK.finditer(data):
        try:
            out.append((m.group(1).decode(errors="replace"), base64.b64decode(b"".join(m.group(2).split()), validate=True)))
        except (binascii.Error, ValueError):
            continue
    return out


def _load_key_pair(cert_pem: bytes, key_pem: bytes) -> tuple[list[bytes], str | None]:
    """The certificate chain (DER) and why Go's tls.X509KeyPair would refuse the pair, if it would."""
    blocks = _pem_blocks(cert_pem)
    chain = [der for kind, der in blocks if kind == "CERTIFICATE"]
    if not chain:
        if not blocks:
            return [], "no PEM data found in cert"
        if len(blocks) == 1 and blocks[0][0].endswith("PRIVATE KEY"):
            return [], "cert holds a private key, not a certificate (cert and key may have been switched)"
        return [], "no CERTIFICATE PEM block found in cert"
    keys = [der for kind, der in _pem_blocks(key_pem) if kind == "PRIVATE KEY" or kind.endswith(" PRIVATE KEY")]
    if not keys:
        return [], "no PEM block with a type ending in PRIVATE KEY found in key"
    try:
        leaf = x509.load_der_x509_certificate(chain[0])
        public = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError) as e:
        return [], f"the certificate cannot be parsed ({e})"
    try:
        key = serialization.load_der_private_key(keys[0], password=None)
    except (ValueError, TypeError):
        return [], "the private key cannot be parsed (PKCS#1, PKCS#8 or SEC 1, unencrypted)"
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != public:
        return [], "the private key does not match the certificate's public key"
    return chain, None


def _check_builtin_ca(backend: Any, conf: Any, path: Path, mesh_name: str) -> list[Violation]:
    out = []
    name = text(get(backend, "name"))
    # The plugin stores the CA as a Secret named after the mesh and the backend.
    secret = f"{mesh_name}.ca-builtin-cert-{name}"
    if len(secret) > _MAX_BUILTIN_SECRET_NAME:
        out.append(Violation(path.field("name"), f"Backend name is too long. Max length: {_MAX_BUILTIN_SECRET_NAME}"))
    if not is_dns_name(secret) or secret != secret.lower():
        out.append(Violation(path.field("name"), f"{quote(name)} name must be valid dns name (lowercase letters, digits, '-' and '.')"))
    expiration = get(conf, "caCert", "expiration")
    if isinstance(expiration, str) and expiration and not parse_kuma_duration(expiration):
        out.append(Violation(path.field("conf").field("caCert").field("expiration"), f"has to be a valid format: {_KUMA_DURATION_HINT}"))
    elif isinstance(expiration, str):
        out.extend(_check_lifetime(expiration, path.field("conf").field("caCert").field("expiration"), _MIN_CA_LIFETIME, _SHORT_CA))
    bits = uint(get(conf, "caCert", "RSAbits"))
    if bits and not _RSA_BITS[0] <= bits <= _RSA_BITS[1]:
        # Not a Kuma rule: the control plane generates this key itself, and a smaller one is
        # refused by the crypto library while a much larger one takes minutes to generate.
        out.append(
            Violation(
                path.field("conf").field("caCert").field("RSAbits"),
                f"must be in inclusive range [{_RSA_BITS[0]}, {_RSA_BITS[1]}] (unset: 2048)",
            )
        )
    return out


_RSA_BITS = (2048, 4096)
_MIN_CA_LIFETIME = 3600.0
_SHORT_CA = "must be at least 1h: the proxies' certificates cannot outlive their CA"
_MIN_DP_CERT_LIFETIME = 1.0
_SHORT_DP_CERT = "must be at least 1s: certificates are renewed at 80% of their lifetime, a shorter one keeps every proxy reissuing"
_MAX_LIFETIME = 100 * 365 * 86400.0
"""Not Kuma rules, limits of what the control plane can issue: X.509 dates end in 9999, and a
certificate is renewed at 80% of its life, so a very short one keeps every proxy reissuing."""


def _check_lifetime(value: str, path: Path, minimum: float, too_short: str) -> list[Violation]:
    """A certificate lifetime (already a valid Kuma duration, or empty for the default) in bounds."""
    if not value:
        return []
    try:
        seconds = 0.0 if value == "0" else lifetime_seconds(value, 0.0)
    except CaError:
        return []
    if seconds < minimum:
        return [Violation(path, too_short)]
    if seconds > _MAX_LIFETIME:
        return [Violation(path, "must be at most 100y")]
    return []


_SOURCES = ("secret", "file", "inline", "inlineString")


def check_data_source(source: Any, path: Path, *, chosen_required: bool) -> list[Violation]:
    """A DataSource (secret, file, inline or inlineString) as Kuma's CA plugins check it."""
    if not isinstance(source, Mapping):
        return []
    out = []
    present = [f for f in _SOURCES if source.get(f) is not None]
    if not present:
        if chosen_required:
            out.append(Violation(path, "data source has to be chosen. Available sources: secret, file, inline"))
        return out
    if len(present) > 1:
        # Protobuf keeps the last field of a oneof it reads; the others are silently dropped.
        out.append(
            Violation(path, f"only one of secret, file, inline and inlineString can be set; Kuma would use {quote(present[-1])}", "warning")
        )
    chosen = present[-1]
    value = source.get(chosen)
    if not isinstance(value, str):
        return out
    if chosen == "inline":
        decoded = decode_base64(value)
        if decoded is None:
            out.append(
                Violation(
                    path.field("inline"), "must be base64-encoded (standard alphabet, with = padding), e.g. the output of `base64 -w0 file`"
                )
            )
        elif not decoded:
            out.append(Violation(path.field("inline"), "cannot be empty"))
    elif chosen in ("secret", "file") and value == "":
        out.append(Violation(path.field(chosen), "cannot be empty"))
    return out


def _check_backend_names(section: Any, path: Path, chosen: str, what: str) -> list[Violation]:
    """Backend names are unique, and `chosen` (defaultBackend / enabledBackend) names one of them."""
    used: list[str] = []
    out = []
    for bpath, backend in enumerate_list(get(section, "backends"), path.field("backends")):
        name = text(get(backend, "name"))
        if name in used:
            out.append(Violation(bpath.field("name"), f"{quote(name)} name is already used for another backend"))
        used.append(name)
    choice = text(get(section, chosen))
    if choice and choice not in used:
        out.append(Violation(path.field(chosen), f"has to be set to one of the {what}" + _names_hint(used)))
    return out


def _check_logging(logging: Any) -> list[Violation]:
    path = ROOT.field("logging")
    out = Violations()
    backends = get(logging, "backends")
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        if not text(get(backend, "name")):
            out.add(bpath.field("name"), "cannot be empty")
        kind = get(backend, "type")
        conf = get(backend, "conf")
        where = bpath.field("conf")
        if kind == "file":
            if not text(get(conf, "path")):
                out.add(where.field("path"), "cannot be empty")
        elif kind == "tcp":
            address = text(get(conf, "address"))
            if not address:
                out.add(where.field("address"), "cannot be empty")
            else:
                parts = split_host_port(address)
                if parts is None or not parts[0] or not parts[1]:
                    out.add(where.field("address"), "has to be in format of HOST:PORT")
        elif isinstance(kind, str) or kind is None:
            out.add(bpath.field("type"), 'unknown backend type. Available backends: "tcp", "file"')
    out.extend(_check_backend_names(logging, path, "defaultBackend", "logging backend in mesh"))
    return list(out)


def _check_tracing(tracing: Any) -> list[Violation]:
    path = ROOT.field("tracing")
    out = Violations()
    backends = get(tracing, "backends")
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        if not text(get(backend, "name")):
            out.add(bpath.field("name"), "cannot be empty")
        sampling = _number(get(backend, "sampling"))
        if sampling is not None and not 0.0 <= sampling <= 100.0:
            out.add(bpath.field("sampling"), "has to be in [0.0 - 100.0] range")
        kind = get(backend, "type")
        conf = get(backend, "conf")
        if kind == "zipkin":
            out.extend(_check_zipkin(conf, bpath.field("conf")))
        elif kind == "datadog":
            if not text(get(conf, "address")):
                out.add(bpath.field("conf").field("address"), "cannot be empty")
            out.extend(check_port_number(get(conf, "port"), bpath.field("conf").field("port")))
        elif isinstance(kind, str) or kind is None:
            out.add(bpath.field("type"), 'unknown backend type. Available backends: "zipkin", "datadog"')
    out.extend(_check_backend_names(tracing, path, "defaultBackend", "tracing backend in mesh"))
    return list(out)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_zipkin(conf: Any, path: Path) -> list[Violation]:
    out = []
    api_version = text(get(conf, "apiVersion"))
    if api_version and api_version not in _ZIPKIN_API_VERSIONS:
        out.append(Violation(path.field("apiVersion"), "has invalid value. Allowed values: " + ", ".join(_ZIPKIN_API_VERSIONS)))
    url = text(get(conf, "url"))
    if not url:
        out.append(Violation(path.field("url"), "cannot be empty"))
        return out
    accepted, port = parse_request_uri(url)
    if not accepted:
        out.append(Violation(path.field("url"), "invalid URL: write an absolute URL such as http://zipkin:9411/api/v2/spans"))
    elif not port:
        out.append(Violation(path.field("url"), "port has to be explicitly specified (e.g. http://zipkin:9411/api/v2/spans)"))
    return out


def _check_metrics(metrics: Any) -> list[Violation]:
    path = ROOT.field("metrics")
    out = Violations()
    backends = get(metrics, "backends")
    for bpath, backend in enumerate_list(backends, path.field("backends")):
        kind = get(backend, "type")
        if kind == "prometheus":
            out.extend(check_prometheus_conf(get(backend, "conf"), bpath.field("conf")))
        elif isinstance(kind, str) or kind is None:
            out.add(bpath.field("type"), 'unknown backend type. Available backends: "prometheus"')
    out.extend(_check_backend_names(metrics, path, "enabledBackend", "backends in the mesh"))
    return list(out)


def check_prometheus_conf(conf: Any, path: Path) -> list[Violation]:
    """A Prometheus metrics backend's conf, in a Mesh or a Dataplane (Kuma's validatePrometheusConfig)."""
    if conf is not None and not isinstance(conf, Mapping):
        return []
    skip_mtls = get(conf, "skipMTLS")
    tls = get(conf, "tls")
    if isinstance(skip_mtls, bool) and isinstance(tls, Mapping):
        mode = enum_index(tls.get("mode"), _TLS_MODES)
        agrees = (not skip_mtls and mode == 0) or (skip_mtls and mode == 2)
        if mode is not None and not agrees:
            return [
                Violation(
                    path,
                    "skipMTLS and tls configuration cannot be defined together: skipMTLS is deprecated, keep only tls.mode "
                    "(skipMTLS: true is tls.mode: disabled, skipMTLS: false is tls.mode: activeMTLSBackend)",
                )
            ]
    regex = get(conf, "envoy", "filterRegex")
    if isinstance(regex, str):
        problem = go_regexp_error(regex)
        if problem is not None:
            return [Violation(path.field("envoy").field("filterRegex"), f"provided regexp isn't correct: {problem}")]
    out = []
    seen: set[str] = set()
    for apath, entry in enumerate_list(get(conf, "aggregate"), path.field("aggregate")):
        name = text(get(entry, "name"))
        if name in seen:
            out.append(Violation(apath.field("name"), f"duplicate entry: {name}, values have to be unique"))
            continue
        seen.add(name)
    return out


def _check_constraints(constraints: Any) -> list[Violation]:
    path = ROOT.field("constraints").field("dataplaneProxy")
    proxy = get(constraints, "dataplaneProxy")
    out = []
    for field in ("requirements", "restrictions"):
        for rpath, rule in enumerate_list(get(proxy, field), path.field(field)):
            out.extend(check_selector(tag_map(get(rule, "tags")), rpath.field("tags"), require_one=True))
    return out


KIND = Kind(name="Mesh", scope="Global", flat=True, short_name="m", validate=validate)
