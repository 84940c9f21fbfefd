"""Rules of the suite itself: a test module imports shared helpers (tests/helpers.py and its kin), never another
test module, so that running one module alone, or under workers in any order, checks what it says it checks."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_no_test_module_imports_another():
    found = {path.name: name for path in sorted(TESTS.glob("*.py"))
             for name in imported_modules(path) if name.split(".")[0].startswith("test_")}
    assert found == {}
