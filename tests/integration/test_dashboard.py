"""The CloudWatch dashboard and the saved Logs Insights queries of template.yaml, held against what the code emits.

- Every metric on the dashboard is registered in eks_proxy/metrics.py with the same dimensions, and the code emits
  it (the emitting call names the registry constant); or it is Step Functions' / Lambda's own metric of a resource of
  this stack. Every metric the functions printed in a `make demo` run (EMF) is registered with those dimensions.
- Every alarm of the template is on the alarm widget.
- The log widget's query and every saved query run (tests/integration/logs_insights.py) over the JSON log lines
  the functions wrote in a `make demo` run, plus the lines the real rollout step handler writes when it records each
  outcome a node group can end in; the outcomes query shows every one of them.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from eks_proxy import metrics as registry
from eks_proxy.engine import steps

from testkit import moto_eks_updates
from testkit.cfn_template import Stack, load_template
from testkit.engine_world import FakeContext
from testkit.logs_insights import events_from_lines, run_query
from testkit.moto_server import MotoServer
from testkit.repo import REPO, load_event, load_handler, structured_logs
from testkit.rollout import Stubs, finished, rollout_world
from testkit.sfn_clock import fast_forward
from testkit.tools import require_tool

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboard-demo-run")]  # one demo run per test run

TEMPLATE = load_template()
STACK = Stack(TEMPLATE, {"ClusterNames": "prod"})
# Step Functions' and Lambda's own metrics the dashboard may show, with the dimension naming our resource.
AWS_METRICS = {
    "AWS/States": ({"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut",
                    "ExecutionsAborted"}, "StateMachineArn", "ref:RolloutStateMachine"),
    "AWS/Lambda": ({"Errors", "Invocations", "Throttles", "Duration"}, "FunctionName", "ref:DispatchFunction"),
}  # fmt: skip
_INSIGHTS = re.compile(
    r"^SELECT (?:SUM|AVG|MAX|MIN|COUNT)\((?P<name>\w+)\) FROM SCHEMA\((?P<namespace>[\w/]+), (?P<dims>[\w, ]+)\)"
    r"(?: GROUP BY (?P<group>[\w, ]+))?$"
)


def dashboard() -> dict[str, Any]:
    body = STACK.resolve(TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    document: dict[str, Any] = json.loads(body)
    return document


def environment() -> dict[str, str]:
    env: dict[str, str] = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    return env


def shown_metrics() -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every metric on the dashboard; Metrics Insights dimensions map to ''."""
    found: list[tuple[str, str, dict[str, str]]] = []
    for widget in dashboard()["widgets"]:
        if widget["type"] != "metric":
            continue
        for entry in widget["properties"]["metrics"]:
            if isinstance(entry[0], dict):
                match = _INSIGHTS.match(entry[0]["expression"])
                assert match, entry[0]["expression"]
                dims = {name.strip(): "" for name in match["dims"].split(",")}
                assert set((match["group"] or "").replace(" ", "").split(",")) <= set(dims), entry
                found.append((match["namespace"], match["name"], dims))
                continue
            fields = [item for item in entry if not isinstance(item, dict)]
            namespace, name, pairs = fields[0], fields[1], fields[2:]
            assert "..." not in fields and len(pairs) % 2 == 0, entry
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


def emitted_in_code() -> set[str]:
    """The registry constants named by code outside the registry (functions and the package), as metric names.

    Also checks that nothing emits around the registry (`add_metric` / `single_metric` outside eks_proxy/metrics.py).
    """
    constants = {name for name in dir(registry) if name.isupper() and isinstance(getattr(registry, name), str)}
    names: set[str] = set()
    package = REPO / "layers/eks_proxy/eks_proxy"
    files = [*sorted((REPO / "functions").glob("*/app.py")), *sorted(package.rglob("*.py"))]
    for path in files:
        if path == package / "metrics.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"add_metric", "single_metric"}:
                raise AssertionError(f"{path}: emits {node.attr} directly, not through eks_proxy.metrics.emit")
            if isinstance(node, ast.Name) and node.id in {"single_metric"}:
                raise AssertionError(f"{path}: uses single_metric directly")
            name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
            if name in constants and name not in {"NAMESPACE", "SERVICE_DIMENSION", "CLUSTER"}:
                names.add(getattr(registry, name))
    return names


# ------------------------------------------------------------------------------------------------------ a demo run
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """One `make demo` run (`python -m demo --logs FILE`): its report and the JSON lines the functions wrote."""
    require_tool("openssl")
    logs = tmp_path_factory.mktemp("demo") / "functions.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--logs", str(logs)], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, logs.read_text().splitlines()


@pytest.fixture(scope="module")
def demo_logs(demo_run: tuple[str, list[str]]) -> list[str]:
    return demo_run[1]


@pytest.fixture(scope="module")
def outcome_logs() -> Iterator[list[str]]:
    """The lines the real rollout step handler writes when it records every outcome its `record` action accepts."""
    saved = dict(os.environ)
    module = load_handler(
        "rollout_step",
        {
            "CLUSTER_NAMES": "prod",
            "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:alarms",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "POWERTOOLS_SERVICE_NAME": "eks-proxy",
            "POWERTOOLS_METRICS_NAMESPACE": "EksProxy",
        },
    )
    buffer = structured_logs(module)
    for index, outcome in enumerate(sorted(steps._OUTCOME_METRICS)):
        item: dict[str, Any] = {
            "refresh": {"outcome": "create_version", "launch_template": {"id": "lt-1"}, "version_before": 1,
                        "version_after": 2, "reason": "proxy configuration differs"},
            "update": {"status": "Failed" if outcome == "failed" else "Successful", "update_id": "u-1"},
        }  # fmt: skip
        if outcome == "rolled_back":
            item["rollback"] = {"status": "Successful", "update_id": "u-2", "version": 1}
        event = {"action": "record", "change_id": f"change-{index}", "cluster": "prod",
                 "nodegroup": f"ng-{outcome}", "outcome": outcome, "item": item}  # fmt: skip
        module.lambda_handler(event, FakeContext())
    yield buffer.getvalue().splitlines()
    os.environ.clear()
    os.environ.update(saved)


# ------------------------------------------------------------------------------------------------------ metrics
def test_every_metric_shown_is_registered_with_its_dimensions_and_emitted_by_the_code() -> None:
    env = environment()
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == registry.NAMESPACE
    emitted = emitted_in_code()
    ours = 0
    for namespace, name, dims in shown_metrics():
        if namespace in AWS_METRICS:
            allowed, dimension, resource = AWS_METRICS[namespace]
            assert name in allowed and dims == {dimension: resource}, (namespace, name, dims)
            continue
        assert namespace == registry.NAMESPACE, namespace
        spec = registry.spec_of(name, {k: "x" for k in dims if k != registry.SERVICE_DIMENSION})
        assert tuple(sorted(dims)) == spec.dimension_set, (name, dims)
        assert dims[registry.SERVICE_DIMENSION] in ("", env["POWERTOOLS_SERVICE_NAME"]), (name, dims)
        assert name in emitted, f"{name} is on the dashboard but no code emits it"
        ours += 1
    assert ours >= 10


def test_the_dashboard_answers_what_the_readme_promises() -> None:
    names = {name for _, name, _ in shown_metrics()}
    per_cluster = {name for _, name, dims in shown_metrics() if "cluster" in dims}
    assert {"RolloutStarted", "ExecutionsSucceeded", "RolloutFailed"} <= names  # rollouts started/succeeded/failed
    assert {"NodegroupsRolled", "NodegroupsFailed", "NodegroupsRolledBack", "NodegroupsSkipped"} <= per_cluster
    assert {"VerifyNodesPassed", "VerifyNodesFailed", "VerifyErrors"} <= names
    assert {"PreflightLatency", "PreflightFailed"} <= names
    assert "Errors" in names  # dispatch errors
    # Outcomes other work registers: shown as soon as the code emits them.
    for pending in ("NodegroupsGone", "NodegroupsMovedOn", "RollbackFailed", "DriftPersisting"):
        if pending in emitted_in_code():
            assert pending in names, f"{pending} is emitted: put it on the dashboard"


def test_every_alarm_is_on_the_alarm_widget() -> None:
    alarms = {f"getatt:{logical_id}.Arn" for logical_id, resource in TEMPLATE["Resources"].items()
              if resource["Type"] == "AWS::CloudWatch::Alarm"}  # fmt: skip
    widgets = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    assert len(widgets) == 1
    assert set(widgets[0]["properties"]["alarms"]) == alarms


def test_metrics_printed_by_the_functions_are_registered(demo_logs: list[str]) -> None:
    printed: set[tuple[str, tuple[str, ...]]] = set()
    for line in demo_logs:
        if line.startswith("{") and '"_aws"' in line:
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == registry.NAMESPACE
                for metric in directive["Metrics"]:
                    for dimensions in directive["Dimensions"]:
                        printed.add((metric["Name"], tuple(sorted(dimensions))))
    assert {"NodegroupsRolled", "NodegroupsSkipped", "RolloutStarted", "PreflightLatency"} <= {n for n, _ in printed}
    for name, dimensions in printed:
        assert name in registry.REGISTRY, name
        assert dimensions == registry.REGISTRY[name].dimension_set, (name, dimensions)


def test_the_dashboard_url_output() -> None:
    url = STACK.resolve(TEMPLATE["Outputs"]["DashboardUrl"]["Value"])
    assert (
        url
        == "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/ref:Dashboard"
    )
    assert STACK.resolve(TEMPLATE["Resources"]["Dashboard"]["Properties"]["DashboardName"]) == "eks-proxy"


# ------------------------------------------------------------------------------------------------------ queries
def saved_queries() -> dict[str, dict[str, Any]]:
    return {
        resource["Properties"]["Name"]: STACK.resolve(resource["Properties"])
        for resource in TEMPLATE["Resources"].values()
        if resource["Type"] == "AWS::Logs::QueryDefinition"
    }


def test_the_log_widget_shows_the_latest_decisions(demo_logs: list[str]) -> None:
    widget = next(w for w in dashboard()["widgets"] if w["type"] == "log")
    query = widget["properties"]["query"]
    sources = re.findall(r"SOURCE '([^']+)'", query)
    assert sources == ["ref:DispatchLogGroup", "ref:RolloutStepLogGroup"]
    rows = run_query(query, events_from_lines(demo_logs))
    outcomes = {(row["nodegroup"], row["outcome"]) for row in rows}
    assert ("no-template", "out_of_scope") in outcomes  # dispatch's decision
    assert ("al2023-apps", "rolled") in outcomes  # the rollout's record
    stamps = [row["@timestamp"] for row in rows]
    assert stamps == sorted(stamps, reverse=True) and len(rows) <= 100


def test_the_outcomes_query_shows_every_outcome_a_nodegroup_can_end_in(
    demo_logs: list[str], outcome_logs: list[str]
) -> None:
    query = saved_queries()["eks-proxy/how each node group ended"]["QueryString"]
    rows = run_query(query, events_from_lines([*demo_logs, *outcome_logs]))
    last = {row["nodegroup"]: row for row in rows}
    for outcome in steps._OUTCOME_METRICS:  # every outcome the record step writes
        assert last[f"ng-{outcome}"]["last_outcome"] == outcome, (outcome, rows)
    assert last["ng-rolled_back"]["rollback"] == "Successful"  # the rollback, awaited
    assert last["no-template"]["last_outcome"] == "out_of_scope"
    assert last["no-template"]["what_to_do"].startswith("recreate the node group with a launch template")
    # Rolled by the demo's rollout, then found up to date by its replay's dispatch (the latest line wins).
    assert last["al2023-apps"]["last_outcome"] in {"rolled", "up_to_date"}
    listed = set(re.findall(r'"(\w+)"', query.split("| stats")[0]))
    assert set(steps._OUTCOME_METRICS) | {"out_of_scope"} <= listed


def test_the_failures_query_finds_the_failures(demo_logs: list[str], outcome_logs: list[str]) -> None:
    query = saved_queries()["eks-proxy/failures"]["QueryString"]
    rows = run_query(query, events_from_lines([*demo_logs, *outcome_logs]))
    for outcome in ("failed", "rolled_back", "rollback_failed", "moved_on", "not_started"):
        assert any(row.get("nodegroup") == f"ng-{outcome}" and row.get("outcome") == outcome for row in rows), outcome
    assert any(row.get("message") == "rollout failed" for row in rows)  # the demo's dead proxy, stopped by preflight
    assert not any(row.get("outcome") == "rolled" for row in rows)


def test_the_skipped_query_and_the_last_rollout_query(demo_logs: list[str]) -> None:
    events = events_from_lines(demo_logs)
    skipped = run_query(saved_queries()["eks-proxy/node groups skipped and why"]["QueryString"], events)
    by_nodegroup = {row["nodegroup"]: row for row in skipped}
    assert by_nodegroup["opted-out"]["last_outcome"] == "out_of_scope"
    assert "eks-proxy/skip" in by_nodegroup["opted-out"]["last_reason"]
    everything = run_query(saved_queries()["eks-proxy/what did the last rollout do"]["QueryString"], events)
    assert {"decision", "refresh", "nodegroup rolled"} <= {row.get("message") for row in everything}


def test_the_demo_shows_the_fleet_and_the_dashboard_figures(demo_run: tuple[str, list[str]]) -> None:
    report = demo_run[0]
    fleet = report.split("== 9. `eks-proxy fleet`", 1)[1].split("== 10.", 1)[0]
    # After the broken value (version 3, stopped by the preflight) no node group carries the current value.
    assert "current value /eks-proxy/config version 3" in fleet
    assert re.search(r"prod/al2023-apps +al2023 +lt-\S+ v2 +[0-9a-f]{16} +v2 +no: failed +not_reached ", fleet)
    assert re.search(r"prod/opted-out +- +lt-\S+ v1 +- +- +no: out of scope", fleet)
    assert "  0/5 current, 2 out of scope, 3 failed\n" in fleet and "(exit 3:" in fleet
    assert re.search(r"why: +rollout ssm-\S+ failed before reaching it \(PreflightFailed\)", fleet)
    cloudwatch = report.split("== 10.", 1)[1]
    url = "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/eks-proxy"
    assert f"dashboard (output DashboardUrl): {url}" in cloudwatch
    assert (
        "Alarms: RolloutFailedAlarm ALARM, ParameterDeletedAlarm OK, RolloutExecutionsFailedAlarm ALARM" in cloudwatch
    )
    assert "Rollouts started / succeeded / failed: started (dispatch) 2, succeeded 1, failed 1" in cloudwatch
    assert "Node groups rolled, per cluster: rolled per cluster: prod 3" in cloudwatch
    assert "Verification on the new nodes: nodes pulled the image 6, nodes failed to pull 0" in cloudwatch
    assert re.search(r"preflights run 2, preflights failed 1, transient failures retried 5", cloudwatch)
    assert re.search(
        r"Latest decisions and outcomes per node group \(Logs Insights, \d+ rows; newest first\)", cloudwatch
    )


def test_the_drift_query_finds_a_sweep_that_meets_drift_again(
    moto_server: MotoServer,
) -> None:
    """The real dispatch handler: a change whose canary fails, the day's sweep tries again (fails again), a later
    sweep the same day finds the same drift and backs off: the line it writes is what the drift query shows."""
    stubs = Stubs()
    with rollout_world(moto_server, stubs) as world:
        moto_eks_updates.script("prod", "ng-a", outcome="Failed", polls=0)
        dispatch = load_handler("dispatch", world.env())
        buffer = structured_logs(dispatch)  # its JSON lines, the package's loggers included
        started = dispatch.lambda_handler(load_event("ssm-parameter-update"), FakeContext())
        for _ in range(2):
            with fast_forward():
                assert finished(world, started["execution_arn"])["status"] == "FAILED"
            eks = world.clients["eks"]
            for update in list(moto_eks_updates.UPDATES.values()):  # EKS ends the rollback nobody awaits
                while update.status == "InProgress":
                    eks.describe_update(name=update.cluster, nodegroupName=update.nodegroup, updateId=update.id)
            started = dispatch.lambda_handler(load_event("schedule-drift-sweep"), FakeContext())
            if started["status"] != "started":
                break
        assert started["status"] == "drift_backoff", started
    lines = buffer.getvalue().splitlines()
    query = saved_queries()["eks-proxy/drift that persists"]["QueryString"]
    rows = run_query(query, events_from_lines(lines))
    assert [row["message"] for row in rows] == ["drift persists"]
    assert rows[0]["drift.prod"] == 3 and rows[0]["attempts"] >= 1 and rows[0]["next_attempt_at"]
