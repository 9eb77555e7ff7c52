"""`make demo` as a newcomer runs it: one process (`python -m demo`, the Makefile's recipe), asserting on its report.

The demo starts its own moto server; this test only reads what it prints and the function logs it keeps (--logs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from demo.scenario import CASES
from testkit.cfn_template import load_template
from testkit.repo import REPO
from testkit.tools import require_root, require_tool

QUERY = "AWS::Logs::QueryDefinition"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo-run")]  # one demo run per test run, not per worker


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], str]:
    require_tool("openssl")  # the demo's loopback registry gets its certificate from a throw-away CA
    logs = tmp_path_factory.mktemp("demo") / "functions.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # the demo sets its own
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--logs", str(logs)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    return result, logs.read_text() if logs.exists() else ""


def nodegroup_block(stdout: str, nodegroup: str) -> str:
    match = re.search(rf"^  prod/{nodegroup} .*?(?=^  prod/|^\n|\Z)", stdout, re.S | re.M)
    assert match, f"{nodegroup} missing from the report:\n{stdout}"
    return match.group(0)


def test_exits_0_quietly(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    result, _ = demo
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # the emulator's access log and the functions' logs stay out of the way
    assert result.stdout.startswith("eks-proxy demo: an AWS emulator (moto) on http://127.0.0.1:")


def test_the_change_is_routed_by_the_template_rules_and_rolled(
    demo: tuple[subprocess.CompletedProcess[str], str],
) -> None:
    out = demo[0].stdout
    assert "PutParameter /eks-proxy/config --overwrite = " in out and "(version 2)" in out
    assert "rules of template.yaml that match it (EventBridge on the emulator): ProxyParameterChanged" in out
    assert "a look-alike (/eks-proxy/config-old) matches: nothing" in out
    assert "dispatch: started, 3 node group(s) to roll" in out
    assert "state machine eks-proxy-rollout: SUCCEEDED" in out
    assert re.search(
        r"task invocations: validate_input 1, lease_clock 1, preflight 1, plan_wave 3, refresh 3, start_update 3, "
        r".*verify 3, record 3, settle 1",
        out,
    )
    assert "cluster lease (DynamoDB eks-proxy-leases, one rollout per cluster): taken by the rollout, released" in out


def test_each_nodegroup_case(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    out = demo[0].stdout
    for case in CASES:
        block = nodegroup_block(out, case.nodegroup)
        assert f"decision:    {case.expected}:" in block, block
        if case.expected == "create_version":
            assert f"launch template {case.template}: v1 -> v2 (created and rolled)" in block
            assert re.search(r"fingerprint: none -> [0-9a-f]{16}", block)
            assert f"--- {case.template} v1\n" in block and f"+++ {case.template} v2\n" in block
            assert f"rollout:     rolled: prod/{case.nodegroup} rolled from version 1 to 2" in block
            assert (
                f"verified:    2/2 nodes of {case.nodegroup} pulled docker.io/library/busybox:1.36 [simulated]" in block
            )
        else:
            assert "rollout:     not rolled" in block and "user data diff" not in block
    assert "+Content-Type: application/node.eks.aws" in nodegroup_block(out, "al2023-apps")
    assert "maxPods: 58" in nodegroup_block(out, "al2023-apps")  # the team's part, kept (diff context)
    assert re.search(r'\+https-proxy = "http://127\.0\.0\.1:\d+"', nodegroup_block(out, "bottlerocket-web"))
    assert "+Content-Type: text/cloud-boothook" in nodegroup_block(out, "al2-legacy")
    assert "no launch template (nothing to write to)" in nodegroup_block(out, "no-template")
    assert "remedy:      recreate the node group with a launch template" in nodegroup_block(out, "no-template")
    assert "launch template prod-opted-out: v1 (unchanged)" in nodegroup_block(out, "opted-out")


def test_real_preflight_simulated_parts_labelled(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    out = demo[0].stdout
    assert re.search(r"the new proxy: a real HTTP CONNECT proxy on http://127\.0\.0\.1:\d+", out)
    assert re.search(r"preflight: ok: registry registry\.demo\.internal:443 answered GET /v2/ with 401", out)
    assert "[simulated] the EKS node group update" in out
    assert "[simulated] the Kubernetes API the real verify handler talks to" in out
    assert "verification pods: 6 created, 6 deleted; refused for a bad EKS token: 0" in out


def test_broken_value_is_stopped_by_the_preflight(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    section = demo[0].stdout.split("== 7. A broken value", 1)[1].split("== 8.", 1)[0]
    assert "dispatch: started; state machine: FAILED (PreflightFailed)" in section
    assert "preflight: proxy_unreachable: proxy http://127.0.0.1:" in section
    assert "the preflight probed 6 times; its retry waits (15, 30, 60, 120, 120 s) fast-forwarded" in section
    assert "new launch template versions: 0" in section
    assert 'alarm topic: "eks-proxy rollout failed": eks-proxy preflight failed (PreflightFailed)' in section


def test_replay_creates_nothing(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    out = demo[0].stdout
    section = out.split("== 6. Replay", 1)[1]
    assert "dispatch: up_to_date" in section or "dispatch: duplicate" in section
    assert "new launch template versions: 0, new executions: 0, new node group updates: 0" in section


def test_status_and_where_to_look_in_cloudwatch(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    out = demo[0].stdout
    status = out.split("== 8.", 1)[1].split("== 9.", 1)[0]
    assert status.index("FAILED") < status.index("SUCCEEDED")  # newest first
    assert "trigger ssm, parameter /eks-proxy/config:2" in status and "parameter /eks-proxy/config:3" in status
    assert re.search(r"prod/al2-legacy +rolled +rolled from version 1 to 2 +\(canary\)", status)  # sorted: canary
    assert re.search(r"prod/al2-legacy +not reached +\(canary\)", status)
    assert "error PreflightFailed: proxy_unreachable" in status
    assert "/aws/lambda/eks-proxy-dispatch" in out and "/aws/vendedlogs/states/eks-proxy-rollout" in out
    saved = [r["Properties"]["Name"] for r in load_template()["Resources"].values() if r["Type"] == QUERY]
    assert "eks-proxy/what did the last rollout do" in saved and "eks-proxy/failures" in saved
    assert f"saved Logs Insights queries: {'; '.join(saved)}\n" in out  # every one the template saves, in its order
    assert "NodegroupsRefreshed=3, NodegroupsRolled=3" in out
    assert "PreflightFailed=1, PreflightLatency=" in out and "PreflightRetried=5, RolloutFailed=1" in out
    assert "RolloutFailedAlarm" in out


def test_no_credentials_or_secrets_in_output_or_logs(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    result, logs = demo
    for text in (result.stdout, result.stderr, logs):
        assert not re.search(r"://[^/\s\"']+@", text)  # no user:password@ in any URL
        assert not re.search(r"(?i)aws_secret_access_key|aws_session_token|x-amz-security-token", text)
        assert not re.search(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", text)
    assert logs.count('"level"') >= 10  # the functions did log (JSON), so the checks above looked at something


def test_make_demo_runs_this_module() -> None:
    recipe = Path(REPO / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n", 2)[1]
    assert recipe.strip().startswith("$(PY) -m demo")


def test_needs_no_network() -> None:
    """The demo in a network namespace with only loopback up: anything reaching out would fail it."""
    require_root()
    require_tool("unshare", "ip", "openssl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    script = f"ip link set lo up && exec {sys.executable} -m demo"
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "state machine eks-proxy-rollout: SUCCEEDED" in result.stdout


def test_ca_rotation(demo: tuple[subprocess.CompletedProcess[str], str]) -> None:
    section = demo[0].stdout.split("== 11. A TLS-inspecting proxy", 1)[1]
    assert "PutParameter /eks-proxy/ca-bundle = 1 CA certificate(s): CN=Example Corp TLS Inspection CA 2026" in section
    assert "change event of /eks-proxy/ca-bundle: rules that match it: ProxyParameterChanged" in section
    rollouts = re.findall(r"dispatch: started, 3 node group\(s\) to roll; state machine: (\w+)", section)
    assert rollouts == ["SUCCEEDED", "SUCCEEDED"]  # the value naming the bundle, then the rotation
    before, after = section.split("the rotation: the proxy value stays", 1)
    for case in CASES:
        if case.expected != "out_of_scope":
            assert f"prod/{case.nodegroup}: installs CN=Example Corp TLS Inspection CA 2026" in before
            assert f"prod/{case.nodegroup}: installs CN=Example Corp TLS Inspection CA 2027" in after
    assert after.count("CA bundle:   changes (TLS-inspecting proxy)") == 3
    assert after.count("- CN=Example Corp TLS Inspection CA 2026") == 3
    assert after.count("+ CN=Example Corp TLS Inspection CA 2027") == 3
    assert "the rotation's event again: dispatch up_to_date" in after or "dispatch duplicate" in after
    assert "BEGIN CERTIFICATE" not in demo[0].stdout
