"""`make bench`: print every figure the issues ask for.

Each `bench/bench_*.py` module exposes `figures() -> list[tuple[str, str]]` (a name and a measured value with its
unit). This runner runs each module in its own Python process, in name order (modules start in-process moto servers
and set environment variables: sharing one process let one module's state leak into the next), and prints one
table; a module that fails prints its error and the run exits 1, so a broken benchmark is never silently missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Runs one module and prints its figures as JSON on the last line of stdout.
_ONE = """
import importlib.util, json, sys
sys.path[:0] = [{here!r}, {repo!r}]
spec = importlib.util.spec_from_file_location({stem!r}, {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(module.figures()))
"""


def run_module(path: Path) -> list[tuple[str, str]]:
    code = _ONE.format(here=str(HERE), repo=str(REPO), stem=path.stem, path=str(path))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}\n{done.stderr.strip()}")
    return [(str(name), str(value)) for name, value in json.loads(done.stdout.strip().splitlines()[-1])]


def main() -> int:
    failed = False
    rows: list[tuple[str, str]] = []
    for path in sorted(HERE.glob("bench_*.py")):
        try:
            rows.extend(run_module(path))
        except Exception as error:
            failed = True
            print(f"{path.name}: FAILED: {error}", file=sys.stderr)
    width = max((len(name) for name, _ in rows), default=10)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
