"""statemachine/rollout.asl.json is what statemachine/generate.py makes, and its repeated parts are one definition.

Invariants: the committed ASL equals the generated one; every Lambda task retries transient Lambda errors and
timeouts with exactly `LAMBDA_RETRY`; no `Fail` state inside the per-node-group processor (a failure never stops
siblings); every DynamoDB lease write is conditional; every exit after the lease was taken passes a release.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

from testkit.repo import REPO

ASL = REPO / "statemachine" / "rollout.asl.json"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("asl_generate", REPO / "statemachine" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _states(processor["States"])


def test_committed_asl_is_the_generated_one() -> None:
    generate = _generator()
    assert ASL.read_text() == generate.render(), "run: python statemachine/generate.py"
    assert generate.main(["--check"]) == 0


def test_every_lambda_task_has_the_one_retry_block() -> None:
    generate = _generator()
    definition = json.loads(ASL.read_text())
    tasks = [
        (name, s)
        for name, s in _states(definition["States"])
        if s["Type"] == "Task" and "dynamodb" not in s["Resource"]
    ]
    assert len(tasks) > 15
    for name, state in tasks:
        lambda_retries = [r for r in state["Retry"] if "Lambda.ServiceException" in r["ErrorEquals"]]
        assert lambda_retries == [generate.LAMBDA_RETRY], name
    assert {"Lambda.ServiceException", "Sandbox.Timedout", "Lambda.Unknown"} <= set(
        generate.LAMBDA_RETRY["ErrorEquals"]
    )
    preflight = json.loads(ASL.read_text())["States"]["Preflight"]
    assert preflight["Parameters"]["retries"] == generate.PREFLIGHT_RETRY["MaxAttempts"]


def test_no_fail_state_inside_the_map_and_every_child_path_records() -> None:
    definition = json.loads(ASL.read_text())
    wave = definition["States"]["Wave"]
    assert wave["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    child = wave["ItemProcessor"]["States"]
    assert not [n for n, s in child.items() if s["Type"] in {"Fail", "Succeed"}]
    ends = [n for n, s in child.items() if s.get("End")]
    assert ends == ["Recorded"]


def test_lease_writes_are_conditional_and_released_on_every_exit() -> None:
    definition = json.loads(ASL.read_text())
    writes = [
        (n, s)
        for n, s in _states(definition["States"])
        if s["Type"] == "Task" and s["Resource"].split(":")[-1] in {"putItem", "updateItem", "deleteItem"}
    ]
    assert len(writes) >= 5
    for name, state in writes:
        assert "#owner" in state["Parameters"]["ConditionExpression"], name
    states = definition["States"]
    held = _reachable(states, "Preflight")
    for name in held:
        state = states[name]
        if state["Type"] == "Fail" or state.get("End"):
            assert _passes(
                states, "Preflight", name, through={"ReleaseLease", "ReleaseAfterPreflight", "ReleaseAfterFailure"}
            ), name


def _next(state: dict[str, Any]) -> list[str]:
    found = [state["Next"]] if "Next" in state else []
    found += [c["Next"] for c in state.get("Choices", [])] + ([state["Default"]] if "Default" in state else [])
    found += [c["Next"] for c in state.get("Catch", [])]
    return found


def _reachable(states: dict[str, Any], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_next(states[name]))
    return seen


def _passes(states: dict[str, Any], start: str, end: str, through: set[str]) -> bool:
    """Every path from `start` to `end` passes one of `through` (no path avoids them)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name in through:
            continue
        if name == end:
            return False
        seen.add(name)
        todo.extend(_next(states[name]))
    return True
