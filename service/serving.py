"""The gunicorn worker: gevent, with header and body deadlines and the service's error shape.

Why gevent (README, "Slow clients"): a thread-per-connection worker (``gthread``) lends a
thread to a connection as soon as its first bytes arrive and keeps it there while the client
trickles the rest; 16 threads were pinned by 40 partial bodies or 80 partial headers and every
other request waited. Here a connection is a greenlet (a few KB) until its request is complete:

- the request line and headers must arrive within ``HEADER_TIMEOUT_S`` (the same wait bounds
  an idle kept-alive connection), else the connection is closed;
- the whole body is read **before** the application runs, within ``BODY_TIMEOUT_S`` (else 408)
  and up to ``MAX_BODY_BYTES`` (else 413, chunked or not), so a view never waits on a client;
- gunicorn's own refusals (malformed request 400, 414, 431) are problem+json like every other
  error, or Azure's error shape under ``/loganalytics``.

gevent monkey-patches the standard library in each worker before the application is imported
(gunicorn's ``GeventWorker.init_process``), so the service's threads (audit writer, query
shaping, SDK calls with deadlines) are greenlets and every socket wait yields: requests,
azure-core, msal and azureml-core use patched sockets and ssl; psycopg detects the patching and
waits cooperatively. What does not yield: SQLite calls (in C; short, but a ``busy_timeout`` wait
holds the worker) and CPU-bound work such as encoding a large result.
"""

from __future__ import annotations

import io
import logging
import re
import socket
import threading
import uuid
from typing import Any

import gevent
from gunicorn import util as gunicorn_util
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.workers.ggevent import GeventWorker

from service.config import Settings

log = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_GUNICORN_ERRORS = {
    400: ("bad_request", "Bad request", "the request is not valid HTTP/1.1"),
    403: ("forbidden", "Forbidden", "the request was refused"),
    408: ("request_timeout", "Request timeout", "the request was not received in time"),
    413: ("payload_too_large", "Payload too large", "the request body is too large"),
    414: ("uri_too_long", "URI too long", "the request line is too long"),
    417: ("expectation_failed", "Expectation failed", "the Expect header is not supported"),
    431: (
        "request_header_fields_too_large",
        "Request header fields too large",
        "the request headers are too large or too many",
    ),
    501: ("not_implemented", "Not implemented", "the transfer coding is not supported"),
}
_current = threading.local()  # per greenlet once patched: the path of the request being refused


class RequestRefused(Exception):
    """The server answers the request itself (408, 413) and closes the connection."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def error_bytes(status: int, path: str | None, request_id: str | None = None) -> bytes:
    """A whole HTTP/1.1 error response (``Connection: close``) in the service's error shape."""
    from service.api.problems import error_document

    code, title, detail = _GUNICORN_ERRORS.get(
        status, ("internal_error", "Internal server error", "an unexpected error occurred")
    )
    rid = request_id or uuid.uuid4().hex
    content_type, body = error_document(path or "/", status, code, title, detail, rid)
    reason = title.replace("Uri", "URI")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: {rid}\r\nCache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Replaces ``gunicorn.util.write_error`` (HTML) in the worker: same call, our shape."""
    del reason, mesg  # gunicorn's message may echo the request; the problem says what failed
    gunicorn_util.write_nonblock(sock, error_bytes(status_int, getattr(_current, "path", None)))
    _linger(sock)


def _linger(sock: Any, seconds: float = 1.0, limit: int = 8 * 2**20) -> None:
    """Half-close, then read off what the client is still sending (briefly, boundedly).

    Closing a socket with unread input sends a reset, which can destroy the error response
    before the client reads it (a 413 while the client is still uploading).
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        read = 0
        with gevent.Timeout(seconds, False):
            while read < limit:
                data = sock.recv(65536)
                if not data:
                    break
                read += len(data)
    except OSError:
        pass  # the client went away: nothing left to protect


class _PathRecordingRequest(Request):  # type: ignore[misc]
    """gunicorn's request, noting its path as soon as the request line is read.

    A header error raises before gunicorn hands the request over; the path still decides the
    shape of the error (Azure's under /loganalytics).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _current.path = None
        super().__init__(*args, **kwargs)

    def parse_request_line(self, line_bytes: bytes) -> None:
        super().parse_request_line(line_bytes)
        _current.path = self.path


def _header(req: Any, name: str) -> str | None:
    for key, value in req.headers:
        if key == name:
            return str(value)
    return None


class Worker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker with request deadlines and a buffered body."""

    header_timeout_s: float = 5.0
    body_timeout_s: float = 15.0
    max_body_bytes: int = 1024 * 1024

    def init_process(self) -> None:
        settings = Settings.from_env()
        self.header_timeout_s = settings.header_timeout_s
        self.body_timeout_s = settings.body_timeout_s
        self.max_body_bytes = settings.max_body_bytes
        # The two hooks into gunicorn's own error answers (see _write_error, the request class).
        gunicorn_util.write_error = _write_error
        RequestParser.mesg_class = _PathRecordingRequest
        super().init_process()

    def timeout_ctx(self) -> Any:
        # Bounds the wait for a request's line and headers (and an idle kept-alive connection).
        return gevent.Timeout(self.header_timeout_s, False)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        try:
            req.body = self._buffered_body(req, sock)
        except RequestRefused as refused:
            self.log.warning(
                "refused %s %s from %s: %s", req.method, req.path, addr[0], refused.status
            )
            rid = _header(req, "X-REQUEST-ID")
            rid = rid if rid and _REQUEST_ID.fullmatch(rid) else None
            gunicorn_util.write_nonblock(sock, error_bytes(refused.status, req.path, rid))
            _linger(sock)
            raise StopIteration from None  # closes the connection
        return super().handle_request(listener_name, req, sock, addr)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        known = getattr(req or getattr(exc, "req", None), "path", None)
        if known is not None:
            _current.path = known
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            _current.path = None

    def _buffered_body(self, req: Any, sock: Any) -> io.BytesIO:
        """Read the whole body now, within the body deadline and the size limit."""
        declared = _header(req, "CONTENT-LENGTH")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestRefused(413)
        if getattr(req, "_expected_100_continue", False):
            # gunicorn sends "100 Continue" when the application starts; the body is read
            # before that now, so send it here (once) or the client waits for it in vain.
            req._expected_100_continue = False
            gunicorn_util.write(sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        chunks: list[bytes] = []
        size = 0
        try:
            with gevent.Timeout(self.body_timeout_s):
                while True:
                    chunk = req.body.read(65536)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise RequestRefused(413)
                    chunks.append(chunk)
        except gevent.Timeout:
            raise RequestRefused(408) from None
        return io.BytesIO(b"".join(chunks))
