"""``dunwell.client`` stands alone: it imports httpx, pydantic, standardwebhooks and the
standard library only (checked on its source and in a fresh interpreter), and ships its
``py.typed`` marker."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dunwell.client

PACKAGE = Path(dunwell.client.__file__).parent
ALLOWED_THIRD_PARTY = {"httpx", "pydantic", "standardwebhooks"}
DUNWELL_PACKAGES = {
    "api",
    "workflows",
    "activities",
    "ledger",
    "stores",
    "billing",
    "tax",
    "worker",
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module)
    return roots


def test_the_source_imports_only_what_it_may() -> None:
    for path in PACKAGE.glob("*.py"):
        for name in imported_roots(path):
            root = name.split(".")[0]
            if name.startswith("dunwell.client") or root == "__future__":
                continue
            assert root in ALLOWED_THIRD_PARTY or root in sys.stdlib_module_names, (
                path.name,
                name,
            )


def test_importing_it_loads_nothing_else_of_dunwell() -> None:
    probe = (
        "import json, sys; import dunwell.client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(DUNWELL_PACKAGES)!r} or (m.startswith('dunwell.') and not "
        "m.startswith('dunwell.client')))))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout
    )
    assert loaded == []


def test_it_is_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()
