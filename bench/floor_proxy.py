"""The floor under the log proxy's CPU per query (issue 16, P1): a bare pass-through.

A WSGI app that forwards each ``POST /v1/...`` to Log Analytics through the service's own
adapter (``service.adapters.logs.AzureLogs.forward``: azure-core's pipeline, the bearer token
policy, the urllib3 transport, the answer streamed back unparsed), with one fixed credential,
and nothing else: no database, API key, tenant look-up, budget, validation, audit, metrics or
Flask. ``bench/log_proxy.py`` serves it with the service's gunicorn worker class over the same
TLS, and measures its CPU per query beside the service's: what a proxy that must make the
query through the SDK costs at the least on this machine, and so what share of the service's
figure is its own work.

Configured by the environment: the ``AZURE_*`` settings of the service, and ``FLOOR_TENANT_ID``,
``FLOOR_CLIENT_ID``, ``FLOOR_CLIENT_SECRET`` (a service principal of the emulator's sandbox).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_parts: dict[str, Any] = {}


def _logs() -> tuple[Any, Any]:
    if not _parts:
        from azure.identity import ClientSecretCredential

        from service.adapters.logs import AzureLogs
        from service.config import AzureSettings

        settings = AzureSettings.from_env(os.environ)
        _parts["logs"] = AzureLogs(settings)
        _parts["credential"] = ClientSecretCredential(
            os.environ["FLOOR_TENANT_ID"],
            os.environ["FLOOR_CLIENT_ID"],
            os.environ["FLOOR_CLIENT_SECRET"],
            authority=settings.authority_host,
            disable_instance_discovery=True,
            connection_verify=settings.ca_bundle,
        )
    return _parts["logs"], _parts["credential"]


def _stream(chunks: Iterable[bytes], close: Callable[[], None]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        close()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    logs, credential = _logs()
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    path = environ["PATH_INFO"].removeprefix("/v1")
    answer = logs.forward(credential, path, body, environ.get("HTTP_PREFER"))
    headers = list(answer.headers.items())
    start_response(f"{answer.status} {'OK' if answer.status == 200 else 'Error'}", headers)
    return _stream(answer.chunks, answer.close)
