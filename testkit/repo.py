"""The repository as the tests see it: paths, the events/ samples, the functions/ handlers loaded as Lambda would."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "events"
FUNCTIONS = REPO / "functions"


def load_event(name: str) -> dict[str, Any]:
    """One sample from events/, exactly as `sam local invoke -e events/<name>` would send it."""
    path = EVENTS / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def load_handler(function: str, env: dict[str, str] | None = None) -> ModuleType:
    """Import functions/<function>/app.py under a unique module name (several functions each have an app.py)."""
    if env:
        os.environ.update(env)
    path = FUNCTIONS / function / "app.py"
    name = f"handler_{function}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def structured_logs(module: ModuleType) -> io.StringIO:
    """Send a handler module's JSON log lines (Powertools Logger -> stdout) to a buffer the test can read."""
    buffer = io.StringIO()
    for log_handler in module.logger.handlers:
        if isinstance(log_handler, logging.StreamHandler):
            log_handler.setStream(buffer)
    return buffer


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
