"""Fault injection around the REAL rollout: the dispatch and rollout step handlers, statemachine/rollout.asl.json on
moto's engine, EKS updates from our moto extension; plus the invariant every scenario ends with.

`Rig` wraps the rollout step function (and the scripted Preflight/Verify tasks) with `Fault`s: at the n-th
invocation of an action (for one node group or any), before or after the real handler runs, it can raise an error
(a Lambda service error after the work was done = a retried step; `ThrottlingException`; any failure) or change the
world (a teammate's launch template version, a teammate's update, a deleted node group or launch template, a new
parameter value dispatched mid-rollout). Waits and retries are fast-forwarded (sfn_clock).

`violations(rig)` checks, once every execution has ended, ONE invariant made of four clauses:

1. converged or reported: every node group that still exists and is in scope runs a launch template version
   carrying the parameter's *current* value (verified on its new nodes when we rolled it), or its last record says
   why not (failed, skipped, not started, rolled back, ...) with a true reason and the alarm was raised (a node
   group that is gone needs neither);
2. no teammate's change reverted: a node group a teammate rolled to their version still runs their change (their
   instance type, kept in every version we derive from theirs);
3. no node group rolled twice for one change: never two successful updates of ours in a row to versions carrying the
   same configuration, without anyone else's update between them;
4. never two rollouts in one cluster at once: updates started by different executions (change ids) never run in the
   same cluster at the same time (an update runs from UpdateNodegroupVersion until EKS ends it, awaited or not).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from eks_proxy.userdata.merge import find_fingerprint

from testkit import moto_eks_updates, moto_lambda_handlers
from testkit.engine_world import PARAMETER, FakeContext, World
from testkit.repo import load_event, load_handler
from testkit.sfn_clock import fast_forward

CLUSTER = "prod"
STEP = "eks-proxy-rollout-step"
PREFLIGHT = "eks-proxy-preflight"
VERIFY = "eks-proxy-verify"
FIRST_VALUE = "http://10.0.0.10:3128"


def lambda_error(name: str) -> Exception:
    """An exception whose class name is `name` (the bridge reports it as the Lambda errorType), e.g. the
    `Lambda.ServiceException` Step Functions retries."""
    error: Exception = type(name, (RuntimeError,), {})(f"injected {name}")
    return error


@dataclass
class Fault:
    """At the `nth` invocation of `action` (for `nodegroup`, or any), `when` the real handler runs: `raise_` (an
    exception; `times` invocations in a row) or `do` (a change of the world)."""

    action: str  # a rollout step action, or "preflight" / "verify"
    when: Literal["before", "after"] = "before"
    nodegroup: str | None = None
    nth: int = 1
    times: int = 1
    raise_: Callable[[], Exception] | None = None
    do: Callable[[Rig], None] | None = None
    seen: int = 0
    fired: int = 0


@dataclass
class Rig:
    world: World
    nodegroups: tuple[str, ...]
    env: dict[str, str]
    faults: list[Fault] = field(default_factory=list)
    verify_fails: set[str] = field(default_factory=set)
    records: list[dict[str, Any]] = field(default_factory=list)  # every `record` result (and settle's), in order
    update_owner: dict[str, str] = field(
        default_factory=dict
    )  # update id -> change id of the execution that started it
    teammate_updates: set[str] = field(default_factory=set)
    teammate_types: dict[str, str] = field(default_factory=dict)  # node group -> instance type of their last roll
    dispatched: list[dict[str, Any]] = field(default_factory=list)
    verified: list[tuple[str, float]] = field(default_factory=list)  # (node group, when) of every verification
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _step: Any = None
    _dispatch: Any = None

    # -- the world's people --------------------------------------------------------------------------------------
    def teammate_version(self, nodegroup: str, roll: bool, polls: int = 1) -> int:
        """A teammate makes a launch template version of their own (a new instance type) from the one the node group
        runs, and with `roll` rolls the node group to it (their update takes `polls` DescribeUpdate polls)."""
        ec2 = self.world.clients["ec2"]
        template = self.world.templates[f"{CLUSTER}-{nodegroup}"]
        running = self.world.nodegroup_version(CLUSTER, nodegroup) or "1"
        kind = f"m7i.{len(self.teammate_updates) + len(self.teammate_types) + 2}xlarge"
        created = ec2.create_launch_template_version(
            LaunchTemplateId=template, SourceVersion=running, LaunchTemplateData={"InstanceType": kind}
        )["LaunchTemplateVersion"]["VersionNumber"]
        self.cloudtrail("ec2-create-launch-template-version", template=template, version=int(created))
        if roll:
            self._team_update(nodegroup, template, created, kind, polls)
            self.cloudtrail(
                "eks-update-nodegroup-version", nodegroup=nodegroup, template=template, version=int(created)
            )
        return int(created)

    def cloudtrail(self, sample: str, **what: Any) -> dict[str, Any]:
        """The CloudTrail event EventBridge delivers to dispatch for a teammate's call (their identity, not ours)."""
        event = load_event(sample) | {"id": str(uuid.uuid4())}
        detail = json.loads(json.dumps(event["detail"]))
        if sample == "eks-update-nodegroup-version":
            detail["requestParameters"].update(
                name=CLUSTER,
                nodegroupName=what["nodegroup"],
                launchTemplate={"id": what["template"], "version": str(what["version"])},
            )
        else:
            detail["requestParameters"]["CreateLaunchTemplateVersionRequest"]["LaunchTemplateId"] = what["template"]
            version = detail["responseElements"]["CreateLaunchTemplateVersionResponse"]["launchTemplateVersion"]
            version.update(launchTemplateId=what["template"], versionNumber=what["version"])
            version.pop("launchTemplateName", None)
        event["detail"] = detail
        return self._deliver(event)

    def _team_update(self, nodegroup: str, template: str, version: int, kind: str, polls: int) -> None:
        eks = self.world.clients["eks"]
        previous = moto_eks_updates.SCRIPTS.get((CLUSTER, nodegroup))
        moto_eks_updates.script(CLUSTER, nodegroup, polls=polls)
        for _ in range(200):  # their update waits for ours to end, as a person retrying would
            try:
                update = eks.update_nodegroup_version(
                    clusterName=CLUSTER,
                    nodegroupName=nodegroup,
                    launchTemplate={"id": template, "version": str(version)},
                )["update"]["id"]
                break
            except eks.exceptions.ResourceInUseException:
                self.advance_one(nodegroup)
        else:
            raise AssertionError(f"{nodegroup} stayed busy")
        if previous is not None:  # keep the scenario's script for our later updates
            with moto_eks_updates._LOCK:
                moto_eks_updates.SCRIPTS[(CLUSTER, nodegroup)] = previous
        self.teammate_updates.add(update)
        self.teammate_types[nodegroup] = kind

    def advance_one(self, nodegroup: str) -> None:
        """Time passes for one node group: one DescribeUpdate poll of each of its updates still running."""
        eks = self.world.clients["eks"]
        for update in list(moto_eks_updates.UPDATES.values()):
            if update.nodegroup == nodegroup and update.status == "InProgress":
                try:
                    eks.describe_update(name=update.cluster, nodegroupName=update.nodegroup, updateId=update.id)
                except eks.exceptions.ResourceNotFoundException:
                    update.status, update.ended = "Cancelled", time.monotonic()

    def delete_nodegroup(self, nodegroup: str) -> None:
        self.world.clients["eks"].delete_nodegroup(clusterName=CLUSTER, nodegroupName=nodegroup)

    def delete_template(self, nodegroup: str) -> None:
        self.world.clients["ec2"].delete_launch_template(
            LaunchTemplateId=self.world.templates[f"{CLUSTER}-{nodegroup}"]
        )

    def change_value(self, value: str, dispatch: bool = True) -> dict[str, Any] | None:
        """Someone puts a new value; its "Parameter Store Change" event reaches dispatch (unless `dispatch` is off)."""
        self.world.put_proxy(value)
        return self.dispatch() if dispatch else None

    def dispatch(
        self, event: str = "ssm-parameter-update", event_id: str | None = None, **detail: Any
    ) -> dict[str, Any]:
        sample = load_event(event) | {"id": event_id or str(uuid.uuid4())}
        if detail:
            sample["detail"] = {**sample["detail"], **detail}
        return self._deliver(sample)

    def _deliver(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self._dispatch is None:
            self._dispatch = load_handler("dispatch", self.env)
        result: dict[str, Any] = self._dispatch.lambda_handler(sample, FakeContext())
        self.dispatched.append(result)
        return result

    # -- the wrapped tasks -----------------------------------------------------------------------------------------
    def _fire(self, action: str, nodegroup: str | None, when: str) -> None:
        for fault in self.faults:
            if fault.action != action or fault.when != when:
                continue
            if fault.nodegroup is not None and fault.nodegroup != nodegroup:
                continue
            with self._lock:
                fault.seen += 1
                due = fault.seen >= fault.nth and fault.fired < fault.times
                if due:
                    fault.fired += 1
            if not due:
                continue
            if fault.do is not None:
                fault.do(self)
            if fault.raise_ is not None:
                raise fault.raise_()

    def step(self, event: dict[str, Any], context: Any) -> Any:
        action, nodegroup = str(event.get("action")), event.get("nodegroup")
        self._fire(action, nodegroup, "before")
        result = self._step.lambda_handler(event, context)
        if action in ("start_update", "rollback") and result.get("status") == "started":
            self.update_owner[result["update_id"]] = str(event.get("change_id"))
        if action == "record":
            self.records.append(result)
        if action == "settle":  # an execution's final word per node group (not started, superseded, ... included)
            self.records.extend(r for r in result.get("results") or [] if isinstance(r, dict))
        self._fire(action, nodegroup, "after")
        return result

    def preflight(self, event: dict[str, Any], context: Any) -> Any:
        self._fire("preflight", None, "before")
        result = {"ok": True, "result": "ok", "detail": "stub", "latency_ms": {}}
        self._fire("preflight", None, "after")
        return result

    def verify(self, event: dict[str, Any], context: Any) -> Any:
        self.verified.append((str(event.get("nodegroup")), time.monotonic()))
        self._fire("verify", event.get("nodegroup"), "before")
        ok = event["nodegroup"] not in self.verify_fails
        outcome = "pulled" if ok else "failed"
        result = {"ok": ok, "nodes": [{"node": "ip-10-0-1-20", "result": outcome, "message": ""}], "summary": outcome}
        self._fire("verify", event.get("nodegroup"), "after")
        return result

    # -- running ---------------------------------------------------------------------------------------------------
    def executions(self) -> list[dict[str, Any]]:
        sfn = self.world.clients["stepfunctions"]
        return sfn.list_executions(stateMachineArn=self.world.state_machine_arn)["executions"]  # type: ignore[no-any-return]

    def settle(self, timeout: float = 240) -> list[dict[str, Any]]:
        """Until every execution has ended; then time passes until EKS ended every update (awaited or not)."""
        deadline = time.monotonic() + timeout
        while True:
            running = [e for e in self.executions() if e["status"] == "RUNNING"]
            if not running:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"executions still running: {[e['name'] for e in running]}")
            time.sleep(0.1)
        for nodegroup in {u.nodegroup for u in moto_eks_updates.UPDATES.values()}:
            for _ in range(50):
                if all(u.status != "InProgress" for u in moto_eks_updates.UPDATES.values() if u.nodegroup == nodegroup):
                    break
                self.advance_one(nodegroup)
        sfn = self.world.clients["stepfunctions"]
        return [sfn.describe_execution(executionArn=e["executionArn"]) for e in self.executions()]

    def continue_batches(self) -> None:
        """RolloutSucceededRule, emulated: each succeeded `more-` execution gets its continuation sweep (once)."""
        continued: set[str] = set()
        while True:
            done = [
                e["name"] for e in self.executions() if e["status"] == "SUCCEEDED" and e["name"].startswith("more-")
            ]
            todo = [name for name in done if name not in continued]
            if not todo:
                return
            for name in todo:
                continued.add(name)
                self.dispatch("schedule-drift-sweep", event_id=f"continue-{name[-12:]}", trigger="sweep", after=name)
            self.settle()


def build_rig(world: World, nodegroups: tuple[str, ...] = ("ng-a", "ng-b", "ng-c"), **env: str) -> Rig:
    moto_eks_updates.reset()
    moto_lambda_handlers.reset()
    world.cluster(CLUSTER)
    for name in nodegroups:
        world.template(f"{CLUSTER}-{name}")
        world.nodegroup(CLUSTER, name, template=f"{CLUSTER}-{name}")
    world.put_proxy(FIRST_VALUE)
    rig = Rig(world=world, nodegroups=nodegroups, env={})
    rig._step = load_handler("rollout_step", world.env(ROLLOUT_WAIT_SECONDS="0", **env))
    world.create_state_machine(
        {
            "RolloutStepFunctionArn": moto_lambda_handlers.register(STEP, rig.step),
            "PreflightFunctionArn": moto_lambda_handlers.register(PREFLIGHT, rig.preflight),
            "VerifyFunctionArn": moto_lambda_handlers.register(VERIFY, rig.verify),
            "AlarmTopicArn": world.topic_arn,
        }
    )
    rig.env = world.env(**env)
    return rig


@contextmanager
def running(rig: Rig, tick: float = 0.05) -> Iterator[Rig]:
    """Waits and retries fast-forwarded, and EKS's own clock: every update still in progress is polled every `tick`
    seconds (an update ends by itself, whether anyone awaits it or not: a teammate's, or a rollback)."""
    stop = threading.Event()

    def eks_clock() -> None:
        while not stop.wait(tick):
            for nodegroup in {u.nodegroup for u in list(moto_eks_updates.UPDATES.values()) if u.status == "InProgress"}:
                try:
                    rig.advance_one(nodegroup)
                except Exception:  # the moto server is going away at teardown
                    return

    thread = threading.Thread(target=eks_clock, daemon=True)
    with fast_forward():
        thread.start()
        try:
            yield rig
        finally:
            stop.set()
            thread.join(5)


# -- the invariant -------------------------------------------------------------------------------------------------


def _current_decisions(rig: Rig) -> dict[str, Any]:
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.config import Settings
    from eks_proxy.engine.plan import plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.value import parse_proxy_value

    value = rig.world.clients["ssm"].get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    settings = Settings(cluster_names=(CLUSTER,), alarm_topic_arn=rig.world.topic_arn)
    decisions = plan_scope(AwsClients(), settings, Scope("all", (CLUSTER,)), parse_proxy_value(value))
    return {d.nodegroup: d for d in decisions}


def _fingerprint(rig: Rig, nodegroup: str, version: str) -> str | None:
    template = rig.world.templates[f"{CLUSTER}-{nodegroup}"]
    found = rig.world.clients["ec2"].describe_launch_template_versions(LaunchTemplateId=template, Versions=[version])
    data = found["LaunchTemplateVersions"][0]["LaunchTemplateData"].get("UserData")
    return find_fingerprint(base64.b64decode(data)) if data else None


def _instance_type(rig: Rig, nodegroup: str) -> str | None:
    version = rig.world.nodegroup_version(CLUSTER, nodegroup)
    template = rig.world.templates[f"{CLUSTER}-{nodegroup}"]
    found = rig.world.clients["ec2"].describe_launch_template_versions(
        LaunchTemplateId=template, Versions=[str(version)]
    )
    return found["LaunchTemplateVersions"][0]["LaunchTemplateData"].get("InstanceType")  # type: ignore[no-any-return]


def violations(rig: Rig) -> list[str]:
    """The invariant's broken clauses, one line each (empty: it holds). Call after `rig.settle()`."""
    from eks_proxy.model import Outcome

    found: list[str] = []
    alarms = rig.world.alarms()
    decisions = _current_decisions(rig)
    # 1. converged, or reported with its reason and the alarm raised
    for nodegroup, decision in sorted(decisions.items()):
        if decision.outcome is Outcome.UP_TO_DATE:
            ours = [
                u
                for u in moto_eks_updates.UPDATES.values()
                if u.nodegroup == nodegroup and u.id in rig.update_owner and u.status == "Successful"
            ]
            if ours and not any(ng == nodegroup and when >= ours[-1].started for ng, when in rig.verified):
                found.append(f"1 converged-or-reported: {nodegroup} was rolled but its new nodes never verified")
            continue
        gone = decision.outcome is Outcome.OUT_OF_SCOPE and (
            "not found" in decision.reason.lower() or "no longer exists" in decision.reason
        )
        if gone:
            continue
        last = [r for r in rig.records if r.get("nodegroup") == nodegroup]
        claimed = re.search(r"rolled back to version (\d+)", str(last[-1].get("summary"))) if last else None
        running = rig.world.nodegroup_version(CLUSTER, nodegroup)
        if claimed and claimed.group(1) != running:
            found.append(f"1 reported falsely: {nodegroup} 'rolled back to version {claimed.group(1)}' runs {running}")
            continue
        outcome = last[-1]["outcome"] if last else None
        # failed, skipped, not started, superseded, rolled back, rollback failed, moved on: anything but "it worked"
        reported = outcome not in (None, "rolled", "up_to_date") and bool(last[-1].get("summary"))
        # The alarm was raised (the failure alarm of the rollout; it need not list every node group it did not start)
        alarmed = bool(alarms)
        if not (reported and alarmed):
            found.append(
                f"1 converged-or-reported: {nodegroup} is {decision.outcome.value} ({decision.reason}); last record "
                f"{outcome or 'none'}, alarm raised: {'yes' if alarmed else 'no'}"
            )
    # 2. no teammate's change reverted
    for nodegroup, kind in sorted(rig.teammate_types.items()):
        if nodegroup in decisions and decisions[nodegroup].outcome is not Outcome.OUT_OF_SCOPE:
            running = _instance_type(rig, nodegroup)
            if running != kind:
                found.append(f"2 teammate reverted: {nodegroup} runs {running}, the teammate rolled {kind}")
    # 3. no node group rolled twice for one change
    ours_in_a_row: dict[str, str | None] = {}
    for update in list(moto_eks_updates.UPDATES.values()):
        if update.id in rig.teammate_updates:
            ours_in_a_row[update.nodegroup] = None
            continue
        if update.status != "Successful":
            continue
        try:
            fingerprint = _fingerprint(rig, update.nodegroup, update.launch_template["version"])
        except Exception:  # the template is gone
            continue
        if fingerprint is not None and ours_in_a_row.get(update.nodegroup) == fingerprint:
            found.append(f"3 rolled twice: {update.nodegroup} to a version with {fingerprint} again")
        ours_in_a_row[update.nodegroup] = fingerprint
    # 4. never two rollouts in one cluster at once
    intervals = [
        (u.started, u.ended if u.ended is not None else float("inf"), rig.update_owner[u.id], u.nodegroup)
        for u in moto_eks_updates.UPDATES.values()
        if u.id in rig.update_owner
    ]
    for i, (start_a, end_a, owner_a, ng_a) in enumerate(intervals):
        for start_b, end_b, owner_b, ng_b in intervals[i + 1 :]:
            if owner_a != owner_b and start_a < end_b and start_b < end_a:
                found.append(f"4 two rollouts at once: {ng_a} ({owner_a[:8]}) and {ng_b} ({owner_b[:8]})")
    return found
