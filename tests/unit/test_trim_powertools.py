"""The layer build's Powertools trim: keeps every module our code can reach, lazy imports included, nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRIM = REPO / "layers" / "eks_proxy" / "trim_powertools.py"

MODULES = {
    "__init__.py": "from aws_lambda_powertools.logging import Logger\n",
    "logging/__init__.py": "from .logger import Logger\n",
    "logging/logger.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from aws_lambda_powertools.typing_only import T\n"
        "else:\n"
        "    from ..shared import constants\n"
        "class Logger:\n"
        "    def inject(self):\n"
        "        from aws_lambda_powertools.utilities.jmespath_utils import query  # lazy\n"
    ),
    "shared/__init__.py": "",
    "shared/constants.py": "X = 1\n",
    "shared/functions.py": "def to_dict():\n    from aws_lambda_powertools.event_handler import compat\n",
    "utilities/__init__.py": "",
    "utilities/jmespath_utils/__init__.py": "from aws_lambda_powertools.shared.functions import to_dict\n",
    "typing_only.py": "T = int\n",
    "event_handler/__init__.py": "",
    "event_handler/compat.py": "",
    "parser/__init__.py": "import pydantic\n",
}


def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    for name, text in MODULES.items():
        path = site / "aws_lambda_powertools" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (site / "aws_lambda_powertools" / "py.typed").write_text("")
    return site


def test_keeps_what_the_handlers_reach_and_deletes_the_rest(tmp_path: Path) -> None:
    site = _site(tmp_path)
    handler = tmp_path / "functions" / "app.py"
    handler.parent.mkdir()
    handler.write_text("from aws_lambda_powertools import Logger\n")

    done = subprocess.run(
        [sys.executable, str(TRIM), str(site), str(handler.parent), "-x", "aws_lambda_powertools.event_handler"],
        capture_output=True,
        text=True,
        check=True,
    )

    kept = sorted(str(p.relative_to(site / "aws_lambda_powertools")) for p in site.rglob("*.py"))
    assert kept == [
        "__init__.py",
        "logging/__init__.py",
        "logging/logger.py",
        "shared/__init__.py",
        "shared/constants.py",
        "shared/functions.py",
        "utilities/__init__.py",
        "utilities/jmespath_utils/__init__.py",
    ]
    assert not (site / "aws_lambda_powertools" / "parser").exists()  # emptied folders go too
    assert (site / "aws_lambda_powertools" / "py.typed").exists()
    assert "8 files kept, 4 removed" in done.stdout


def test_a_missing_root_stops_the_build(tmp_path: Path) -> None:
    site = _site(tmp_path)
    done = subprocess.run(
        [sys.executable, str(TRIM), str(site), str(tmp_path / "no-functions")], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no-functions does not exist" in done.stderr
    assert (site / "aws_lambda_powertools" / "parser" / "__init__.py").exists()  # nothing deleted
