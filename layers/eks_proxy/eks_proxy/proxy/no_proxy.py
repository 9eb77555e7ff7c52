"""NO_PROXY, computed: what a node must reach directly, never through the proxy.

Order is fixed (the tuple below, then the cluster, then the user's additions); duplicates are dropped keeping the
first occurrence, so the same inputs always give the same string (and the same fingerprint).

| entry | why |
|---|---|
| ``localhost``, ``127.0.0.1``, ``::1`` | loopback: kubelet <-> containerd, health checks, local agents |
| ``169.254.169.254``, ``fd00:ec2::254`` | instance metadata (IMDS, IPv4 and IPv6): credentials, region, MAC, CIDRs |
| ``169.254.170.23``, ``fd00:ec2::23`` | EKS Pod Identity agent on the node: pod credentials |
| ``.internal`` | EC2 private DNS names (``ip-10-0-1-2.eu-west-1.compute.internal``): node names, kubelet |
| cluster endpoint host name | the API server; a CIDR never matches a host name in Go, so the name itself is listed |
| service CIDR, else ``10.100.0.0/16`` and ``172.20.0.0/16`` | ClusterIP services; the two EKS defaults |
| VPC CIDRs | nodes, pods and interface VPC endpoints inside the VPC (a boothook adds those read from IMDS at boot) |
| ``eks.<region>.<domain>`` | EKS API (VPC endpoint ``eks``): nodeadm / bootstrap describe the cluster |
| ``api.ecr.<region>.<domain>`` | ECR API (VPC endpoint ``ecr.api``): the kubelet credential provider gets its token |
| ``.dkr.ecr.<region>.<domain>`` | ECR registries ``<account>.dkr.ecr...`` (``ecr.dkr``): add-on, pause images |
| ``s3.<region>.<domain>`` | S3 (gateway endpoint): ECR image layers; no leading dot, so it matches bucket hosts too |
| ``ec2.<region>.<domain>`` | EC2 API (VPC endpoint ``ec2``): VPC CNI (ipamd) and nodeadm instance lookups |
| ``sts.<region>.<domain>`` | STS (VPC endpoint ``sts``): IRSA web identity and the aws-iam-authenticator token |
| the user's additions | from the JSON proxy value's ``no_proxy`` |

``<domain>`` is ``amazonaws.com`` (``amazonaws.com.cn`` in the China regions). Services not listed (SSM, CloudWatch
Logs, ...) go through the proxy unless the user adds them; the list is kept short because it is repeated in every
node's user data, whose size EC2 limits.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from eks_proxy.proxy.value import ProxyConfig, is_hostname

LOCAL_ENTRIES: tuple[str, ...] = (
    "localhost",
    "127.0.0.1",
    "::1",
    "169.254.169.254",
    "fd00:ec2::254",
    "169.254.170.23",
    "fd00:ec2::23",
    ".internal",
)
EKS_DEFAULT_SERVICE_CIDRS: tuple[str, ...] = ("10.100.0.0/16", "172.20.0.0/16")
# Regional service names reached through VPC endpoints in private clusters ("{r}" is the region, "{d}" the domain).
SERVICE_ENTRIES: tuple[str, ...] = (
    "eks.{r}.{d}",
    "api.ecr.{r}.{d}",
    ".dkr.ecr.{r}.{d}",
    "s3.{r}.{d}",
    "ec2.{r}.{d}",
    "sts.{r}.{d}",
)
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")  # used with fullmatch; ASCII digits only


class NodeContextError(ValueError):
    """A cluster fact (region, CIDR, endpoint) is malformed; one line, says what is expected."""


@dataclass(frozen=True)
class NodeContext:
    """What we know about the cluster and its VPC when rendering, normalized on construction.

    >>> NodeContext("eu-west-1", cluster_endpoint="https://ABC.gr7.eu-west-1.eks.amazonaws.com").endpoint_host
    'abc.gr7.eu-west-1.eks.amazonaws.com'
    """

    region: str
    service_cidr: str | None = None
    cluster_endpoint: str | None = None
    vpc_cidrs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not _REGION.fullmatch(self.region):
            raise NodeContextError("region is not an AWS region name; expected e.g. eu-west-1")
        if self.service_cidr is not None:
            object.__setattr__(self, "service_cidr", _cidr(self.service_cidr, "service CIDR"))
        if self.cluster_endpoint is not None:
            object.__setattr__(self, "cluster_endpoint", self.cluster_endpoint.strip() or None)
            self.endpoint_host  # noqa: B018 - validates the endpoint now rather than at render time
        cidrs: list[str] = []
        for raw in self.vpc_cidrs:
            cidr = _cidr(raw, "VPC CIDR")
            if cidr not in cidrs:
                cidrs.append(cidr)
        object.__setattr__(self, "vpc_cidrs", tuple(cidrs))

    @property
    def endpoint_host(self) -> str | None:
        """The API server's host name (or IP) from ``cluster_endpoint``, lower case; None when unknown."""
        if not self.cluster_endpoint:
            return None
        rest = self.cluster_endpoint.split("://", 1)[1] if "://" in self.cluster_endpoint else self.cluster_endpoint
        host = rest.split("/", 1)[0]
        if "@" in host:
            raise NodeContextError("cluster endpoint has a user part; expected https://<id>.<region>.eks...")
        if host.startswith("[") or host.count(":") > 1:
            raise NodeContextError("cluster endpoint must be a host name; expected https://<id>.<region>.eks...")
        host = host.split(":", 1)[0].lower()
        if not is_hostname(host):
            raise NodeContextError("cluster endpoint has an invalid host name; expected https://<host name>")
        return host

    @property
    def dns_suffix(self) -> str:
        """The AWS service domain of the region."""
        return "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"


def _cidr(raw: str, what: str) -> str:
    text = str(raw).strip()
    # ipaddress accepts an IPv6 scope id ("fe80::%<any text>/64") and keeps it verbatim: refused, it is free text.
    if "%" in text:
        raise NodeContextError(f"{what} has an IPv6 zone id ('%'); expected e.g. 10.0.0.0/16 or fd00:10::/64")
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise NodeContextError(f"{what} is not a valid CIDR; expected e.g. 10.0.0.0/16") from None


def compute_no_proxy(config: ProxyConfig, context: NodeContext) -> tuple[str, ...]:
    """The NO_PROXY entries for a node, in their fixed order, without duplicates.

    >>> from eks_proxy.proxy.value import parse_proxy_value
    >>> compute_no_proxy(parse_proxy_value("proxy:3128"), NodeContext("eu-west-1"))[8:10]
    ('10.100.0.0/16', '172.20.0.0/16')
    """
    entries: list[str] = list(LOCAL_ENTRIES)
    if context.endpoint_host:
        entries.append(context.endpoint_host)
    entries.extend((context.service_cidr,) if context.service_cidr else EKS_DEFAULT_SERVICE_CIDRS)
    entries.extend(context.vpc_cidrs)
    if config.vpc_endpoints:  # without VPC endpoints the AWS APIs are reached through the proxy like the rest
        entries.extend(pattern.format(r=context.region, d=context.dns_suffix) for pattern in SERVICE_ENTRIES)
    entries.extend(config.no_proxy)
    return tuple(dict.fromkeys(entries))
