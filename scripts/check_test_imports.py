"""`make lint`: test helpers are not tests. Fails when any module imports the `tests` package (a test module, a
conftest, tests/__init__): shared helpers live in testkit/, fixtures reach tests through conftest.py, and pytest
loads conftest files itself, so neither demo/, bench/, testkit/ nor a test module has a reason to import tests/.

    python scripts/check_test_imports.py [ROOT]     # exit 1 and one line per offending import
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

SKIP = {".venv", ".venv-sam", ".aws-sam", ".git", "node_modules", "build"}


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if not SKIP.intersection(path.relative_to(root).parts):
            yield path


def _package(path: Path, root: Path) -> list[str]:
    return list(path.relative_to(root).with_suffix("").parts[:-1])


def imported(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; relative imports resolved against its package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package(path, root)
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from tests.integration import test_x` names a module too
                yield node.lineno, f"{module}.{alias.name}"


def offences(root: Path) -> list[str]:
    found = []
    for path in python_files(root):
        for line, module in imported(path, root):
            if module == "tests" or module.startswith("tests."):
                rel = path.relative_to(root)
                where = "a module under tests/" if rel.parts[0] == "tests" else "code outside tests/"
                found.append(f"{rel}:{line}: {where} imports {module}: move what it needs to testkit/")
                break
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else ".").resolve()
    found = offences(root)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
