"""NO_PROXY as computed for a node: every documented entry, its order, deduplication, and bad cluster facts."""

from __future__ import annotations

import pytest
from eks_proxy.proxy.no_proxy import NodeContext, NodeContextError, compute_no_proxy
from eks_proxy.proxy.value import parse_proxy_value
from hypothesis import given
from hypothesis import strategies as st

PLAIN = parse_proxy_value("http://10.0.0.10:3128")


def test_full_context_in_documented_order() -> None:
    config = parse_proxy_value('{"http_proxy": "proxy:3128", "no_proxy": [".corp.example", "10.0.0.0/16"]}')
    context = NodeContext(
        region="eu-west-1",
        service_cidr="172.20.0.0/16",
        cluster_endpoint="https://ABC123.gr7.eu-west-1.eks.amazonaws.com",
        vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16"),
    )
    assert compute_no_proxy(config, context) == (
        "localhost",
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.23",
        "fd00:ec2::23",
        ".internal",
        "abc123.gr7.eu-west-1.eks.amazonaws.com",
        "172.20.0.0/16",
        "10.0.0.0/16",
        "100.64.0.0/16",
        "eks.eu-west-1.amazonaws.com",
        "api.ecr.eu-west-1.amazonaws.com",
        ".dkr.ecr.eu-west-1.amazonaws.com",
        "s3.eu-west-1.amazonaws.com",
        "ec2.eu-west-1.amazonaws.com",
        "sts.eu-west-1.amazonaws.com",
        ".corp.example",  # the user's 10.0.0.0/16 is already there: listed once
    )


def test_unknown_service_cidr_gives_both_eks_defaults_and_no_endpoint() -> None:
    entries = compute_no_proxy(PLAIN, NodeContext(region="us-east-1"))
    assert "10.100.0.0/16" in entries and "172.20.0.0/16" in entries
    assert not any("gr7" in e for e in entries)


def test_known_service_cidr_replaces_the_defaults() -> None:
    entries = compute_no_proxy(PLAIN, NodeContext(region="us-east-1", service_cidr="10.200.0.0/16"))
    assert "10.200.0.0/16" in entries and "10.100.0.0/16" not in entries and "172.20.0.0/16" not in entries


def test_china_regions_use_their_domain() -> None:
    entries = compute_no_proxy(PLAIN, NodeContext(region="cn-north-1"))
    assert "eks.cn-north-1.amazonaws.com.cn" in entries and ".dkr.ecr.cn-north-1.amazonaws.com.cn" in entries


def test_govcloud_region_is_accepted() -> None:
    assert "sts.us-gov-west-1.amazonaws.com" in compute_no_proxy(PLAIN, NodeContext(region="us-gov-west-1"))


def test_context_is_normalized() -> None:
    context = NodeContext(
        region="eu-west-1",
        service_cidr="172.20.0.1/16",
        cluster_endpoint="https://abc.gr7.eu-west-1.eks.amazonaws.com:443/",
        vpc_cidrs=["10.0.0.0/16", "10.0.0.0/16"],  # type: ignore[arg-type]
    )
    assert context.service_cidr == "172.20.0.0/16"
    assert context.vpc_cidrs == ("10.0.0.0/16",)
    assert context.endpoint_host == "abc.gr7.eu-west-1.eks.amazonaws.com"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"region": "eu west 1"}, "region"),
        ({"region": "eu-west-1; reboot"}, "region"),
        ({"region": ""}, "region"),
        ({"region": "eu-west-1", "service_cidr": "10.0.0.0/33"}, "service CIDR"),
        ({"region": "eu-west-1", "vpc_cidrs": ("nope",)}, "VPC CIDR"),
        ({"region": "eu-west-1", "cluster_endpoint": "https://bad_host;x/"}, "cluster endpoint"),
        ({"region": "eu-west-1", "cluster_endpoint": "https://[::1]/"}, "cluster endpoint"),
        # Python's re "$" matches before a final newline, and ipaddress accepts any IPv6 scope id ("%..."):
        # neither may smuggle a newline, a quote or a command into the NO_PROXY every node gets.
        ({"region": "eu-west-1\n"}, "region"),
        ({"region": "eu-west-\u0661"}, "region"),  # an Arabic-Indic digit one: re's \d is Unicode
        ({"region": "eu-west-1", "cluster_endpoint": "https://abc.example.com\n/x"}, "cluster endpoint"),
        ({"region": "eu-west-1", "cluster_endpoint": "https://user:pw@abc.example.com/"}, "cluster endpoint"),
        ({"region": "eu-west-1", "vpc_cidrs": ("fe80::%'$(reboot)'/128",)}, "VPC CIDR"),
        ({"region": "eu-west-1", "vpc_cidrs": ('fd00::%a"b/64',)}, "VPC CIDR"),
        ({"region": "eu-west-1", "service_cidr": "fd00::%eth0/108"}, "service CIDR"),
    ],
)
def test_bad_cluster_facts_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(NodeContextError, match=fragment):
        NodeContext(**kwargs)  # type: ignore[arg-type]


@given(
    additions=st.lists(st.sampled_from([".corp", "10.0.0.0/16", "localhost", "registry.corp", "fd00::1"]), max_size=6),
    vpcs=st.lists(st.sampled_from(["10.0.0.0/16", "10.1.0.0/16", "172.20.0.0/16"]), max_size=3),
)
def test_always_deduplicated_deterministic_and_complete(additions: list[str], vpcs: list[str]) -> None:
    import json

    config = parse_proxy_value(json.dumps({"http_proxy": "proxy:3128", "no_proxy": additions}))
    context = NodeContext(region="eu-west-1", vpc_cidrs=tuple(vpcs))
    entries = compute_no_proxy(config, context)
    assert len(entries) == len(set(entries))
    assert entries == compute_no_proxy(config, context)
    assert set(additions) <= set(entries) and set(vpcs) <= set(entries)
    assert entries[:4] == ("localhost", "127.0.0.1", "::1", "169.254.169.254")


def test_without_vpc_endpoints_the_aws_apis_go_through_the_proxy() -> None:
    """A VPC whose only way to AWS is the proxy: the regional API names must not be in NO_PROXY (nodes would try
    them directly and never join); everything local stays."""
    context = NodeContext("eu-west-1", service_cidr="172.20.0.0/16", vpc_cidrs=("10.0.0.0/16",))
    with_endpoints = compute_no_proxy(parse_proxy_value("proxy:3128"), context)
    without = compute_no_proxy(parse_proxy_value('{"http_proxy": "proxy:3128", "vpc_endpoints": false}'), context)
    aws = [e for e in with_endpoints if e.endswith(".amazonaws.com")]
    assert aws and "sts.eu-west-1.amazonaws.com" in aws
    assert not [e for e in without if e.endswith(".amazonaws.com")]
    assert [e for e in with_endpoints if e not in aws] == list(without)
