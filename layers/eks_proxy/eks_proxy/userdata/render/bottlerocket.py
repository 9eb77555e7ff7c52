"""Bottlerocket: TOML settings only (there is no shell on Bottlerocket).

We own exactly two keys of ``[settings.network]``: ``https-proxy`` (a URL with its scheme, see below; Bottlerocket
has no ``http-proxy`` setting and applies this one to containerd, host-containerd and kubelet) and ``no-proxy`` (a list;
Bottlerocket adds localhost and the API server itself). Every other setting and comment is kept as it is
(tomlkit preserves formatting).

``no-proxy`` is shared with the user: ours first, then theirs (union, no duplicates). To tell them apart at the next
refresh, the ``no-proxy`` line carries a trailing comment ``# eks-proxy manages the first <N> entries``; the entries
after those N are the user's and are kept by every refresh (a refresh re-derives ours, so nothing accumulates).
Where the user's entries come from:

- first take-over (no marker on ``https-proxy``): every entry of the existing list;
- our marker and the count comment: the entries after the first N (so entries a user appends later are kept too;
  one inserted among ours counts as ours);
- our marker without a count (renderer version 1, which replaced the list): none.

Only entries that pass the proxy value's ``no_proxy`` validation are kept (normalized; ``*``, which would turn
the proxy off, and anything malformed are dropped). A user's entry equal to one of ours is kept once, as ours: should
ours later lose it, it goes too (add such entries to the proxy value's ``no_proxy`` instead).
The marker is a trailing comment on the ``https-proxy`` line. Without a ``settings.network`` yet, a new
``[settings.network]`` table is appended after the user's bytes. Every result is read back with ``tomllib`` (our
two values, every other setting unchanged) and must parse with tomlkit again; otherwise it is refused.

``https-proxy`` is always written with its scheme (``http://10.0.0.10:3128``, ``https://proxy.corp:3129``,
``http://[fd00::10]:3128``). Released Bottlerocket stores the text as given, and its boot-time settings generator
(pluto) parses it with Rust's ``url`` crate: a scheme-less value starting with a digit or ``[`` fails there
("Unable to parse HTTPS proxy as URL: RelativeUrlWithoutBase"), pluto aborts and the node never joins
(bottlerocket-core-kit issue 338, from v1.17.0 until early 2025); a scheme-less host name only parses by accident
(``proxy.corp:3128`` becomes a URL whose scheme is ``proxy.corp``). Bottlerocket's settings model, pluto and Go all
accept the URL form. Launch templates written by renderer version 1 (``host:port``) are refreshed by the next
rollout: the renderer version is part of the fingerprint.

A CA bundle for TLS-inspecting proxies goes into ``settings.pki.eks-proxy`` (``data`` = base64 PEM, ``trusted =
true``; :func:`apply_ca_bundle`): a third key space we own, removed again when the value names no bundle.
"""

from __future__ import annotations

import base64
import re
import tomllib
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from eks_proxy.proxy.value import ProxyValueError, validate_no_proxy_entry
from eks_proxy.userdata.render import MARKER_RE, ProxyEnvironment, marker_text

_OWNED_COUNT = re.compile(r"eks-proxy manages the first (\d{1,4}) entries")


class BottlerocketError(ValueError):
    """The existing TOML cannot be edited safely; one line, says why."""


def https_proxy_setting(env: ProxyEnvironment) -> str:
    """The ``settings.network.https-proxy`` value: the HTTPS proxy URL, scheme included (see the module docstring).

    >>> from eks_proxy.userdata.render import ProxyEnvironment
    >>> https_proxy_setting(ProxyEnvironment("http://10.0.5.67:8080", "http://10.0.5.67:8080", ()))
    'http://10.0.5.67:8080'
    """
    return env.https_proxy


def apply_settings(text: str, env: ProxyEnvironment, fingerprint: str) -> str:
    """``text`` (Bottlerocket user data TOML, possibly empty) with our two keys set; unchanged text when they are.

    >>> from eks_proxy.userdata.render import ProxyEnvironment
    >>> print(apply_settings("", ProxyEnvironment("http://p:1", "http://p:1", ("localhost",)), "0" * 16), end="")
    [settings.network]
    https-proxy = "http://p:1" # eks-proxy fingerprint=0000000000000000 (managed, do not edit)
    no-proxy = ["localhost"] # eks-proxy manages the first 1 entries
    """
    try:
        # A final newline first: tomlkit can glue a key it appends onto an unterminated last line (invalid TOML).
        doc = tomlkit.parse(text if not text or text.endswith("\n") else text + "\n")
    except TOMLKitError as exc:
        raise BottlerocketError(f"user data is not valid TOML ({_one_line(exc)}); Bottlerocket expects TOML") from None
    network = _network_table(doc)
    https_value = https_proxy_setting(env)
    current = network.get("https-proxy") if network is not None else None
    found = MARKER_RE.search(_comment(current))
    current_no_proxy = network.get("no-proxy") if network is not None else None
    ours = list(env.no_proxy)
    no_proxy = ours + [
        entry for entry in _users_entries(current_no_proxy, ours_before=found is not None) if entry not in ours
    ]
    up_to_date = (
        current is not None
        and _plain(current) == https_value
        and found is not None
        and found.group(1) == fingerprint
        and _plain(current_no_proxy) == no_proxy
        and _owned_count(current_no_proxy) == len(ours)
    )
    if up_to_date:
        return text
    if network is None:
        # A new [settings.network] table goes after everything, the user's bytes untouched: inserted by tomlkit
        # after top-level dotted keys (settings.motd = ...), it captured the dotted keys that followed it.
        block = _new_network_table(https_value, no_proxy, len(ours), fingerprint)
        result = (text if text.endswith("\n") else text + "\n") + "\n" + block if text else block
    else:
        network["https-proxy"] = _proxy_item(https_value, fingerprint)
        network["no-proxy"] = _no_proxy_item(no_proxy, len(ours))
        result = doc.as_string()
    _check_result(text, result, https_value, no_proxy)
    return result


def _users_entries(item: Any, *, ours_before: bool) -> list[str]:
    """The user's entries in the current ``no-proxy`` (see the module docstring), validated and normalized."""
    current = _plain(item)
    if not isinstance(current, list):
        return []
    if ours_before:
        count = _owned_count(item)
        current = current[count:] if count is not None else []
    kept: list[str] = []
    for entry in current:
        if not isinstance(entry, str):
            continue
        try:
            normalized = validate_no_proxy_entry(entry)
        except ProxyValueError:
            continue
        if normalized not in kept:
            kept.append(normalized)
    return kept


def _owned_count(item: Any) -> int | None:
    """N from the ``no-proxy`` line's ``# eks-proxy manages the first N entries``; None without it."""
    found = _OWNED_COUNT.search(_comment(item))
    return int(found.group(1)) if found else None


def _comment(item: Any) -> str:
    return str(getattr(getattr(item, "trivia", None), "comment", "") or "")


def _no_proxy_item(no_proxy: list[str], owned: int) -> Any:
    item = tomlkit.item(no_proxy)
    item.comment(f"eks-proxy manages the first {owned} entries")
    return item


def _proxy_item(https_value: str, fingerprint: str) -> Any:
    item = tomlkit.item(https_value)
    item.comment(marker_text(fingerprint))
    return item


def _new_network_table(https_value: str, no_proxy: list[str], owned: int, fingerprint: str) -> str:
    """``[settings.network]`` with our two keys, as TOML text."""
    doc = tomlkit.document()
    settings = tomlkit.table(is_super_table=True)
    network = tomlkit.table()
    network["https-proxy"] = _proxy_item(https_value, fingerprint)
    network["no-proxy"] = _no_proxy_item(no_proxy, owned)
    settings["network"] = network
    doc["settings"] = settings
    block: str = doc.as_string()
    return block


def _check_result(text: str, result: str, https_value: str, no_proxy: list[str]) -> None:
    """Read the result back with a strict parser: valid TOML, our two values, every other setting as it was.

    tomlkit edits in place and preserves formatting, and has been seen to produce invalid TOML for odd but valid
    input, or TOML it cannot parse again itself; a document we cannot write correctly is refused, never handed to EC2.
    """
    try:
        before, after = tomllib.loads(text), tomllib.loads(result)
        tomlkit.parse(result)  # what we write must be editable again (the next refresh), not only valid once
    except (tomllib.TOMLDecodeError, TOMLKitError):
        raise BottlerocketError(_CANNOT_EDIT) from None
    network = after.get("settings", {}).get("network", {})
    if (
        network.get("https-proxy") != https_value
        or network.get("no-proxy") != no_proxy
        or _without_ours(after) != _without_ours(before)
    ):
        raise BottlerocketError(_CANNOT_EDIT)


_CANNOT_EDIT = (
    "user data TOML cannot be edited safely in this layout; write the proxy settings as a [settings.network] "
    "table (or remove them) and keep the other settings as they are"
)


def _without_ours(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` without settings.network's https-proxy and no-proxy (and the tables they leave empty)."""
    settings = dict(document.get("settings") or {})
    network = {k: v for k, v in (settings.get("network") or {}).items() if k not in ("https-proxy", "no-proxy")}
    settings.pop("network", None)
    if network:
        settings["network"] = network
    result = {k: v for k, v in document.items() if k != "settings"}
    if settings:
        result["settings"] = settings
    return result


def _network_table(doc: Any) -> Any:
    """``settings.network`` as an editable table; None when the document has none yet."""
    settings = doc.get("settings")
    if settings is None:
        return None
    if not isinstance(settings, dict) or isinstance(settings, tomlkit.items.InlineTable):
        raise BottlerocketError("user data has settings that is not a TOML table; expected [settings.*] tables")
    network = settings.get("network")
    if network is None:
        return None
    if not isinstance(network, dict) or isinstance(network, tomlkit.items.InlineTable):
        raise BottlerocketError(
            "user data has settings.network that is not a TOML table; expected a [settings.network] table"
        )
    return network


def _plain(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:160]


# The settings.pki entry we own (a TLS-inspecting proxy's CA bundle): users name their own entries otherwise.
PKI_NAME = "eks-proxy"


def apply_ca_bundle(text: str, env: ProxyEnvironment) -> str:
    """``text`` with ``settings.pki.eks-proxy`` holding the CA bundle (``data`` = base64 PEM, ``trusted = true``),
    or without that entry when there is no bundle; unchanged text when it already is so.

    A missing entry is appended as a ``[settings.pki.eks-proxy]`` table after the user's bytes (the same reason as
    for ``[settings.network]``); an existing one is edited in place. The result is read back like
    :func:`apply_settings`'s: our entry as wanted, every other setting unchanged.
    """
    wanted = {"data": base64.b64encode(env.ca_bundle_pem.encode("ascii")).decode(), "trusted": True}
    try:
        doc = tomlkit.parse(text if not text or text.endswith("\n") else text + "\n")
    except TOMLKitError as exc:
        raise BottlerocketError(f"user data is not valid TOML ({_one_line(exc)}); Bottlerocket expects TOML") from None
    pki = _pki_table(doc)
    current = pki.get(PKI_NAME) if pki is not None else None
    if current is not None and (not isinstance(current, dict) or isinstance(current, tomlkit.items.InlineTable)):
        raise BottlerocketError(f"user data has settings.pki.{PKI_NAME} that is not a TOML table; remove it")
    if not env.ca_bundle_pem:
        if current is None:
            return text
        del pki[PKI_NAME]
        result = doc.as_string()
    elif current is not None:
        if _plain(current) == wanted:
            return text
        current.clear()
        current.update(wanted)
        result = doc.as_string()
    else:
        block = f'[settings.pki.{PKI_NAME}]\ndata = "{wanted["data"]}"\ntrusted = true\n'
        result = (text if text.endswith("\n") else text + "\n") + "\n" + block if text else block
    _check_pki(text, result, wanted if env.ca_bundle_pem else None)
    return result


def _pki_table(doc: Any) -> Any:
    settings = doc.get("settings")
    if settings is None:
        return None
    if not isinstance(settings, dict) or isinstance(settings, tomlkit.items.InlineTable):
        raise BottlerocketError("user data has settings that is not a TOML table; expected [settings.*] tables")
    pki = settings.get("pki")
    if pki is not None and (not isinstance(pki, dict) or isinstance(pki, tomlkit.items.InlineTable)):
        raise BottlerocketError("user data has settings.pki that is not a TOML table; expected [settings.pki.<name>]")
    return pki


def _check_pki(text: str, result: str, wanted: dict[str, Any] | None) -> None:
    """Read back: ``settings.pki.eks-proxy`` is ``wanted`` (absent for None), everything else as it was."""
    try:
        before, after = tomllib.loads(text), tomllib.loads(result)
        tomlkit.parse(result)
    except (tomllib.TOMLDecodeError, TOMLKitError):
        raise BottlerocketError(_CANNOT_EDIT) from None
    if after.get("settings", {}).get("pki", {}).get(PKI_NAME) != wanted or _without_pki(after) != _without_pki(before):
        raise BottlerocketError(_CANNOT_EDIT)


def _without_pki(document: dict[str, Any]) -> dict[str, Any]:
    settings = dict(document.get("settings") or {})
    pki = {k: v for k, v in (settings.pop("pki", None) or {}).items() if k != PKI_NAME}
    if pki:
        settings["pki"] = pki
    result = {k: v for k, v in document.items() if k != "settings"}
    if settings:
        result["settings"] = settings
    return result
