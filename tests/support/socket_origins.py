"""Opt-in diagnostics: where was a leaked TLS socket made? (`-p tests.support.socket_origins`)

A socket that is garbage-collected while still open raises a ResourceWarning inside whatever test
runs then, far from its cause. With this plugin every ``ssl.SSLSocket`` remembers the stack that
made it, and one collected while open appends that stack (and where it was dropped) to
``$SOCKET_ORIGINS_FILE`` (default ``var/socket-origins.txt``). It patches the standard library's
SSLSocket only, never an SDK, and only in the run that asks for it.

Found with it (issue 11, CI of 2026-11-30): azureml-core builds a new ``requests.Session`` for
each call (``azureml._model_management._util.get_requests_session``) and never closes it; when an
abandoned ``Webservice.update()`` thread outlives the emulator of its test, its connection is
left in a garbage cycle and collected open during a later test.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import traceback
from typing import Any

_FILE = os.environ.get("SOCKET_ORIGINS_FILE", "var/socket-origins.txt")


def _new(cls: type[ssl.SSLSocket], *args: Any, **kwargs: Any) -> ssl.SSLSocket:
    sock = socket.socket.__new__(cls, *args, **kwargs)
    sock._origin = (  # type: ignore[attr-defined]
        threading.current_thread().name,
        "".join(traceback.format_stack(limit=45)[:-1]),
    )
    return sock


def _del(self: ssl.SSLSocket) -> None:
    if self.fileno() == -1:
        return
    thread, stack = getattr(self, "_origin", ("?", "unknown\n"))
    os.makedirs(os.path.dirname(_FILE) or ".", exist_ok=True)
    with open(_FILE, "a", encoding="utf-8") as out:
        out.write(f"=== collected open: {self!r}\n--- made in thread {thread}:\n{stack}")
        out.write("--- dropped at:\n" + "".join(traceback.format_stack(limit=25)) + "\n")
    self.close()


def pytest_configure(config: Any) -> None:
    ssl.SSLSocket.__new__ = _new  # type: ignore[assignment,method-assign]
    ssl.SSLSocket.__del__ = _del  # type: ignore[attr-defined]
