"""Settings parsed from the function environment: defaults, required variables, malformed values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eks_proxy.config import DEFAULTS, ENVIRONMENT, Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]

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


def test_check_timeouts_and_ca_bundle_are_settings() -> None:
    s = Settings.from_env(
        BASE
        | {
            "PREFLIGHT_CONNECT_TIMEOUT_SECONDS": "1.5",
            "PREFLIGHT_IO_TIMEOUT_SECONDS": "2",
            "PREFLIGHT_CA_BUNDLE": " /opt/ca.pem ",
            "VERIFY_POLL_SECONDS": "0.05",
        }
    )
    assert (s.preflight_connect_timeout_seconds, s.preflight_io_timeout_seconds) == (1.5, 2.0)
    assert (s.preflight_ca_bundle, s.verify_poll_seconds) == ("/opt/ca.pem", 0.05)
    assert (DEFAULTS.preflight_connect_timeout_seconds, DEFAULTS.preflight_io_timeout_seconds) == (3.0, 5.0)
    assert (DEFAULTS.preflight_ca_bundle, DEFAULTS.verify_poll_seconds) == ("", 2.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "PREFLIGHT_IO_TIMEOUT_SECONDS",
            "soon",
            "PREFLIGHT_IO_TIMEOUT_SECONDS must be a number of seconds, got 'soon'",
        ),
        ("PREFLIGHT_CONNECT_TIMEOUT_SECONDS", "0", "PREFLIGHT_CONNECT_TIMEOUT_SECONDS must be > 0, got 0"),
        ("VERIFY_POLL_SECONDS", "nan", "VERIFY_POLL_SECONDS must be > 0, got nan"),
    ],
)
def test_malformed_check_settings_fail_with_one_line(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env(BASE | {name: value}, required=())
    assert str(error.value) == message


def test_blank_means_the_default() -> None:
    blank = {variable: "  " for variable in ENVIRONMENT.values()}
    assert Settings.from_env(blank, required=()) == DEFAULTS


def _documented_environment() -> dict[str, str]:
    """ARCHITECTURE.md's tables of the function environment (set by the template, optional): variable -> default."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    rows: dict[str, str] = {}
    for header in ("| variable | meaning | default |", "| optional variable | meaning | default |"):
        for line in text[text.index(header) :].splitlines()[2:]:
            if not line.startswith("|"):
                break
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            for variable in re.findall(r"`([A-Z_]+)`", cells[0]):
                rows[variable] = cells[-1]
    return rows


def _as_documented(value: object) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`" if value else '`""`'
    return f"`{value}`" if value != "" else '`""`'


def test_architecture_environment_table_matches_the_settings() -> None:
    documented = _documented_environment()
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}

    assert set(documented) - powertools == set(ENVIRONMENT.values())
    for name, variable in ENVIRONMENT.items():
        default = getattr(DEFAULTS, name)
        if documented[variable].startswith("(required"):
            assert default in ("", ()), f"{variable} is documented as required but defaults to {default!r}"
        else:
            assert documented[variable] == _as_documented(default), variable


def test_ca_bundle_parameter_name() -> None:
    base = {"CLUSTER_NAMES": "prod", "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t"}
    assert Settings.from_env(base).ca_bundle_parameter_name == "/eks-proxy/ca-bundle"
    assert Settings.from_env(base | {"CA_BUNDLE_PARAMETER_NAME": "/corp/ca"}).ca_bundle_parameter_name == "/corp/ca"
    with pytest.raises(SettingsError, match="CA_BUNDLE_PARAMETER_NAME must start with '/'"):
        Settings.from_env(base | {"CA_BUNDLE_PARAMETER_NAME": "corp/ca"})
