"""The emulator's HTTPS server: cheroot (keep-alive, threaded, TLS) serving an `EmulatorApp`.

server = EmulatorServer(build_app(state))  # emulator.app.build_app
server.start()  # https://127.0.0.1:<port>, certificate from the emulator's own CA
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from emulator.server import CONNECTION_KEY, EmulatorApp
from emulator.tls import CertificateAuthority

log = logging.getLogger(__name__)
KEEP_ALIVE_CONNECTIONS = 512


class _Gateway(wsgi.Gateway_10):
    """Exposes the connection to the app so a fault can close it without answering."""

    def get_environ(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_environ()
        env[CONNECTION_KEY] = self.req.conn
        return env


def _cheroot_error_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
    # cheroot prints to stderr by default; clients that give up mid-handshake are routine here.
    log.log(min(level, logging.INFO), "cheroot: %s", msg, exc_info=traceback)


class EmulatorServer:
    """One emulator instance on https://host:port, serving `app` (see `emulator.app.build_app`)."""

    def __init__(
        self,
        app: EmulatorApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ca: CertificateAuthority | None = None,
        tls_dir: Path | str | None = None,
        threads: int = 48,
    ) -> None:
        self.state = app.state
        self._tls_dir = (
            Path(tls_dir) if tls_dir else Path(tempfile.mkdtemp(prefix="azure-emulator-tls-"))
        )
        self.ca = ca or CertificateAuthority.create(self._tls_dir)
        cert_path, key_path = self.ca.issue_server_cert(self._tls_dir)
        self._server = wsgi.Server((host, port), app, numthreads=threads, shutdown_timeout=2)
        self._server.gateway = _Gateway
        self._server.error_log = _cheroot_error_log
        # The accept loop notices stop() only between select() rounds: keep them short.
        self._server.expiration_interval = 0.05
        # cheroot keeps at most 10 idle keep-alive connections by default and closes every
        # other one after its answer, so busy clients (a reconciler's connection pools) made a
        # new TLS connection for nearly every call: a handshake on both sides each time.
        # Azure keeps connections alive; so does the emulator, up to this many.
        self._server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
        self._server.ssl_adapter = BuiltinSSLAdapter(str(cert_path), str(key_path))
        self._host = host
        self._thread: threading.Thread | None = None

    @property
    def ca_path(self) -> Path:
        return self.ca.ca_path

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        return f"https://{self._host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a background thread; `url` is valid afterwards."""
        self._server.prepare()
        self.state.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve, name="azure-emulator", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self.state.faults.clear()
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
