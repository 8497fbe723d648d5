"""Per-process state lives on the Runtime: the credential memo and the audit queue.

Two runtimes in one process (the tests build many) never share either, and building one
registers nothing process-wide per runtime.
"""

from __future__ import annotations

import atexit
from typing import Any

import pytest

from service.config import Settings
from service.services import audit_queue
from service.services.credential_memo import CredentialMemo
from service.services.runtime import Runtime
from tests.support.clock import Clock


def _runtime() -> Runtime:
    inert: Any = object()  # no I/O in these tests: nothing reaches the ports
    return Runtime(
        settings=Settings(database_url="sqlite://"),
        database=inert,
        secret_box=inert,
        identity=inert,
        ml=inert,
        logs=inert,
    )


def test_a_memoised_credential_is_reused_until_its_ttl_passes() -> None:
    clock = Clock(100.0)
    memo = CredentialMemo(ttl_s=5.0, clock=clock)
    loads: list[str] = []

    def load(tenant: str) -> Any:
        loads.append(tenant)
        return f"credential-{len(loads)}"

    assert memo.get("t1", lambda: load("t1")) == "credential-1"
    clock.now += 4.9
    assert memo.get("t1", lambda: load("t1")) == "credential-1"
    clock.now += 0.2
    assert memo.get("t1", lambda: load("t1")) == "credential-2"
    assert loads == ["t1", "t1"]


def test_forgetting_a_tenant_drops_only_its_entry() -> None:
    memo = CredentialMemo(ttl_s=60.0, clock=Clock(100.0))
    memo.get("t1", lambda: "a")
    memo.get("t2", lambda: "b")
    memo.forget("t1")
    assert memo.get("t1", lambda: "a2") == "a2"
    assert memo.get("t2", lambda: "b2") == "b"


def test_each_runtime_has_its_own_credential_memo_and_audit_queue() -> None:
    one, two = _runtime(), _runtime()
    assert one.credential_memo is not two.credential_memo
    assert one.audit_queue() is one.audit_queue() is audit_queue.queue_for(one)
    assert one.audit_queue() is not two.audit_queue()


def test_building_runtimes_and_their_queues_registers_no_exit_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[Any] = []
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: registered.append(fn))
    for _ in range(3):
        _runtime().audit_queue()
    assert registered == []


def test_closing_a_runtime_writes_its_queued_audit_events() -> None:
    rt = _runtime()
    written: list[list[int]] = []
    queue = audit_queue.AuditQueue(lambda rows: written.append([r["n"] for r in rows]), 10)
    rt._audit = queue  # the queue the runtime would make, with a recording writer
    queue.put({"n": 1, "action": "logs.query"})
    queue.put({"n": 2, "action": "logs.query"})
    rt.close()
    assert [n for batch in written for n in batch] == [1, 2]
    assert queue.pending() == 0


def test_a_credential_put_in_the_memo_replaces_the_memoised_one() -> None:
    memo = CredentialMemo(ttl_s=60.0, clock=Clock(100.0))
    memo.get("t1", lambda: "old")
    memo.put("t1", "fresh")
    assert memo.get("t1", lambda: "loaded") == "fresh"
