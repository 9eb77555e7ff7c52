"""Bottlerocket: TOML settings only (there is no shell on Bottlerocket).

We own exactly two keys of ``[settings.network]``: ``https-proxy`` (``host:port``; Bottlerocket has no
``http-proxy`` setting and applies this one to containerd, host-containerd and kubelet) and ``no-proxy`` (a list;
Bottlerocket adds localhost and the API server itself). Every other setting and comment is kept as it is
(tomlkit preserves formatting); users add their own NO_PROXY entries through the proxy value's ``no_proxy``.
The marker is a trailing comment on the ``https-proxy`` line.

An HTTPS proxy reached over TLS (``https://`` in the proxy value) is written with its scheme
(``https://host:port``) rather than silently downgraded to plain ``host:port``.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from eks_proxy.render import MARKER_RE, ProxyEnvironment, marker_text


class BottlerocketError(ValueError):
    """The existing TOML cannot be edited safely; one line, says why."""


def https_proxy_setting(env: ProxyEnvironment) -> str:
    """The ``settings.network.https-proxy`` value: ``host:port``, keeping an ``https://`` scheme."""
    scheme, rest = env.https_proxy.split("://", 1)
    return env.https_proxy if scheme == "https" else rest


def apply_settings(text: str, env: ProxyEnvironment, fingerprint: str) -> str:
    """``text`` (Bottlerocket user data TOML, possibly empty) with our two keys set; unchanged text when they are.

    >>> from eks_proxy.render import ProxyEnvironment
    >>> print(apply_settings("", ProxyEnvironment("http://p:1", "http://p:1", ("localhost",)), "0" * 16), end="")
    [settings.network]
    https-proxy = "p:1" # eks-proxy fingerprint=0000000000000000 (managed, do not edit)
    no-proxy = ["localhost"]
    """
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise BottlerocketError(f"user data is not valid TOML ({_one_line(exc)}); Bottlerocket expects TOML") from None
    network = _network_table(doc)
    https_value = https_proxy_setting(env)
    no_proxy = list(env.no_proxy)
    current = network.get("https-proxy")
    current_comment = getattr(getattr(current, "trivia", None), "comment", "") or ""
    found = MARKER_RE.search(current_comment)
    up_to_date = (
        current is not None
        and _plain(current) == https_value
        and found is not None
        and found.group(1) == fingerprint
        and _plain(network.get("no-proxy")) == no_proxy
    )
    if up_to_date:
        return text
    proxy_item = tomlkit.item(https_value)
    proxy_item.comment(marker_text(fingerprint))
    network["https-proxy"] = proxy_item
    network["no-proxy"] = no_proxy
    result: str = doc.as_string()
    return result


def _network_table(doc: Any) -> Any:
    """``settings.network`` as an editable table, created when missing."""
    settings = doc.get("settings")
    if settings is None:
        settings = tomlkit.table(is_super_table=True)
        doc["settings"] = settings
    if not isinstance(settings, dict) or isinstance(settings, tomlkit.items.InlineTable):
        raise BottlerocketError("user data has settings that is not a TOML table; expected [settings.*] tables")
    network = settings.get("network")
    if network is None:
        network = tomlkit.table()
        settings["network"] = network
    if not isinstance(network, dict) or isinstance(network, tomlkit.items.InlineTable):
        raise BottlerocketError(
            "user data has settings.network that is not a TOML table; expected a [settings.network] table"
        )
    return network


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]
