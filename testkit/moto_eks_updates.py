"""OUR extension of moto (5.2.x), not moto behaviour: the calls the engine needs that moto does not implement.

moto has no EKS `UpdateNodegroupVersion` / `DescribeUpdate`, and its EC2 `CreateLaunchTemplateVersion` ignores
`SourceVersion` (the new version holds only the data sent) and `ClientToken` (no idempotency). The tests run the
moto server in-process (`ThreadedMotoServer`), so `install()` registers the missing EKS routes and handlers on that
server's EKS backend and replaces the EC2 handler with one that copies the source version and honours the token,
following the AWS API reference. Everything else is stock moto, reached over HTTP.

The outcome of each node group update is scripted per node group (`script(cluster, nodegroup, ...)`):
- `busy`: the first N UpdateNodegroupVersion calls are refused with `ResourceInUseException`;
- `polls`: DescribeUpdate answers `InProgress` N times before the final status;
- `outcome`: `Successful` (the node group then runs the new launch template version), `Failed` or `Cancelled`
  (the node group keeps its version, the update carries an error like EKS's: `error_code`, default
  `NodeCreationFailure`, or e.g. `PodEvictionFailure`); `outcomes`: the outcomes of the next updates in order
  (consumed one per update, then `outcome` again: "the update fails, its rollback fails too");
- `creating_reads`: the node group is `CREATING` for its next N DescribeNodegroup reads, then `ACTIVE`.
While an update is `InProgress` the node group is `UPDATING` and another update is refused, as in EKS; a request
repeating an earlier one's `clientRequestToken` gets that earlier update back (EKS's idempotency token).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.eks import urls as eks_urls
from moto.eks.exceptions import ResourceInUseException, ResourceNotFoundException
from moto.eks.models import EKSBackend, Nodegroup, eks_backends
from moto.eks.responses import EKSResponse

_LOCK = threading.Lock()


@dataclass
class UpdateScript:
    busy: int = 0
    polls: int = 1
    outcome: str = "Successful"
    creating_reads: int = 0
    outcomes: list[str] = field(default_factory=list)
    error_code: str = "NodeCreationFailure"


@dataclass
class _Update:
    id: str
    cluster: str
    nodegroup: str
    launch_template: dict[str, str]
    status: str
    polls_left: int
    outcome: str
    created_at: Any
    error_code: str = "NodeCreationFailure"
    started: float = field(default_factory=time.monotonic)  # wall-clock interval the update ran (monotonic)
    ended: float | None = None


SCRIPTS: dict[tuple[str, str], UpdateScript] = {}
UPDATES: dict[str, _Update] = {}
TOKENS: dict[str, str] = {}  # clientRequestToken -> the update it started (EKS: the same token, the same update)
CALLS: list[dict[str, Any]] = []  # every UpdateNodegroupVersion request received, in order


def script(cluster: str, nodegroup: str, **kwargs: Any) -> UpdateScript:
    """Script the next updates of one node group (see the module docstring)."""
    with _LOCK:
        SCRIPTS[(cluster, nodegroup)] = UpdateScript(**kwargs)
        return SCRIPTS[(cluster, nodegroup)]


def reset() -> None:
    with _LOCK:
        SCRIPTS.clear()
        UPDATES.clear()
        CALLS.clear()
        TOKENS.clear()


def _nodegroup(backend: EKSBackend, cluster: str, name: str) -> Nodegroup:
    try:
        return backend.clusters[cluster].nodegroups[name]
    except KeyError:
        raise ResourceNotFoundException(
            clusterName=cluster,
            nodegroupName=name,
            fargateProfileName=None,
            addonName=None,
            message=f"No node group found for name: {name}.",
        ) from None


def _update_view(update: _Update) -> dict[str, Any]:
    lt = update.launch_template
    params = [
        {"type": "LaunchTemplateId" if "id" in lt else "LaunchTemplateName", "value": lt.get("id", lt.get("name"))}
    ]
    params.append({"type": "LaunchTemplateVersion", "value": lt["version"]})
    errors = []
    if update.status in {"Failed", "Cancelled"}:
        message = {
            "NodeCreationFailure": "Instances failed to join the kubernetes cluster",
            "PodEvictionFailure": "Reached max retries while trying to evict pods from nodes in node group",
        }.get(update.error_code, "the update failed")
        errors = [{"errorCode": update.error_code, "errorMessage": message}]
    return {
        "id": update.id,
        "status": update.status,
        "type": "VersionUpdate",
        "params": params,
        "createdAt": update.created_at,
        "errors": errors,
    }


def _update_nodegroup_version(self: EKSResponse) -> ActionResult:
    cluster, name = self._get_param("name"), self._get_param("nodegroupName")
    launch_template = dict(self._get_param("launchTemplate") or {})
    force = self._get_param("force")
    token = self._get_param("clientRequestToken")
    backend: EKSBackend = eks_backends[self.current_account][self.region]
    with _LOCK:
        ng = _nodegroup(backend, cluster, name)
        if token and token in TOKENS:  # a repeated request: the update the first one started, nothing new
            return ActionResult({"update": _update_view(UPDATES[TOKENS[token]])})
        CALLS.append({"cluster": cluster, "nodegroup": name, "launchTemplate": launch_template, "force": force})
        plan = SCRIPTS.setdefault((cluster, name), UpdateScript())
        if plan.busy > 0 or ng.status in {"UPDATING", "CREATING"}:
            plan.busy = max(0, plan.busy - 1)
            raise ResourceInUseException(
                clusterName=cluster,
                nodegroupName=name,
                fargateProfileName=None,
                addonName=None,
                message=f"Nodegroup {name} is currently in use (another update is in progress)",
            )
        current = ng.launch_template or {}
        if "id" in launch_template and launch_template["id"] != current.get("id"):
            raise ResourceInUseException(message="launch template id does not match the node group's")
        update = _Update(
            id=str(uuid.uuid4()),
            cluster=cluster,
            nodegroup=name,
            launch_template=launch_template,
            status="InProgress",
            polls_left=plan.polls,
            outcome=plan.outcomes.pop(0) if plan.outcomes else plan.outcome,
            created_at=utcnow(),
            error_code=plan.error_code,
        )
        UPDATES[update.id] = update
        if token:
            TOKENS[token] = update.id
        ng.status = "UPDATING"
        return ActionResult({"update": _update_view(update)})


def _describe_update(self: EKSResponse) -> ActionResult:
    update_id = self._get_param("updateId")
    backend: EKSBackend = eks_backends[self.current_account][self.region]
    with _LOCK:
        update = UPDATES.get(update_id)
        if update is None:
            raise ResourceNotFoundException(
                clusterName=self._get_param("name"),
                nodegroupName=self._get_param("nodegroupName"),
                fargateProfileName=None,
                addonName=None,
                message=f"No update found for ID: {update_id}",
            )
        _nodegroup(backend, update.cluster, update.nodegroup)  # EKS: no update of a node group that is gone
        if update.status == "InProgress":
            if update.polls_left > 0:
                update.polls_left -= 1
            else:
                update.status = update.outcome
                update.ended = time.monotonic()
                ng = _nodegroup(backend, update.cluster, update.nodegroup)
                ng.status = "ACTIVE"
                if update.outcome == "Successful":
                    ng.launch_template = {**(ng.launch_template or {}), "version": update.launch_template["version"]}
        return ActionResult({"update": _update_view(update)})


_original_describe_nodegroup = EKSBackend.describe_nodegroup


def _describe_nodegroup(self: EKSBackend, cluster_name: str, nodegroup_name: str) -> Nodegroup:
    ng = _original_describe_nodegroup(self, cluster_name, nodegroup_name)
    with _LOCK:
        plan = SCRIPTS.get((cluster_name, nodegroup_name))
        if plan and plan.creating_reads > 0:
            plan.creating_reads -= 1
            ng.status = "CREATING" if plan.creating_reads > 0 else "ACTIVE"
    return ng


def _create_launch_template_version(self: LaunchTemplates) -> ActionResult:
    """CreateLaunchTemplateVersion with SourceVersion (copy, then override top-level keys) and ClientToken."""
    name, template_id = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
    backend = ec2_backends[self.current_account][self.region]
    template = backend.get_launch_template(template_id) if template_id else backend.get_launch_template_by_name(name)
    data = dict(self._get_param("LaunchTemplateData", {}) or {})
    source, token = self._get_param("SourceVersion"), self._get_param("ClientToken")
    self.error_on_dryrun()
    with _LOCK:
        tokens: dict[str, Any] = template.__dict__.setdefault("_client_tokens", {})
        version = tokens.get(token) if token else None
        if version is None:
            if source is not None:
                data = {**template.get_version(source).data, **data}
            version = template.create_version(data, self._get_param("VersionDescription"))
            if token:
                tokens[token] = version
    return ActionResult(
        {
            "LaunchTemplateVersion": {
                "CreateTime": version.create_time,
                "CreatedBy": f"arn:{self.partition}:iam::{self.current_account}:role/eks-proxy-test",
                "DefaultVersion": template.is_default(version),
                "LaunchTemplateData": version.data,
                "LaunchTemplateId": template.id,
                "LaunchTemplateName": template.name,
                "VersionDescription": version.description,
                "VersionNumber": version.number,
            }
        }
    )


_INSTALLED = False


def install() -> None:
    """Register the extension (idempotent). Must run before the moto server serves its first EKS request."""
    global _INSTALLED
    if _INSTALLED:
        return
    eks_urls.url_paths["{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$"] = (
        eks_urls.response.dispatch
    )
    eks_urls.url_paths["{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$"] = eks_urls.response.dispatch
    EKSResponse.update_nodegroup_version = _update_nodegroup_version  # type: ignore[attr-defined]
    EKSResponse.describe_update = _describe_update  # type: ignore[attr-defined]
    EKSBackend.describe_nodegroup = _describe_nodegroup  # type: ignore[method-assign]
    LaunchTemplates.create_launch_template_version = _create_launch_template_version  # type: ignore[method-assign]
    _INSTALLED = True
