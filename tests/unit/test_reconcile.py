"""The reconcile decision per node group: every outcome, reuse of our own versions, and idempotence."""

from __future__ import annotations

import base64

import pytest
from eks_proxy.engine.reconcile import (
    NO_TEMPLATE_REMEDY,
    OurVersion,
    client_token,
    find_reusable_version,
    made_by_us,
    reconcile_nodegroup,
    version_description,
)
from eks_proxy.model import Decision, LaunchTemplateRef, NodegroupState, Outcome, TemplateVersion
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import parse_proxy_value
from eks_proxy.userdata.merge import desired_fingerprint, find_fingerprint, render_userdata
from eks_proxy.userdata.node_os import NodeOS
from hypothesis import given, settings
from hypothesis import strategies as st

CONFIG = parse_proxy_value("http://10.0.0.10:3128")
CONTEXT = NodeContext(
    region="eu-west-1",
    service_cidr="172.20.0.0/16",
    cluster_endpoint="https://ABC.gr7.eu-west-1.eks.amazonaws.com",
    vpc_cidrs=("10.0.0.0/16",),
)
LT = LaunchTemplateRef(id="lt-0a1b2c3d4e5f67890", name="prod-ng-a", version=3)
USER_SCRIPT = (
    b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="//"\n\n--//\n'
    b'Content-Type: text/x-shellscript; charset="us-ascii"\n\n#!/bin/bash\necho team-script\n\n--//--\n'
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def nodegroup(ami_type: str = "AL2023_x86_64_STANDARD", **kwargs: object) -> NodegroupState:
    values: dict[str, object] = {
        "cluster": "prod",
        "name": "ng-a",
        "status": "ACTIVE",
        "ami_type": ami_type,
        "launch_template": LT,
        "tags": {},
    }
    values.update(kwargs)
    return NodegroupState(**values)  # type: ignore[arg-type]


def decide(ng: NodegroupState, user_data: str | None = b64(USER_SCRIPT), **kwargs: object) -> Decision:
    current = TemplateVersion(3, user_data, "") if user_data != "missing" else None
    return reconcile_nodegroup(ng, current, CONFIG, CONTEXT, **kwargs)  # type: ignore[arg-type]


def ours(node_os: NodeOS = NodeOS.AL2023) -> str:
    return b64(render_userdata(CONFIG, CONTEXT, node_os))


def test_opted_out_by_tag() -> None:
    d = decide(nodegroup(tags={"eks-proxy/skip": "true"}))
    assert d.outcome is Outcome.OUT_OF_SCOPE
    assert "eks-proxy/skip=true" in d.reason
    assert d.remedy


def test_opt_out_tag_other_values_do_not_opt_out() -> None:
    assert decide(nodegroup(tags={"eks-proxy/skip": "false"})).outcome is Outcome.CREATE_VERSION


def test_custom_opt_out_tag_key() -> None:
    d = decide(nodegroup(tags={"no-proxy-please": "TRUE"}), opt_out_tag_key="no-proxy-please")
    assert d.outcome is Outcome.OUT_OF_SCOPE


def test_nodegroup_without_launch_template_gets_the_remedy() -> None:
    d = decide(nodegroup(launch_template=None))
    assert d.outcome is Outcome.OUT_OF_SCOPE
    assert d.remedy == NO_TEMPLATE_REMEDY
    assert "recreate the node group with a launch template" in d.remedy


@pytest.mark.parametrize("ami_type", ["WINDOWS_CORE_2022_x86_64", "WINDOWS_FULL_2019_x86_64", "CUSTOM", "NEW_THING"])
def test_windows_custom_without_hint_and_unknown_are_out_of_scope(ami_type: str) -> None:
    d = decide(nodegroup(ami_type))
    assert d.outcome is Outcome.OUT_OF_SCOPE
    assert d.reason
    assert d.new_user_data is None


def test_custom_ami_with_hint_is_managed() -> None:
    d = decide(nodegroup("CUSTOM", tags={"eks-proxy/os": "bottlerocket"}), user_data=None)
    assert d.outcome is Outcome.CREATE_VERSION
    assert d.node_os == "bottlerocket"


def test_deleted_launch_template_version_is_out_of_scope() -> None:
    d = decide(nodegroup(), user_data="missing")
    assert d.outcome is Outcome.OUT_OF_SCOPE
    assert "no longer exists" in d.reason


def test_deleting_nodegroup_is_out_of_scope() -> None:
    assert decide(nodegroup(status="DELETING")).outcome is Outcome.OUT_OF_SCOPE


def test_creating_nodegroup_is_still_planned() -> None:
    assert decide(nodegroup(status="CREATING")).outcome is Outcome.CREATE_VERSION


@pytest.mark.parametrize(
    ("ami_type", "node_os"),
    [
        ("AL2023_x86_64_STANDARD", NodeOS.AL2023),
        ("AL2_x86_64", NodeOS.AL2),
        ("BOTTLEROCKET_ARM_64", NodeOS.BOTTLEROCKET),
    ],
)
def test_up_to_date_when_the_fingerprint_matches(ami_type: str, node_os: NodeOS) -> None:
    d = decide(nodegroup(ami_type), user_data=ours(node_os))
    assert d.outcome is Outcome.UP_TO_DATE
    assert d.current_fingerprint == d.desired_fingerprint == desired_fingerprint(CONFIG, CONTEXT, node_os)
    assert d.target_version == 3
    assert not d.needs_rollout


def test_out_of_date_creates_a_version_keeping_the_team_script() -> None:
    d = decide(nodegroup())
    assert d.outcome is Outcome.CREATE_VERSION
    assert d.needs_rollout
    assert d.new_user_data is not None
    raw = base64.b64decode(d.new_user_data)
    assert b"echo team-script" in raw
    assert find_fingerprint(d.new_user_data) == d.desired_fingerprint
    assert d.current_fingerprint is None


def test_empty_user_data_gets_ours_alone() -> None:
    d = decide(nodegroup(), user_data=None)
    assert d.outcome is Outcome.CREATE_VERSION
    assert d.new_user_data is not None
    assert find_fingerprint(d.new_user_data) == d.desired_fingerprint


def test_a_new_proxy_value_makes_an_up_to_date_nodegroup_out_of_date() -> None:
    current = TemplateVersion(3, ours(), "")
    moved = parse_proxy_value("http://10.0.0.99:3128")
    d = reconcile_nodegroup(nodegroup(), current, moved, CONTEXT)
    assert d.outcome is Outcome.CREATE_VERSION
    assert d.current_fingerprint != d.desired_fingerprint


def test_user_data_over_the_limit_is_out_of_scope_with_a_remedy() -> None:
    huge = b"#!/bin/bash\n" + b"# padding\n" * 1700
    d = decide(nodegroup(), user_data=b64(huge))
    assert d.outcome is Outcome.OUT_OF_SCOPE
    assert "16384" in d.reason or "16,384" in d.reason
    assert d.remedy


def test_log_fields_never_carry_user_data() -> None:
    d = decide(nodegroup())
    fields = d.to_log()
    assert d.new_user_data not in fields.values()
    assert d.current_user_data == b64(USER_SCRIPT)
    assert d.current_user_data not in fields.values()
    assert "new_user_data" not in repr(d)
    assert "current_user_data" not in repr(d)
    assert fields["outcome"] == "create_version"


def _our_version(number: int, source: int, user_data: str) -> TemplateVersion:
    fingerprint = find_fingerprint(user_data) or "none"
    return TemplateVersion(number, user_data, version_description(fingerprint, source))


def test_reuses_the_version_we_already_made() -> None:
    first = decide(nodegroup())
    assert first.new_user_data is not None
    made = _our_version(4, 3, first.new_user_data)
    d = decide(nodegroup(), candidates=[TemplateVersion(5, None, "someone else"), made])
    assert (d.outcome, d.target_version) == (Outcome.ROLL_EXISTING, 4)


def test_does_not_reuse_a_version_made_from_another_source() -> None:
    first = decide(nodegroup())
    assert first.new_user_data is not None
    from_other_source = _our_version(4, 2, first.new_user_data)
    assert decide(nodegroup(), candidates=[from_other_source]).outcome is Outcome.CREATE_VERSION


def test_does_not_reuse_a_version_whose_user_data_was_edited() -> None:
    first = decide(nodegroup())
    assert first.new_user_data is not None and first.desired_fingerprint is not None
    edited = TemplateVersion(4, b64(USER_SCRIPT), version_description(first.desired_fingerprint, 3))
    assert decide(nodegroup(), candidates=[edited]).outcome is Outcome.CREATE_VERSION


def test_find_reusable_picks_the_oldest_match() -> None:
    user_data = ours()
    fp = find_fingerprint(user_data)
    assert fp is not None
    versions = [_our_version(7, 3, user_data), _our_version(5, 3, user_data), _our_version(2, 3, user_data)]
    assert find_reusable_version(versions, 3, fp) == 5


def test_client_token_is_deterministic_and_fits_ec2() -> None:
    token = client_token("lt-1", 3, "abcdef0123456789")
    assert token == client_token("lt-1", 3, "abcdef0123456789")
    assert token != client_token("lt-1", 4, "abcdef0123456789")
    assert token != client_token("lt-2", 3, "abcdef0123456789")
    assert len(token) <= 64
    assert token.isascii()


def test_update_uses_the_template_as_the_nodegroup_names_it() -> None:
    assert LaunchTemplateRef(id="lt-1", name="n", version=1).for_update(4) == {"id": "lt-1", "version": "4"}
    assert LaunchTemplateRef(name="n", version=1).for_update(4) == {"name": "n", "version": "4"}


@settings(max_examples=30, deadline=None)
@given(
    ami_type=st.sampled_from(["AL2023_x86_64_STANDARD", "AL2023_ARM_64_NVIDIA", "AL2_x86_64", "BOTTLEROCKET_x86_64"]),
    host=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(1, 254)).map(
        lambda t: "10.{}.{}.{}".format(*t)
    ),
    port=st.integers(min_value=1024, max_value=65535),
    start_empty=st.booleans(),
)
def test_reconcile_is_idempotent(ami_type: str, host: str, port: int, start_empty: bool) -> None:
    """Applying the decision once makes the next decision "up to date": replays never make a second version."""
    config = parse_proxy_value(f"http://{host}:{port}")
    ng = nodegroup(ami_type)
    bottlerocket = ami_type.startswith("BOTTLEROCKET")
    start = None if start_empty or bottlerocket else b64(USER_SCRIPT)
    first = reconcile_nodegroup(ng, TemplateVersion(3, start), config, CONTEXT)
    assert first.outcome is Outcome.CREATE_VERSION
    assert first.new_user_data is not None
    second = reconcile_nodegroup(ng, TemplateVersion(4, first.new_user_data), config, CONTEXT)
    assert second.outcome is Outcome.UP_TO_DATE


def test_basis_version_is_stable_while_the_rollout_progresses() -> None:
    """Before: v3 (someone else's) -> basis 3. After rolling to our v4 "from v3" -> still basis 3."""
    from eks_proxy.aws.ssm import ParameterValue
    from eks_proxy.engine.execution import execution_name
    from eks_proxy.engine.scope import Scope

    before = decide(nodegroup())
    assert before.new_user_data is not None and before.desired_fingerprint is not None
    assert before.basis_version == 3
    ours = TemplateVersion(4, before.new_user_data, version_description(before.desired_fingerprint, 3))
    after = reconcile_nodegroup(nodegroup(), ours, CONFIG, CONTEXT)
    assert (after.outcome, after.basis_version) == (Outcome.UP_TO_DATE, 3)

    other_before = decide(nodegroup(name="ng-b"))
    scope, parameter = Scope(kind="all", clusters=("prod",)), ParameterValue("/eks-proxy/config", 7, "x")
    assert execution_name("ssm", scope, parameter, [before, other_before]) == execution_name(
        "ssm", scope, parameter, [after, other_before]
    )
    # A real change: someone rolled ng-b to a new version of their own -> a new name.
    moved = reconcile_nodegroup(nodegroup(name="ng-b"), TemplateVersion(5, b64(USER_SCRIPT)), CONFIG, CONTEXT)
    assert execution_name("ssm", scope, parameter, [after, moved]) != execution_name(
        "ssm", scope, parameter, [after, other_before]
    )
    # A new parameter version -> a new name; the name fits Step Functions' 80 characters.
    newer = ParameterValue("/eks-proxy/config", 8, "x")
    assert execution_name("ssm", scope, newer, [after]) != execution_name("ssm", scope, parameter, [after])
    assert len(execution_name("launch_template", scope, parameter, [after])) <= 80


def test_a_deleted_part_of_ours_is_drift_not_up_to_date() -> None:
    """A teammate deleted our boothook part but kept our NodeConfig: the marker alone must not say "up to date"."""
    fresh = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)
    head, nodeconfig, _boothook, tail = fresh.split(b"--//")
    half = b"--//".join([head, nodeconfig, tail])
    assert find_fingerprint(half) == desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2023)  # the marker still matches
    d = decide(nodegroup(), b64(half))
    assert d.outcome is Outcome.CREATE_VERSION
    assert find_fingerprint(d.new_user_data or "") == d.desired_fingerprint


def test_an_edited_part_of_ours_is_drift_not_up_to_date() -> None:
    """Someone hand-edited the proxy inside our part and left the marker: refreshed back to the desired bytes."""
    edited = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023).replace(b"http://10.0.0.10:3128", b"http://10.9.9.9:3128")
    d = decide(nodegroup(), b64(edited))
    assert d.outcome is Outcome.CREATE_VERSION
    assert base64.b64decode(d.new_user_data or "") == render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)


def test_the_description_names_the_parameter_version_and_reads_back() -> None:
    text = version_description("0123456789abcdef", 3, 17)
    assert text == "eks-proxy 0123456789abcdef from v3 parameter v17"
    assert made_by_us(text) == OurVersion("0123456789abcdef", 3, 17)
    # versions made before the parameter version was recorded, and anyone else's
    assert made_by_us("eks-proxy 0123456789abcdef from v3") == OurVersion("0123456789abcdef", 3, None)
    assert made_by_us("eks-proxy 0123456789abcdef from v3x") is None
    assert made_by_us("my own version") is None
    assert made_by_us(None) is None
    assert len(version_description("f" * 16, 10**9, 10**9)) <= 255  # EC2's VersionDescription limit


def test_a_version_made_from_a_parameter_version_is_reused_and_reports_it() -> None:
    first = decide(nodegroup())
    assert first.new_user_data is not None and first.desired_fingerprint is not None
    made = TemplateVersion(4, first.new_user_data, version_description(first.desired_fingerprint, 3, 9))
    assert decide(nodegroup(), candidates=[made]).target_version == 4
    running = reconcile_nodegroup(nodegroup(launch_template=LaunchTemplateRef("lt-1", None, 4)), made, CONFIG, CONTEXT)
    assert (running.outcome, running.current_parameter_version) == (Outcome.UP_TO_DATE, 9)


def test_the_parameter_version_is_not_believed_when_the_user_data_disagrees() -> None:
    first = decide(nodegroup())
    assert first.desired_fingerprint is not None
    edited = TemplateVersion(4, b64(USER_SCRIPT), version_description(first.desired_fingerprint, 3, 9))
    d = reconcile_nodegroup(nodegroup(), edited, CONFIG, CONTEXT)
    assert d.current_parameter_version is None
