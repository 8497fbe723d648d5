"""`make run` as a new user meets it: gunicorn leaves nothing in the user's home."""

from __future__ import annotations

from pathlib import Path

import requests

from emulator.testing import EmulatorHandle
from tests.e2e.conftest import start_service, stop_service


def test_gunicorn_makes_no_control_socket_in_the_users_home(
    tmp_path: Path, emulator: EmulatorHandle
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Without XDG_RUNTIME_DIR, gunicorn's default control socket is $HOME/.gunicorn/gunicorn.ctl.
    service = start_service(tmp_path, emulator, {"HOME": str(home), "XDG_RUNTIME_DIR": ""})
    try:
        key = service.create_key()
        created = requests.post(
            f"{service.url}/v1/api-keys",
            json={"name": "e2e-reader", "role": "reader"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        deleted = requests.delete(
            f"{service.url}/v1/api-keys/{created.json()['api_key']['id']}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert deleted.status_code == 204
        assert "Content-Type" not in deleted.headers
        assert list(home.iterdir()) == [], "gunicorn wrote into the user's home"
    finally:
        stop_service(service)
