"""Typed settings of the functions, parsed once from the function environment: one place per default.

Each `Settings` field names its environment variable, its parser and its default exactly once (the field's
``metadata`` and ``default``); `Settings.from_env` reads them all from that table, `DEFAULTS` is the settings with
nothing set, and everything else that needs a default (the CLI, the pure reconcile decision) reads it from there.
docs/ARCHITECTURE.md's environment table lists the same variables (a test compares the two).

An empty or blank variable means its default. A missing or malformed required variable raises `SettingsError` at
cold start (module import of the handler), so a broken deployment fails loudly on its first invocation instead of
half-working.

>>> s = Settings.from_env({"CLUSTER_NAMES": "prod, staging", "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t"})
>>> s.cluster_names, s.max_concurrency, s.opt_out_tag_key
(('prod', 'staging'), 2, 'eks-proxy/skip')
>>> ENVIRONMENT["verify_poll_seconds"]
'VERIFY_POLL_SECONDS'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_REQUIRED = ("CLUSTER_NAMES", "ALARM_TOPIC_ARN")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """The function environment is incomplete or malformed (one line, names the variable)."""


# --- parsers: (variable name, non-blank text) -> value ------------------------------------------------------------


def _text(name: str, text: str) -> str:
    return text.strip()


def _csv(name: str, text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {text!r}")


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise SettingsError(f"{name} must be >= {minimum}, got {value}")
        return value

    return parse


def _seconds(name: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise SettingsError(f"{name} must be > 0, got {text.strip()}")
    return value


def _parameter_name(name: str, text: str) -> str:
    value = text.strip()
    if not value.startswith("/"):
        # The SSM event carries the name with its leading slash; a bare name would never match it.
        raise SettingsError(f"{name} must start with '/', got {value!r}")
    return value


def _env(variable: str, parse: Callable[[str, str], Any], default: Any) -> Any:
    """A settings field read from ``variable`` with ``parse``; ``default`` when unset or blank."""
    return field(default=default, metadata={"env": variable, "parse": parse})


@dataclass(frozen=True)
class Settings:
    """Everything the functions read from their environment (docs/ARCHITECTURE.md, "Function environment")."""

    cluster_names: tuple[str, ...] = _env("CLUSTER_NAMES", _csv, ())
    alarm_topic_arn: str = _env("ALARM_TOPIC_ARN", _text, "")
    proxy_parameter_name: str = _env("PROXY_PARAMETER_NAME", _parameter_name, "/eks-proxy/config")
    # The one CA bundle parameter a proxy value may name (TLS-inspecting proxies); its changes roll out too.
    ca_bundle_parameter_name: str = _env("CA_BUNDLE_PARAMETER_NAME", _parameter_name, "/eks-proxy/ca-bundle")
    opt_out_tag_key: str = _env("OPT_OUT_TAG_KEY", _text, "eks-proxy/skip")
    os_hint_tag_key: str = _env("OS_HINT_TAG_KEY", _text, "eks-proxy/os")
    state_machine_arn: str = _env("STATE_MACHINE_ARN", _text, "")
    own_role_arns: tuple[str, ...] = _env("OWN_ROLE_ARNS", _csv, ())
    max_concurrency: int = _env("MAX_CONCURRENCY", _int(1), 2)
    rollback_on_failure: bool = _env("ROLLBACK_ON_FAILURE", _bool, True)
    force_update: bool = _env("FORCE_UPDATE", _bool, False)
    registry_probe: str = _env("REGISTRY_PROBE", _text, "registry-1.docker.io:443")
    verify_image: str = _env("VERIFY_IMAGE", _text, "docker.io/library/busybox:1.36")
    verify_namespace: str = _env("VERIFY_NAMESPACE", _text, "eks-proxy-verify")
    verify_timeout_seconds: int = _env("VERIFY_TIMEOUT_SECONDS", _int(1), 240)
    # Seconds before the first check of anything the rollout waits for (an update, CREATING, someone else's update,
    # the cluster's lease); later checks x1.5, at most 120 s (eks_proxy.engine.lease.poll_wait).
    rollout_wait_seconds: int = _env("ROLLOUT_WAIT_SECONDS", _int(0), 60)
    # Node groups per execution (~110 history events each for a 20-minute update; 25,000 max).
    max_nodegroups_per_rollout: int = _env("MAX_NODEGROUPS_PER_ROLLOUT", _int(1), 150)
    # The preflight's probe: TCP connect to the proxy, then every read/write; a PEM file replacing the system CAs.
    preflight_connect_timeout_seconds: float = _env("PREFLIGHT_CONNECT_TIMEOUT_SECONDS", _seconds, 3.0)
    preflight_io_timeout_seconds: float = _env("PREFLIGHT_IO_TIMEOUT_SECONDS", _seconds, 5.0)
    preflight_ca_bundle: str = _env("PREFLIGHT_CA_BUNDLE", _text, "")
    # Seconds between two looks at the verification pods.
    verify_poll_seconds: float = _env("VERIFY_POLL_SECONDS", _seconds, 2.0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, required: Iterable[str] = DEFAULT_REQUIRED) -> Settings:
        """Parse the environment; raise `SettingsError` naming the first missing or malformed variable."""
        env = os.environ if environ is None else environ
        missing = [name for name in required if not env.get(name, "").strip()]
        if missing:
            raise SettingsError(f"missing required environment variable(s): {', '.join(missing)}")
        values: dict[str, Any] = {}
        for spec in fields(cls):
            text = env.get(spec.metadata["env"], "")
            if text.strip():
                values[spec.name] = spec.metadata["parse"](spec.metadata["env"], text)
        return cls(**values)


DEFAULTS = Settings()
# Field name -> environment variable, for the docs check and for messages.
ENVIRONMENT: Mapping[str, str] = {spec.name: spec.metadata["env"] for spec in fields(Settings)}
