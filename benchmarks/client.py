"""
Load clients for the benchmarks: CPython's C{ssl} module, in processes of
their own.

The clients are deliberately not ours: they use the standard library's
OpenSSL binding, verify the server's chain against the benchmark CA, never
resume a session (every connection is a full handshake), and connect to
127.0.0.1 only.  Every mode stops by itself: after a fixed number of
handshakes or at a deadline on the system-wide monotonic clock, which the
runner shares.  Each prints one JSON object on stdout when done.

Modes:

 - C{handshakes}: connect, handshake, send one byte, wait for its echo,
   close; C{--count} times to each C{--port} given, taking the ports in
   turn, so that several servers get the same load at the same time.
 - C{web}: a new connection for every HTTPS request (C{Connection: close})
   until C{--until}; records when each one finished or failed and which
   certificate it saw.
 - C{keepalive}: C{--connections} HTTP/1.1 connections opened at the start
   and used for requests in turn until C{--until}; a failed request is
   recorded and its connection opened again.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import socket
import ssl
import sys
import time
from collections import Counter
from typing import Any

__all__ = ["main"]


def _context(caFile: str, sni: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=caFile)
    if not sni:
        # No name to check without SNI; the chain is still verified.
        context.check_hostname = False
    return context


def _serverHostname(sni: bool) -> str | None:
    return "localhost" if sni else None


def _connect(
    port: int, context: ssl.SSLContext, sni: bool, timeout: float
) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname=_serverHostname(sni))
    except BaseException:
        raw.close()
        raise


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def handshakes(options: argparse.Namespace) -> dict[str, Any]:
    context = _context(options.ca, options.sni)
    done = 0
    errors: Counter[str] = Counter()
    started = time.monotonic()
    for _ in range(options.count):
        for port in options.port:
            try:
                with _connect(port, context, options.sni, 10.0) as tls:
                    tls.sendall(b"x")
                    if tls.recv(1) != b"x":
                        raise OSError("no echo")
                done += 1
            except (OSError, ssl.SSLError) as e:
                errors[_describe(e)] += 1
    return {
        "done": done,
        "failures": sum(errors.values()),
        "errors": dict(errors.most_common(5)),
        "seconds": time.monotonic() - started,
    }


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """
    An HTTPS connection to 127.0.0.1 that still sends C{localhost} as SNI and
    checks it, so that a name resolving to ::1 first costs no detour.
    """

    opened = 0

    def __init__(self, port: int, context: ssl.SSLContext, sni: bool) -> None:
        super().__init__("localhost", port, timeout=10.0, context=context)
        self._tlsContext = context
        self._sni = sni

    def connect(self) -> None:
        # Counted, because http.client opens a connection again by itself
        # when it finds one closed; a keep-alive connection lost to a reload
        # would otherwise go unnoticed.
        _LoopbackHTTPS.opened += 1
        self.sock = _connect(self.port, self._tlsContext, self._sni, 10.0)


def _get(connection: _LoopbackHTTPS, close: bool) -> None:
    headers = {"Connection": "close"} if close else {}
    connection.request("GET", "/", headers=headers)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or body != b"hello\n":
        raise OSError(f"bad response {response.status} {body[:40]!r}")


def _fingerprint(connection: _LoopbackHTTPS) -> str:
    sock = connection.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True) or b""
    return hashlib.sha256(der).hexdigest()[:16]


def web(options: argparse.Namespace) -> dict[str, Any]:
    context = _context(options.ca, options.sni)
    okTimes: list[float] = []
    failures: list[tuple[float, str]] = []
    seen: Counter[str] = Counter()
    while time.monotonic() < options.until:
        connection = _LoopbackHTTPS(options.port, context, options.sni)
        try:
            connection.connect()
            seen[_fingerprint(connection)] += 1
            _get(connection, close=True)
            okTimes.append(time.monotonic())
        except (OSError, ssl.SSLError, http.client.HTTPException) as e:
            failures.append((time.monotonic(), _describe(e)))
        finally:
            connection.close()
    return {"ok": okTimes, "failures": failures, "certificatesSeen": seen}


def keepalive(options: argparse.Namespace) -> dict[str, Any]:
    context = _context(options.ca, options.sni)
    connections = [
        _LoopbackHTTPS(options.port, context, options.sni)
        for _ in range(options.connections)
    ]
    okTimes: list[float] = []
    failures: list[tuple[float, str]] = []
    reconnects = 0
    while time.monotonic() < options.until:
        for index, connection in enumerate(connections):
            try:
                _get(connection, close=False)
                okTimes.append(time.monotonic())
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                failures.append((time.monotonic(), _describe(e)))
                connection.close()
                connections[index] = _LoopbackHTTPS(options.port, context, options.sni)
                reconnects += 1
        time.sleep(options.pause)
    for connection in connections:
        connection.close()
    # Each connection is opened once by its first request; any further
    # opening means a connection was lost.
    return {
        "ok": okTimes,
        "failures": failures,
        "reconnectsAfterFailure": reconnects,
        "connectionsOpened": _LoopbackHTTPS.opened,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="benchmark load client")
    parser.add_argument("mode", choices=["handshakes", "web", "keepalive"])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--sni", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--until", type=float, default=0.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.005)
    options = parser.parse_args(argv)
    # A bound on every mode even if the runner passed a bad deadline.
    options.until = min(options.until, time.monotonic() + 600.0)
    if options.mode != "handshakes":
        (options.port,) = options.port
    mode = {"handshakes": handshakes, "web": web, "keepalive": keepalive}
    result = mode[options.mode](options)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
