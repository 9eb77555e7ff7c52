"""Every EventBridge rule of template.yaml against every events/ sample and against look-alikes that must not match.

The patterns are read from template.yaml itself and routed by the moto server over HTTP (testkit/rules.py: PutRule +
an SQS target per rule, PutEvents, then see which queues received the event). The sweep rule's input transformer is
checked the same way.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from testkit import rules
from testkit.cfn_template import ACCOUNT, Stack, load_template
from testkit.moto_server import MotoServer
from testkit.repo import EVENTS, load_event
from testkit.rules import Router

TEMPLATE = load_template()
RULES = ("ProxyParameterChanged", "NodegroupChanged", "LaunchTemplateChanged")
OWN_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/eks-proxy-RolloutStepFunctionRole-EXAMPLE1234"
EKS_NODEGROUP_ROLE_ARN = (
    f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/eks-nodegroup.amazonaws.com/AWSServiceRoleForAmazonEKSNodegroup"
)

# Which rule each sample belongs to (None: reaches dispatch through the schedule, not through a pattern).
EXPECTED = {
    "ssm-parameter-create.json": "ProxyParameterChanged",
    "ssm-parameter-update.json": "ProxyParameterChanged",
    "ssm-parameter-delete.json": "ProxyParameterChanged",
    "ssm-ca-bundle-update.json": "ProxyParameterChanged",
    "eks-create-nodegroup.json": "NodegroupChanged",
    "eks-update-nodegroup-version.json": "NodegroupChanged",
    "ec2-create-launch-template.json": "LaunchTemplateChanged",
    "ec2-create-launch-template-version.json": "LaunchTemplateChanged",
    "ec2-modify-launch-template.json": "LaunchTemplateChanged",
    "schedule-drift-sweep.json": None,
}


def patterns(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    return rules.patterns(parameters, TEMPLATE)


def make_router(moto: MotoServer, parameters: dict[str, str]) -> Router:
    return rules.make_router(moto, parameters, TEMPLATE)


@pytest.fixture
def route(moto_server: MotoServer) -> Router:
    return make_router(moto_server, {"ClusterNames": "prod,staging"})


def mutated(name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    event = copy.deepcopy(load_event(name))
    change(event)
    return event


def test_every_sample_is_expected() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


def test_patterns_come_from_the_template() -> None:
    resolved = patterns({"ClusterNames": "prod"})
    assert set(resolved) == set(RULES)
    assert resolved["ProxyParameterChanged"]["detail"]["name"] == ["/eks-proxy/config", "/eks-proxy/ca-bundle"]
    assert resolved["ProxyParameterChanged"]["detail"]["operation"] == ["Create", "Update", "Delete"]
    for name in ("NodegroupChanged", "LaunchTemplateChanged"):
        assert resolved[name]["detail"]["errorCode"] == [{"exists": False}]


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_each_sample_matches_exactly_its_rule(route: Router, sample: str) -> None:
    expected = EXPECTED[sample]
    assert route(load_event(sample)) == ({expected} if expected else set())


# ------------------------------------------------------------------------------------------------ SSM look-alikes
def _set_name(value: str) -> Callable[[dict[str, Any]], None]:
    return lambda e: e["detail"].update(name=value)


@pytest.mark.parametrize(
    "lookalike",
    [
        pytest.param(_set_name("/eks-proxy/config-old"), id="name-with-suffix"),
        pytest.param(_set_name("/eks-proxy/config/extra"), id="child-parameter"),
        pytest.param(_set_name("/eks-proxy"), id="parent-path"),
        pytest.param(_set_name("/eks-proxy/ca-bundle-old"), id="ca-bundle-with-suffix"),
        pytest.param(_set_name("eks-proxy/config"), id="no-leading-slash"),
        pytest.param(_set_name("/EKS-PROXY/CONFIG"), id="other-case"),
        pytest.param(lambda e: e["detail"].update(operation="LabelParameterVersion"), id="label-operation"),
        pytest.param(lambda e: e.update({"detail-type": "Parameter Store Policy Action"}), id="policy-action"),
        pytest.param(lambda e: e.update(source="custom.ssm"), id="custom-source"),
    ],
)
def test_ssm_lookalikes_do_not_match(route: Router, lookalike: Callable[[dict[str, Any]], None]) -> None:
    assert route(mutated("ssm-parameter-update", lookalike)) == set()


def test_ssm_rule_follows_the_parameter_name(moto_server: MotoServer) -> None:
    route = make_router(moto_server, {"ClusterNames": "prod", "ProxyParameterName": "/platform/egress-proxy"})
    assert route(load_event("ssm-parameter-update")) == set()
    assert route(mutated("ssm-parameter-update", _set_name("/platform/egress-proxy"))) == {"ProxyParameterChanged"}


def test_ssm_rule_follows_the_ca_bundle_parameter_name(moto_server: MotoServer) -> None:
    route = make_router(moto_server, {"ClusterNames": "prod", "CaBundleParameterName": "/platform/inspection-ca"})
    assert route(load_event("ssm-ca-bundle-update")) == set()
    assert route(mutated("ssm-ca-bundle-update", _set_name("/platform/inspection-ca"))) == {"ProxyParameterChanged"}


# ------------------------------------------------------------------------------------------ CloudTrail look-alikes
def _failed(e: dict[str, Any]) -> None:
    e["detail"].update(errorCode="AccessDenied", errorMessage="User is not authorized", responseElements=None)


def _issuer(arn: str) -> Callable[[dict[str, Any]], None]:
    def change(e: dict[str, Any]) -> None:
        e["detail"]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] = arn
        e["detail"]["userIdentity"]["arn"] = arn.replace(":iam:", ":sts:").replace(":role/", ":assumed-role/") + "/s"

    return change


def _made_by_eks(e: dict[str, Any]) -> None:
    """The shape of a call EKS makes with its service-linked role (EKS user guide, CloudTrail log entries)."""
    e["detail"]["userIdentity"] = {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLEIDNODEGRP:EKS",
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSServiceRoleForAmazonEKSNodegroup/EKS",
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAEXAMPLEKEYNODEG",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEIDNODEGRP",
                "arn": EKS_NODEGROUP_ROLE_ARN,
                "accountId": ACCOUNT,
                "userName": "AWSServiceRoleForAmazonEKSNodegroup",
            },
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-24T09:12:12Z", "mfaAuthenticated": "false"},
        },
        "invokedBy": "eks-nodegroup.amazonaws.com",
    }
    e["detail"]["sourceIPAddress"] = "eks-nodegroup.amazonaws.com"
    e["detail"]["userAgent"] = "eks-nodegroup.amazonaws.com"


def _event_name(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda e: e["detail"].update(eventName=name)


def _iam_user(e: dict[str, Any]) -> None:
    e["detail"]["userIdentity"] = {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLEUSERID01",
        "arn": f"arn:aws:iam::{ACCOUNT}:user/ops",
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAEXAMPLEKEY00001",
        "userName": "ops",
    }


def _via_cloudformation(e: dict[str, Any]) -> None:
    """A user's own stack creating the template: a real change, must match."""
    e["detail"]["userIdentity"]["invokedBy"] = "cloudformation.amazonaws.com"
    e["detail"]["sourceIPAddress"] = "cloudformation.amazonaws.com"
    e["detail"]["userAgent"] = "cloudformation.amazonaws.com"


@pytest.mark.parametrize(
    ("sample", "lookalike"),
    [
        pytest.param("eks-update-nodegroup-version", _failed, id="eks-failed-call"),
        pytest.param("eks-create-nodegroup", _failed, id="eks-create-failed"),
        pytest.param("eks-update-nodegroup-version", _issuer(OWN_ROLE_ARN), id="eks-our-own-update"),
        pytest.param(
            "eks-update-nodegroup-version",
            lambda e: e["detail"]["requestParameters"].update(name="dev"),
            id="eks-cluster-out-of-scope",
        ),
        pytest.param(
            "eks-update-nodegroup-version",
            lambda e: e["detail"]["requestParameters"].update(name="prod-old"),
            id="eks-cluster-lookalike-name",
        ),
        pytest.param("eks-update-nodegroup-version", _event_name("UpdateNodegroupConfig"), id="eks-config"),
        pytest.param("eks-create-nodegroup", _event_name("DeleteNodegroup"), id="eks-delete"),
        pytest.param("eks-create-nodegroup", lambda e: e.update(source="aws.ec2"), id="eks-wrong-source"),
        pytest.param(
            "eks-create-nodegroup",
            lambda e: e["detail"].update(eventSource="ecs.amazonaws.com"),
            id="eks-wrong-event-source",
        ),
        pytest.param("ec2-create-launch-template-version", _failed, id="ec2-failed-call"),
        pytest.param("ec2-create-launch-template-version", _made_by_eks, id="ec2-made-by-eks"),
        pytest.param("ec2-create-launch-template", _made_by_eks, id="ec2-eks-copies-template"),
        pytest.param("ec2-create-launch-template-version", _issuer(EKS_NODEGROUP_ROLE_ARN), id="ec2-eks-role-other-ip"),
        pytest.param(
            "ec2-create-launch-template-version",
            lambda e: e["detail"].update(sourceIPAddress="eks.amazonaws.com"),
            id="ec2-eks-cluster-service",
        ),
        pytest.param("ec2-create-launch-template-version", _issuer(OWN_ROLE_ARN), id="ec2-our-own-version"),
        pytest.param("ec2-modify-launch-template", _event_name("DeleteLaunchTemplate"), id="ec2-delete"),
        pytest.param("ec2-create-launch-template", _event_name("RunInstances"), id="ec2-run"),
        pytest.param(
            "ec2-create-launch-template",
            lambda e: e.update({"detail-type": "AWS Service Event via CloudTrail"}),
            id="ec2-service-event",
        ),
    ],
)
def test_cloudtrail_lookalikes_do_not_match(
    route: Router, sample: str, lookalike: Callable[[dict[str, Any]], None]
) -> None:
    assert route(mutated(sample, lookalike)) == set()


@pytest.mark.parametrize(
    ("sample", "variant", "rule"),
    [
        pytest.param(
            "eks-update-nodegroup-version",
            lambda e: e["detail"]["requestParameters"].update(clusterName=e["detail"]["requestParameters"].pop("name")),
            "NodegroupChanged",
            id="eks-older-record-clusterName",
        ),
        pytest.param(
            "eks-create-nodegroup",
            lambda e: e["detail"]["requestParameters"].update(name="staging"),
            "NodegroupChanged",
            id="eks-second-cluster",
        ),
        pytest.param("eks-create-nodegroup", _iam_user, "NodegroupChanged", id="eks-by-iam-user"),
        pytest.param("ec2-create-launch-template-version", _iam_user, "LaunchTemplateChanged", id="ec2-by-iam-user"),
        pytest.param("ec2-create-launch-template", _via_cloudformation, "LaunchTemplateChanged", id="ec2-via-stack"),
        pytest.param(
            "ec2-create-launch-template-version",
            _issuer(f"arn:aws:iam::{ACCOUNT}:role/eks-proxy-RolloutStepFunctionRole-OTHER"),
            "LaunchTemplateChanged",
            id="ec2-role-with-similar-name",
        ),
    ],
)
def test_real_changes_in_other_shapes_still_match(
    route: Router, sample: str, variant: Callable[[dict[str, Any]], None], rule: str
) -> None:
    assert route(mutated(sample, variant)) == {rule}


# ------------------------------------------------------------------------------------------------ the daily sweep
def test_sweep_rule_is_daily() -> None:
    rule = TEMPLATE["Resources"]["DriftSweepRule"]["Properties"]
    assert rule["ScheduleExpression"] in {"rate(1 day)"} or rule["ScheduleExpression"].startswith("cron(")
    minute, hour, day, month, weekday, year = rule["ScheduleExpression"][5:-1].split()
    assert (day, month, weekday, year) == ("*", "*", "?", "*") and minute.isdigit() and hour.isdigit()
    target = rule["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["DispatchFunction", "Arn"]}
    permission = TEMPLATE["Resources"]["DriftSweepPermission"]["Properties"]
    assert permission["SourceArn"] == {"Fn::GetAtt": ["DriftSweepRule", "Arn"]}


def test_sweep_input_keeps_the_envelope_and_marks_the_sweep(moto_server: MotoServer) -> None:
    """The schedule's input transformer, run by moto on a scheduled event, yields the shape of the sweep sample."""
    target = TEMPLATE["Resources"]["DriftSweepRule"]["Properties"]["Targets"][0]
    events, sqs = moto_server.client("events"), moto_server.client("sqs")
    url = sqs.create_queue(QueueName="sweep")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # moto cannot fire schedules; a pattern on the scheduled event's own source stands in for the schedule.
    events.put_rule(Name="sweep", EventPattern=json.dumps({"source": ["aws.events"]}), State="ENABLED")
    events.put_targets(
        Rule="sweep", Targets=[{"Id": "queue", "Arn": arn, "InputTransformer": target["InputTransformer"]}]
    )
    rule_arn = f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/eks-proxy-DriftSweepRule-1A2B3C4D5E6F7"
    sent = events.put_events(
        Entries=[{"Source": "aws.events", "DetailType": "Scheduled Event", "Detail": "{}", "Resources": [rule_arn]}]
    )
    body = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    sample = load_event("schedule-drift-sweep")
    assert set(body) == set(sample)
    assert body["id"] == sent["Entries"][0]["EventId"]
    assert body["detail"] == sample["detail"] == {"trigger": "sweep"}
    assert (body["source"], body["detail-type"], body["resources"]) == ("aws.events", "Scheduled Event", [rule_arn])
    assert body["account"] == ACCOUNT and body["region"] == "eu-west-1"


def _status_change(status: str, state_machine: str, name: str = "more-sweep-0123abcd") -> dict[str, Any]:
    execution = state_machine.replace(":stateMachine:", ":execution:") + ":" + name
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Resources": [execution],
        "Detail": json.dumps(
            {"executionArn": execution, "stateMachineArn": state_machine, "name": name, "status": status}
        ),
    }


def test_a_successful_rollout_is_followed_by_a_sweep_for_the_next_batch(moto_server: MotoServer) -> None:
    """Dispatch rolls at most MAX_NODEGROUPS_PER_ROLLOUT node groups per execution; when one succeeds, this rule runs
    the sweep again (same shape as the schedule's), which starts the next batch or finds everything up to date.
    Only executions of a scope larger than one batch (name prefix `more-`) are continued: a failed rollout is never
    retried because some unrelated small rollout succeeded. Other state machines' executions never match."""
    resource = TEMPLATE["Resources"]["RolloutSucceededRule"]["Properties"]
    ours = f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:eks-proxy-rollout"
    pattern = Stack(TEMPLATE, {"ClusterNames": "prod"}).resolve(resource["EventPattern"])
    pattern["detail"]["stateMachineArn"] = [ours]  # !Ref RolloutStateMachine
    target = resource["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["DispatchFunction", "Arn"]}
    permission = TEMPLATE["Resources"]["RolloutSucceededPermission"]["Properties"]
    assert permission["SourceArn"] == {"Fn::GetAtt": ["RolloutSucceededRule", "Arn"]}
    events, sqs = moto_server.client("events"), moto_server.client("sqs")
    url = sqs.create_queue(QueueName="continue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="continue", EventPattern=json.dumps(pattern), State="ENABLED")
    events.put_targets(
        Rule="continue", Targets=[{"Id": "queue", "Arn": arn, "InputTransformer": target["InputTransformer"]}]
    )
    other = ours.replace("eks-proxy-rollout", "someone-elses")
    events.put_events(
        Entries=[
            _status_change("FAILED", ours),
            _status_change("SUCCEEDED", other),
            _status_change("SUCCEEDED", ours, "ssm-0123abcd"),
        ]
    )
    assert sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages") is None
    sent = events.put_events(Entries=[_status_change("SUCCEEDED", ours)])
    body = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    sample = load_event("schedule-drift-sweep")
    assert set(body) == set(sample)
    assert body["id"] == sent["Entries"][0]["EventId"]
    assert body["detail"] == {"trigger": "sweep", "after": "more-sweep-0123abcd"}  # the execution it follows
    assert (body["source"], body["detail-type"]) == ("aws.events", "Scheduled Event")
