"""The demo's view of what a platform team would look at the morning after: `eks-proxy fleet` and the dashboard.

`fleet_lines` runs `eks-proxy fleet` as a user would (a process, against the demo's moto server). `dashboard_lines`
prints the dashboard URL's shape and, widget by widget, the figures the dashboard of template.yaml would show for
this run: each metric of a metric widget computed from the EMF lines the functions printed (same name, same
dimension set, the widget's statistic; per cluster where the widget groups by cluster), Step Functions' own
execution metrics from the demo's executions, every alarm's state from those figures and its threshold, and the
log widget's query run over the functions' log lines (tests/integration/logs_insights.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REGION = "eu-west-1"
STACK = "eks-proxy"
_INSIGHTS = re.compile(r"SELECT (?P<stat>\w+)\((?P<name>\w+)\) FROM SCHEMA\((?P<namespace>[\w/]+), (?P<dims>[\w, ]+)\)")
_EXECUTION_METRIC = {
    "ExecutionsStarted": None,
    "ExecutionsSucceeded": "SUCCEEDED",
    "ExecutionsFailed": "FAILED",
    "ExecutionsTimedOut": "TIMED_OUT",
    "ExecutionsAborted": "ABORTED",
}


def fleet_lines(state_machine_arn: str, cluster: str) -> tuple[int, list[str]]:
    """`eks-proxy fleet --cluster <cluster> --state-machine <arn>` in its own process: exit code and output lines."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "eks_proxy.cli.main",
            "fleet",
            "--cluster",
            cluster,
            "--state-machine",
            state_machine_arn,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).rstrip().splitlines()


class Samples:
    """Every EMF data point of the run: (metric name, dimensions) -> values."""

    def __init__(self, log_lines: list[str]) -> None:
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = defaultdict(list)
        for line in log_lines:
            if not line.startswith("{") or '"_aws"' not in line:
                continue
            document = json.loads(line)
            for directive in document["_aws"].get("CloudWatchMetrics", []):
                for dimensions in directive.get("Dimensions", []):
                    key_dims = tuple(sorted((d, str(document.get(d))) for d in dimensions))
                    for metric in directive.get("Metrics", []):
                        value = document.get(metric["Name"], [])
                        values = value if isinstance(value, list) else [value]
                        self.values[(metric["Name"], key_dims)].extend(float(v) for v in values)

    def select(
        self, name: str, dimension_names: set[str], match: dict[str, str]
    ) -> dict[tuple[tuple[str, str], ...], list[float]]:
        """The series of `name` stored with exactly `dimension_names`, whose values agree with `match` ('' = any)."""
        return {
            dims: values
            for (metric, dims), values in self.values.items()
            if metric == name
            and {d for d, _ in dims} == dimension_names
            and all(not v or dict(dims).get(k) == v for k, v in match.items())
        }


def _stat(values: list[float], stat: str) -> float:
    if not values:
        return 0.0
    stat = stat.lower()
    if stat in {"sum"}:
        return sum(values)
    if stat in {"average", "avg"}:
        return sum(values) / len(values)
    if stat in {"maximum", "max"}:
        return max(values)
    if stat in {"minimum", "min"}:
        return min(values)
    if stat == "samplecount":
        return float(len(values))
    raise ValueError(f"statistic {stat} not computed by the demo")


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _resolved_template() -> tuple[dict[str, Any], Any]:
    from testkit.cfn_template import Stack, load_template

    template = load_template()
    return template, Stack(template, {"ClusterNames": "prod"})


def dashboard_url() -> str:
    """The DashboardUrl output as it reads for a stack named eks-proxy in eu-west-1 (its shape)."""
    template, stack = _resolved_template()
    name = stack.resolve(template["Resources"]["Dashboard"]["Properties"]["DashboardName"])
    return str(stack.resolve(template["Outputs"]["DashboardUrl"]["Value"])).replace("ref:Dashboard", name)


def dashboard_lines(log_lines: list[str], executions: list[dict[str, Any]], dispatch_errors: int) -> list[str]:
    """Widget by widget, the figures the dashboard would show for this run (see the module docstring).

    `executions`: ListExecutions of the rollout state machine; `dispatch_errors`: dispatch invocations that raised.
    """
    from testkit.logs_insights import events_from_lines, run_query

    template, stack = _resolved_template()
    body = json.loads(stack.resolve(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]))
    samples = Samples(log_lines)
    statuses = [e["status"] for e in executions]
    aws_figures = {
        name: float(len(statuses) if status is None else statuses.count(status))
        for name, status in _EXECUTION_METRIC.items()
    }
    lines: list[str] = []
    for widget in body["widgets"]:
        properties = widget["properties"]
        if widget["type"] == "metric":
            figures = []
            for entry in properties["metrics"]:
                figures.extend(_metric_figures(entry, properties, samples, aws_figures, dispatch_errors))
            lines.append(f"{properties['title']}: {', '.join(figures)}")
        elif widget["type"] == "alarm":
            states = []
            for arn in properties["alarms"]:
                state = _alarm_state(template, stack, arn, samples, aws_figures, dispatch_errors)
                states.append(f"{arn.split(':')[-1].removesuffix('.Arn')} {state}")
            lines.append(f"{properties['title']}: {', '.join(states)}")
        elif widget["type"] == "log":
            rows = run_query(properties["query"], events_from_lines(log_lines))
            lines.append(f"{properties['title']} (Logs Insights, {len(rows)} rows; newest first):")
            for row in rows[:8]:
                versions = (
                    f" v{row.get('version_before')} -> v{row.get('version_after')}" if row.get("version_after") else ""
                )
                reason = f" ({row['reason']})" if row.get("reason") else ""
                where = f"{row.get('cluster')}/{row.get('nodegroup')}"
                lines.append(f"  {where}: {row.get('message')}: {row.get('outcome')}{versions}{reason}")
    return lines


def _metric_figures(
    entry: list[Any], properties: dict[str, Any], samples: Samples, aws_figures: dict[str, float], errors: int
) -> list[str]:
    options = entry[-1] if isinstance(entry[-1], dict) and len(entry) > 1 else {}
    stat = str(options.get("stat") or properties.get("stat") or "Sum")
    if isinstance(entry[0], dict):  # Metrics Insights, one line per group
        match = _INSIGHTS.match(entry[0]["expression"])
        assert match, entry[0]["expression"]
        dims = {d.strip() for d in match["dims"].split(",")}
        series = samples.select(match["name"], dims, {})
        per_group: dict[str, float] = defaultdict(float)
        for key, values in series.items():
            per_group[dict(key).get("cluster", "?")] += _stat(values, match["stat"])
        shown = ", ".join(f"{group} {_number(v)}" for group, v in sorted(per_group.items()))
        return [f"{entry[0].get('label', match['name'])} per cluster: {shown or 'no data'}"]
    fields = [item for item in entry if not isinstance(item, dict)]
    namespace, name, pairs = fields[0], fields[1], fields[2:]
    label = options.get("label", name)
    if namespace == "AWS/States":
        return [f"{label} {_number(aws_figures[name])}"]
    if namespace == "AWS/Lambda":
        return [f"{label} {errors}"]
    wanted = dict(zip(pairs[::2], pairs[1::2], strict=True))
    series = samples.select(name, set(wanted), wanted)
    values = [v for vs in series.values() for v in vs]
    return [f"{label} {_number(_stat(values, stat)) if values else 'no data'}"]


def _alarm_state(
    template: dict[str, Any], stack: Any, arn: str, samples: Samples, aws_figures: dict[str, float], errors: int
) -> str:
    logical_id = arn.removeprefix("getatt:").removesuffix(".Arn")
    properties = stack.resolve(template["Resources"][logical_id]["Properties"])
    if "MetricName" in properties:  # a single metric (dispatch Errors)
        value = float(errors) if properties["Namespace"] == "AWS/Lambda" else 0.0
    else:
        value = 0.0
        for metric in properties["Metrics"]:
            expression = metric.get("Expression", "")
            found = re.fullmatch(r"SELECT SUM\((\w+)\) FROM (\w+)", expression)
            if found:
                value += sum(sum(v) for (name, _), v in samples.values.items() if name == found[1])
            elif "MetricStat" in metric:
                value += aws_figures.get(metric["MetricStat"]["Metric"]["MetricName"], 0.0)
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", properties["ComparisonOperator"]
    return "ALARM" if value >= float(properties["Threshold"]) else "OK"


def demo_logs(log_path: Path) -> list[str]:
    return log_path.read_text(errors="replace").splitlines()
