# placeholder until issue 3
"""Placeholder handler so `sam build` works before the real one lands; its owner overwrites this file."""

from typing import Any


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    raise NotImplementedError("functions/dispatch/app.py is a placeholder")
