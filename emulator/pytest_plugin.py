"""pytest fixtures for the Azure emulator (loaded via `pytest_plugins` in tests/conftest.py).

- `emulator_ca` (session): one throwaway CA for every emulator of the session; sets
  REQUESTS_CA_BUNDLE so requests, msal, azure-core and azureml-core trust it.
- `emulator` (session): a shared emulator. Tests own their data through `sandbox`.
- `fresh_emulator` (function): a private emulator, for tests that inject faults, change limits or
  inspect the whole request log.
- `sandbox` (function): a uniquely named tenant/service principal/subscription/workspace on the
  shared emulator.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from emulator.testing import EmulatorHandle, Sandbox, run_emulator
from emulator.tls import CertificateAuthority


@pytest.fixture(scope="session")
def emulator_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertificateAuthority]:
    """The session's CA; REQUESTS_CA_BUNDLE points at it until the session ends."""
    ca = CertificateAuthority.create(tmp_path_factory.mktemp("emulator-ca"))
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(ca.ca_path)
    yield ca
    if previous is None:
        os.environ.pop("REQUESTS_CA_BUNDLE", None)
    else:
        os.environ["REQUESTS_CA_BUNDLE"] = previous


@pytest.fixture(scope="session")
def emulator(
    emulator_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmulatorHandle]:
    """One emulator shared by the session; never inject unscoped faults into it."""
    with run_emulator(ca=emulator_ca, tls_dir=tmp_path_factory.mktemp("emulator-tls")) as handle:
        yield handle


@pytest.fixture
def fresh_emulator(
    emulator_ca: CertificateAuthority, tmp_path: os.PathLike[str]
) -> Iterator[EmulatorHandle]:
    """A private emulator for this test only."""
    with run_emulator(ca=emulator_ca, tls_dir=os.path.join(tmp_path, "emulator-tls")) as handle:
        yield handle


@pytest.fixture
def sandbox(emulator: EmulatorHandle) -> Sandbox:
    """This test's own tenant, service principal, subscription and workspace (shared emulator)."""
    return emulator.sandbox()
