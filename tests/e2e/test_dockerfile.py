"""The Dockerfile (issue 15 item 10): pinned base image, hash-locked dependencies, and a health
check that follows BIND. Checked without a container runtime: the image's command and its
HEALTHCHECK command run here, with the image's environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from service.config import PROJECT_ROOT
from service.healthcheck import target
from tests.e2e.conftest import VENV_BIN
from tests.e2e.deployments import start, stop

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def _instruction(name: str) -> str:
    lines = [line for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_base_image_is_pinned_by_digest() -> None:
    assert re.fullmatch(
        r"FROM python:3\.11-slim-bookworm@sha256:[0-9a-f]{64} AS base", _instruction("FROM")
    )


def test_dependencies_install_from_the_lock_with_hashes_only() -> None:
    install = [line for line in DOCKERFILE.splitlines() if "pip install" in line]
    assert len(install) == 1
    assert "--require-hashes" in install[0]
    assert "-r requirements.lock" in install[0]
    lock = (PROJECT_ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    entries = [line for line in lock.splitlines() if line and not line.startswith("#")]
    assert len(entries) > 50
    for entry in entries:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==\S+ +--hash=sha256:[0-9a-f]{64}", entry), entry
    # Every direct dependency of pyproject.toml is in the lock at its pinned version.
    pinned = {
        e.split("==")[0].lower().replace("_", "-"): e.split("==")[1].split()[0] for e in entries
    }
    project = (PROJECT_ROOT / "pyproject.toml").read_text()
    runtime_deps = re.search(r"dependencies = \[(.*?)\]", project, re.S)
    assert runtime_deps is not None
    for name, version in re.findall(
        r'"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^"]+)"', runtime_deps.group(1)
    ):
        assert pinned.get(name.lower().replace("_", "-")) == version, name


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("0.0.0.0:8080", ("tcp", "127.0.0.1", 8080)),
        ("0.0.0.0:9999", ("tcp", "127.0.0.1", 9999)),
        ("10.1.2.3:80", ("tcp", "10.1.2.3", 80)),
        ("[::]:8443", ("tcp", "::1", 8443)),
        ("[fd00::1]:8443", ("tcp", "fd00::1", 8443)),
        ("unix:/run/amlcp.sock", ("unix", "/run/amlcp.sock", 0)),
        ("127.0.0.1:7000,0.0.0.0:7001", ("tcp", "127.0.0.1", 7000)),
    ],
)
def test_the_health_check_reaches_the_bound_address(
    bind: str, expected: tuple[str, str, int]
) -> None:
    assert target(bind) == expected


def test_the_images_health_check_follows_bind(tmp_path: Path) -> None:
    command = json.loads(_instruction("HEALTHCHECK").split(" CMD ", 1)[1])
    assert command[0] == "python"
    server = start(tmp_path, "docker")  # the image's command, BIND=0.0.0.0:<a free port>
    env = {
        **os.environ,
        "BIND": f"0.0.0.0:{server.port}",
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    try:
        healthy = subprocess.run(command, cwd=PROJECT_ROOT, env=env, timeout=10, check=False)
    finally:
        stop(server)
    stopped = subprocess.run(command, cwd=PROJECT_ROOT, env=env, timeout=10, check=False)
    assert (healthy.returncode, stopped.returncode) == (0, 1)
