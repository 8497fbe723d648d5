"""An azure-core transport on urllib3, for the log adapter's pipeline and the v2 ARM client.

azure-core's default ``RequestsTransport`` sends through a ``requests.Session``: per request it
merges session settings, builds a cookie jar, runs hooks, prepares a ``PreparedRequest`` and
extracts cookies from the answer, and only then hands the request to urllib3, which owns the
connection pool, TLS and the HTTP exchange. For a small log query that layer cost 0.45 ms of CPU
on a warm core and about twice that between queries 50 ms apart (issue 16,
``bench/profile_proxy.py``: requests' own frames were a tenth of a query's CPU, on the proxy's
critical path). This transport goes to urllib3 directly and keeps what mattered of requests'
behaviour: pooled keep-alive connections (a dropped idle one is replaced), the CA location,
the proxy from the environment, connect and read timeouts, no redirects followed, and its
errors as azure-core's (``ServiceRequestError`` before the request was sent,
``ServiceResponseError`` after).

It is azure-core's documented extension point (``HttpTransport``, and ``azure.core.rest``'s
``HttpResponse``: "use this abstract base class to create your own transport responses"); the
pipeline, its policies and the credential are azure-core's, unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from azure.core.exceptions import (
    HttpResponseError,
    ResponseNotReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
    StreamClosedError,
    StreamConsumedError,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.utils import case_insensitive_dict

# requests' pool size (DEFAULT_POOLSIZE): connections kept per host; beyond it, extra
# connections serve their request and are closed.
POOL_SIZE = 10
# azure-core's transports' read timeout when neither the transport nor the call sets one.
DEFAULT_READ_TIMEOUT_S = 300


def environ_proxy(url: str) -> str | None:
    """The proxy requests would take from the environment for ``url`` (``HTTPS_PROXY`` for an
    https URL, else ``ALL_PROXY``; none when ``NO_PROXY`` names the host)."""
    proxies = requests.utils.get_environ_proxies(url)
    return proxies.get(urlsplit(url).scheme) or proxies.get("all") or None


def _proxy_manager(proxy: str, options: dict[str, Any]) -> urllib3.ProxyManager:
    """A pool through ``proxy``; credentials in its URL (``http://user:pass@host``, percent-
    encoded) become its ``Proxy-Authorization``, as requests sends them (urllib3 does not)."""
    user, password = requests.utils.get_auth_from_url(proxy)
    headers = None
    if user or password:
        headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}")
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **options)


class Urllib3Transport(HttpTransport[HttpRequest, HttpResponse]):
    """Sends azure-core ``HttpRequest``s with a urllib3 pool manager (one per transport)."""

    def __init__(
        self,
        *,
        verify: str,
        connection_timeout: float,
        block_size: int,
        proxy: str | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    ) -> None:
        trust = {"ca_cert_dir": verify} if os.path.isdir(verify) else {"ca_certs": verify}
        options: dict[str, Any] = {
            "maxsize": POOL_SIZE,
            "block": False,
            "retries": False,
            "cert_reqs": "CERT_REQUIRED",
            **trust,
        }
        self._pool: urllib3.PoolManager = (
            _proxy_manager(proxy, options) if proxy else urllib3.PoolManager(**options)
        )
        self._connection_timeout = connection_timeout
        self._read_timeout = read_timeout
        self._block_size = block_size

    def __enter__(self) -> Urllib3Transport:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def open(self) -> None:
        """Nothing to open: the pool connects on demand."""

    def close(self) -> None:
        self._pool.clear()

    def send(
        self,
        request: HttpRequest,
        *,
        stream: bool = False,
        read_timeout: float | None = None,
        connection_timeout: float | None = None,
        **_options: Any,
    ) -> HttpResponse:
        """One exchange; the answer read whole unless ``stream`` (then the caller closes it)."""
        timeout = urllib3.Timeout(
            connect=connection_timeout or self._connection_timeout,
            read=read_timeout or self._read_timeout,
        )
        try:
            raw = self._pool.urlopen(
                request.method,
                request.url,
                body=request.content,
                headers=dict(request.headers),
                timeout=timeout,
                redirect=False,
                preload_content=False,
            )
        except urllib3.exceptions.ConnectTimeoutError as exc:
            raise ServiceRequestTimeoutError(str(exc), error=exc) from exc
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise ServiceResponseTimeoutError(str(exc), error=exc) from exc
        except urllib3.exceptions.ProtocolError as exc:
            # The connection broke after the request went out (reset, closed mid-answer).
            raise ServiceResponseError(str(exc), error=exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServiceRequestError(str(exc), error=exc) from exc
        response = Urllib3Response(request, raw, self._block_size)
        if not stream:
            response.read()
        return response


class Urllib3Response(HttpResponse):
    """azure-core's REST response over a urllib3 response read lazily."""

    def __init__(self, request: HttpRequest, raw: Any, block_size: int) -> None:
        self._request = request
        self._raw = raw
        self._block_size = block_size
        self._headers: MutableMapping[str, str] = case_insensitive_dict(raw.headers.items())
        self._content: bytes | None = None
        self._closed = False
        self._consumed = False  # the body's reading began
        self._encoding: str | None = None

    @property
    def request(self) -> HttpRequest:
        return self._request

    @property
    def status_code(self) -> int:
        return int(self._raw.status)

    @property
    def headers(self) -> MutableMapping[str, str]:
        return self._headers

    @property
    def reason(self) -> str:
        return str(self._raw.reason or "")

    @property
    def content_type(self) -> str | None:
        return self._headers.get("Content-Type")

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_stream_consumed(self) -> bool:
        return self._consumed

    @property
    def encoding(self) -> str | None:
        return self._encoding

    @encoding.setter
    def encoding(self, value: str | None) -> None:
        self._encoding = value

    @property
    def url(self) -> str:
        return str(self._request.url)

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise ResponseNotReadError(self)
        return self._content

    def text(self, encoding: str | None = None) -> str:
        """The body decoded as given, else by the answer's charset, else as UTF-8 (a BOM
        dropped), as azure-core's own responses do."""
        charset = encoding or self._encoding or _charset(self.content_type) or "utf-8-sig"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise HttpResponseError(response=self)

    def read(self) -> bytes:
        if self._content is None:
            if self._consumed:
                raise StreamConsumedError(self)
            if self._closed:
                raise StreamClosedError(self)
            try:
                self._content = b"".join(self._chunks())
            finally:
                self.close()
        return self._content

    def iter_bytes(self, **_kwargs: Any) -> Iterator[bytes]:
        """The body ``block_size`` bytes at a time (urllib3 decodes any content encoding)."""
        if self._content is not None:
            yield self._content
            return
        if self._consumed:
            raise StreamConsumedError(self)
        if self._closed:
            raise StreamClosedError(self)
        try:
            yield from self._chunks()
        finally:
            self.close()

    iter_raw = iter_bytes

    def _chunks(self) -> Iterator[bytes]:
        self._consumed = True
        try:
            yield from self._raw.stream(self._block_size)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise ServiceResponseTimeoutError(str(exc), error=exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServiceResponseError(str(exc), error=exc) from exc

    def close(self) -> None:
        """Close the answer. urllib3 hands a connection back to the pool itself once its
        answer was read to the end; one left part-read is closed here (its unread bytes must
        not reach the next request) and the pool opens a new one when it needs it."""
        if self._closed:
            return
        self._closed = True
        self._raw.close()
        self._raw.release_conn()

    def __enter__(self) -> Urllib3Response:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()


def _charset(content_type: str | None) -> str | None:
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip('"')
    return None
