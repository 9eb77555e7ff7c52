"""EKS reads and writes: paginated listings, node group and cluster state, node group updates, API server access."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from eks_proxy.aws.errors import error_code
from eks_proxy.model import LaunchTemplateRef, NodegroupState


@dataclass(frozen=True)
class ClusterInfo:
    """What DescribeCluster tells us that ends up in NO_PROXY."""

    name: str
    endpoint: str | None
    service_cidr: str | None
    vpc_id: str | None
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class UpdateStatus:
    """DescribeUpdate: `InProgress`, `Successful`, `Failed` or `Cancelled`, with the error messages if any."""

    id: str
    status: str
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterAccess:
    """Where a cluster's API server is and which CA signs its certificate (from DescribeCluster)."""

    name: str
    endpoint: str  # https://ABC.gr7.eu-west-1.eks.amazonaws.com
    ca_pem: str


class ClusterNotReady(RuntimeError):
    """DescribeCluster names no API endpoint or CA yet (a cluster still being created)."""


class NodegroupNotFound(LookupError):
    """The node group does not exist (any more)."""


def list_clusters(eks: Any) -> list[str]:
    """Every cluster name in the region (paginated)."""
    return [name for page in eks.get_paginator("list_clusters").paginate() for name in page.get("clusters", [])]


def list_nodegroups(eks: Any, cluster: str) -> Iterator[str]:
    """Every node group name of a cluster (paginated: 100 per page is the API maximum)."""
    paginator = eks.get_paginator("list_nodegroups")
    for page in paginator.paginate(clusterName=cluster, PaginationConfig={"PageSize": 100}):
        yield from page.get("nodegroups", [])


def _launch_template(raw: dict[str, Any] | None) -> LaunchTemplateRef | None:
    if not raw:
        return None
    version = raw.get("version")
    return LaunchTemplateRef(
        id=raw.get("id") or None,
        name=raw.get("name") or None,
        version=int(version) if version is not None and str(version).isdigit() else None,
    )


def describe_nodegroup(eks: Any, cluster: str, nodegroup: str) -> NodegroupState:
    """The node group's status, AMI type, launch template and tags; `NodegroupNotFound` when it is gone."""
    try:
        ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)["nodegroup"]
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            raise NodegroupNotFound(f"node group {cluster}/{nodegroup} not found") from None
        raise
    return NodegroupState(
        cluster=cluster,
        name=nodegroup,
        status=str(ng.get("status", "")),
        ami_type=str(ng.get("amiType", "")),
        launch_template=_launch_template(ng.get("launchTemplate")),
        tags=dict(ng.get("tags") or {}),
    )


def cluster_exists(eks: Any, cluster: str) -> bool:
    """Whether the cluster exists in the client's region (DescribeCluster)."""
    try:
        eks.describe_cluster(name=cluster)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return False
        raise
    return True


def describe_cluster(eks: Any, cluster: str) -> ClusterInfo:
    """Endpoint, service CIDR and VPC of a cluster."""
    c = eks.describe_cluster(name=cluster)["cluster"]
    vpc = c.get("resourcesVpcConfig") or {}
    network = c.get("kubernetesNetworkConfig") or {}
    return ClusterInfo(
        name=cluster,
        endpoint=c.get("endpoint") or None,
        # An IPv6 cluster has no serviceIpv4Cidr (AWS docs): its own service range must still be in NO_PROXY.
        service_cidr=network.get("serviceIpv4Cidr") or network.get("serviceIpv6Cidr") or None,
        vpc_id=vpc.get("vpcId") or None,
        subnet_ids=tuple(vpc.get("subnetIds") or ()),
    )


def cluster_access(eks: Any, cluster_name: str) -> ClusterAccess:
    """The API endpoint and CA of ``cluster_name`` (``eks:DescribeCluster``); `ClusterNotReady` when it has none."""
    cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    endpoint = cluster.get("endpoint") or ""
    ca_data = (cluster.get("certificateAuthority") or {}).get("data") or ""
    if not endpoint or not ca_data:
        raise ClusterNotReady(f"cluster {cluster_name} has no API endpoint or CA yet")
    return ClusterAccess(cluster_name, endpoint, base64.b64decode(ca_data).decode("ascii"))


def update_nodegroup_version(
    eks: Any,
    cluster: str,
    nodegroup: str,
    launch_template: LaunchTemplateRef,
    version: int,
    *,
    force: bool,
    token: str | None = None,
) -> str:
    """Roll the node group to `version` of its launch template; returns the update id.

    Only `launchTemplate` is passed (never `version`/`releaseVersion`: they are invalid with a custom AMI).
    `token` (clientRequestToken) makes a repeated call (a retried step) return the update the first call started.
    Raises ClientError `ResourceInUseException` while another update runs (the state machine retries).
    """
    extra = {"clientRequestToken": token} if token else {}
    response = eks.update_nodegroup_version(
        clusterName=cluster,
        nodegroupName=nodegroup,
        launchTemplate=launch_template.for_update(version),
        force=force,
        **extra,
    )
    return str(response["update"]["id"])


def describe_update(eks: Any, cluster: str, nodegroup: str, update_id: str) -> UpdateStatus:
    """The status of one node group update."""
    update = eks.describe_update(name=cluster, nodegroupName=nodegroup, updateId=update_id)["update"]
    errors = tuple(str(e.get("errorMessage") or e.get("errorCode") or e) for e in update.get("errors") or ())
    return UpdateStatus(id=update_id, status=str(update.get("status", "")), errors=errors)
