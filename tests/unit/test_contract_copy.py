"""The parsed copy of openapi.yaml that spares each worker parsing the YAML at start (issue 16)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml

from service.api.openapi import OpenApiContract, cached_copy, load_document
from service.config import PROJECT_ROOT


def _contract_file(tmp_path: Path) -> Path:
    path = tmp_path / "openapi.yaml"
    path.write_text((PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return path


def test_the_first_load_keeps_a_readable_copy_equal_to_the_yaml(tmp_path: Path) -> None:
    path = _contract_file(tmp_path)
    contract = OpenApiContract(path)
    copy = cached_copy(path, contract.text)
    assert copy.parent == tmp_path / "__pycache__"
    assert json.loads(copy.read_text(encoding="utf-8")) == yaml.safe_load(contract.text)
    assert contract.document == yaml.safe_load(contract.text)
    assert stat.S_IMODE(copy.stat().st_mode) & 0o044 == 0o044  # workers may be another user
    assert not list(copy.parent.glob(".contract-*"))  # no temporary file left behind


def test_a_later_load_reads_the_copy_not_the_yaml(tmp_path: Path) -> None:
    path = _contract_file(tmp_path)
    text = OpenApiContract(path).text
    copy = cached_copy(path, text)
    document = json.loads(copy.read_text(encoding="utf-8"))
    document["info"]["title"] = "read from the copy"
    copy.write_text(json.dumps(document), encoding="utf-8")
    assert OpenApiContract(path).document["info"]["title"] == "read from the copy"


def test_an_edited_contract_is_parsed_again_and_the_old_copy_removed(tmp_path: Path) -> None:
    path = _contract_file(tmp_path)
    old = cached_copy(path, OpenApiContract(path).text)
    edited = path.read_text(encoding="utf-8").replace("\n  title: ", "\n  title: Edited ", 1)
    path.write_text(edited, encoding="utf-8")
    contract = OpenApiContract(path)
    assert contract.document["info"]["title"].startswith("Edited ")
    assert not old.exists()
    assert cached_copy(path, edited).is_file()


def test_a_broken_copy_is_ignored(tmp_path: Path) -> None:
    path = _contract_file(tmp_path)
    text = path.read_text(encoding="utf-8")
    copy = cached_copy(path, text)
    copy.parent.mkdir()
    copy.write_text('{"paths": ', encoding="utf-8")  # cut short, e.g. a full disk
    assert load_document(path, text) == yaml.safe_load(text)
    assert json.loads(copy.read_text(encoding="utf-8")) == yaml.safe_load(text)  # rewritten


def test_where_no_copy_can_be_written_the_yaml_is_parsed(tmp_path: Path) -> None:
    path = _contract_file(tmp_path)
    (tmp_path / "__pycache__").write_text("a file where the directory would be")
    contract = OpenApiContract(path)
    assert contract.document == yaml.safe_load(contract.text)
    assert contract.operations  # compiled as usual


def test_a_document_json_cannot_keep_exactly_is_not_cached(tmp_path: Path) -> None:
    path = tmp_path / "openapi.yaml"
    text = "openapi: 3.1.0\ninfo:\n  released: 2026-06-01\npaths:\n  /x:\n    200: {}\n"
    path.write_text(text, encoding="utf-8")
    assert load_document(path, text) == yaml.safe_load(text)
    assert not cached_copy(path, text).exists()


def test_a_copy_that_is_not_a_contract_is_ignored(tmp_path: Path) -> None:
    path = _contract_file(tmp_path)
    text = path.read_text(encoding="utf-8")
    copy = cached_copy(path, text)
    copy.parent.mkdir()
    copy.write_text("[]", encoding="utf-8")  # valid JSON, but no contract
    assert load_document(path, text) == yaml.safe_load(text)
