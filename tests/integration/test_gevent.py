"""What the gevent worker (service/serving.py) relies on, checked in a patched process.

gunicorn's gevent worker monkey-patches the standard library before the application loads.
These run a child process patched the same way and check that the waits the service makes
while serving a request yield to other greenlets instead of freezing the worker: PostgreSQL
through psycopg (it must notice the patching and wait cooperatively), and an HTTPS call through
requests, as azure-core, msal and azureml-core make them.
"""

from __future__ import annotations

import textwrap

import pytest

from emulator.testing import EmulatorHandle
from tests.support.databases import ADMIN_DSN, _postgres_reachable
from tests.support.python_child import run_python

PRELUDE = """
from gevent import monkey

monkey.patch_all()
import sys
import threading

import gevent

ticks = 0


def ticker():
    global ticks
    while True:
        gevent.sleep(0.02)
        ticks += 1


gevent.spawn(ticker)
"""


def run_patched(body: str, *args: str) -> str:
    return run_python(PRELUDE + textwrap.dedent(body), *args).stdout.strip()


def test_psycopg_waits_cooperatively_under_gevent() -> None:
    reason = _postgres_reachable()
    if reason is not None:
        pytest.skip(f"needs PostgreSQL: {reason}")
    out = run_patched(
        """
        import psycopg
        from psycopg import waiting

        assert waiting._is_select_patched()
        with psycopg.connect(sys.argv[1]) as conn:
            before = ticks
            conn.execute("SELECT pg_sleep(1)")
            print(ticks - before)
        """,
        ADMIN_DSN,
    )
    # One second of a server-side wait: the other greenlet kept running (about 50 ticks);
    # a blocking wait would have frozen it (0 or 1 tick).
    assert int(out) >= 10


def test_a_background_thread_and_https_calls_run_as_greenlets(emulator: EmulatorHandle) -> None:
    out = run_patched(
        """
        import requests

        from gevent import monkey as _m

        assert _m.is_module_patched("threading") and _m.is_module_patched("socket")
        written = []
        worker = threading.Thread(target=lambda: written.append("audit"), daemon=True)
        worker.start()
        worker.join(5)
        before = ticks
        r = requests.get(sys.argv[1] + "/common/discovery/instance", verify=sys.argv[2],
                         params={"api-version": "1.1", "authorization_endpoint":
                                 sys.argv[1] + "/common/oauth2/authorize"}, timeout=30)
        print(written[0], r.status_code < 500, ticks >= before)
        """,
        emulator.authority,
        str(emulator.ca_path),
    )
    assert out == "audit True True"
