"""Settings parsed from the function environment: defaults, required variables, malformed values."""

from __future__ import annotations

import pytest
from eks_proxy.config import Settings, SettingsError

BASE = {"CLUSTER_NAMES": "prod, staging ,", "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:eks-proxy"}


def test_defaults_match_the_engine_contract() -> None:
    s = Settings.from_env(BASE)
    assert s.cluster_names == ("prod", "staging")
    assert s.proxy_parameter_name == "/eks-proxy/config"
    assert s.opt_out_tag_key == "eks-proxy/skip"
    assert s.os_hint_tag_key == "eks-proxy/os"
    assert s.max_concurrency == 2
    assert s.rollback_on_failure is True
    assert s.force_update is False
    assert s.own_role_arns == ()
    assert s.registry_probe == "registry-1.docker.io:443"
    assert s.verify_timeout_seconds == 240


def test_every_variable_is_read() -> None:
    env = BASE | {
        "PROXY_PARAMETER_NAME": "/net/proxy",
        "OPT_OUT_TAG_KEY": "skip-me",
        "OS_HINT_TAG_KEY": "os",
        "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:rollout",
        "OWN_ROLE_ARNS": "arn:aws:iam::123456789012:role/a,arn:aws:iam::123456789012:role/b",
        "MAX_CONCURRENCY": "5",
        "ROLLBACK_ON_FAILURE": "false",
        "FORCE_UPDATE": "True",
        "REGISTRY_PROBE": "quay.io:443",
        "VERIFY_IMAGE": "quay.io/x/y:1",
        "VERIFY_NAMESPACE": "ns",
        "VERIFY_TIMEOUT_SECONDS": "60",
    }
    s = Settings.from_env(env)
    assert s.proxy_parameter_name == "/net/proxy"
    assert s.own_role_arns == ("arn:aws:iam::123456789012:role/a", "arn:aws:iam::123456789012:role/b")
    assert (s.max_concurrency, s.rollback_on_failure, s.force_update) == (5, False, True)
    assert (s.registry_probe, s.verify_image, s.verify_namespace, s.verify_timeout_seconds) == (
        "quay.io:443",
        "quay.io/x/y:1",
        "ns",
        60,
    )
    assert s.state_machine_arn.endswith(":rollout")


@pytest.mark.parametrize("missing", ["CLUSTER_NAMES", "ALARM_TOPIC_ARN"])
def test_missing_required_variable_fails_naming_it(missing: str) -> None:
    env = dict(BASE)
    env[missing] = "  "
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


def test_dispatch_requires_the_state_machine() -> None:
    with pytest.raises(SettingsError, match="STATE_MACHINE_ARN"):
        Settings.from_env(BASE, required=("CLUSTER_NAMES", "ALARM_TOPIC_ARN", "STATE_MACHINE_ARN"))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("MAX_CONCURRENCY", "two", "MAX_CONCURRENCY must be an integer"),
        ("MAX_CONCURRENCY", "0", "MAX_CONCURRENCY must be >= 1"),
        ("ROLLBACK_ON_FAILURE", "maybe", "ROLLBACK_ON_FAILURE must be true or false"),
        ("PROXY_PARAMETER_NAME", "eks-proxy/config", "must start with '/'"),
        ("VERIFY_TIMEOUT_SECONDS", "-1", "VERIFY_TIMEOUT_SECONDS must be >= 1"),
    ],
)
def test_malformed_values_fail_with_one_line(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env(BASE | {name: value})
    assert "\n" not in str(error.value)
