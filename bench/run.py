"""`make bench`: print every figure the issues ask for.

Each `bench/bench_*.py` module exposes `figures() -> list[tuple[str, str]]` (a name and a measured value with its
unit). This runner imports them in name order and prints one table; a module that fails prints its error and the
run exits 1, so a broken benchmark is never silently missing from the report.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    sys.path.insert(0, str(HERE))
    failed = False
    rows: list[tuple[str, str]] = []
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            rows.extend(module.figures())
        except Exception:
            failed = True
            print(f"{path.name}: FAILED", file=sys.stderr)
            traceback.print_exc()
    width = max((len(name) for name, _ in rows), default=10)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
