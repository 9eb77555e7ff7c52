"""Typed settings of the engine functions, parsed once from the function environment.

A missing or malformed required variable raises `SettingsError` at cold start (module import of the handler), so
a broken deployment fails loudly on its first invocation instead of half-working.

>>> s = Settings.from_env({"CLUSTER_NAMES": "prod, staging", "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t"})
>>> s.cluster_names, s.max_concurrency, s.opt_out_tag_key
(('prod', 'staging'), 2, 'eks-proxy/skip')
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_REQUIRED = ("CLUSTER_NAMES", "ALARM_TOPIC_ARN")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """The function environment is incomplete or malformed (one line, names the variable)."""


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {text!r}")


def _int(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {text!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the engine reads from its environment (see docs/ARCHITECTURE.md, "Engine contract")."""

    cluster_names: tuple[str, ...]
    alarm_topic_arn: str
    proxy_parameter_name: str = "/eks-proxy/config"
    opt_out_tag_key: str = "eks-proxy/skip"
    os_hint_tag_key: str = "eks-proxy/os"
    state_machine_arn: str = ""
    own_role_arns: tuple[str, ...] = ()
    max_concurrency: int = 2
    rollback_on_failure: bool = True
    force_update: bool = False
    registry_probe: str = "registry-1.docker.io:443"
    verify_image: str = "docker.io/library/busybox:1.36"
    verify_namespace: str = "eks-proxy-verify"
    verify_timeout_seconds: int = 240
    rollout_wait_seconds: int = 30
    max_nodegroups_per_rollout: int = 150

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, required: Iterable[str] = DEFAULT_REQUIRED) -> Settings:
        """Parse the environment; raise `SettingsError` naming the first missing or malformed variable."""
        env = os.environ if environ is None else environ
        missing = [name for name in required if not env.get(name, "").strip()]
        if missing:
            raise SettingsError(f"missing required environment variable(s): {', '.join(missing)}")
        clusters = _csv(env.get("CLUSTER_NAMES", ""))
        parameter = env.get("PROXY_PARAMETER_NAME", "").strip() or "/eks-proxy/config"
        if not parameter.startswith("/"):
            # The SSM event carries the name with its leading slash; a bare name would never match it.
            raise SettingsError(f"PROXY_PARAMETER_NAME must start with '/', got {parameter!r}")
        return cls(
            cluster_names=clusters,
            alarm_topic_arn=env.get("ALARM_TOPIC_ARN", "").strip(),
            proxy_parameter_name=parameter,
            opt_out_tag_key=env.get("OPT_OUT_TAG_KEY", "").strip() or "eks-proxy/skip",
            os_hint_tag_key=env.get("OS_HINT_TAG_KEY", "").strip() or "eks-proxy/os",
            state_machine_arn=env.get("STATE_MACHINE_ARN", "").strip(),
            own_role_arns=_csv(env.get("OWN_ROLE_ARNS", "")),
            max_concurrency=_int("MAX_CONCURRENCY", env.get("MAX_CONCURRENCY", "2") or "2", 1),
            rollback_on_failure=_bool("ROLLBACK_ON_FAILURE", env.get("ROLLBACK_ON_FAILURE", "true")),
            force_update=_bool("FORCE_UPDATE", env.get("FORCE_UPDATE", "false")),
            registry_probe=env.get("REGISTRY_PROBE", "").strip() or "registry-1.docker.io:443",
            verify_image=env.get("VERIFY_IMAGE", "").strip() or "docker.io/library/busybox:1.36",
            verify_namespace=env.get("VERIFY_NAMESPACE", "").strip() or "eks-proxy-verify",
            verify_timeout_seconds=_int("VERIFY_TIMEOUT_SECONDS", env.get("VERIFY_TIMEOUT_SECONDS", "240") or "240", 1),
            # Optional: seconds between DescribeUpdate polls (and CREATING re-checks) of the rollout.
            rollout_wait_seconds=_int("ROLLOUT_WAIT_SECONDS", env.get("ROLLOUT_WAIT_SECONDS", "30") or "30", 0),
            # Optional: node groups per execution (~110 history events each for a 20-minute update; 25,000 max).
            max_nodegroups_per_rollout=_int(
                "MAX_NODEGROUPS_PER_ROLLOUT", env.get("MAX_NODEGROUPS_PER_ROLLOUT", "150") or "150", 1
            ),
        )
