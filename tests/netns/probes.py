"""Small servers and a client the redirect tests run inside namespaces (`python probes.py ...`).

    server PORT...       TCP on 0.0.0.0:PORT and [::]:PORT; each connection is answered with
                         "<listening port> <original destination>" (SO_ORIGINAL_DST, which
                         iptables' REDIRECT keeps) and closed
    udp PORT TEXT        UDP on 0.0.0.0:PORT; each datagram is answered with TEXT
    dns PORT IP          a nameserver on 0.0.0.0:PORT (UDP) answering every A question with IP
    resolve UID NAME [SERVER]
                         switches to UID and resolves NAME (A) with /etc/resolv.conf's nameserver (or SERVER)
    client UID tcp|udp HOST PORT
                         switches to UID (and gid UID), then connects (or sends one datagram)
                         and prints the answer; "error: ..." when there is none

A server prints "ready" once it listens, and runs until terminated.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
"""linux/netfilter_ipv4.h: the destination a connection had before NAT."""


def _original_destination(conn: socket.socket) -> str:
    ipv6 = conn.family == socket.AF_INET6
    try:
        # IP6T_SO_ORIGINAL_DST has the same number, at the IPv6 level.
        raw = conn.getsockopt(socket.IPPROTO_IPV6 if ipv6 else socket.SOL_IP, SO_ORIGINAL_DST, 28 if ipv6 else 16)
    except OSError:  # no conntrack entry in this namespace: nothing was translated
        host, port = conn.getsockname()[:2]
        return f"[{host}]:{port}" if ipv6 else f"{host}:{port}"
    port = struct.unpack("!H", raw[2:4])[0]
    if ipv6:
        return f"[{socket.inet_ntop(socket.AF_INET6, raw[8:24])}]:{port}"
    return f"{socket.inet_ntoa(raw[4:8])}:{port}"


def serve(ports: list[int]) -> None:
    listeners = []
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            s.listen(64)
            listeners.append(s)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select(listeners, [], [])
        for s in readable:
            conn, _ = s.accept()
            with conn:
                conn.sendall(f"{s.getsockname()[1]} {_original_destination(conn)}\n".encode())


def serve_udp(port: int, text: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        _, peer = s.recvfrom(2048)
        s.sendto(text.encode(), peer)


def serve_dns(port: int, ip: str) -> None:
    import dns.message
    import dns.rrset

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.answer.append(dns.rrset.from_text(query.question[0].name, 5, "IN", "A", ip))
        s.sendto(response.to_wire(), peer)


def resolve(uid: int, name: str, server: str | None = None) -> None:
    """As UID, resolve NAME with the nameserver of /etc/resolv.conf (or SERVER); print the addresses or the error."""
    import dns.resolver

    resolver = dns.resolver.Resolver()
    if server:
        resolver.nameservers = [server]
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    try:
        answer = resolver.resolve(name, "A", lifetime=5)
        print(" ".join(sorted(r.to_text() for r in answer)))
    except Exception as e:
        print(f"error: {type(e).__name__}: {e}")


def client(uid: int, proto: str, host: str, port: int) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as s:
        s.settimeout(3)
        try:
            if proto == "tcp":
                s.connect((host, port))
                print(s.recv(200).decode().strip())
            else:
                s.sendto(b"query", (host, port))
                print(s.recv(200).decode().strip())
        except OSError as e:
            print(f"error: {e}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "server":
        serve([int(a) for a in args])
    elif command == "dns":
        serve_dns(int(args[0]), args[1])
    elif command == "resolve":
        resolve(int(args[0]), args[1], args[2] if len(args) > 2 else None)
    elif command == "udp":
        serve_udp(int(args[0]), args[1])
    else:
        client(int(args[0]), args[1], args[2], int(args[3]))
