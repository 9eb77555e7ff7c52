"""The Logs Insights evaluator the dashboard and query tests use (tests/integration/logs_insights.py): its semantics
on hand-made events, so a query test cannot pass because the evaluator is lenient."""

from __future__ import annotations

import json

import pytest

from testkit.logs_insights import UnsupportedQuery, events_from_lines, run_query

LINES = [
    json.dumps({"timestamp": "2026-12-01 10:00:00,000+0000", "message": "decision", "cluster": "prod",
                "nodegroup": "a", "outcome": "out_of_scope", "reason": "opted out"}),
    json.dumps({"timestamp": "2026-12-01 10:00:01,000+0000", "message": "nodegroup rolled", "cluster": "prod",
                "nodegroup": "b", "outcome": "rolled", "latency_ms": {"total": 4.5}}),
    json.dumps({"timestamp": "2026-12-01 10:00:02,000+0000", "message": "nodegroup failed", "cluster": "prod",
                "nodegroup": "b", "outcome": "failed", "level": "WARNING"}),
    json.dumps({"_aws": {"CloudWatchMetrics": []}, "NodegroupsRolled": [1.0]}),
    "not json at all",
]  # fmt: skip
EVENTS = events_from_lines(LINES)


def names(rows: list[dict[str, object]], field: str = "message") -> list[object]:
    return [row.get(field) for row in rows]


def test_events_are_the_json_lines_flattened_with_timestamps() -> None:
    assert len(EVENTS) == 3  # EMF and text lines left out
    assert EVENTS[1]["latency_ms.total"] == 4.5
    assert EVENTS[0]["@timestamp"] < EVENTS[1]["@timestamp"] < EVENTS[2]["@timestamp"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('filter outcome = "rolled"', ["nodegroup rolled"]),
        ('filter outcome != "rolled"', ["decision", "nodegroup failed"]),
        ("filter message like /^nodegroup /", ["nodegroup rolled", "nodegroup failed"]),
        ('filter message like "roll"', ["nodegroup rolled"]),
        ('filter outcome in ["failed", "out_of_scope"]', ["decision", "nodegroup failed"]),
        ('filter outcome not in ["failed", "out_of_scope"]', ["nodegroup rolled"]),
        ("filter ispresent(level)", ["nodegroup failed"]),
        ("filter not ispresent(level) and nodegroup = 'b'", ["nodegroup rolled"]),
        (
            'filter (outcome = "rolled" or level = "WARNING") and nodegroup = "b"',
            ["nodegroup rolled", "nodegroup failed"],
        ),
        ("filter latency_ms.total > 4", ["nodegroup rolled"]),
        ("fields message | sort @timestamp desc | limit 2", ["nodegroup failed", "nodegroup rolled"]),
        ("# a comment\nfields @timestamp\n| filter message like /decision|failed/", ["decision", "nodegroup failed"]),
    ],
)
def test_filter_sort_limit(query: str, expected: list[str]) -> None:
    assert names(run_query(query, EVENTS)) == expected


def test_stats_latest_and_max_by_group() -> None:
    rows = run_query(
        "stats latest(outcome) as last, count(*) as n, max(@timestamp) as seen by cluster, nodegroup | sort seen desc",
        EVENTS,
    )
    assert [(r["nodegroup"], r["last"], r["n"]) for r in rows] == [("b", "failed", 2), ("a", "out_of_scope", 1)]


@pytest.mark.parametrize("query", ["parse @message 'x'", "filter strlen(message) > 3", "stats pct(x, 50) by y"])
def test_what_it_does_not_know_is_refused(query: str) -> None:
    with pytest.raises(UnsupportedQuery):
        run_query(query, EVENTS)
