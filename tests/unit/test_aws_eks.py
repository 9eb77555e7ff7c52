"""eks_proxy.aws.eks reads DescribeCluster the way AWS answers it (botocore's Stubber validates the shapes)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber
from eks_proxy.aws.eks import describe_cluster


def _described(network: dict[str, Any]) -> Any:
    eks = boto3.client("eks", region_name="eu-west-1")
    stub = Stubber(eks)
    cluster = {
        "name": "prod",
        "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "resourcesVpcConfig": {"vpcId": "vpc-0abc", "subnetIds": ["subnet-0a"]},
        "kubernetesNetworkConfig": network,
    }
    stub.add_response("describe_cluster", {"cluster": cluster}, {"name": "prod"})
    with stub:
        return describe_cluster(eks, "prod")


def test_an_ipv6_cluster_gets_its_ipv6_service_range() -> None:
    """With ipFamily=ipv6 DescribeCluster has serviceIpv6Cidr and no serviceIpv4Cidr (moto does not model this, hence
    the Stubber): NO_PROXY must get that range, not the IPv4 EKS defaults that leave the cluster's services proxied."""
    info = _described({"ipFamily": "ipv6", "serviceIpv6Cidr": "fd12:3456:789a::/108"})
    assert info.service_cidr == "fd12:3456:789a::/108"


def test_an_ipv4_cluster_keeps_its_ipv4_service_range() -> None:
    assert _described({"ipFamily": "ipv4", "serviceIpv4Cidr": "172.20.0.0/16"}).service_cidr == "172.20.0.0/16"


def test_no_service_range_known_means_none() -> None:
    assert _described({}).service_cidr is None
