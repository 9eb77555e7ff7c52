# placeholder until issue 4
"""Placeholder handler so `sam build` works before the real one lands; its owner overwrites this file."""

from typing import Any


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    raise NotImplementedError("functions/verify/app.py is a placeholder")
