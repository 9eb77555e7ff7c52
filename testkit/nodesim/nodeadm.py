"""What nodeadm (Amazon Linux 2023) does with ``application/node.eks.aws`` parts, for the environment aspect.

Mirrors awslabs/amazon-eks-ami nodeadm/internal/system/environment.go: NodeConfig documents are merged in MIME
order (later wins), then ``spec.instance.environment``:

- ``default``    -> /etc/systemd/system.conf.d/environment.conf, ``[Manager]`` + ``DefaultEnvironment="K=V"`` lines
- ``kubelet``    -> /etc/systemd/system/kubelet.service.d/environment.conf, ``[Service]`` + ``Environment="K=V"``
- ``containerd`` -> /etc/systemd/system/containerd.service.d/environment.conf, same form
- then ``systemctl daemon-reload``; the ``default`` variables are also set in nodeadm's own process (its EC2 calls).

Values are escaped as nodeadm does (``\\`` -> ``\\\\``, ``"`` -> ``\\"``, ``%`` -> ``%%``). nodeadm iterates a Go map
(random order); we sort keys so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

API_VERSIONS = ("node.eks.aws/v1alpha1", "node.eks.aws/v1beta1")
ENVIRONMENT_FILES = {
    "default": ("etc/systemd/system.conf.d/environment.conf", "Manager", "DefaultEnvironment"),
    "kubelet": ("etc/systemd/system/kubelet.service.d/environment.conf", "Service", "Environment"),
    "containerd": ("etc/systemd/system/containerd.service.d/environment.conf", "Service", "Environment"),
}


class NodeConfigError(ValueError):
    """A NodeConfig nodeadm would refuse (it fails the node's bootstrap)."""


@dataclass
class NodeadmResult:
    config: dict[str, Any]  # the merged NodeConfig
    written: list[str] = field(default_factory=list)  # absolute node paths written
    process_env: dict[str, str] = field(default_factory=dict)  # what nodeadm itself runs with (its EC2 calls)
    systemctl_calls: list[list[str]] = field(default_factory=list)


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: maps merge key by key, anything else is replaced by the later document."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_documents(payloads: Iterable[bytes]) -> dict[str, Any]:
    """Parse and merge the NodeConfig documents of all ``application/node.eks.aws`` parts, in order."""
    merged: dict[str, Any] = {}
    for n, payload in enumerate(payloads, 1):
        try:
            docs = [d for d in yaml.safe_load_all(payload.decode()) if d is not None]
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise NodeConfigError(f"NodeConfig part {n}: not YAML: {exc}") from exc
        for doc in docs:
            if not isinstance(doc, dict):
                raise NodeConfigError(f"NodeConfig part {n}: a document is not a mapping")
            if doc.get("apiVersion") not in API_VERSIONS or doc.get("kind") != "NodeConfig":
                raise NodeConfigError(
                    f"NodeConfig part {n}: apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')} not understood"
                )
            merged = merge(merged, doc)
    return merged


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def environment_options(config: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """``spec.instance.environment`` as a map of string maps.

    Unknown keys are refused here, stricter than nodeadm (which may drop them silently): a typo in what we render
    must fail the test, not leave nodes quietly without a proxy.
    """
    env = ((config.get("spec") or {}).get("instance") or {}).get("environment") or {}
    if not isinstance(env, Mapping):
        raise NodeConfigError("spec.instance.environment must be a mapping")
    unknown = set(env) - set(ENVIRONMENT_FILES)
    if unknown:
        raise NodeConfigError(f"spec.instance.environment: unknown key(s) {sorted(unknown)}")
    out: dict[str, dict[str, str]] = {}
    for scope, variables in env.items():
        if not isinstance(variables, Mapping):
            raise NodeConfigError(f"spec.instance.environment.{scope} must be a mapping")
        for k, v in variables.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise NodeConfigError(f"spec.instance.environment.{scope}.{k}: values must be strings")
        out[scope] = dict(variables)
    return out


def apply(payloads: Iterable[bytes], root: Path, *, environment_field: bool = True) -> NodeadmResult:
    """Merge the NodeConfig ``payloads`` and write nodeadm's environment files under ``root`` (the node's /).

    ``environment_field=False`` is a nodeadm older than v20251007: it drops the unknown field and writes nothing.
    """
    config = load_documents(payloads)
    result = NodeadmResult(config)
    if not environment_field:
        return result
    options = environment_options(config)
    for scope, (path, section, directive) in ENVIRONMENT_FILES.items():
        variables = options.get(scope) or {}
        if not variables:
            continue
        lines = [f"[{section}]"] + [f'{directive}="{k}={_escape(v)}"' for k, v in sorted(variables.items())]
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n")
        result.written.append("/" + path)
    if result.written:
        result.process_env = dict(options.get("default") or {})
        result.systemctl_calls.append(["daemon-reload"])
    return result
