"""The container's health check: ``python -m service.healthcheck`` (Dockerfile HEALTHCHECK).

It asks ``/healthz`` on the address gunicorn listens on, taken from ``BIND`` as gunicorn takes
it, so that changing ``BIND`` never breaks the check: a wildcard host (``0.0.0.0``, ``[::]``)
is reached on loopback, ``unix:PATH`` through the socket. Exit status 0 when healthy, else 1.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys

DEFAULT_BIND = "127.0.0.1:8080"
TIMEOUT_S = 2.0


def target(bind: str) -> tuple[str, str, int]:
    """``("tcp", host, port)`` or ``("unix", path, 0)`` to reach a server bound to ``bind``."""
    first = bind.split(",")[0].strip() or DEFAULT_BIND
    if first.startswith("unix:"):
        return "unix", first.removeprefix("unix:"), 0
    if first.startswith("["):  # [v6]:port
        host, _, port = first[1:].partition("]:")
        host = "::1" if host in ("::", "") else host
    else:
        host, sep, port = first.rpartition(":")
        if not sep:  # gunicorn's default port
            host, port = first, "8000"
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - reading BIND
    return "tcp", host, int(port)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT_S)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT_S)
        sock.connect(self.path)
        self.sock = sock


def healthy(bind: str) -> bool:
    kind, host, port = target(bind)
    conn: http.client.HTTPConnection
    if kind == "unix":
        conn = _UnixConnection(host)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(0 if healthy(os.environ.get("BIND", DEFAULT_BIND)) else 1)
