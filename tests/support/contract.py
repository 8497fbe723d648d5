"""The contract (``openapi.yaml``) as data, parsed once for every test that reads it."""

from __future__ import annotations

from typing import Any

import yaml

from service.config import PROJECT_ROOT

CONTRACT: dict[str, Any] = yaml.safe_load(
    (PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8")
)
METHODS = ("get", "put", "post", "patch", "delete")


def resolve(node: Any) -> Any:
    """``node`` with its local ``$ref`` (``#/...``) followed, as often as it has one."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = CONTRACT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node
