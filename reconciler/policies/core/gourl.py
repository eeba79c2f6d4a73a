"""Go's address parsers, ported: net.SplitHostPort, net/url.Parse and url.ParseRequestURI,
and govalidator's IsURL and IsFilePath.

Kuma checks the addresses in its observability policies (MeshAccessLog, MeshMetric,
MeshTrace) with these Go functions, whose rules differ from Python's urllib in ways users hit
(ports, colons, underscores), so they are ported rather than approximated with urllib.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

__all__ = ["GoURL", "go_parse_url", "is_file_path", "is_url", "split_host_port"]


# -- Go's net.SplitHostPort ----------------------------------------------------------------
def split_host_port(hostport: str) -> tuple[str, str] | None:
    """(host, port) as Go's net.SplitHostPort splits them, or None where Go returns an error."""
    i = hostport.rfind(":")
    if i < 0:
        return None
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != i:
            return None
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host, hostport[i + 1 :]


# -- Go's net/url.Parse and url.ParseRequestURI -------------------------------------------
@dataclass(frozen=True, slots=True)
class GoURL:
    """The parts of a URL as Go's net/url parses them."""

    scheme: str = ""
    opaque: str = ""
    user: str | None = None
    host: str = ""
    path: str = ""
    raw_query: str = ""
    fragment: str = ""

    def port(self) -> str:
        colon = self.host.rfind(":")
        if colon != -1 and _valid_optional_port(self.host[colon:]):
            return self.host[colon + 1 :]
        return ""


_HEX = frozenset("0123456789abcdefABCDEF")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HOST_CHARS = _ALNUM | frozenset("!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_CHARS = _ALNUM | frozenset("-._:~!$&'()*+,;=%@")


def _valid_optional_port(port: str) -> bool:
    return port == "" or (port[0] == ":" and all("0" <= c <= "9" for c in port[1:]))


def _unescape_ok(s: str, *, host: bool = False) -> bool:
    """Whether Go's url.unescape accepts `s`: well-formed %XX escapes and, in a host,
    only the characters RFC 3986 allows there."""
    i = 0
    while i < len(s):
        c = s[i]
        if c == "%":
            if i + 2 >= len(s) or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                return False
            # In a host only non-ASCII bytes may be escaped (and %25, the zone marker).
            if host and int(s[i + 1], 16) < 8 and s[i : i + 3] != "%25":
                return False
            i += 3
            continue
        if host and ord(c) < 0x80 and c not in _HOST_CHARS:
            return False
        i += 1
    return True


def _parse_host(host: str) -> bool:
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0 or not _valid_optional_port(host[close + 1 :]):
            return False
        # Go checks that a bracketed host is an IPv6 address, with an optional %25-escaped zone.
        address, _, zone = host[1:close].partition("%25")
        if "%" in address:
            return False
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return False
        return _unescape_ok(zone)
    colon = host.rfind(":")
    if colon != -1 and not _valid_optional_port(host[colon:]):
        return False
    return _unescape_ok(host, host=True)


def _scheme_of(raw: str) -> tuple[str, str] | None:
    """Go's getScheme: (scheme, rest), ("", raw) when there is none, None on `:foo`."""
    for i, c in enumerate(raw):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-."):
            if i == 0:
                return "", raw
            continue
        if c == ":":
            return None if i == 0 else (raw[:i], raw[i + 1 :])
        return "", raw
    return "", raw


def go_parse_url(raw: str, *, request: bool = False) -> GoURL | None:
    """Go's url.Parse (or url.ParseRequestURI with `request=True`); None where Go fails."""
    fragment = ""
    if not request:
        raw, hashed, fragment = raw.partition("#")
        if hashed and not _unescape_ok(fragment):
            return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return None
    if raw == "" and request:
        return None
    if raw == "*":
        return GoURL(path="*", fragment=fragment)
    split = _scheme_of(raw)
    if split is None:
        return None
    scheme, rest = split[0].lower(), split[1]
    if rest.endswith("?") and rest.count("?") == 1:
        rest, raw_query = rest[:-1], ""
    else:
        rest, _, raw_query = rest.partition("?")
    if not rest.startswith("/"):
        if scheme:
            return GoURL(scheme=scheme, opaque=rest, raw_query=raw_query, fragment=fragment)
        if request:
            return None
        if ":" in rest.partition("/")[0]:
            return None  # "first path segment in URL cannot contain colon"
    user: str | None = None
    host = ""
    if (scheme or (not request and not rest.startswith("///"))) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        at = authority.rfind("@")
        host = authority[at + 1 :]
        if not _parse_host(host):
            return None
        if at >= 0:
            user = authority[:at]
            if not all(c in _USERINFO_CHARS for c in user) or not _unescape_ok(user):
                return None
    if not _unescape_ok(rest):
        return None
    return GoURL(scheme=scheme, user=user, host=host, path=rest, raw_query=raw_query, fragment=fragment)


# -- govalidator.IsURL and IsFilePath ---------------------------------------------------------
# govalidator's URL regular expression, taken apart so that it runs in linear time: as one
# Python pattern its nested quantifiers backtrack exponentially on inputs that almost match.
_X = "A-Za-z0-9"
_U = "A-Za-z\u00a1-\uffff0-9"
_L = "A-Za-z\u00a1-\uffff"
_GO_SPACE = frozenset("\t\n\f\r ")
_URL_SCHEME = re.compile(r"(?:ftp|tcp|udp|wss?|https?)://")
_URL_IPV4 = re.compile(
    r"(?:[1-9][0-9]?|1[0-9][0-9]|2[01][0-9]|22[0-3]|24[0-9]|25[0-5])"
    r"(?:\.(?:[0-9]{1,2}|1[0-9][0-9]|2[0-4][0-9]|25[0-5])){2}"
    r"\.(?:[0-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])"
)
_H = "[0-9a-fA-F]"
_V4 = r"(?:25[0-5]|(?:2[0-4]|1?[0-9])?[0-9])"
_URL_IPV6 = re.compile(
    rf"(?:{_H}{{1,4}}:){{7}}{_H}{{1,4}}|(?:{_H}{{1,4}}:){{1,7}}:|(?:{_H}{{1,4}}:){{1,6}}:{_H}{{1,4}}"
    rf"|(?:{_H}{{1,4}}:){{1,5}}(?::{_H}{{1,4}}){{1,2}}|(?:{_H}{{1,4}}:){{1,4}}(?::{_H}{{1,4}}){{1,3}}"
    rf"|(?:{_H}{{1,4}}:){{1,3}}(?::{_H}{{1,4}}){{1,4}}|(?:{_H}{{1,4}}:){{1,2}}(?::{_H}{{1,4}}){{1,5}}"
    rf"|{_H}{{1,4}}:(?:(?::{_H}{{1,4}}){{1,6}})|:(?:(?::{_H}{{1,4}}){{1,7}}|:)"
    rf"|fe80:(?::{_H}{{0,4}}){{0,4}}%[0-9a-zA-Z]+"
    rf"|::(?:ffff(?::0{{1,4}})?:)?(?:{_V4}\.){{3}}{_V4}|(?:{_H}{{1,4}}:){{1,4}}:(?:{_V4}\.){{3}}{_V4}"
)
_HOST_NAME_CHARS = re.compile(rf"[{_U}._-]*")
_URL_LABELS = re.compile(rf"[{_U}]+(?:--?[{_U}]+)*")
_URL_TLD = re.compile(rf"[{_L}]+")
_URL_PREFIX_LABELS = re.compile(rf"[{_X}][{_X}_-]*[{_X}](?:\.[{_X}]+(?:[-.][{_X}]+)*)?")
_URL_SUBDOMAIN = re.compile(rf"www\.|[{_X}]+(?:[-_.][{_X}]+)*[{_X}]\.[{_X}]+")
_UNICODE_LABEL_CHAR = re.compile(rf"[{_U}]")


def is_url(value: str) -> bool:
    """govalidator.IsURL, which Kuma uses for TCP log collectors and Zipkin URLs: a URL with
    an optional scheme, or a bare host[:port][/path]."""
    if value == "" or len(value) >= 2083 or len(value.encode()) <= 3 or value.startswith("."):
        return False
    candidate = value
    if ":" in value and "://" not in value:
        candidate = "http://" + value  # a bare host:port parses as a URL with a scheme
    parsed = go_parse_url(candidate)
    if parsed is None or parsed.host.startswith("."):
        return False
    if parsed.host == "" and parsed.path != "" and "." not in parsed.path:
        return False
    return _matches_url_pattern(value)


def _tail_table(s: str) -> list[bool]:
    """For each position: does `\\.?(:\\d{1,5})?([/?#]\\S*)?` match the rest of `s` from there?"""
    n = len(s)
    no_space_after = [True] * (n + 1)
    for i in range(n - 1, -1, -1):
        no_space_after[i] = no_space_after[i + 1] and s[i] not in _GO_SPACE
    path_ok = [i == n or (s[i] in "/?#" and no_space_after[i + 1]) for i in range(n + 1)]
    port_ok = list(path_ok)
    for i in range(n):
        if s[i] == ":":
            for k in range(1, 6):
                if i + k >= n or not s[i + k].isascii() or not s[i + k].isdigit():
                    break
                if path_ok[i + k + 1]:
                    port_ok[i] = True
                    break
    return [port_ok[i] or (i < n and s[i] == "." and port_ok[i + 1]) for i in range(n + 1)]


def _matches_url_pattern(s: str) -> bool:
    tail_ok = _tail_table(s)
    starts = [0]
    scheme = _URL_SCHEME.match(s)
    if scheme:
        starts.append(scheme.end())
    host_starts = set(starts)
    for start in starts:
        # Userinfo is any run of non-space characters ending at an '@'.
        for i in range(start + 1, len(s)):
            if s[i] in _GO_SPACE:
                break
            if s[i] == "@":
                host_starts.add(i + 1)
    return any(_url_host_at(s, start, tail_ok) for start in host_starts)


def _url_host_at(s: str, start: int, tail_ok: list[bool]) -> bool:
    n = len(s)
    for end in range(start + 7, min(n, start + 15) + 1):
        if tail_ok[end] and _URL_IPV4.fullmatch(s, start, end):
            return True
    if start < n and s[start] == "[":
        close = s.find("]", start)
        if close != -1 and tail_ok[close + 1] and _URL_IPV6.fullmatch(s, start + 1, close):
            return True
    run = _HOST_NAME_CHARS.match(s, start)
    run_end = run.end() if run else start
    ends = [run_end]
    if run_end - 1 > start and s[run_end - 1] == ".":
        ends.append(run_end - 1)  # the optional trailing dot of a fully qualified name
    return any(end > start and tail_ok[end] and _url_host_name(s[start:end]) for end in ends)


def _url_host_name(host: str) -> bool:
    """govalidator's host-name alternative: optional prefix labels, labels, optional `.tld`."""
    middles = [host]
    dot = host.rfind(".")
    if 0 <= dot < len(host) - 1 and _URL_TLD.fullmatch(host, dot + 1):
        middles.append(host[:dot])
    return any(_url_labels_split(m) for m in middles)


def _url_labels_split(m: str) -> bool:
    """`m` = prefix + labels, where the labels are a suffix of `m` and the prefix is empty
    or one of govalidator's two prefix forms."""
    first = len(m)
    while first > 0 and (m[first - 1] == "-" or _UNICODE_LABEL_CHAR.fullmatch(m[first - 1])):
        first -= 1
    for j in range(first, len(m)):
        if m[j] == "-" or not _URL_LABELS.fullmatch(m, j):
            continue
        prefix = m[:j]
        if not prefix or _URL_PREFIX_LABELS.fullmatch(prefix) or _URL_SUBDOMAIN.fullmatch(prefix):
            return True
    return False


_WINDOWS_PATH = re.compile(r'[a-zA-Z]:\\(?:[^\\/:*?"<>|\r\n]+\\)*[^\\/:*?"<>|\r\n]*')
_UNIX_PATH = re.compile(r"(?:/[^/\x00]*)+/?")


def is_file_path(value: str) -> bool:
    """govalidator.IsFilePath: an absolute Windows path (`C:\\logs\\a.log`) or Unix path."""
    if _WINDOWS_PATH.fullmatch(value):
        return len(value[3:].encode()) <= 32767
    return bool(_UNIX_PATH.fullmatch(value))
