"""docs/architecture.md's module table and layer picture say what the tree is: every module named,
every named file real, and the layers the same as the import check enforces."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_contract_seams import LAYERS

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
SECTION = DOC[DOC.index("## Modules\n") : DOC.index("\n## ", DOC.index("## Modules\n") + 5)]


def _table_paths() -> set[str]:
    rows = [line for line in SECTION.splitlines() if line.startswith("| `")]
    return {p for row in rows for p in re.findall(r"`([\w/.]+\.(?:py|lua))`", row.split(" | ")[0])}


def test_every_module_is_in_the_table_and_every_file_it_names_exists():
    named = _table_paths()
    modules = {
        str(p.relative_to(ROOT))
        for pkg in ("relaygate", "devstack")
        for p in (ROOT / pkg).rglob("*")
        if p.suffix in (".py", ".lua")
        and p.name != "__init__.py"
        and "versions" not in p.parts
        and "__pycache__" not in p.parts
    }
    assert modules - named == set(), f"modules missing from docs/architecture.md: {sorted(modules - named)}"
    assert named - modules == set(), f"docs/architecture.md names files that do not exist: {sorted(named - modules)}"


def test_the_layer_picture_is_the_one_the_import_check_enforces():
    block = SECTION[SECTION.index("```\n") + 4 : SECTION.index("```", SECTION.index("```\n") + 4)]
    drawn: dict[str, set[str]] = {}
    for line in block.splitlines()[1:]:
        if not line.startswith(" ") or line.startswith("  "):
            continue  # continuation lines
        packages = re.match(r" ([a-z, ]+?)\s{2,}", line)[1].split(", ")
        imports = line.rstrip().rsplit("  ", 1)[1].strip()
        allowed = set() if imports.startswith("nothing") else set(imports.split(", "))
        for p in packages:
            drawn[p] = allowed
    assert drawn == LAYERS
