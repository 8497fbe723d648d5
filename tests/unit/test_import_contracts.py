"""The project's own import-linter contract type (``scripts/import_contracts.py``): an
allow-list that a new third-party import into ``service.domain`` breaks."""

from __future__ import annotations

import grimp

from scripts.import_contracts import AllowListContract


def _graph(*imports: tuple[str, str]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for module in ("service", "service.domain", "service.domain.policy", "service.db"):
        graph.add_module(module)
    for importer, imported in imports:
        graph.add_import(
            importer=importer, imported=imported, line_number=3, line_contents=f"import {imported}"
        )
    return graph


def _check(graph: grimp.ImportGraph) -> list[tuple[str, str, tuple[int, ...]]]:
    contract = AllowListContract(
        name="domain is pure",
        session_options={"root_packages": ["service"]},
        contract_options={"source_modules": ["service.domain"]},
    )
    check = contract.check(graph, verbose=False)
    assert check.kept == (not check.metadata["illegal"])
    return list(check.metadata["illegal"])


def test_the_standard_library_and_the_domain_itself_are_allowed() -> None:
    graph = _graph(
        ("service.domain.policy", "json"),
        ("service.domain.policy", "email.utils"),
        ("service.domain", "service.domain.policy"),
    )
    assert _check(graph) == []


def test_a_third_party_import_breaks_the_contract() -> None:
    graph = _graph(("service.domain.policy", "json"), ("service.domain.policy", "requests"))
    assert _check(graph) == [("service.domain.policy", "requests", (3,))]


def test_another_package_of_the_service_breaks_the_contract() -> None:
    graph = _graph(("service.domain.policy", "service.db"))
    assert _check(graph) == [("service.domain.policy", "service.db", (3,))]
