"""import-linter contract types of this project (registered in pyproject.toml).

``allow_list``: the modules of ``source_modules`` may import only the standard library, each
other, and the ``allowed_modules``; anything else breaks the contract. import-linter's own
contracts are forbid-lists, which a new third-party import slips past.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import grimp
from importlinter import Contract, ContractCheck, fields, output


def is_allowed(imported: str, *, own: Iterable[str], allowed: Iterable[str]) -> bool:
    """Whether a module may be imported under the allow-list: stdlib, own or allowed."""
    if imported.split(".", 1)[0] in sys.stdlib_module_names:
        return True
    return any(imported == name or imported.startswith(name + ".") for name in (*own, *allowed))


class AllowListContract(Contract):
    """Source modules import only the standard library, themselves and ``allowed_modules``."""

    type_name = "allow_list"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    allowed_modules = fields.ListField(subfield=fields.ModuleField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        sources = [m.name for m in self.source_modules]  # type: ignore[attr-defined]
        allowed = [m.name for m in (self.allowed_modules or [])]  # type: ignore[attr-defined]
        modules: set[str] = set()
        for source in sources:
            modules |= {source} | graph.find_descendants(source)
        illegal = []
        for importer in sorted(modules):
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if is_allowed(imported, own=sources, allowed=allowed):
                    continue
                details = graph.get_import_details(importer=importer, imported=imported)
                lines = tuple(d["line_number"] for d in details)
                illegal.append((importer, imported, lines))
        return ContractCheck(kept=not illegal, metadata={"illegal": illegal})

    def render_broken_contract(self, check: ContractCheck) -> None:
        output.print_error("Imports outside the allow-list:", bold=False)
        output.new_line()
        for importer, imported, lines in check.metadata["illegal"]:
            where = ", ".join(map(str, lines))
            output.print_error(f"- {importer} -> {imported} (l.{where})", bold=False)
            output.new_line()
