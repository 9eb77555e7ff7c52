"""`make demo`: the whole product on an embedded AWS emulator, in one process, no network, well under a minute.

What is real: a moto server on loopback reached over HTTP by boto3 (AWS_ENDPOINT_URL), real PutParameter calls, the
template's own EventBridge rule patterns (read from template.yaml) routing the "Parameter Store Change" event, the
real dispatch, rollout_step and preflight handlers, statemachine/rollout.asl.json executed by moto's Step Functions
engine, and the preflight's probe through a real HTTP CONNECT proxy to a TLS registry stand-in, both on 127.0.0.1
(demo/loopback.py; without openssl the preflight falls back to a simulated one and the report says so).

What is simulated, and labelled so in the report: the EKS node group update (UpdateNodegroupVersion/DescribeUpdate
are our moto extension: the version switches, no instance is replaced) and the Kubernetes side of the pull
verification: the real verify handler (EKS token, one pod per node found by its EC2 tags, cleanup) talks to
testkit/fake_k8s.py's API server, which reports every pod's image as pulled.

Pieces shared with the tests (testkit/) rather than copied: moto_server.MotoServer, repo.load_event/load_handler,
engine_world (the AWS world), moto_eks_updates (EKS updates), moto_lambda_handlers (Lambda tasks run in-process),
rules.make_router (rules from template.yaml), cfn_template (log groups, query and alarm names), nodesim.pki (the
throw-away CAs), fake_k8s (the Kubernetes API and the PointedAtFake cluster_access seam).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
STACK = "eks-proxy"
DIFF_LINES = 17
SIMULATED = "[simulated]"


def _prepare_environment() -> None:
    """Fake credentials and the function environment, before boto3, Powertools or moto are imported."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",  # noqa: S106 - fake: the moto server accepts anything
        AWS_SESSION_TOKEN="demo",  # noqa: S106
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        POWERTOOLS_SERVICE_NAME="eks-proxy",
        POWERTOOLS_METRICS_NAMESPACE="EksProxy",
        POWERTOOLS_TRACE_DISABLED="true",
    )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # `testkit.*` and `demo.*` are imported from the repository


class Report:
    """The demo's readable output (stdout); everything the functions log goes to the log file instead."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __call__(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def section(self, title: str) -> None:
        self(f"\n== {title}")


def _change_event(parameter: str, event_id: str) -> dict[str, Any]:
    """events/ssm-parameter-update.json with this change's id, time and parameter name filled in."""
    from testkit.repo import load_event

    event = load_event("ssm-parameter-update")
    event["id"] = event_id
    event["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["resources"] = [f"arn:aws:ssm:{REGION}:{event['account']}:parameter{parameter}"]
    event["detail"]["name"] = parameter
    return event


def _simulated_preflight(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "ok": True,
        "result": "ok",
        "detail": f"{SIMULATED} no proxy on this machine; CONNECT {event.get('registry')} not attempted",
        "latency_ms": {},
    }


def _simulated_verify(event: dict[str, Any], context: Any) -> dict[str, Any]:
    node = f"ip-10-0-1-{10 + len(event.get('nodegroup', '')) % 50}.{REGION}.compute.internal"
    return {
        "ok": True,
        "nodes": [{"node": node, "result": "pulled", "message": f"{SIMULATED} {event.get('image')}"}],
        "summary": f"{SIMULATED} 1/1 node pulled {event.get('image')}",
    }


def _wait(sfn: Any, arn: str, timeout: float = 45) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution
        time.sleep(0.1)


def _user_data(world: Any, template: str, version: str | int | None) -> bytes:
    for v in world.versions(template):
        if str(v["VersionNumber"]) == str(version):
            data = (v.get("LaunchTemplateData") or {}).get("UserData") or ""
            return base64.b64decode(data) if data else b""
    return b""


def _template_resources(kind: str) -> list[dict[str, Any]]:
    from testkit.cfn_template import Stack, load_template

    template = load_template()
    stack = Stack(template, {"ClusterNames": "prod"})
    return [
        stack.resolve(resource["Properties"])
        for resource in template["Resources"].values()
        if resource["Type"] == kind and "Condition" not in resource
    ]


def _alarm_names() -> list[str]:
    from testkit.cfn_template import load_template

    return [name for name, r in load_template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"]


def _metrics_emitted(log_path: Path) -> dict[str, float]:
    """Metric name -> sum, from the EMF lines the functions printed (what CloudWatch would turn into metrics)."""
    sums: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"].get("CloudWatchMetrics", []):
            for metric in directive.get("Metrics", []):
                value = document.get(metric["Name"], 0)
                total = sum(value) if isinstance(value, list) else float(value)
                sums[metric["Name"]] = sums.get(metric["Name"], 0) + total
    return sums


def _new_value(proxy_url: str) -> str:
    return json.dumps({"http_proxy": proxy_url, "no_proxy": [".corp.example"]})


@dataclass
class Demo:
    """What the sections share: the emulator, the world, the wired functions and what earlier sections found."""

    report: Report
    server: Any
    loopback: Any  # demo.loopback.Loopback, None when the preflight is simulated
    world: Any = None
    kubernetes: Any = None  # testkit.fake_k8s.FakeKubernetes, None when the verification is simulated
    new_value: str = ""
    dispatch: Any = None  # the dispatch handler module
    planned: dict[str, Any] = field(default_factory=dict)  # node group -> what `eks-proxy plan` showed
    route: Any = None  # the template's rules on the emulator
    event: dict[str, Any] = field(default_factory=dict)  # the change event
    sfn: Any = None
    execution: dict[str, Any] = field(default_factory=dict)
    verifications: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, Any] = field(default_factory=dict)  # node group -> its rollout record


def run(report: Report, log: TextIO, log_path: Path, workdir: Path, keep_logs: bool = False) -> int:
    started_at = time.monotonic()
    from demo.loopback import Loopback, start_loopback
    from demo.scenario import CASES
    from testkit import moto_eks_updates, moto_lambda_handlers
    from testkit.moto_server import MotoServer

    moto_eks_updates.install()
    moto_lambda_handlers.install()
    why_simulated = ""
    try:
        loopback: Loopback | None = start_loopback(workdir)
    except (OSError, subprocess.CalledProcessError, AssertionError) as missing:  # no openssl: preflight simulated
        loopback = None
        why_simulated = f"{type(missing).__name__}: {missing}"[:200]
    server = MotoServer()
    server.start()
    demo = Demo(report=report, server=server, loopback=loopback)
    try:
        os.environ["AWS_ENDPOINT_URL"] = server.url
        os.environ["MOTO_PORT"] = str(server.port)  # where moto's Step Functions engine sends Lambda Invoke
        server.execute_state_machines(True)
        _introduction(demo, why_simulated)
        _the_account(demo, workdir)
        _the_proxy_parameter(demo)
        _wire_the_functions(demo)
        if not _the_change_event(demo):
            return 1
        _dispatch_and_rollout(demo)
        if not _per_nodegroup(demo):
            return 1
        replay_clean = _replay(demo)
        broken_ok = _broken_value(demo) if loopback else True
        _status(demo)
        fleet_code = _fleet(demo)
        _cloudwatch(demo, log, log_path, keep_logs)
        ca_ok = _ca_rotation(demo)
        report(f"\ndone in {time.monotonic() - started_at:.1f} s")
        ok = (
            demo.execution["status"] == "SUCCEEDED"
            and replay_clean
            and broken_ok
            and all(demo.planned[c.nodegroup].decision.outcome.value == c.expected for c in CASES)
            and fleet_code == 3  # the out-of-scope node groups (and, after the broken value, the rest) are not current
            and ca_ok
        )
        return 0 if ok else 1
    finally:
        server.execute_state_machines(False)
        server.stop()
        if loopback:
            loopback.close()
        if demo.kubernetes:
            demo.kubernetes.stop()


def _introduction(demo: Demo, why_simulated: str) -> None:
    report, loopback = demo.report, demo.loopback
    url = demo.server.url
    report(f"eks-proxy demo: an AWS emulator (moto) on {url}, region {REGION}, fake credentials, no network")
    if loopback:
        report(
            f"  the new proxy: a real HTTP CONNECT proxy on {loopback.proxy_url}, allowing only "
            f"{loopback.registry_probe} (a TLS registry stand-in on 127.0.0.1:{loopback.registry_port})"
        )
    else:
        report(f"  {SIMULATED} preflight: no loopback proxy ({why_simulated})")


def _the_account(demo: Demo, workdir: Path) -> None:
    """1. The VPC, the cluster and its node groups; with a loopback proxy, the fake Kubernetes API and the nodes."""
    from demo.loopback import start_kubernetes
    from demo.scenario import CASES, build_demo_world

    report = demo.report
    report.section("1. The account: VPC 10.0.0.0/16, EKS cluster 'prod', managed node groups")
    demo.world = build_demo_world(demo.server)
    for case in CASES:
        where = f"launch template {case.template} v1" if case.template else "no launch template"
        report(f"  {case.nodegroup:<17} {case.ami_type:<23} {where:<40} {case.what}")

    demo.kubernetes = start_kubernetes(workdir) if demo.loopback else None
    if demo.kubernetes:
        nodes = _nodes(demo.world, [c.nodegroup for c in CASES], per_nodegroup=2)
        for node in nodes:
            demo.kubernetes.outcomes[node] = "pulled"
        report(
            f"  {len(nodes)} EC2 instances tagged eks:cluster-name/eks:nodegroup-name (2 per node group): the "
            "nodes the verification looks for"
        )


def _the_proxy_parameter(demo: Demo) -> None:
    """2. The value the node groups have not got yet, then the new one."""
    from eks_proxy.cli.report import redact

    from demo.scenario import FIRST_PROXY, NEW_PROXY
    from testkit.engine_world import PARAMETER

    report, world = demo.report, demo.world
    report.section("2. The proxy parameter")
    demo.new_value = _new_value(demo.loopback.proxy_url) if demo.loopback else NEW_PROXY
    first = world.put_proxy(FIRST_PROXY)
    report(f"  PutParameter {PARAMETER} = {redact(FIRST_PROXY)}  (version {first}: the node groups do not have it yet)")
    version = world.put_proxy(demo.new_value)
    report(f"  PutParameter {PARAMETER} --overwrite = {redact(demo.new_value)}  (version {version})")


def _wire_the_functions(demo: Demo) -> None:
    """The state machine with the real step, preflight and verify handlers (or their simulations), the dispatch
    handler, and what `eks-proxy plan --cluster prod` would say now (read-only), kept for the report's diffs."""
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.cli.plan import planned_changes
    from eks_proxy.config import Settings
    from eks_proxy.engine.plan import plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.value import parse_proxy_value

    from demo.scenario import CLUSTER
    from testkit import moto_lambda_handlers
    from testkit.repo import load_handler

    world, loopback = demo.world, demo.loopback
    env = world.env(ROLLOUT_WAIT_SECONDS="0", CLUSTER_NAMES=CLUSTER)
    if loopback:
        env.update(REGISTRY_PROBE=loopback.registry_probe, PREFLIGHT_CA_BUNDLE=str(loopback.ca_bundle))
    step_handler = load_handler("rollout_step", env).lambda_handler
    preflight_handler = load_handler("preflight", env).lambda_handler if loopback else _simulated_preflight
    verify_handler = _simulated_verify
    if demo.kubernetes:
        verify: Any = load_handler("verify", {**env, "VERIFY_POLL_SECONDS": "0.05", "VERIFY_TIMEOUT_SECONDS": "30"})
        verify.cluster_access = _pointed_at(verify.cluster_access, demo.kubernetes)
        verify_handler = verify.lambda_handler
    world.create_state_machine(
        {
            "RolloutStepFunctionArn": moto_lambda_handlers.register(f"{STACK}-rollout-step", step_handler),
            "PreflightFunctionArn": moto_lambda_handlers.register(f"{STACK}-preflight", preflight_handler),
            "VerifyFunctionArn": moto_lambda_handlers.register(f"{STACK}-verify", _recorded(verify_handler)),
        },
        name=f"{STACK}-rollout",
    )  # fmt: skip
    demo.dispatch = load_handler("dispatch", {**env, "STATE_MACHINE_ARN": world.state_machine_arn})

    clients = AwsClients(region=REGION)
    settings = Settings(cluster_names=(CLUSTER,), alarm_topic_arn=world.topic_arn)
    decisions = plan_scope(clients, settings, Scope("all", (CLUSTER,)), parse_proxy_value(demo.new_value))
    demo.planned = {c.decision.nodegroup: c for c in planned_changes(clients, decisions)}


def _the_change_event(demo: Demo) -> bool:
    """3. The change event through the template's own rules; False when the proxy rule does not match it."""
    from demo.scenario import CLUSTER
    from testkit.engine_world import PARAMETER
    from testkit.rules import make_router

    report = demo.report
    report.section("3. The change event, routed by the template's own rules")
    demo.route = make_router(demo.server, {"ClusterNames": CLUSTER})
    event_id = str(uuid.uuid4())
    demo.event = _change_event(PARAMETER, event_id)
    matched = demo.route(demo.event)
    report(f'  "Parameter Store Change" {demo.event["detail"]["operation"]} {PARAMETER} (event id {event_id})')
    report(f"  rules of template.yaml that match it (EventBridge on the emulator): {', '.join(sorted(matched))}")
    if "ProxyParameterChanged" not in matched:
        report("  ERROR: the ProxyParameterChanged rule did not match the change")
        return False
    lookalike = _change_event(f"{PARAMETER}-old", str(uuid.uuid4()))
    report(f"  a look-alike ({PARAMETER}-old) matches: {sorted(demo.route(lookalike)) or 'nothing'}")
    return True


def _dispatch_and_rollout(demo: Demo) -> None:
    """4. The real dispatch handler starts the rollout; the state machine runs it to its end."""
    from demo.scenario import CLUSTER
    from testkit import moto_lambda_handlers
    from testkit.engine_world import FakeContext

    report, world, kubernetes = demo.report, demo.world, demo.kubernetes
    report.section("4. Dispatch (the real handler) and the rollout (the real state machine and step handler)")
    dispatched = demo.dispatch.lambda_handler(demo.event, FakeContext())
    report(f"  dispatch: {dispatched['status']}, {dispatched['reason']}")
    report(f"  execution: {dispatched['execution_name']}")
    sfn = demo.sfn = world.clients["stepfunctions"]
    execution = demo.execution = _wait(sfn, dispatched["execution_arn"])
    report(f"  state machine {world.state_machine_arn.rsplit(':', 1)[-1]}: {execution['status']}")
    calls = Counter(e.get("action", name.removeprefix(f"{STACK}-")) for name, e in moto_lambda_handlers.INVOCATIONS)
    report("  task invocations: " + ", ".join(f"{action} {count}" for action, count in calls.items()))
    held = world.lease(CLUSTER)
    report(
        f"  cluster lease (DynamoDB {world.lease_table}, one rollout per cluster): "
        + (f"still held by {held.get('owner')}" if held else "taken by the rollout, released at its end")
    )
    preflight = _preflight_output(sfn, dispatched["execution_arn"])
    report(f"  preflight: {preflight}")
    report(
        f"  {SIMULATED} the EKS node group update (our moto extension: the launch template version switches, no "
        "instance is replaced)"
    )
    if kubernetes:
        report(
            f"  {SIMULATED} the Kubernetes API the real verify handler talks to (EKS token, one pod per node, "
            "cleanup): a local fake API server that reports each pod's image as pulled"
        )
    else:
        report(f"  {SIMULATED} the pull verification (no Kubernetes API here)")
    demo.verifications = list(VERIFICATIONS)  # each node group's verify ran in its own child execution
    if kubernetes:
        created = sum(1 for r in kubernetes.requests if r.method == "POST" and r.path.endswith("/pods"))
        deleted = sum(1 for r in kubernetes.requests if r.method == "DELETE" and "/pods/" in r.path)
        refused = kubernetes.unauthorized
        report(f"  verification pods: {created} created, {deleted} deleted; refused for a bad EKS token: {refused}")
    output = json.loads(execution.get("output") or "{}")
    demo.outcomes = {r["nodegroup"]: r for r in output.get("results", [])}


def _per_nodegroup(demo: Demo) -> bool:
    """5. Per node group: the decision, the versions, the user data diff, the outcome; False when a rolled version
    differs from the plan."""
    from eks_proxy.cli.report import redact, trim, user_data_diff

    from demo.scenario import CASES, CLUSTER

    report, world = demo.report, demo.world
    report.section("5. Per node group: decision, launch template versions, user data diff, rollout outcome")
    for case in CASES:
        change = demo.planned[case.nodegroup]
        d = change.decision
        after = world.nodegroup_version(CLUSTER, case.nodegroup)
        report(f"  {CLUSTER}/{case.nodegroup} ({d.node_os or case.ami_type}): {case.what}")
        report(f"    decision:    {d.outcome.value}: {redact(d.reason)}")
        if d.remedy:
            report(f"    remedy:      {redact(d.remedy)}")
        if case.template is None:
            report("    versions:    no launch template (nothing to write to)")
        elif after == "1":
            report(f"    versions:    launch template {case.template}: v1 (unchanged)")
        else:
            report(f"    versions:    launch template {case.template}: v1 -> v{after} (created and rolled)")
        if d.desired_fingerprint:
            report(f"    fingerprint: {d.current_fingerprint or 'none'} -> {d.desired_fingerprint}")
        if d.needs_rollout and case.template:
            rolled = _user_data(world, case.template, after)
            if change.after != rolled:
                report("    ERROR: the rolled version differs from the plan")
                return False
            diff = user_data_diff(change.before, rolled, f"{case.template} v1", f"{case.template} v{after}")
            report(f"    user data diff (unified, first {DIFF_LINES} lines):")
            for line in trim(diff, DIFF_LINES):
                report(f"      {line}")
        verified = next((v for v in demo.verifications if f" of {case.nodegroup} " in v.get("summary", "")), None)
        if verified or (d.needs_rollout and not demo.kubernetes):
            summary = verified["summary"] if verified else "pulled"
            report(f"    verified:    {summary} {SIMULATED}")
        record = demo.outcomes.get(case.nodegroup)
        report(
            f"    rollout:     {record['outcome']}: {record['summary']}" if record else "    rollout:     not rolled"
        )
    return True


def _replay(demo: Demo) -> bool:
    """6. The same event again: True when it created no version, no execution and no node group update."""
    from testkit import moto_eks_updates
    from testkit.engine_world import FakeContext

    report, world, sfn = demo.report, demo.world, demo.sfn
    report.section("6. Replay: the same event delivered again")
    versions_before = _version_count(world)
    executions_before = len(sfn.list_executions(stateMachineArn=world.state_machine_arn)["executions"])
    updates_before = len(moto_eks_updates.CALLS)
    demo.route(demo.event)
    replayed = demo.dispatch.lambda_handler(demo.event, FakeContext())
    versions_after = _version_count(world)
    executions_after = len(sfn.list_executions(stateMachineArn=world.state_machine_arn)["executions"])
    updates_after = len(moto_eks_updates.CALLS)
    report(f"  dispatch: {replayed['status']}, {replayed['reason']}")
    report(
        f"  new launch template versions: {versions_after - versions_before}, new executions: "
        f"{executions_after - executions_before}, new node group updates: {updates_after - updates_before}"
    )
    return (versions_after, executions_after, updates_after) == (versions_before, executions_before, updates_before)


def _broken_value(demo: Demo) -> bool:
    """7. A value pointing at a dead port: True when the preflight failed it, nothing changed and one alarm went out."""
    from eks_proxy.cli.report import redact

    from testkit.engine_world import PARAMETER, FakeContext
    from testkit.repo import free_port
    from testkit.sfn_clock import fast_forward

    report, world, sfn = demo.report, demo.world, demo.sfn
    report.section("7. A broken value: the preflight stops it before anything changes")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the dead proxy
    broken_version = world.put_proxy(dead)
    report(f"  PutParameter {PARAMETER} --overwrite = {dead}  (version {broken_version}: nothing listens there)")
    world.alarms()  # start from an empty inbox
    before = _version_count(world)
    broken_event = _change_event(PARAMETER, str(uuid.uuid4()))
    demo.route(broken_event)
    started = demo.dispatch.lambda_handler(broken_event, FakeContext())
    with fast_forward() as clock:  # the preflight's retries wait minutes; moto's engine need not
        failed = _wait(sfn, started["execution_arn"])
    report(f"  dispatch: {started['status']}; state machine: {failed['status']} ({failed.get('error')})")
    waits = ", ".join(f"{seconds:g}" for seconds in clock.retries)
    report(
        f"  {SIMULATED} the preflight probed {len(clock.retries) + 1} times; its retry waits ({waits} s) fast-forwarded"
    )
    report(f"  preflight: {_preflight_output(sfn, started['execution_arn'])}")
    report(f"  new launch template versions: {_version_count(world) - before}")
    alarms = world.alarms()
    for alarm in alarms:
        report(f'  alarm topic: "{alarm["subject"]}": {redact(str(alarm["message"].get("summary")))}')
    return bool(failed["status"] == "FAILED" and _version_count(world) == before and len(alarms) == 1)


def _status(demo: Demo) -> None:
    """8. What `eks-proxy status` shows."""
    from eks_proxy.cli.status import find_rollouts, render_rollouts

    demo.report.section("8. `eks-proxy status` (Step Functions ListExecutions/DescribeExecution, newest first)")
    for line in render_rollouts(find_rollouts(demo.sfn, demo.world.state_machine_arn, limit=5), cluster=None):
        demo.report(f"  {line}")


def _fleet(demo: Demo) -> int:
    """9. What `eks-proxy fleet` shows; its exit code."""
    from demo.observe import fleet_lines
    from demo.scenario import CLUSTER

    report = demo.report
    report.section("9. `eks-proxy fleet`: which node groups carry the current value, which don't and why")
    fleet_code, fleet_output = fleet_lines(demo.world.state_machine_arn, CLUSTER)
    for line in fleet_output:
        report(f"  {line}")
    report(f"  (exit {fleet_code}: 0 when every node group carries the current value, 3 when some do not)")
    return fleet_code


def _cloudwatch(demo: Demo, log: TextIO, log_path: Path, keep_logs: bool) -> None:
    """10. Log groups, saved queries, the metrics this run emitted, alarms, the dashboard: what CloudWatch shows."""
    from demo.observe import dashboard_lines, dashboard_url, demo_logs

    report = demo.report
    report.section("10. Where this shows up in CloudWatch once deployed (stack name eks-proxy)")
    log.flush()
    groups = [r["LogGroupName"] for r in _template_resources("AWS::Logs::LogGroup")]
    queries = [r["Name"] for r in _template_resources("AWS::Logs::QueryDefinition")]
    report(f"  log groups: {', '.join(groups)}")
    report(f"  saved Logs Insights queries: {'; '.join(queries)}")
    metrics = _metrics_emitted(log_path)
    shown = ", ".join(f"{name}={value:g}" for name, value in sorted(metrics.items()))
    report(f"  metrics (namespace EksProxy) emitted in this run: {shown or 'none'}")
    report(f"  alarms: {', '.join(_alarm_names())}")
    report(f"  dashboard (output DashboardUrl): {dashboard_url()}")
    report("  what its widgets would show for this run (EMF lines above, the executions, the alarms' thresholds):")
    executions = demo.sfn.list_executions(stateMachineArn=demo.world.state_machine_arn)["executions"]
    for line in dashboard_lines(demo_logs(log_path), executions, dispatch_errors=0):
        report(f"    {line}")
    kept = str(log_path) if keep_logs else "not kept (make demo DEMO_ARGS='--logs FILE' keeps them)"
    report(f"  the functions' JSON log lines of this run: {kept}")


def _ca_rotation(demo: Demo) -> bool:
    """11. A CA bundle named in the value, rolled out, then rotated (demo/ca_rotation.py); True when it went right."""
    from demo.ca_rotation import Demo as CaRotationInput
    from demo.ca_rotation import ca_rotation
    from demo.scenario import CASES, CLUSTER, NEW_PROXY
    from testkit.engine_world import FakeContext

    demo.report.section("11. A TLS-inspecting proxy: its CA bundle named in the value, rolled out, then rotated")
    in_scope = [(c.nodegroup, c.template) for c in CASES if c.template and c.expected != "out_of_scope"]
    return ca_rotation(
        demo.report,
        CaRotationInput(
            demo.world, demo.route, demo.dispatch, FakeContext(), _change_event, _wait, _user_data, CLUSTER, in_scope
        ),
        proxy_url=demo.loopback.proxy_url if demo.loopback else NEW_PROXY,
    )


def _nodes(world: Any, nodegroups: list[str], per_nodegroup: int) -> list[str]:
    """Running instances tagged as EKS tags managed node group instances; their private DNS names are the nodes."""
    names: list[str] = []
    for nodegroup in nodegroups:
        tags = [{"Key": "eks:cluster-name", "Value": "prod"}, {"Key": "eks:nodegroup-name", "Value": nodegroup}]
        reservation = world.clients["ec2"].run_instances(
            ImageId="ami-12c6146b",  # an AMI moto knows
            MinCount=per_nodegroup,
            MaxCount=per_nodegroup,
            SubnetId=world.subnets[0],
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        names.extend(i["PrivateDnsName"] for i in reservation["Instances"])
    return names


def _pointed_at(cluster_access: Any, kubernetes: Any) -> Any:
    """The verify handler's `cluster_access` with DescribeCluster's endpoint and CA swapped for the fake API server's
    (the seam the rollout tests use: testkit.fake_k8s.PointedAtFake)."""
    from testkit.fake_k8s import PointedAtFake

    return lambda eks, name: cluster_access(PointedAtFake(eks, kubernetes), name)


VERIFICATIONS: list[dict[str, Any]] = []  # every verify result, in order


def _recorded(handler: Any) -> Any:
    """The verify handler, its results kept for the report (they live in the node groups' child executions)."""

    def run(event: dict[str, Any], context: Any) -> Any:
        result = handler(event, context)
        VERIFICATIONS.append(result)
        return result

    return run


def _version_count(world: Any) -> int:
    return sum(len(world.versions(t)) for t in world.templates)


def _preflight_output(sfn: Any, arn: str) -> str:
    """The Preflight state's result, from the execution history (what the console shows for that state)."""
    from eks_proxy.cli.report import redact

    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = False
    for event in events:
        name = (event.get("stateEnteredEventDetails") or {}).get("name")
        if name == "Preflight":
            entered = True
        details = event.get("lambdaFunctionSucceededEventDetails") or {}
        if entered and details.get("output"):
            result = json.loads(details["output"])
            if "result" in result and "ok" in result:
                latency = result.get("latency_ms", {}).get("total")
                took = f", {latency} ms" if latency is not None else ""
                return f"{result['result']}: {redact(str(result.get('detail')))}{took}"
    return "not run"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; the report goes to stdout, the functions' logs to a file (kept with --logs)."""
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--logs", type=Path, help="keep the functions' JSON log lines in this file")
    args = parser.parse_args(argv)
    _prepare_environment()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's access log
    warnings.filterwarnings("ignore", message="No application metrics to publish")  # a replay emits none
    report = Report(sys.stdout)
    with tempfile.TemporaryDirectory(prefix="eks-proxy-demo-") as scratch:
        workdir = Path(scratch)
        log_path = args.logs or workdir / "functions.log"
        with log_path.open("w") as log:
            # moto's engine logs the failures it executes (the broken value's PreflightFailed): into the log file too.
            logging.basicConfig(stream=log, level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
            sys.stdout = log  # Powertools logs and EMF metrics print to stdout: keep them out of the report
            try:
                return run(report, log, log_path, workdir, keep_logs=bool(args.logs))
            finally:
                sys.stdout = report.out


if __name__ == "__main__":
    raise SystemExit(main())
