"""The service started as each deployment starts it: `make run`, and the Dockerfile's command.

The Dockerfile deployment runs its entrypoint and command with its ENV (BIND on 0.0.0.0), on
this machine: no container runtime is needed to check what the image runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.fernet import Fernet

from service.config import PROJECT_ROOT
from tests.e2e.conftest import VENV_BIN, free_port


@dataclass
class Server:
    url: str
    port: int
    key: str
    process: subprocess.Popen[bytes]
    log: Path


def dockerfile() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's ENV (merged) and CMD."""
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    command: list[str] = []
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
        elif line.startswith("CMD "):
            command = json.loads(line[4:])
    return env, command


def start(tmp: Path, deployment: str, extra: dict[str, str] | None = None) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'service.db'}",
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        **(extra or {}),
    }
    env.pop("RUN_RECONCILER", None)
    if deployment == "docker":
        image_env, cmd = dockerfile()
        env.update(image_env)
        env["HOME"] = str(tmp)
        assert env["BIND"].startswith("0.0.0.0:")
        env["BIND"] = f"0.0.0.0:{port}"
        command = ["./docker-entrypoint.sh", *cmd]
    else:
        env["BIND"] = f"127.0.0.1:{port}"
        subprocess.run(
            [sys.executable, "-m", "service.cli", "db-upgrade"],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
        command = [str(VENV_BIN / "gunicorn"), "--config", "gunicorn.conf.py", "wsgi:app"]
    log = tmp / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            if requests.get(url + "/readyz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    key = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--name", "slow"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Server(url, port, key, process, log)


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
