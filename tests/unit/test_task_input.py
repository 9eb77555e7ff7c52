"""Task inputs of the preflight and verify functions: the contract's shapes pass, anything else is one clear line."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import eks_proxy.engine.contracts
import pytest
from eks_proxy.engine.contracts import ParameterRef, PreflightTask, ValidationError, VerifyTask

REPO = Path(__file__).resolve().parents[2]
VERIFY = {"cluster": "prod", "nodegroup": "ng-a", "image": "busybox:1.36", "namespace": "verify", "timeout_seconds": 60}


def test_preflight_task_as_the_state_machine_sends_it() -> None:
    task = PreflightTask.from_event(
        {"parameter": {"name": "/eks-proxy/config", "version": 7}, "registry": "registry-1.docker.io:443"}
    )

    assert task == PreflightTask(ParameterRef("/eks-proxy/config", 7), "registry-1.docker.io:443")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"parameter": {"name": "eks-proxy.config_2"}}, PreflightTask(ParameterRef("eks-proxy.config_2"))),
        ({"parameter": {"name": "/p", "version": None}, "registry": None}, PreflightTask(ParameterRef("/p"))),
        ({"parameter": {"name": "/p", "version": 1}, "registry": ""}, PreflightTask(ParameterRef("/p", 1), "")),
        ({"parameter": {"name": "/p", "extra": 1}, "other": "x"}, PreflightTask(ParameterRef("/p"))),  # ignored
    ],
)
def test_preflight_defaults(event: dict[str, Any], expected: PreflightTask) -> None:
    assert PreflightTask.from_event(event) == expected


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "parameter is required"),
        ({"parameter": None}, "parameter is required"),
        ({"parameter": "/eks-proxy/config"}, "parameter must be a JSON object, got str"),
        ({"parameter": {"version": 1}}, "parameter.name is required"),
        ({"parameter": {"name": ""}}, "parameter.name must have 1 to 2048 characters, got 0"),
        ({"parameter": {"name": "/p" * 1025}}, "parameter.name must have 1 to 2048 characters, got 2050"),
        ({"parameter": {"name": "/eks proxy"}}, r"parameter.name must match ^/?[A-Za-z0-9_.\-/]+$, got '/eks proxy'"),
        ({"parameter": {"name": "/p\n"}}, "parameter.name must match"),  # a trailing newline is not a match
        ({"parameter": {"name": 7}}, "parameter.name must be a string, got int"),
        ({"parameter": {"name": "/p", "version": 0}}, "parameter.version must be an integer >= 1, got 0"),
        ({"parameter": {"name": "/p", "version": "3"}}, "parameter.version must be an integer >= 1, got '3'"),
        ({"parameter": {"name": "/p", "version": 3.0}}, "parameter.version must be an integer >= 1, got '3.0'"),
        ({"parameter": {"name": "/p", "version": True}}, "parameter.version must be an integer >= 1, got 'True'"),
        ({"parameter": {"name": "/p"}, "registry": "r" * 301}, "registry must have 0 to 300 characters, got 301"),
        ({"parameter": {"name": "/p"}, "registry": 443}, "registry must be a string, got int"),
    ],
)
def test_preflight_bad_input_is_one_line_naming_the_field(event: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        PreflightTask.from_event(event)

    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("event", [None, [], "{}", 3])
def test_task_input_must_be_an_object(event: Any) -> None:
    for task in (PreflightTask, VerifyTask):
        with pytest.raises(ValidationError, match=r"^task input must be a JSON object, got "):
            task.from_event(event)


def test_verify_task_as_the_state_machine_sends_it() -> None:
    assert VerifyTask.from_event(VERIFY) == VerifyTask("prod", "ng-a", "busybox:1.36", "verify", 60)


@pytest.mark.parametrize(
    "event",
    [
        {"cluster": "prod", "nodegroup": "ng-a"},
        {"cluster": "prod", "nodegroup": "ng-a", "image": None, "namespace": None, "timeout_seconds": None},
    ],
)
def test_verify_absent_or_null_means_the_function_default(event: dict[str, Any]) -> None:
    assert VerifyTask.from_event(event) == VerifyTask("prod", "ng-a")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"namespace": ""}, ""),  # empty: the function's default namespace
        ({"timeout_seconds": 0}, 0),
        ({"timeout_seconds": 840}, 840),
        ({"nodegroup": "0ng_A-1"}, "0ng_A-1"),
        ({"cluster": "c" * 100}, "c" * 100),
    ],
)
def test_verify_bounds_that_pass(changes: dict[str, Any], expected: Any) -> None:
    task = VerifyTask.from_event({**VERIFY, **changes})

    (key,) = changes
    assert getattr(task, key) == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cluster": None}, "cluster is required"),
        ({"cluster": ""}, "cluster must have 1 to 100 characters, got 0"),
        ({"cluster": "c" * 101}, "cluster must have 1 to 100 characters, got 101"),
        ({"nodegroup": None}, "nodegroup is required"),
        ({"nodegroup": "ng a; rm -rf /"}, "nodegroup must match ^[0-9A-Za-z][A-Za-z0-9_-]*$, got 'ng a; rm -rf /'"),
        ({"nodegroup": "-ng"}, "nodegroup must match"),
        ({"nodegroup": "n" * 64}, "nodegroup must have 1 to 63 characters, got 64"),
        ({"nodegroup": ["ng-a"]}, "nodegroup must be a string, got list"),
        ({"image": "i" * 513}, "image must have 0 to 512 characters, got 513"),
        ({"namespace": "Verify"}, "namespace must match"),
        ({"namespace": "verify-"}, "namespace must match"),
        ({"namespace": "n" * 64}, "namespace must have 0 to 63 characters, got 64"),
        ({"timeout_seconds": -1}, "timeout_seconds must be an integer from 0 to 840, got -1"),
        ({"timeout_seconds": 841}, "timeout_seconds must be an integer from 0 to 840, got 841"),
        ({"timeout_seconds": "60"}, "timeout_seconds must be an integer from 0 to 840, got '60'"),
        ({"timeout_seconds": False}, "timeout_seconds must be an integer from 0 to 840, got 'False'"),
    ],
)
def test_verify_bad_input_is_one_line_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        VerifyTask.from_event({**VERIFY, **changes})

    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_error_keeps_its_name_for_the_state_machine() -> None:
    """Lambda reports the exception's class name as the error the state machine's Catch sees: as with pydantic."""
    assert ValidationError.__name__ == "ValidationError"
    assert issubclass(ValidationError, ValueError)


def test_docstring_examples() -> None:
    assert doctest.testmod(eks_proxy.engine.contracts).failed == 0


@pytest.mark.parametrize("function", ["dispatch", "preflight", "rollout_step", "verify"])
def test_handler_imports_neither_pydantic_nor_the_parser(function: str) -> None:
    """The point of the module (cold start): every handler loads without pydantic and the Powertools Parser."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(REPO / 'functions' / function / 'app.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('pydantic')}),"
        " 'aws_lambda_powertools.utilities.parser' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "POWERTOOLS_SERVICE_NAME": "eks-proxy",
        "CLUSTER_NAMES": "prod",
        "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:eks-proxy",
        "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:eks-proxy-rollout",
    }
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)

    assert out.stdout.split() == ["[]", "False"]
