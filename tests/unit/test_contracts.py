"""The rollout step's building blocks: one name pattern, one integer check, one serialiser per output."""

from __future__ import annotations

from typing import Any

import pytest
from eks_proxy.engine.contracts import (
    EKS_NAME,
    EventError,
    InvalidRolloutInput,
    NodegroupRef,
    ParameterRef,
    RefreshResult,
    TemplateRef,
    UpdateRef,
    ValidationError,
    integer,
    parse_trigger,
    rollout_input,
)

from testkit.repo import load_event


def test_nodegroup_ref_step_side_names_the_kind_of_name() -> None:
    assert NodegroupRef.from_step({"cluster": "prod", "nodegroup": "ng_A-1"}) == NodegroupRef("prod", "ng_A-1")
    with pytest.raises(InvalidRolloutInput, match=r"^invalid cluster name: cluster must have 1 to 100 characters"):
        NodegroupRef.from_step({"cluster": "c" * 101, "nodegroup": "ng"})
    with pytest.raises(InvalidRolloutInput, match=r"^invalid node group name: nodegroup is required$"):
        NodegroupRef.from_step({"cluster": "prod"})
    with pytest.raises(InvalidRolloutInput, match=r"^every node group must be an object"):
        NodegroupRef.from_step(["prod", "ng"])


@pytest.mark.parametrize("name", ["-ng", "ng a", "ng\n", "ng.a", "ñg", ""])
def test_one_name_pattern_for_both_sides(name: str) -> None:
    assert not EKS_NAME.fullmatch(name)
    with pytest.raises(ValidationError):
        NodegroupRef.from_event({"cluster": "prod", "nodegroup": name})
    with pytest.raises(InvalidRolloutInput):
        NodegroupRef.from_step({"cluster": "prod", "nodegroup": name})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3", "n must be an integer from 1 to 9, got '3'"),
        (3.0, "n must be an integer from 1 to 9, got '3.0'"),
        (False, "n must be an integer from 1 to 9, got 'False'"),
        (0, "n must be an integer from 1 to 9, got 0"),
        (10, "n must be an integer from 1 to 9, got 10"),
    ],
)
def test_integer_is_strict(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        integer(value, "n", low=1, high=9)
    assert str(raised.value) == message


def test_rollout_input_turns_contract_errors_into_the_step_error() -> None:
    @rollout_input
    def parse(value: Any) -> int:
        return integer(value, "polls", low=0, default=0)

    assert parse(None) == 0
    with pytest.raises(InvalidRolloutInput, match=r"^polls must be an integer >= 0, got -1$"):
        parse(-1)


def test_parameter_pinned_is_the_configured_name_at_a_version() -> None:
    assert ParameterRef.pinned({"name": "/p", "version": 2}, "/p") == ParameterRef("/p", 2)
    with pytest.raises(InvalidRolloutInput, match=r"^parameter must be '/p', got '/q'$"):
        ParameterRef.pinned({"name": "/q", "version": 2}, "/p")
    with pytest.raises(InvalidRolloutInput, match=r"^parameter.version is required$"):
        ParameterRef.pinned({"name": "/p"}, "/p")


def test_refresh_result_round_trips_through_the_state_machine() -> None:
    result = RefreshResult(
        outcome="create_version",
        needs_update=True,
        reason="proxy configuration differs",
        node_os="al2023",
        launch_template=TemplateRef("lt-1", None),
        version_before=1,
        version_after=2,
        fingerprint="abc",
        waits=0,
    )
    output = result.to_output()

    assert list(output) == [
        "outcome",
        "needs_update",
        "reason",
        "remedy",
        "node_os",
        "launch_template",
        "version_before",
        "version_after",
        "fingerprint",
        "waits",
    ]
    assert RefreshResult.from_event(output) == result


def test_waiting_refresh_carries_its_next_wait_only() -> None:
    waiting = RefreshResult.not_refreshed("waiting", "UPDATING", waits=2, next_wait_seconds=45).to_output()
    superseded = RefreshResult.not_refreshed("superseded", "newer", waits=0).to_output()

    assert (waiting["next_wait_seconds"], waiting["needs_update"], waiting["launch_template"]) == (45, False, None)
    assert "next_wait_seconds" not in superseded


def test_refresh_field_read_back_strictly() -> None:
    assert RefreshResult.from_event(None) == RefreshResult(outcome="")
    with pytest.raises(InvalidRolloutInput, match=r"^refresh.version_after must be an integer from 1 to"):
        RefreshResult.from_event({"version_after": "2"})
    with pytest.raises(InvalidRolloutInput, match=r"^refresh.launch_template must be a JSON object, got str$"):
        RefreshResult.from_event({"launch_template": "lt-1"})


def test_update_ref() -> None:
    assert UpdateRef.from_event({"update_id": "u-1"}) == UpdateRef("u-1", 0)
    with pytest.raises(InvalidRolloutInput, match=r"^update.update_id is missing$"):
        UpdateRef.from_event({})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time": "yesterday"}, "time must be an ISO 8601 date and time, got 'yesterday'"),
        ({"resources": "arn"}, "resources must be a list of strings"),
        ({"detail": []}, "detail must be a JSON object, got list"),
        ({"account": 123456789012}, "account must be a string, got int"),
    ],
)
def test_dispatch_event_envelope_is_checked(change: dict[str, Any], message: str) -> None:
    event = load_event("eks-create-nodegroup") | change

    with pytest.raises(EventError) as raised:
        parse_trigger(event)
    assert str(raised.value) == f"malformed 'AWS API Call via CloudTrail' event: {message}"


def test_cloudtrail_payloads_of_the_wrong_type_are_one_line() -> None:
    event = load_event("ec2-create-launch-template-version")
    event["detail"]["requestParameters"] = ["LaunchTemplateId"]
    event["detail"]["errorCode"] = 403

    with pytest.raises(EventError, match=r"^malformed 'AWS API Call via CloudTrail' event: detail\.") as raised:
        parse_trigger(event)
    assert "\n" not in str(raised.value)


def test_an_event_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(EventError, match=r"^unsupported event: a list, not a JSON object$"):
        parse_trigger([])  # type: ignore[arg-type]
