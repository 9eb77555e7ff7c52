"""Builds the AWS side the engine works on, on a moto server over HTTP: VPC, clusters, launch templates, node
groups, the proxy parameter, the alarm topic (with an SQS inbox to read what was published), the lease table and the
rollout state machine from statemachine/rollout.asl.json. Shared by the engine tests and bench/bench_engine.py."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ASL = REPO / "statemachine" / "rollout.asl.json"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARAMETER = "/eks-proxy/config"
CA_PARAMETER = "/eks-proxy/ca-bundle"
OWN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/eks-proxy-RolloutStepFunctionRole-TEST"
TEAM_USER_DATA = (
    b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="//"\n\n--//\n'
    b'Content-Type: text/x-shellscript; charset="us-ascii"\n\n#!/bin/bash\necho team-script\n\n--//--\n'
)
BOTTLEROCKET_USER_DATA = b"[settings.kubernetes]\nmax-pods = 110\n\n[settings.host-containers.admin]\nenabled = false\n"


@dataclass
class World:
    """Handles to what `build_world` created."""

    server_url: str
    clients: dict[str, Any]
    subnets: list[str]
    topic_arn: str
    queue_url: str
    lease_table: str = "eks-proxy-leases"
    state_machine_arn: str = ""
    templates: dict[str, str] = field(default_factory=dict)  # name -> id

    def env(self, **extra: str) -> dict[str, str]:
        """The function environment the template would set (docs/ARCHITECTURE.md, Engine contract)."""
        env = {
            "CLUSTER_NAMES": "prod",
            "ALARM_TOPIC_ARN": self.topic_arn,
            "STATE_MACHINE_ARN": self.state_machine_arn or f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:none",
            "PROXY_PARAMETER_NAME": PARAMETER,
            "CA_BUNDLE_PARAMETER_NAME": CA_PARAMETER,
            "OWN_ROLE_ARNS": OWN_ROLE,
            "MAX_CONCURRENCY": "2",
            "ROLLBACK_ON_FAILURE": "true",
        }
        env.update(extra)
        return env

    def alarms(self) -> list[dict[str, Any]]:
        """Every message published to the alarm topic since the last call (read from its SQS subscription)."""
        sqs = self.clients["sqs"]
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                body = json.loads(message["Body"])
                found.append({"subject": body.get("Subject"), "message": json.loads(body["Message"])})
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def template(self, name: str, user_data: bytes | None = TEAM_USER_DATA) -> str:
        data: dict[str, Any] = {"InstanceType": "m6i.large", "MetadataOptions": {"HttpTokens": "required"}}
        if user_data is not None:
            data["UserData"] = base64.b64encode(user_data).decode()
        created = self.clients["ec2"].create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
        self.templates[name] = created["LaunchTemplate"]["LaunchTemplateId"]
        return self.templates[name]

    def cluster(self, name: str) -> None:
        self.clients["eks"].create_cluster(
            name=name,
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-cluster",
            resourcesVpcConfig={"subnetIds": self.subnets},
            kubernetesNetworkConfig={"serviceIpv4Cidr": "172.20.0.0/16"},
        )

    def nodegroup(
        self,
        cluster: str,
        name: str,
        *,
        ami_type: str = "AL2023_x86_64_STANDARD",
        template: str | None = None,
        by: str = "id",
        version: int = 1,
        tags: dict[str, str] | None = None,
    ) -> None:
        args: dict[str, Any] = {
            "clusterName": cluster,
            "nodegroupName": name,
            "nodeRole": f"arn:aws:iam::{ACCOUNT}:role/eks-node",
            "subnets": self.subnets,
            "amiType": ami_type,
            "tags": tags or {},
        }
        if template is not None:
            ref = {"id": self.templates[template]} if by == "id" else {"name": template}
            args["launchTemplate"] = {**ref, "version": str(version)}
        self.clients["eks"].create_nodegroup(**args)

    def put_proxy(self, value: str) -> int:
        put = self.clients["ssm"].put_parameter(Name=PARAMETER, Value=value, Type="String", Overwrite=True)
        return int(put["Version"])

    def put_ca_bundle(self, pem: str) -> int:
        """The CA bundle parameter a proxy value may name (advanced tier: up to 8 KB, as the README says)."""
        put = self.clients["ssm"].put_parameter(
            Name=CA_PARAMETER,
            Value=pem,
            Type="String",
            Overwrite=True,
            Tier="Advanced" if len(pem) > 4096 else "Standard",
        )
        return int(put["Version"])

    def versions(self, template: str) -> list[dict[str, Any]]:
        ec2 = self.clients["ec2"]
        found = ec2.describe_launch_template_versions(LaunchTemplateId=self.templates[template], MaxResults=200)
        return sorted(found["LaunchTemplateVersions"], key=lambda v: v["VersionNumber"])

    def nodegroup_version(self, cluster: str, name: str) -> str | None:
        ng = self.clients["eks"].describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
        return (ng.get("launchTemplate") or {}).get("version")

    def lease(self, cluster: str) -> dict[str, Any] | None:
        """The cluster's lease item (plain values), None when no rollout holds it."""
        item = (
            self.clients["dynamodb"]
            .get_item(TableName=self.lease_table, Key={"cluster": {"S": cluster}}, ConsistentRead=True)
            .get("Item")
        )
        return {k: next(iter(v.values())) for k, v in item.items()} if item else None

    def create_state_machine(self, substitutions: dict[str, str], name: str = "eks-proxy-rollout") -> str:
        """Our ASL, with DefinitionSubstitutions applied exactly as CloudFormation would (`${Name}`)."""
        definition = ASL.read_text()
        substitutions = {"LeaseTableName": self.lease_table, **substitutions}
        for key, value in substitutions.items():
            definition = definition.replace("${" + key + "}", value)
        assert "${" not in definition, "unsubstituted DefinitionSubstitutions left in the ASL"
        created = self.clients["stepfunctions"].create_state_machine(
            name=name, definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks-proxy-states", type="STANDARD"
        )
        self.state_machine_arn = created["stateMachineArn"]
        return self.state_machine_arn


def build_world(server: Any) -> World:
    """A VPC with two subnets, the alarm topic with an SQS inbox; clusters and node groups are added by the test."""
    clients = {
        name: server.client(name)
        for name in ("ec2", "eks", "ssm", "sns", "sqs", "stepfunctions", "lambda", "iam", "dynamodb")
    }
    ec2 = clients["ec2"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
        for cidr, az in (("10.0.1.0/24", "a"), ("10.0.2.0/24", "b"))
    ]
    topic = clients["sns"].create_topic(Name="eks-proxy-alarm")["TopicArn"]
    queue = clients["sqs"].create_queue(QueueName="alarm-inbox")["QueueUrl"]
    queue_arn = clients["sqs"].get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    create_lease_table(clients["dynamodb"], "eks-proxy-leases")
    return World(server_url=server.url, clients=clients, subnets=subnets, topic_arn=topic, queue_url=queue)


def create_lease_table(dynamodb: Any, name: str) -> None:
    """The lease table as template.yaml declares it (LeaseTable): one item per cluster, key `cluster`."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "cluster", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "cluster", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


class FakeContext:
    """The bits of a LambdaContext Powertools reads."""

    function_name = "eks-proxy-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:eks-proxy-test"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/eks-proxy-test"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000
