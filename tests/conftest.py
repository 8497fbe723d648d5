"""Test-session set-up shared by every test folder.

The Azure SDKs read some settings at import time (azureml-core fixes its discovery cache path under
$HOME and its retry count from AZUREML_DEFAULT_RETRIES), so the environment is prepared here, before
any test module imports them.
"""

from __future__ import annotations

import os
import tempfile

_SESSION_HOME = tempfile.mkdtemp(prefix="amlcp-test-home-")
os.environ["HOME"] = _SESSION_HOME
os.environ["AZURE_CONFIG_DIR"] = os.path.join(_SESSION_HOME, ".azure")
os.environ["AZUREML_DEFAULT_RETRIES"] = "0"
os.environ["AZUREML_CURRENT_CLOUD"] = "AzureCloud"
# Never let a test reach for a real Azure host or an ambient credential.
for _var in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_USERNAME"):
    os.environ.pop(_var, None)

pytest_plugins = ["emulator.pytest_plugin"]
pytest_plugins += ["tests.support.databases", "tests.support.api", "tests.support.redis"]
pytest_plugins += ["tests.support.heap"]  # full collections between tests, not during them


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Say which database back-ends the DB tests ran on."""
    from tests.support.databases import postgres_status

    status = postgres_status()
    if status is not None:
        terminalreporter.write_line(f"PostgreSQL back-end: {status}")
