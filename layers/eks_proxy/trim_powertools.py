"""Trim Powertools in a built layer to the modules our code can reach: `trim_powertools.py SITE ROOTS... [-x MOD]`.

The handlers use Logger, Metrics and a few helpers: 50-odd of Powertools' 300+ files. Starting from every
``aws_lambda_powertools`` import in ROOTS (the functions and the eks_proxy package: files or folders), this follows
the static imports of the Powertools modules reached, at any depth and inside functions too (lazy imports count),
but not those under ``if TYPE_CHECKING:`` (never executed), and deletes every other Powertools module from SITE.
Package ``__init__`` modules of kept modules are kept (Python runs them on import). ``-x MODULE`` (repeatable) stops
the walk at a module the code reaches only on a path our functions never take; each one is named and justified in
layers/eks_proxy/Makefile. Prints what it kept and removed.

Standard library only: it runs under whatever Python runs the layer build.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "aws_lambda_powertools"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks (their ``else`` still runs)."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules ``source`` (module ``module``) imports at run time, with their parents.

    >>> sorted(imported_modules("from .b import c\\nimport x.y", "p.a", False))
    ['p', 'p.b', 'p.b.c', 'x', 'x.y']
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
        for name in names:
            parts = name.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def _module_file(site: Path, name: str) -> Path | None:
    path = site.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None  # a name imported from a module (a class, a function), or not a Powertools module


def _sources(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        yield from sorted(root.rglob("*.py")) if root.is_dir() else [root]


def _excluded(name: str, excluded: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in excluded)


def keep_set(site: Path, roots: list[Path], excluded: tuple[str, ...] = ()) -> set[Path]:
    """The Powertools files reachable from the imports in ``roots``, not walking into ``excluded`` modules."""
    pending = {
        name
        for source in _sources(roots)
        for name in imported_modules(source.read_text(), "__root__", False)
        if name.split(".")[0] == PACKAGE
    }
    seen: set[str] = set()
    keep: set[Path] = set()
    while pending:
        name = pending.pop()
        if name in seen or _excluded(name, excluded):
            continue
        seen.add(name)
        path = _module_file(site, name)
        if path is None:
            continue
        keep.add(path)
        is_package = path.name == "__init__.py"
        for imported in imported_modules(path.read_text(), name, is_package):
            if imported.split(".")[0] == PACKAGE and imported not in seen:
                pending.add(imported)
    return keep


def trim(site: Path, roots: list[Path], excluded: tuple[str, ...] = ()) -> tuple[int, int]:
    """Delete the unreachable Powertools modules (and folders left empty); return (kept, removed) file counts."""
    keep = keep_set(site, roots, excluded)
    removed = 0
    for path in sorted((site / PACKAGE).rglob("*.py")):
        if path not in keep:
            path.unlink()
            removed += 1
    for folder in sorted((site / PACKAGE).rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(p.suffix == ".py" for p in folder.rglob("*")):
            for leftover in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                leftover.unlink() if leftover.is_file() else leftover.rmdir()
            folder.rmdir()
    return len(keep), removed


def main(argv: list[str]) -> int:
    excluded = tuple(argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "-x")
    paths = [arg for i, arg in enumerate(argv) if arg != "-x" and (i == 0 or argv[i - 1] != "-x")]
    if len(paths) < 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    site, roots = Path(paths[0]), [Path(root) for root in paths[1:]]
    for path in [site / PACKAGE, *roots]:
        if not path.exists():  # a missing root would trim away what it imports
            print(f"trim_powertools: {path} does not exist", file=sys.stderr)
            return 2
    kept, removed = trim(site, roots, excluded)
    print(f"Powertools trimmed to the modules the handlers can reach: {kept} files kept, {removed} removed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
