"""What a hostile or broken HTTP client can do to the API: nothing that stalls it or the xDS
server, and a 4xx with a reason instead of a dropped connection and a traceback in the log."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator

import grpc
import pytest

from tests.api.support import Reply, admin_token, raw_exchange, request, served_control_plane
from tests.e2e.harness import ControlPlaneProcess
from tests.gitops.helpers import mesh


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    root = tmp_path_factory.mktemp("hostile")
    with served_control_plane(root, {"meshes/default.yaml": mesh()}) as (_, cp, first):
        cp.wait_applied(first)
        yield cp


def xds_handshake(cp: ControlPlaneProcess, timeout: float = 5.0) -> None:
    """A new TLS connection to the xDS port, as a proxy opens one (TLS and HTTP/2 settings)."""
    assert cp.ca_cert is not None
    channel = grpc.secure_channel(cp.xds, grpc.ssl_channel_credentials(cp.ca_cert.read_bytes()))
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    finally:
        channel.close()


def test_a_hostile_rollback_stalls_neither_the_api_nor_new_xds_handshakes(cp: ControlPlaneProcess) -> None:
    hostile = {"revision": "a" * (100 * 1024)}
    token = admin_token(cp.state_dir)
    replies: list[Reply | BaseException] = []

    def send(with_token: bool) -> None:
        try:
            replies.append(request(cp.api, "POST", "/rollback", hostile, token=token if with_token else None, timeout=60))
        except BaseException as e:
            replies.append(e)

    senders = [threading.Thread(target=send, args=(i % 2 == 0,)) for i in range(4)]
    for t in senders:
        t.start()
    try:
        for _ in range(3):
            assert request(cp.api, "GET", "/status", timeout=5).status == 200
            xds_handshake(cp)
    finally:
        for t in senders:
            t.join(90)
    assert sorted(r.status for r in replies if isinstance(r, Reply)) == [400, 400, 401, 401], replies
    assert "Traceback" not in cp.output()


@pytest.mark.parametrize("length", [b"-1", b"abc", b"1e3", b"0x10", b"5\r\nContent-Length: 6"])
def test_a_malformed_content_length_is_a_400(cp: ControlPlaneProcess, length: bytes) -> None:
    raw = b"POST /rollback HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}"
    answer = raw_exchange("127.0.0.1", cp.api_port, raw)
    assert re.match(rb"HTTP/1\.[01] 400 ", answer) and b"Content-Length" in answer, answer[:300]
    assert request(cp.api, "GET", "/status").status == 200
    assert "Traceback" not in cp.output()


def test_head_answers_like_get_without_a_body(cp: ControlPlaneProcess) -> None:
    for path in ("/status", "/healthz", "/readyz", "/metrics", "/status/dataplanes"):
        got = request(cp.api, "GET", path)
        head = request(cp.api, "HEAD", path)
        assert (head.status, head.body) == (got.status, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path


def test_one_connection_serves_several_requests(cp: ControlPlaneProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", cp.api_port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/status")
        second = conn.getresponse()
        assert json.loads(second.read())["branch"] == "main"
        assert (first.status, second.status) == (200, 200) and conn.sock is sock and sock is not None
    finally:
        conn.close()


def test_oversized_bodies_and_headers_are_refused(cp: ControlPlaneProcess) -> None:
    token = admin_token(cp.state_dir)
    big = request(cp.api, "POST", "/rollback", b'{"revision": "' + b"a" * (2 * 1024 * 1024) + b'"}', token=token)
    assert big.status == 413 and "1 MiB" in big.json()["error"], big
    header = request(cp.api, "GET", "/status", headers={"X-Filler": "x" * (64 * 1024)})
    assert header.status in (400, 431), header
    assert request(cp.api, "GET", "/status").status == 200


def test_a_body_that_never_arrives_is_cut_off(cp: ControlPlaneProcess) -> None:
    head = (
        "POST /rollback HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {admin_token(cp.state_dir)}\r\nContent-Length: 100\r\n\r\n"
    )
    answer = raw_exchange("127.0.0.1", cp.api_port, head.encode() + b'{"revision": ', timeout=30)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"did not arrive within" in answer, answer[:300]
    assert request(cp.api, "GET", "/status").status == 200


def test_a_deeply_nested_json_body_is_a_400(cp: ControlPlaneProcess) -> None:
    reply = request(cp.api, "POST", "/rollback", b"[" * 200_000, token=admin_token(cp.state_dir))
    assert reply.status == 400 and "JSON" in reply.json()["error"], reply


def test_unknown_paths_and_methods_get_json_errors(cp: ControlPlaneProcess) -> None:
    missing = request(cp.api, "GET", "/nope")
    assert missing.status == 404 and missing.json()["error"] == "no GET /nope"
    wrong = request(cp.api, "GET", "/rollback")
    assert wrong.status == 405 and "POST" in wrong.headers["allow"] and wrong.json()["error"] == "no GET /rollback"
    assert request(cp.api, "POST", "/status", token=admin_token(cp.state_dir)).status == 405


def test_a_request_line_of_junk_is_a_400(cp: ControlPlaneProcess) -> None:
    answer = raw_exchange("127.0.0.1", cp.api_port, b"\x16\x03\x01\x02\x00junk\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 400 ", answer), answer[:200]
    assert request(cp.api, "GET", "/status").status == 200
    assert "Traceback" not in cp.output()
