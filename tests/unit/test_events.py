"""Every events/ sample parses into the trigger dispatch needs; CloudTrail payloads are read defensively."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eks_proxy.engine.contracts import EventError, parse_trigger

from testkit.repo import load_event


def test_ssm_samples() -> None:
    for name, operation in [
        ("ssm-parameter-create", "Create"),
        ("ssm-parameter-update", "Update"),
        ("ssm-parameter-delete", "Delete"),
    ]:
        t = parse_trigger(load_event(name))
        assert (t.kind, t.parameter_name, t.operation) == ("ssm", "/eks-proxy/config", operation)
        assert t.event_id == load_event(name)["id"]


def test_schedule_sample_is_a_sweep() -> None:
    assert parse_trigger(load_event("schedule-drift-sweep")).kind == "sweep"


def test_eks_create_nodegroup() -> None:
    t = parse_trigger(load_event("eks-create-nodegroup"))
    assert (t.kind, t.event_name, t.cluster, t.nodegroup) == ("nodegroup", "CreateNodegroup", "prod", "ng-a")
    assert t.launch_template_name == "prod-ng-a"
    assert t.caller.issuer_arn == "arn:aws:iam::123456789012:role/PlatformAdmin"
    assert t.error_code is None


def test_eks_update_nodegroup_version() -> None:
    t = parse_trigger(load_event("eks-update-nodegroup-version"))
    assert (t.cluster, t.nodegroup, t.launch_template_id, t.launch_template_version) == (
        "prod",
        "ng-a",
        "lt-0a1b2c3d4e5f67890",
        4,
    )


def test_older_eks_records_named_the_cluster_clusterName() -> None:
    event = load_event("eks-update-nodegroup-version")
    params = event["detail"]["requestParameters"]
    params["clusterName"] = params.pop("name")
    assert parse_trigger(event).cluster == "prod"


def test_ec2_wrapped_payloads() -> None:
    version = parse_trigger(load_event("ec2-create-launch-template-version"))
    assert (version.kind, version.launch_template_id) == ("launch_template", "lt-0a1b2c3d4e5f67890")
    assert version.launch_template_version is not None
    created = parse_trigger(load_event("ec2-create-launch-template"))
    assert created.launch_template_name == "prod-ng-a"
    assert created.launch_template_id
    modified = parse_trigger(load_event("ec2-modify-launch-template"))
    assert (modified.event_name, modified.launch_template_id) == ("ModifyLaunchTemplate", "lt-0a1b2c3d4e5f67890")


def test_ec2_request_only_is_enough() -> None:
    """A record without responseElements (they can be null) still names the template from the request."""
    event = load_event("ec2-create-launch-template-version")
    event["detail"]["responseElements"] = None
    assert parse_trigger(event).launch_template_id == "lt-0a1b2c3d4e5f67890"


def test_failed_call_keeps_its_error_code() -> None:
    event = load_event("ec2-create-launch-template-version")
    event["detail"]["errorCode"] = "Client.UnauthorizedOperation"
    event["detail"]["responseElements"] = None
    assert parse_trigger(event).error_code == "Client.UnauthorizedOperation"


def _broken(event: dict[str, Any], path: list[str]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    node = event
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return event


@pytest.mark.parametrize(
    ("sample", "path", "message"),
    [
        ("ssm-parameter-update", ["detail", "name"], "detail.name"),
        ("eks-create-nodegroup", ["detail", "eventName"], "detail.eventName"),
        ("ssm-parameter-update", ["id"], "id"),
    ],
)
def test_malformed_events_get_one_line_errors(sample: str, path: list[str], message: str) -> None:
    with pytest.raises(EventError, match=message) as error:
        parse_trigger(_broken(load_event(sample), path))
    assert "\n" not in str(error.value)


def test_unrelated_event_is_refused() -> None:
    event = load_event("ssm-parameter-update") | {"source": "aws.s3", "detail-type": "Object Created"}
    with pytest.raises(EventError, match="unsupported event"):
        parse_trigger(event)


def test_launch_template_tags_from_request_or_response() -> None:
    event = load_event("ec2-create-launch-template")
    request = event["detail"]["requestParameters"]["CreateLaunchTemplateRequest"]
    request["TagSpecification"] = {
        "ResourceType": "launch-template",
        "Tag": [{"Key": "eks:nodegroup-name", "Value": "ng-a", "tag": 1}, {"Key": "team", "Value": "x", "tag": 2}],
        "tag": 1,
    }
    assert parse_trigger(event).launch_template_tags == {"eks:nodegroup-name": "ng-a", "team": "x"}
    del request["TagSpecification"]
    response = event["detail"]["responseElements"]["CreateLaunchTemplateResponse"]["launchTemplate"]
    response["tags"] = {"item": [{"key": "eks:cluster-name", "value": "prod"}]}
    assert parse_trigger(event).launch_template_tags == {"eks:cluster-name": "prod"}
