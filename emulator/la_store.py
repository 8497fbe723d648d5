"""The telemetry the emulated Log Analytics API queries: workspaces, resources and canned answers.

Access model: a workspace or resource added without `readers` may be read by every principal
that holds a valid token for the API (the emulator's default, so tests need no RBAC set-up).
Given `readers`, only those identities may read it; anyone else gets Azure's 403
InsufficientAccessError. A cross-workspace query needs read access to every workspace named.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.kql import Table


@dataclass(frozen=True)
class Scope:
    """One queryable target: its tables and who may read it (None: everyone)."""

    id: str
    tables: Mapping[str, Table]
    readers: frozenset[str] | None

    def readable_by(self, identity: str) -> bool:
        """Whether `identity` may query this scope."""
        return self.readers is None or identity in self.readers


# Headers of a recorded response that describe the recorded transfer, not the answer; the
# emulator's own server sets them for the bytes it actually sends.
_TRANSFER_HEADERS = frozenset(
    {"content-length", "content-encoding", "transfer-encoding", "connection", "date", "vary"}
)


@dataclass(frozen=True)
class CannedResponse:
    """A fixed answer for a route, e.g. a recorded real Azure response replayed byte for byte."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]
    query: str | None  # answer only requests with this exact query text; None: any query


def normalize_resource_id(resource_id: str) -> str:
    """The store key of an ARM id: lower case, one leading slash, no trailing slash."""
    return "/" + resource_id.strip().strip("/").lower()


class TelemetryStore:
    """Thread-safe registry of workspaces, resources and canned responses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workspaces: dict[str, Scope] = {}
        self._resources: dict[str, Scope] = {}
        self._canned: dict[str, list[CannedResponse]] = {}

    def add_workspace(
        self,
        workspace_id: str,
        tables: dict[str, Table],
        *,
        readers: Iterable[str] | None = None,
    ) -> None:
        """Register (or replace) a Log Analytics workspace by its workspace (customer) id."""
        scope = Scope(workspace_id, dict(tables), _frozen(readers))
        with self._lock:
            self._workspaces[workspace_id.lower()] = scope

    def add_resource(
        self,
        resource_id: str,
        tables: dict[str, Table],
        *,
        readers: Iterable[str] | None = None,
    ) -> None:
        """Register (or replace) a resource (e.g. an App Insights component) by its ARM id.

        The id matches case-insensitively, with or without its leading slash.
        """
        key = normalize_resource_id(resource_id)
        scope = Scope(key, dict(tables), _frozen(readers))
        with self._lock:
            self._resources[key] = scope

    def workspace(self, workspace_id: str) -> Scope | None:
        """The workspace with this id (any case), or None."""
        return self._workspaces.get(workspace_id.lower())

    def resource(self, resource_id: str) -> Scope | None:
        """The resource with this ARM id (any case, leading slash optional), or None."""
        return self._resources.get(normalize_resource_id(resource_id))

    def set_canned_response(
        self,
        path: str,
        *,
        status: int,
        body: Any,
        headers: Mapping[str, str | list[str]] | None = None,
        query: str | None = None,
    ) -> None:
        """Answer requests to `path` (e.g. `/workspaces/<id>/query`, below `/v1`) with a fixed
        response instead of running the query; also applies to `$batch` entries for that path.

        `body` may be bytes/str (sent verbatim) or JSON-serialisable. Recorded transfer headers
        (Content-Length, Content-Encoding, ...) are dropped; a list value is joined with ", ".
        A later canned response for the same path and query replaces the earlier one.
        """
        raw = (
            body
            if isinstance(body, bytes)
            else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        kept = tuple(
            (name, ", ".join(value) if isinstance(value, list) else value)
            for name, value in (headers or {}).items()
            if name.lower() not in _TRANSFER_HEADERS
        )
        canned = CannedResponse(status, raw, kept, query)
        key = _route_key(path)
        with self._lock:
            entries = [c for c in self._canned.get(key, []) if c.query != query]
            # Query-specific answers first, so they win over a catch-all for the same path.
            self._canned[key] = sorted([*entries, canned], key=lambda c: c.query is None)

    def clear_canned_responses(self) -> None:
        """Remove every canned response."""
        with self._lock:
            self._canned.clear()

    def canned_response(self, path: str, query: object) -> CannedResponse | None:
        """The canned response for this route and query text, if one was configured."""
        if not self._canned:  # the common case costs one dict check
            return None
        for canned in self._canned.get(_route_key(path), ()):
            if canned.query is None or canned.query == query:
                return canned
        return None


def _route_key(path: str) -> str:
    return "/" + path.strip("/").lower()


def _frozen(readers: Iterable[str] | None) -> frozenset[str] | None:
    return None if readers is None else frozenset(readers)
