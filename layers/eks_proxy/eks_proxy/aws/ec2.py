"""EC2 launch template versions, VPC CIDRs and the running instances of a node group."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from eks_proxy.aws.errors import error_code
from eks_proxy.model import LaunchTemplateRef, TemplateVersion

# Error codes meaning "this launch template or version does not exist (any more)".
_GONE = {
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.VersionNotFound",
    "InvalidLaunchTemplateId.Malformed",
    "InvalidLaunchTemplateName.MalformedException",
}


def _template_args(ref: LaunchTemplateRef) -> dict[str, str]:
    return {"LaunchTemplateId": ref.id} if ref.id else {"LaunchTemplateName": ref.name or ""}


def _version(raw: dict[str, Any]) -> TemplateVersion:
    return TemplateVersion(
        number=int(raw["VersionNumber"]),
        user_data=(raw.get("LaunchTemplateData") or {}).get("UserData") or None,
        description=str(raw.get("VersionDescription") or ""),
    )


def get_template_version(ec2: Any, ref: LaunchTemplateRef, version: int | str | None = None) -> TemplateVersion | None:
    """One version (default: the node group's; `$Default` when it names none); None when it no longer exists."""
    wanted = str(version if version is not None else ref.version if ref.version is not None else "$Default")
    try:
        found = ec2.describe_launch_template_versions(**_template_args(ref), Versions=[wanted])
    except ClientError as error:
        if error_code(error) in _GONE:
            return None
        raise
    versions = found.get("LaunchTemplateVersions") or []
    return _version(versions[0]) if versions else None


def later_versions(ec2: Any, ref: LaunchTemplateRef, after: int) -> list[TemplateVersion]:
    """Every version newer than `after` (paginated), the candidates for reuse."""
    paginator = ec2.get_paginator("describe_launch_template_versions")
    pages = paginator.paginate(**_template_args(ref), MinVersion=str(after + 1), PaginationConfig={"PageSize": 200})
    try:
        return [_version(raw) for page in pages for raw in page.get("LaunchTemplateVersions") or []]
    except ClientError as error:
        if error_code(error) in _GONE:
            return []
        raise


def create_template_version(
    ec2: Any, ref: LaunchTemplateRef, source_version: int, user_data: str, *, description: str, client_token: str
) -> int:
    """A new version copied from `source_version` with only the user data replaced; returns its number.

    EC2 answers a repeated `client_token` with the version it made the first time: two racing refreshes of the same
    change get one version (the token is derived from template, source version and fingerprint by the caller).
    """
    response = ec2.create_launch_template_version(
        **_template_args(ref),
        SourceVersion=str(source_version),
        LaunchTemplateData={"UserData": user_data},
        VersionDescription=description,
        ClientToken=client_token,
    )
    return int(response["LaunchTemplateVersion"]["VersionNumber"])


def template_id_of(ec2: Any, ref: LaunchTemplateRef) -> str | None:
    """The id of a launch template known by name only (None when it does not exist)."""
    if ref.id:
        return ref.id
    try:
        found = ec2.describe_launch_templates(LaunchTemplateNames=[ref.name])
    except ClientError as error:
        if error_code(error) in _GONE:
            return None
        raise
    templates = found.get("LaunchTemplates") or []
    return str(templates[0]["LaunchTemplateId"]) if templates else None


def vpc_cidrs(ec2: Any, vpc_id: str | None, subnet_ids: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Every IPv4 CIDR block of the cluster VPC (found through a subnet when DescribeCluster names no VPC)."""
    if not vpc_id and subnet_ids:
        subnets = ec2.describe_subnets(SubnetIds=[subnet_ids[0]]).get("Subnets") or []
        vpc_id = subnets[0].get("VpcId") if subnets else None
    if not vpc_id:
        return ()
    vpcs = ec2.describe_vpcs(VpcIds=[vpc_id]).get("Vpcs") or []
    cidrs: list[str] = []
    for vpc in vpcs:
        for assoc in vpc.get("CidrBlockAssociationSet") or [{"CidrBlock": vpc.get("CidrBlock")}]:
            state = (assoc.get("CidrBlockState") or {}).get("State", "associated")
            if assoc.get("CidrBlock") and state == "associated" and assoc["CidrBlock"] not in cidrs:
                cidrs.append(assoc["CidrBlock"])
    return tuple(cidrs)


def nodegroup_node_names(ec2: Any, cluster: str, nodegroup: str) -> list[str]:
    """Node names of the running instances of a managed node group (``DescribeInstances``, paginated).

    Managed node groups tag their instances ``eks:cluster-name`` and ``eks:nodegroup-name``; the node name is the
    instance's ``PrivateDnsName`` (the name EKS nodes register with).
    """
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": "tag:eks:cluster-name", "Values": [cluster]},
            {"Name": "tag:eks:nodegroup-name", "Values": [nodegroup]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )
    names = {
        instance["PrivateDnsName"]
        for page in pages
        for reservation in page.get("Reservations", [])
        for instance in reservation.get("Instances", [])
        if instance.get("PrivateDnsName")
    }
    return sorted(names)
