"""The EventBridge rules of template.yaml installed on the moto server, to route events the way the stack would.

The patterns are read from template.yaml itself (parameters resolved as CloudFormation would) and routed by the moto
server over HTTP: PutRule + an SQS target per rule, PutEvents, then see which queues received the event. moto 5.2
does not implement TestEventPattern (it raises NotImplementedError), so routing through PutEvents is how its
matcher (prefix, anything-but, exists, $or) is reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from testkit.cfn_template import Stack, load_template
from testkit.moto_server import MotoServer

Router = Callable[[dict[str, Any]], set[str]]


def patterns(parameters: dict[str, str], template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The event pattern of each DispatchFunction EventBridgeRule, for these parameter values."""
    template = template if template is not None else load_template()
    stack = Stack(template, parameters)
    events = template["Resources"]["DispatchFunction"]["Properties"]["Events"]
    return {
        name: stack.resolve(event["Properties"]["Pattern"])
        for name, event in events.items()
        if event["Type"] == "EventBridgeRule"
    }


def make_router(moto: MotoServer, parameters: dict[str, str], template: dict[str, Any] | None = None) -> Router:
    """Install the template's rules on the moto server; the router returns the names of the rules an event matches."""
    events, sqs = moto.client("events"), moto.client("sqs")
    queues: dict[str, str] = {}
    for name, pattern in patterns(parameters, template).items():
        url = sqs.create_queue(QueueName=f"rule-{name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
        events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
        queues[name] = url

    def route(event: dict[str, Any]) -> set[str]:
        result = events.put_events(Entries=[entry(event)])
        assert result["FailedEntryCount"] == 0, result
        matched = set()
        for name, url in queues.items():
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                assert json.loads(message["Body"])["detail"] == event["detail"]
                matched.add(name)
        return matched

    return route


def entry(event: dict[str, Any]) -> dict[str, Any]:
    """A PutEvents entry carrying a sample; moto wraps it in the envelope (account 123456789012, eu-west-1)."""
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
        "Time": datetime.fromisoformat(event["time"].replace("Z", "+00:00")).astimezone(UTC),
    }
