"""Scope of each trigger, and the cheap drops: failed calls, our own roles, EKS itself, other clusters/parameters."""

from __future__ import annotations

from typing import Any

import pytest
from eks_proxy.config import Settings
from eks_proxy.engine.contracts import parse_trigger
from eks_proxy.engine.scope import Ignored, Scope, scope_for

from testkit.repo import load_event

OWN_ROLE = "arn:aws:iam::123456789012:role/eks-proxy-RolloutStepFunctionRole-ABC123"
SETTINGS = Settings(
    cluster_names=("prod", "staging"),
    alarm_topic_arn="arn:aws:sns:eu-west-1:123456789012:eks-proxy",
    own_role_arns=(OWN_ROLE,),
)


def scope(event: dict[str, Any], settings: Settings = SETTINGS) -> Scope | Ignored:
    return scope_for(parse_trigger(event), settings)


@pytest.mark.parametrize("sample", ["ssm-parameter-create", "ssm-parameter-update", "schedule-drift-sweep"])
def test_parameter_change_and_sweep_cover_all_configured_clusters(sample: str) -> None:
    assert scope(load_event(sample)) == Scope(kind="all", clusters=("prod", "staging"))


def test_parameter_delete_raises_the_alarm_and_touches_nothing() -> None:
    result = scope(load_event("ssm-parameter-delete"))
    assert isinstance(result, Ignored)
    assert result.alarm
    assert "deleted" in result.reason


@pytest.mark.parametrize("name", ["/eks-proxy/config-old", "/eks-proxy", "/other"])
def test_look_alike_parameter_is_ignored(name: str) -> None:
    event = load_event("ssm-parameter-update")
    event["detail"]["name"] = name
    result = scope(event)
    assert isinstance(result, Ignored)
    assert not result.alarm


def test_label_operation_changes_nothing() -> None:
    event = load_event("ssm-parameter-update")
    event["detail"]["operation"] = "LabelParameterVersion"
    assert isinstance(scope(event), Ignored)


@pytest.mark.parametrize("sample", ["eks-create-nodegroup", "eks-update-nodegroup-version"])
def test_nodegroup_event_scopes_one_nodegroup(sample: str) -> None:
    result = scope(load_event(sample))
    assert result == Scope(kind="nodegroup", clusters=("prod",), nodegroup="ng-a")
    assert result.key == "nodegroup:prod/ng-a"


def test_nodegroup_of_an_unconfigured_cluster_is_ignored() -> None:
    event = load_event("eks-create-nodegroup")
    event["detail"]["requestParameters"]["name"] = "dev"
    result = scope(event)
    assert isinstance(result, Ignored)
    assert "'dev' is not in CLUSTER_NAMES" in result.reason


@pytest.mark.parametrize(
    "sample", ["ec2-create-launch-template", "ec2-create-launch-template-version", "ec2-modify-launch-template"]
)
def test_launch_template_event_scopes_its_users(sample: str) -> None:
    result = scope(load_event(sample))
    assert isinstance(result, Scope)
    assert result.kind == "launch_template"
    assert result.clusters == ("prod", "staging")
    assert result.uses_template("lt-0a1b2c3d4e5f67890", "prod-ng-a")
    assert not result.uses_template("lt-0ffffffffffffffff", "other")


def test_failed_call_is_dropped() -> None:
    event = load_event("eks-update-nodegroup-version")
    event["detail"]["errorCode"] = "ResourceInUseException"
    result = scope(event)
    assert isinstance(result, Ignored)
    assert "ResourceInUseException" in result.reason


@pytest.mark.parametrize(
    "sample", ["ec2-create-launch-template-version", "eks-update-nodegroup-version", "ec2-modify-launch-template"]
)
def test_our_own_calls_are_dropped(sample: str) -> None:
    event = load_event(sample)
    identity = event["detail"]["userIdentity"]
    identity["arn"] = "arn:aws:sts::123456789012:assumed-role/eks-proxy-RolloutStepFunctionRole-ABC123/fn-session"
    identity["sessionContext"]["sessionIssuer"]["arn"] = OWN_ROLE
    result = scope(event)
    assert isinstance(result, Ignored)
    assert "eks-proxy itself" in result.reason


def test_own_role_matched_by_assumed_role_arn_alone() -> None:
    event = load_event("ec2-create-launch-template-version")
    identity = event["detail"]["userIdentity"]
    identity["arn"] = "arn:aws:sts::123456789012:assumed-role/eks-proxy-RolloutStepFunctionRole-ABC123/s"
    del identity["sessionContext"]
    assert isinstance(scope(event), Ignored)


def test_a_teammate_with_a_similar_role_name_is_not_us() -> None:
    event = load_event("ec2-create-launch-template-version")
    event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = OWN_ROLE + "-copy"
    assert isinstance(scope(event), Scope)


def test_calls_by_eks_itself_are_dropped() -> None:
    event = load_event("ec2-create-launch-template-version")
    event["detail"]["userIdentity"] = {"type": "AWSService", "invokedBy": "eks-nodegroup.amazonaws.com"}
    event["detail"]["sourceIPAddress"] = "eks-nodegroup.amazonaws.com"
    assert "EKS itself" in scope(event).reason  # type: ignore[union-attr]


def test_eks_service_linked_role_is_dropped() -> None:
    event = load_event("ec2-create-launch-template")
    issuer = event["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]
    issuer["arn"] = (
        "arn:aws:iam::123456789012:role/aws-service-role/eks-nodegroup.amazonaws.com/AWSServiceRoleForAmazonEKSNodegroup"
    )
    assert isinstance(scope(event), Ignored)


def test_eks_copy_of_a_template_is_dropped_by_name_and_tag() -> None:
    event = load_event("ec2-create-launch-template")
    request = event["detail"]["requestParameters"]["CreateLaunchTemplateRequest"]
    request["LaunchTemplateName"] = "eks-6ac9b6a2-1b2c-4d3e-8f9a-0b1c2d3e4f5a"
    request["TagSpecification"] = {
        "ResourceType": "launch-template",
        "Tag": [{"Key": "eks:nodegroup-name", "Value": "ng-a"}],
    }
    event["detail"]["responseElements"] = None
    assert isinstance(scope(event), Ignored)
    # The same name without the EKS tag is a customer's template and stays in scope.
    request["TagSpecification"] = {"ResourceType": "launch-template", "Tag": [{"Key": "team", "Value": "x"}]}
    assert isinstance(scope(event), Scope)


def test_scope_keys_differ_per_scope() -> None:
    keys = {
        Scope(kind="all", clusters=("prod",)).key,
        Scope(kind="nodegroup", clusters=("prod",), nodegroup="a").key,
        Scope(kind="launch_template", clusters=("prod",), launch_template_id="lt-1").key,
    }
    assert len(keys) == 3


def test_a_change_of_the_ca_bundle_parameter_scopes_everything_and_its_deletion_alarms() -> None:
    from eks_proxy.config import Settings
    from eks_proxy.engine.contracts import Trigger
    from eks_proxy.engine.scope import Ignored, Scope, scope_for

    settings = Settings(cluster_names=("prod",), alarm_topic_arn="arn:aws:sns:eu-west-1:1:t")
    ca = settings.ca_bundle_parameter_name
    assert ca == "/eks-proxy/ca-bundle"
    for operation in ("Create", "Update"):
        trigger = Trigger(kind="ssm", event_id="e", parameter_name=ca, operation=operation)
        assert scope_for(trigger, settings) == Scope(kind="all", clusters=("prod",))
    deleted = scope_for(Trigger(kind="ssm", event_id="e", parameter_name=ca, operation="Delete"), settings)
    assert isinstance(deleted, Ignored) and deleted.alarm and "CA bundle" in deleted.reason
    label = scope_for(Trigger(kind="ssm", event_id="e", parameter_name=ca, operation="LabelParameterVersion"), settings)
    assert isinstance(label, Ignored) and not label.alarm
    other = scope_for(Trigger(kind="ssm", event_id="e", parameter_name=ca + "-old", operation="Update"), settings)
    assert isinstance(other, Ignored)
