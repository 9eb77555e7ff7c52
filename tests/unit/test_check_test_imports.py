"""scripts/check_test_imports.py (part of `make lint`) as it runs: a process over a repository tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testkit.repo import REPO

SCRIPT = REPO / "scripts" / "check_test_imports.py"


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=60)


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_this_repository_passes() -> None:
    done = check(REPO)
    assert (done.returncode, done.stdout) == (0, "")


def test_every_way_of_importing_tests_is_refused(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/integration/__init__.py": "",
            "tests/integration/test_a.py": "from tests.integration import test_b\n",
            "tests/integration/test_b.py": "from .test_c import helper\n",
            "tests/integration/test_c.py": "import tests.conftest\n",
            "tests/integration/test_d.py": "from . import test_a\n",
            "demo/run.py": "def f():\n    from tests.integration.test_a import x\n",
            "bench/b.py": "import tests\n",
            "testkit/ok.py": "import testkit.repo\nfrom testkit import tools\n",
            "tests/integration/test_ok.py": "from testkit.repo import load_event\nimport pytest\n",
        },
    )
    done = check(root)
    assert done.returncode == 1
    refused = sorted(line.split(":")[0] for line in done.stdout.splitlines())
    assert refused == [
        "bench/b.py",
        "demo/run.py",
        "tests/integration/test_a.py",
        "tests/integration/test_b.py",
        "tests/integration/test_c.py",
        "tests/integration/test_d.py",
    ]
    assert "demo/run.py:2: code outside tests/ imports tests.integration.test_a" in done.stdout
