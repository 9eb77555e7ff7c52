"""Writes statemachine/rollout.asl.json: the rollout state machine, generated so its repeated parts stay identical.

    python statemachine/generate.py          # rewrite the JSON (make asl)
    python statemachine/generate.py --check  # exit 1 when the committed JSON differs (a test runs this)

Why generated: every Lambda task carries the same retry block (one definition, `LAMBDA_RETRY`), the lease item is
addressed the same way by five DynamoDB tasks, and the per-node-group processor (`nodegroup_processor()`) is also
what bench/bench_engine.py runs alone to count its state transitions. The shape, in short (docs/ARCHITECTURE.md,
"Engine" has the whole story):

    ValidateInput -> lease: LeaseClock -> AcquireLease (DynamoDB putItem, conditional)
        held by a live execution: ReadLease -> LeaseHolder -> WaitForLease (60-120 s) -> LeaseClock
        held by a dead one: TakeOverLease (conditional on that owner) ; superseded while waiting: Superseded
    -> Preflight -> PlanWave <-> Wave (Distributed Map, one child execution per node group)
    -> Settle -> ReleaseLease -> Done | NotifyRolloutFailed -> RolloutFailed
    every failure after the lease was taken goes through ReleaseLease before it fails.

No `Fail` state inside the Map: a node group always ends in a `record` result (its outcome), so a failure never
stops siblings mid-update; it sets `halted` on the lease item, which keeps node groups not yet started from starting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "rollout.asl.json"

STEP = "${RolloutStepFunctionArn}"
PREFLIGHT = "${PreflightFunctionArn}"
VERIFY = "${VerifyFunctionArn}"
TABLE = "${LeaseTableName}"

# Transient Lambda and AWS errors (service errors, throttling, a function that timed out): every step is idempotent
# when run twice, so retrying them is safe. One definition for every Lambda task.
LAMBDA_RETRY: dict[str, Any] = {
    "ErrorEquals": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.Unknown",
        "Sandbox.Timedout",
        "States.Timeout",
        "ThrottlingException",
    ],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 60,
    "JitterStrategy": "FULL",
}
# EKS ResourceInUseException (another update runs): minutes of patience, then the step's own error handling.
BUSY_RETRY: dict[str, Any] = {
    "ErrorEquals": ["NodegroupBusy"],
    "IntervalSeconds": 5,
    "MaxAttempts": 12,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 300,
    "JitterStrategy": "FULL",
}
# DynamoDB through the direct integration: throttling and internal errors (a failed condition is never retried).
DYNAMODB_RETRY: dict[str, Any] = {
    "ErrorEquals": [
        "DynamoDB.ProvisionedThroughputExceededException",
        "DynamoDB.ThrottlingException",
        "DynamoDB.InternalServerErrorException",
        "DynamoDB.RequestLimitExceeded",
        "DynamoDB.AmazonDynamoDBException",
    ],
    "IntervalSeconds": 1,
    "MaxAttempts": 6,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 30,
    "JitterStrategy": "FULL",
}
# The preflight raises PreflightNotReady for a transient failure (proxy unreachable, timeout, registry not answering)
# while attempt < retries: about 6 minutes of patience (15, 30, 60, 120, 120 s) before the last attempt's result.
PREFLIGHT_RETRY: dict[str, Any] = {
    "ErrorEquals": ["PreflightNotReady"],
    "IntervalSeconds": 15,
    "MaxAttempts": 5,
    "BackoffRate": 2.0,
    "MaxDelaySeconds": 120,
}
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"


def _catch(next_state: str, result_path: str | None = "$.error", errors: list[str] | None = None) -> dict[str, Any]:
    return {"ErrorEquals": errors or ["States.ALL"], "ResultPath": result_path, "Next": next_state}


def _lambda(
    resource: str,
    parameters: dict[str, Any],
    result_path: str | None,
    next_state: str | None,
    *,
    busy: bool = False,
    first_retry: dict[str, Any] | None = None,
    catch: list[dict[str, Any]] | None = None,
    comment: str = "",
) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task"}
    if comment:
        state["Comment"] = comment
    state |= {"Resource": resource, "Parameters": parameters, "ResultPath": result_path}
    state["Retry"] = ([first_retry] if first_retry else []) + ([LAMBDA_RETRY, BUSY_RETRY] if busy else [LAMBDA_RETRY])
    if catch:
        state["Catch"] = catch
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def _step(action: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"action": action, **fields}


def _dynamodb(
    operation: str, parameters: dict[str, Any], result_path: str | None, next_state: str, catch: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"arn:aws:states:::dynamodb:{operation}",
        "Parameters": {"TableName": TABLE, **parameters},
        "ResultPath": result_path,
        "Retry": [DYNAMODB_RETRY],
        "Catch": catch,
        "Next": next_state,
    }


def _lease_key(path: str) -> dict[str, Any]:
    return {"cluster": {"S.$": path}}


_OWNER_IS_ME = {
    "ConditionExpression": "#owner = :me",
    "ExpressionAttributeNames": {"#owner": "owner"},
}

_NODEGROUP_FIELDS = {
    "change_id.$": "$.change_id",
    "cluster.$": "$.cluster",
    "nodegroup.$": "$.nodegroup",
    "parameter.$": "$.parameter",
    "wait_seconds.$": "$.wait_seconds",
}


def _record(outcome: str) -> dict[str, Any]:
    """A node group's last state: its outcome, logged and counted once; a failure to record still ends the child
    with a minimal record (never a failed child)."""
    return _lambda(
        STEP,
        _step(
            "record",
            {
                "outcome": outcome,
                "change_id.$": "$.change_id",
                "cluster.$": "$.cluster",
                "nodegroup.$": "$.nodegroup",
                "item.$": "$",
            },
        ),
        "$.record",
        "Recorded",
        catch=[_catch(f"Unrecorded{outcome.title().replace('_', '')}", "$.record_error")],
    )


def _unrecorded(outcome: str) -> dict[str, Any]:
    return {
        "Type": "Pass",
        "Parameters": {
            "cluster.$": "$.cluster",
            "nodegroup.$": "$.nodegroup",
            "outcome": outcome,
            "summary": f"{outcome} (its record step failed: see the rollout step's logs)",
        },
        "ResultPath": "$.record",
        "Next": "Recorded",
    }


OUTCOMES = (
    "rolled",
    "up_to_date",
    "skipped",
    "gone",
    "superseded",
    "not_started",
    "failed",
    "rolled_back",
    "rollback_failed",
    "moved_on",
)


def nodegroup_processor() -> dict[str, Any]:
    """One node group, from "may it start?" to its recorded outcome (a child execution of the Wave map)."""
    states: dict[str, Any] = {
        "CheckHalt": _dynamodb(
            "getItem",
            {"Key": _lease_key("$.lease.cluster"), "ConsistentRead": True},
            "$.lease_state",
            "MayStart",
            [_catch("RecordNotStarted", "$.error")],
        )
        | {"Comment": "Nothing starts once the rollout halted (a failure) or lost its lease."},
        "MayStart": {
            "Type": "Choice",
            "Choices": [
                {"Not": {"Variable": "$.lease_state.Item.owner.S", "IsPresent": True}, "Next": "LeaseLost"},
                {
                    "Not": {"Variable": "$.lease_state.Item.owner.S", "StringEqualsPath": "$.lease.owner"},
                    "Next": "LeaseLost",
                },
                {"Variable": "$.lease_state.Item.halted.S", "IsPresent": True, "Next": "RecordNotStarted"},
            ],
            "Default": "Refresh",
        },
        "LeaseLost": {
            "Type": "Pass",
            "Parameters": {"Error": "LeaseLost", "Cause": "this rollout no longer holds the cluster's lease"},
            "ResultPath": "$.error",
            "Next": "RecordNotStarted",
        },
        "Refresh": _lambda(
            STEP,
            _step("refresh", _NODEGROUP_FIELDS | {"waits.$": "$.waits"}),
            "$.refresh",
            "NeedsUpdate",
            busy=True,
            catch=[_catch("HaltBeforeStart")],
            comment="Re-read the node group; create (or reuse) the launch template version carrying the proxy.",
        ),
        "NeedsUpdate": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.refresh.outcome", "StringEquals": "waiting", "Next": "WaitForOtherUpdate"},
                {"Variable": "$.refresh.outcome", "StringEquals": "superseded", "Next": "RecordSuperseded"},
                {"Variable": "$.refresh.outcome", "StringEquals": "gone", "Next": "RecordGone"},
                {"Variable": "$.refresh.outcome", "StringEquals": "up_to_date", "Next": "RecordUpToDate"},
                {"Variable": "$.refresh.needs_update", "BooleanEquals": True, "Next": "StartUpdate"},
            ],
            "Default": "RecordSkipped",
        },
        "WaitForOtherUpdate": {
            "Type": "Wait",
            "Comment": "Someone else updates the node group: decide again once it landed (60-120 s between checks).",
            "SecondsPath": "$.refresh.next_wait_seconds",
            "Next": "CountWait",
        },
        "CountWait": {"Type": "Pass", "InputPath": "$.refresh.waits", "ResultPath": "$.waits", "Next": "CheckHalt"},
        "StartUpdate": _lambda(
            STEP,
            _step("start_update", _NODEGROUP_FIELDS | {"refresh.$": "$.refresh"}),
            "$.update",
            "UpdateStarted",
            busy=True,
            catch=[_catch("HaltBeforeStart")],
            comment="Checks the version is ours, made from the one running, and the change not superseded; then "
            "UpdateNodegroupVersion (idempotent: clientRequestToken).",
        ),
        "UpdateStarted": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.update.status", "StringEquals": "started", "Next": "WaitForUpdate"},
                {"Variable": "$.update.status", "StringEquals": "waiting", "Next": "WaitForActive"},
                {"Variable": "$.update.status", "StringEquals": "current", "Next": "Verify"},
                {"Variable": "$.update.status", "StringEquals": "superseded", "Next": "RecordSuperseded"},
                {"Variable": "$.update.status", "StringEquals": "gone", "Next": "RecordGone"},
            ],
            "Default": "CheckHalt",
        },
        "WaitForActive": {
            "Type": "Wait",
            "Comment": "The node group is still CREATING: ask again later.",
            "SecondsPath": "$.wait_seconds",
            "Next": "CheckHalt",
        },
        "WaitForUpdate": {
            "Type": "Wait",
            "Comment": "60 s, then 90 s, then every 120 s (next_wait_seconds).",
            "SecondsPath": "$.update.next_wait_seconds",
            "Next": "DescribeUpdate",
        },
        "DescribeUpdate": _lambda(
            STEP,
            _step("describe_update", _NODEGROUP_FIELDS | {"update.$": "$.update"}),
            "$.update",
            "UpdateDone",
            catch=[_catch("HaltAfterStart")],
        ),
        "UpdateDone": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.update.status", "StringEquals": "InProgress", "Next": "WaitForUpdate"},
                {"Variable": "$.update.status", "StringEquals": "Successful", "Next": "Verify"},
                {"Variable": "$.update.status", "StringEquals": "gone", "Next": "RecordGone"},
            ],
            "Default": "HaltAfterStart",
        },
        "Verify": _lambda(
            VERIFY,
            {
                "change_id.$": "$.change_id",
                "cluster.$": "$.cluster",
                "nodegroup.$": "$.nodegroup",
                "image.$": "$.verify.image",
                "namespace.$": "$.verify.namespace",
                "timeout_seconds.$": "$.verify.timeout_seconds",
            },
            "$.verification",
            "Verified",
            catch=[_catch("HaltAfterStart")],
            comment="Every new node pulls an external image through the proxy.",
        ),
        "Verified": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.verification.ok", "BooleanEquals": True, "Next": "RecordRolled"}],
            "Default": "HaltAfterStart",
        },
        "HaltBeforeStart": _dynamodb(
            "updateItem",
            {
                "Key": _lease_key("$.lease.cluster"),
                "UpdateExpression": "SET halted = :why",
                **_OWNER_IS_ME,
                "ExpressionAttributeValues": {
                    ":me": {"S.$": "$.lease.owner"},
                    ":why": {"S.$": "States.Format('{}/{} failed', $.cluster, $.nodegroup)"},
                },
            },
            None,
            "RecordFailed",
            [_catch("RecordFailed", "$.halt_error")],
        )
        | {"Comment": "A failure before any update started: no node group starts after it; nothing to roll back."},
        "HaltAfterStart": _dynamodb(
            "updateItem",
            {
                "Key": _lease_key("$.lease.cluster"),
                "UpdateExpression": "SET halted = :why",
                **_OWNER_IS_ME,
                "ExpressionAttributeValues": {
                    ":me": {"S.$": "$.lease.owner"},
                    ":why": {"S.$": "States.Format('{}/{} failed', $.cluster, $.nodegroup)"},
                },
            },
            None,
            "RollbackWanted",
            [_catch("RollbackWanted", "$.halt_error")],
        )
        | {"Comment": "The update failed, or the new nodes failed verification: stop new starts, then roll back."},
        "RollbackWanted": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.rollback_on_failure", "BooleanEquals": True, "Next": "Rollback"}],
            "Default": "RecordFailed",
        },
        "Rollback": _lambda(
            STEP,
            _step("rollback", _NODEGROUP_FIELDS | {"refresh.$": "$.refresh", "update.$": "$.update"}),
            "$.rollback",
            "RollbackStarted",
            busy=True,
            catch=[_catch("RecordRollbackFailed", "$.rollback_error")],
            comment="Only while the node group still runs our version and no other update runs; only to the "
            "version ours was made from. Otherwise `moved_on`: touch nothing.",
        ),
        "RollbackStarted": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.rollback.status", "StringEquals": "started", "Next": "WaitForRollback"},
                {"Variable": "$.rollback.status", "StringEquals": "moved_on", "Next": "RecordMovedOn"},
                {"Variable": "$.rollback.status", "StringEquals": "gone", "Next": "RecordGone"},
            ],
            "Default": "RecordFailed",
        },
        "WaitForRollback": {"Type": "Wait", "SecondsPath": "$.rollback.next_wait_seconds", "Next": "DescribeRollback"},
        "DescribeRollback": _lambda(
            STEP,
            _step("describe_update", _NODEGROUP_FIELDS | {"update.$": "$.rollback"}),
            "$.rollback",
            "RollbackDone",
            catch=[_catch("RecordRollbackFailed", "$.rollback_error")],
        ),
        "RollbackDone": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.rollback.status", "StringEquals": "InProgress", "Next": "WaitForRollback"},
                {"Variable": "$.rollback.status", "StringEquals": "Successful", "Next": "RecordRolledBack"},
                {"Variable": "$.rollback.status", "StringEquals": "gone", "Next": "RecordGone"},
            ],
            "Default": "RecordRollbackFailed",
        },
        "Recorded": {"Type": "Pass", "InputPath": "$.record", "End": True},
    }
    for outcome in OUTCOMES:
        name = outcome.title().replace("_", "")
        states[f"Record{name}"] = _record(outcome)
        states[f"Unrecorded{name}"] = _unrecorded(outcome)
    return {"StartAt": "CheckHalt", "States": states}


def _release(next_state: str) -> dict[str, Any]:
    return _dynamodb(
        "deleteItem",
        {
            "Key": _lease_key("$.cluster"),
            **_OWNER_IS_ME,
            "ExpressionAttributeValues": {":me": {"S.$": "$$.Execution.Name"}},
        },
        None,
        next_state,
        [_catch(next_state, "$.release_error")],
    )


def _notify(stage: str, next_state: str) -> dict[str, Any]:
    return _lambda(
        STEP,
        _step(
            "notify_failure",
            {"stage": stage, "change_id.$": "$.change_id", "error.$": "$.error", "execution.$": "$$.Execution.Name"},
        ),
        "$.notify",
        next_state,
        catch=[_catch(next_state, "$.notify_error")],
    )


def definition() -> dict[str, Any]:
    """The whole rollout state machine."""
    lease_fields = {
        "cluster": {"S.$": "$.cluster"},
        "owner": {"S.$": "$$.Execution.Name"},
        "execution_arn": {"S.$": "$$.Execution.Id"},
        "change_id": {"S.$": "$.change_id"},
        "parameter_version": {"N.$": "States.Format('{}', $.parameter.version)"},
        "acquired_at": {"S.$": "$$.State.EnteredTime"},
        "expires_at": {"N.$": "States.Format('{}', $.clock.expires_at)"},
    }
    states: dict[str, Any] = {
        "ValidateInput": _lambda(
            STEP,
            _step("validate_input", {"input.$": "$", "execution.$": "$$.Execution.Name"}),
            "$",
            "LeaseClock",
            catch=[_catch("NotifyInvalidInput")],
            comment="Checks the input and the pinned proxy value (a hostile value stops here, nothing changed).",
        ),
        "LeaseClock": _lambda(
            STEP,
            _step("lease_clock", {"change_id.$": "$.change_id"}),
            "$.clock",
            "AcquireLease",
            catch=[_catch("NotifyNoLease")],
            comment="The time now and when the lease expires if this execution dies without releasing it.",
        ),
        "AcquireLease": _dynamodb(
            "putItem",
            {
                "Item": lease_fields,
                "ConditionExpression": "attribute_not_exists(#cluster) OR #owner = :me OR expires_at < :now",
                "ExpressionAttributeNames": {"#cluster": "cluster", "#owner": "owner"},
                "ExpressionAttributeValues": {
                    ":me": {"S.$": "$$.Execution.Name"},
                    ":now": {"N.$": "States.Format('{}', $.clock.now)"},
                },
            },
            None,
            "Preflight",
            [_catch("ReadLease", "$.lease_error", [CONDITION_FAILED]), _catch("NotifyNoLease")],
        )
        | {"Comment": "One rollout per cluster: the lease item, written only if free, ours, or expired."},
        "ReadLease": _dynamodb(
            "getItem",
            {"Key": _lease_key("$.cluster"), "ConsistentRead": True},
            "$.holder",
            "LeaseHolder",
            [_catch("NotifyNoLease")],
        ),
        "LeaseHolder": _lambda(
            STEP,
            _step(
                "lease_holder",
                {
                    "change_id.$": "$.change_id",
                    "parameter.$": "$.parameter",
                    "holder.$": "$.holder",
                    "waits.$": "$.lease_waits",
                },
            ),
            "$.lease_wait",
            "LeaseDecision",
            catch=[_catch("NotifyNoLease")],
            comment="Is the holder still running? Was this change superseded while it waited?",
        ),
        "LeaseDecision": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.lease_wait.decision", "StringEquals": "take_over", "Next": "TakeOverLease"},
                {"Variable": "$.lease_wait.decision", "StringEquals": "superseded", "Next": "Superseded"},
            ],
            "Default": "WaitForLease",
        },
        "WaitForLease": {
            "Type": "Wait",
            "Comment": "Another rollout holds the cluster: this change runs after it (60-120 s between checks).",
            "SecondsPath": "$.lease_wait.next_wait_seconds",
            "Next": "CountLeaseWait",
        },
        "CountLeaseWait": {
            "Type": "Pass",
            "InputPath": "$.lease_wait.waits",
            "ResultPath": "$.lease_waits",
            "Next": "LeaseClock",
        },
        "TakeOverLease": _dynamodb(
            "putItem",
            {
                "Item": lease_fields,
                "ConditionExpression": "#owner = :dead",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {":dead": {"S.$": "$.lease_wait.holder"}},
            },
            None,
            "Preflight",
            [_catch("LeaseClock", "$.lease_error", [CONDITION_FAILED]), _catch("NotifyNoLease")],
        )
        | {"Comment": "The holder ended without releasing the lease (stopped, timed out): take it over."},
        "Superseded": _lambda(
            STEP,
            _step(
                "settle",
                {
                    "change_id.$": "$.change_id",
                    "cluster.$": "$.cluster",
                    "plan.$": "$.plan",
                    "superseded.$": "$.lease_wait.reason",
                },
            ),
            "$.outcome",
            "Done",
            comment="A newer valid parameter version exists: its own rollout rolls it; this one never started.",
        ),
        "Preflight": _lambda(
            PREFLIGHT,
            {
                "change_id.$": "$.change_id",
                "parameter.$": "$.parameter",
                "registry.$": "$.registry",
                "attempt.$": "$$.State.RetryCount",
                "retries": PREFLIGHT_RETRY["MaxAttempts"],
            },
            "$.preflight",
            "PreflightPassed",
            first_retry=PREFLIGHT_RETRY,
            catch=[_catch("ReleaseAfterPreflight")],
            comment="Proxy reachable, registry answering through it: before any launch template changes. A transient "
            "failure (unreachable, timeout, not answering) is raised as PreflightNotReady while attempt < retries and "
            "retried for about 6 minutes (15, 30, 60, 120, 120 s); the last attempt returns its result. `retries` is "
            "that Retry's MaxAttempts (generated from one definition).",
        ),
        "PreflightPassed": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.preflight.ok", "BooleanEquals": True, "Next": "PlanWave"}],
            "Default": "PreflightRefused",
        },
        "PreflightRefused": {
            "Type": "Pass",
            "Parameters": {
                "Error": "PreflightFailed",
                "Cause.$": "States.Format('{}: {}', $.preflight.result, $.preflight.detail)",
            },
            "ResultPath": "$.error",
            "Next": "ReleaseAfterPreflight",
        },
        "ReleaseAfterPreflight": _release("NotifyPreflightFailed"),
        "NotifyPreflightFailed": _notify("preflight", "PreflightFailed"),
        "PreflightFailed": {"Type": "Fail", "Error": "PreflightFailed", "CausePath": "$.error.Cause"},
        "PlanWave": _lambda(
            STEP,
            _step(
                "plan_wave",
                {
                    "change_id.$": "$.change_id",
                    "parameter.$": "$.parameter",
                    "plan.$": "$.plan",
                    "wave_results.$": "$.wave_results",
                },
            ),
            "$.plan",
            "MoreWaves",
            catch=[_catch("ReleaseAfterFailure")],
            comment="The canary first (the next node group when it turns out up to date, gone or skipped), then the "
            "rest; nothing more after a failure or once a newer parameter version exists.",
        ),
        "MoreWaves": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.plan.done", "BooleanEquals": False, "Next": "Wave"}],
            "Default": "Settle",
        },
        "Wave": {
            "Type": "Map",
            "Comment": "One child execution per node group (its own history); no Fail state inside: every node group "
            "ends with its recorded outcome.",
            "ItemsPath": "$.plan.wave",
            "MaxConcurrencyPath": "$.plan.max_concurrency",
            # A child that fails anyway (never by design) must not stop its siblings. Written 100.0: the ASL allows
            # any number from 0 to 100, and moto's parser (a copy of LocalStack's grammar) accepts only a decimal.
            "ToleratedFailurePercentage": 100.0,
            "ItemSelector": {
                "cluster.$": "$$.Map.Item.Value.cluster",
                "nodegroup.$": "$$.Map.Item.Value.nodegroup",
                "wave.$": "$.plan.wave_name",
                "change_id.$": "$.change_id",
                "parameter.$": "$.parameter",
                "rollback_on_failure.$": "$.rollback_on_failure",
                "wait_seconds.$": "$.wait_seconds",
                "verify.$": "$.verify",
                "lease": {"cluster.$": "$.cluster", "owner.$": "$$.Execution.Name"},
                "waits": 0,
            },
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                **nodegroup_processor(),
            },
            "ResultPath": "$.wave_results",
            "Catch": [_catch("WaveFailed", "$.wave_error")],
            "Next": "PlanWave",
        },
        "WaveFailed": {
            "Type": "Pass",
            "Comment": "The map itself failed (not a node group): record what is known, stop starting more.",
            "Parameters": {"failed.$": "$.wave_error"},
            "ResultPath": "$.wave_results",
            "Next": "PlanWave",
        },
        "Settle": _lambda(
            STEP,
            _step("settle", {"change_id.$": "$.change_id", "cluster.$": "$.cluster", "plan.$": "$.plan"}),
            "$.outcome",
            "ReleaseLease",
            catch=[_catch("ReleaseAfterFailure")],
        ),
        "ReleaseLease": _release("RolloutOutcome"),
        "RolloutOutcome": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.outcome.failed", "BooleanEquals": True, "Next": "RolloutFailedCause"}],
            "Default": "Done",
        },
        "RolloutFailedCause": {
            "Type": "Pass",
            "Parameters": {"Error": "NodegroupRolloutFailed", "Cause.$": "$.outcome.summary"},
            "ResultPath": "$.error",
            "Next": "NotifyRolloutFailed",
        },
        "Done": {"Type": "Pass", "OutputPath": "$.outcome", "End": True},
        "ReleaseAfterFailure": _release("NotifyRolloutFailed"),
        "NotifyRolloutFailed": _notify("rollout", "RolloutFailed"),
        "RolloutFailed": {"Type": "Fail", "Error": "RolloutFailed", "CausePath": "$.error.Cause"},
        "NotifyNoLease": _notify("lease", "NoLease"),
        "NoLease": {"Type": "Fail", "Error": "LeaseUnavailable", "CausePath": "$.error.Cause"},
        "NotifyInvalidInput": _notify("validate_input", "InvalidInput"),
        "InvalidInput": {"Type": "Fail", "Error": "InvalidRolloutInput", "CausePath": "$.error.Cause"},
    }
    return {
        "Comment": "eks-proxy rollout of one cluster (Standard), generated by statemachine/generate.py: lease -> "
        "preflight -> canary, then the rest (Distributed Map) -> release. See docs/ARCHITECTURE.md, Engine.",
        "StartAt": "ValidateInput",
        "TimeoutSeconds": 172800,
        "States": states,
    }


def render() -> str:
    return json.dumps(definition(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run python statemachine/generate.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
