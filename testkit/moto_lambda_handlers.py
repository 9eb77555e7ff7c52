"""OUR bridge, not moto behaviour: Lambda Invoke on the in-process moto server runs a Python handler in-process.

moto 5's Step Functions engine (`moto/stepfunctions/parser`, enabled with the `execute_state_machine` config)
executes our ASL for real: Choice, Map, Retry, Catch, Wait. For a Lambda task it calls Lambda `Invoke` on the moto
server (over HTTP, `localhost:$MOTO_PORT`), and moto's Lambda would need Docker to run the function. `install()`
replaces the Lambda backend's `invoke` so that a function name registered here runs our handler in this process,
answering like the Lambda service does: the handler's JSON result, or for an exception the
`X-Amz-Function-Error: Unhandled` header with `{"errorType": <exception class name>, "errorMessage": ...}` —
which is what Step Functions matches `Retry`/`Catch` `ErrorEquals` against. Unregistered names go to stock moto.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from moto.awslambda.models import LambdaBackend

from testkit.engine_world import FakeContext

Handler = Callable[[dict[str, Any], Any], Any]
HANDLERS: dict[str, Handler] = {}
INVOCATIONS: list[tuple[str, dict[str, Any]]] = []  # (function name, event) in call order
ERRORS: list[tuple[str, dict[str, Any], str]] = []  # (function name, event, errorType) of every failed invocation
# Injected faults: (function name, action) -> how many more invocations ran the handler and then reported
# `errorType` as if the Lambda service had failed after the work was done (a timeout, a lost response).
FAULTS: dict[tuple[str, str], tuple[int, str]] = {}
_LOCK = threading.Lock()
_original_invoke = LambdaBackend.invoke


def register(function_name: str, handler: Handler) -> str:
    """Route Invoke of `function_name` to `handler`; returns the function ARN to put in the ASL."""
    HANDLERS[function_name] = handler
    return f"arn:aws:lambda:eu-west-1:123456789012:function:{function_name}"


def reset() -> None:
    HANDLERS.clear()
    with _LOCK:
        INVOCATIONS.clear()
        ERRORS.clear()
        FAULTS.clear()


def fail_after_running(function_name: str, action: str, times: int = 1, error: str = "Sandbox.Timedout") -> None:
    """The next `times` invocations of `action` run the handler (its effects happen), then report `error`."""
    with _LOCK:
        FAULTS[(function_name, action)] = (times, error)


def _injected(name: str, event: dict[str, Any]) -> str | None:
    with _LOCK:
        key = (name, str(event.get("action")))
        times, error = FAULTS.get(key, (0, ""))
        if times <= 0:
            return None
        FAULTS[key] = (times - 1, error)
        return error


def _name(function: str) -> str:
    # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    return function.split(":")[6] if function.startswith("arn:") else function


def _invoke(
    self: LambdaBackend, function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any
) -> str | bytes | None:
    handler = HANDLERS.get(_name(function_name))
    if handler is None:
        return _original_invoke(self, function_name, qualifier, body, headers, response_headers)
    event = json.loads(body) if body else {}
    with _LOCK:
        INVOCATIONS.append((_name(function_name), event))
    try:
        payload = json.dumps(handler(event, FakeContext()))
        injected = _injected(_name(function_name), event)
        if injected:
            raise _Injected(injected)
    except Exception as error:  # the Lambda runtime reports any exception the same way
        response_headers["x-amz-function-error"] = "Unhandled"
        kind = str(error) if isinstance(error, _Injected) else type(error).__name__
        with _LOCK:
            ERRORS.append((_name(function_name), event, kind))
        payload = json.dumps({"errorType": kind, "errorMessage": str(error), "stackTrace": []})
    data = payload.encode()
    response_headers["Content-Length"] = str(len(data))
    return data


class _Injected(Exception):
    """An injected fault (its message is the error type Step Functions sees)."""


def install() -> None:
    """Idempotent."""
    LambdaBackend.invoke = _invoke  # type: ignore[method-assign]
