"""The demo's CA rotation: a TLS-inspecting proxy's CA bundle named by the value, rolled out, then rotated.

Runs on the demo's world after its first rollout: the same moto server, rules, dispatch handler and state machine
(real rollout step; preflight real on the loopback proxy when there is one, trusting the bundle next to its CAs).
The two corporate CAs are made here (testkit.ca_pem).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Report = Callable[[str], None]


@dataclass
class Demo:
    """What the section needs from the demo run."""

    world: Any
    route: Callable[[dict[str, Any]], set[str]]
    dispatch: Any  # the dispatch handler module
    context: Any  # a Lambda context
    change_event: Callable[[str, str], dict[str, Any]]
    wait: Callable[[Any, str], dict[str, Any]]
    user_data: Callable[[Any, str, str | int | None], bytes]
    cluster: str
    nodegroups: list[tuple[str, str]]  # (node group, launch template) of the node groups in scope


def _corporate_ca(name: str) -> str:
    """A corporate CA valid for a year (testkit.ca_pem: the `cryptography` package, a dev dependency via moto)."""
    from testkit.ca_pem import ca_pem

    return ca_pem(name)


def _installed(demo: Demo) -> dict[str, list[str]]:
    """Per node group: the subjects of the CA bundle its current launch template version installs."""
    from eks_proxy.proxy.ca_bundle import certificates_in
    from eks_proxy.userdata.merge import installed_ca_bundle

    found = {}
    for nodegroup, template in demo.nodegroups:
        version = demo.world.nodegroup_version(demo.cluster, nodegroup)
        pem = installed_ca_bundle(demo.user_data(demo.world, template, version))
        found[nodegroup] = [c.subject for c in certificates_in(pem)]
    return found


def _roll(demo: Demo, report: Report, parameter: str) -> str:
    event = demo.change_event(parameter, str(uuid.uuid4()))
    matched = demo.route(event)
    report(f"  change event of {parameter}: rules that match it: {', '.join(sorted(matched)) or 'none'}")
    started = demo.dispatch.lambda_handler(event, demo.context)
    execution = (
        demo.wait(demo.world.clients["stepfunctions"], started["execution_arn"])
        if started.get("execution_arn")
        else {"status": "-"}
    )
    report(f"  dispatch: {started['status']}, {started['reason']}; state machine: {execution['status']}")
    return str(execution["status"])


def ca_rotation(report: Report, demo: Demo, proxy_url: str) -> bool:
    """Name a CA bundle in the value and roll it out; rotate the bundle, show the plan, roll again, replay."""
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.aws.ssm import attach_ca_bundle
    from eks_proxy.cli.plan import planned_changes
    from eks_proxy.cli.report import ca_bundle_lines
    from eks_proxy.config import Settings
    from eks_proxy.engine.plan import plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.ca_bundle import parse_ca_bundle
    from eks_proxy.proxy.value import parse_proxy_value

    from testkit.engine_world import CA_PARAMETER, PARAMETER

    world = demo.world
    first, second = (_corporate_ca(f"Example Corp TLS Inspection CA {year}") for year in (2026, 2027))
    version = world.put_ca_bundle(first)
    report(f"  PutParameter {CA_PARAMETER} = {parse_ca_bundle(first).describe()}  (version {version})")
    value = json.dumps({"http_proxy": proxy_url, "ca_bundle": CA_PARAMETER})
    report(f"  PutParameter {PARAMETER} --overwrite = {value}  (version {world.put_proxy(value)})")
    named = _roll(demo, report, PARAMETER)
    installed = _installed(demo)
    for nodegroup, subjects in installed.items():
        report(f"    {demo.cluster}/{nodegroup}: installs {', '.join(subjects) or 'no CA bundle'}")

    report("  the rotation: the proxy value stays, the bundle parameter gets the next CA")
    version = world.put_ca_bundle(second)
    report(f"  PutParameter {CA_PARAMETER} --overwrite = {parse_ca_bundle(second).describe()}  (version {version})")
    clients = AwsClients()
    settings = Settings(cluster_names=(demo.cluster,), alarm_topic_arn=world.topic_arn)
    config = attach_ca_bundle(clients.ssm, parse_proxy_value(value))
    report(f"  `eks-proxy plan --cluster {demo.cluster}` now (read-only):")
    for change in planned_changes(clients, plan_scope(clients, settings, Scope("all", (demo.cluster,)), config)):
        lines = ca_bundle_lines(change)
        if lines:
            report(f"    {demo.cluster}/{change.decision.nodegroup}: {change.decision.outcome.value}")
            for line in lines:
                report(f"    {line}")
    rotated = _roll(demo, report, CA_PARAMETER)
    after = _installed(demo)
    for nodegroup, subjects in after.items():
        report(f"    {demo.cluster}/{nodegroup}: installs {', '.join(subjects) or 'no CA bundle'}")
    replay = demo.dispatch.lambda_handler(demo.change_event(CA_PARAMETER, str(uuid.uuid4())), demo.context)
    report(f"  the rotation's event again: dispatch {replay['status']}")
    expected_before = {n: ["CN=Example Corp TLS Inspection CA 2026"] for n, _ in demo.nodegroups}
    expected_after = {n: ["CN=Example Corp TLS Inspection CA 2027"] for n, _ in demo.nodegroups}
    return (
        named == rotated == "SUCCEEDED"
        and installed == expected_before
        and after == expected_after
        and replay["status"] in {"up_to_date", "duplicate"}
    )
