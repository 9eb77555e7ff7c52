"""What a user's own NodeConfig part (AL2023, ``application/node.eks.aws``) says about the proxy.

nodeadm merges NodeConfig parts in MIME order, later parts winning key by key. A user's part that sets proxy
variables in ``spec.instance.environment`` therefore collides with ours:

- after ours (a teammate or a template added it later), its ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` override
  ours on the node while the launch template still carries our fingerprint;
- before ours, its ``NO_PROXY`` entries are silently replaced by ours (a team's ``registry.team.internal`` starts
  going through the proxy).

merge.py uses :func:`read_proxy_settings` for both: the user's NO_PROXY entries join ours, after ours, and our parts
move after the last user part that sets proxy variables. Nothing is taken over verbatim: each entry must pass the
proxy value's ``no_proxy`` validation (``*``, which would turn the proxy off, and anything malformed are left out).

Read without a YAML library (the layer stays small and pure Python), deliberately conservative:

- "sets proxy variables": a key ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``NO_PROXY`` (any case, quoted or not, in a block
  or a flow mapping) anywhere outside comment lines. A false positive only moves our parts last, which is harmless.
- NO_PROXY entries: the value on the key's own line, as YAML reads it there: a plain scalar (up to `` #`` or the
  line end; in a flow mapping up to ``,`` or ``}``), a single-quoted (``''`` escapes) or double-quoted scalar
  (without backslash escapes), optionally with an anchor (``&a``); an alias (``*a``) of an anchor defined earlier in
  the part. Anything else (block scalars ``|``/``>``, values continued on later lines, escapes) gives no entries,
  which is what the user got before: ours alone.

tests/unit/test_userdata.py checks this reader against PyYAML (YAML 1.1, as nodeadm's go-yaml reads it) on
generated NodeConfig documents in those forms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eks_proxy.proxy.value import ProxyValueError, validate_no_proxy_entry

PROXY_KEYS = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})
# A proxy key as a mapping key: at the start of a line (block) or after "{" or "," (flow), quoted or not.
_KEY = re.compile(
    r"""(?P<lead>^[ \t]*(?:-[ \t]+)?|[{,][ \t]*)"""
    r"""(?P<q>["']?)(?P<key>(?i:https?_proxy|no_proxy))(?P=q)[ \t]*:(?=[ \t]|$)""",
    re.MULTILINE,
)
_ANCHOR = re.compile(r"&(?P<name>[^\s,\[\]{}]+)[ \t]+")
_ALIAS = re.compile(r"\*(?P<name>[^\s,\[\]{}]+)[ \t]*(?:#.*)?$")
# Plain scalars YAML 1.1 reads as something else than a string (booleans, null, numbers): no NO_PROXY there.
_NOT_A_STRING = re.compile(
    r"(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|~|null|Null|NULL"
    r"|[-+]?(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?0x[0-9a-fA-F_]+|[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN))"
)
_ANCHORED_SCALAR = re.compile(r"""&(?P<name>[^\s,\[\]{}]+)[ \t]+(?P<value>"[^"\\\n]*"|'(?:[^'\n]|'')*')""")


@dataclass(frozen=True)
class ProxySettings:
    """``sets_proxy``: the part sets a proxy variable (either case); ``no_proxy``: its valid NO_PROXY entries,
    normalized, in order, without duplicates."""

    sets_proxy: bool = False
    no_proxy: tuple[str, ...] = ()


def read_proxy_settings(body: bytes) -> ProxySettings:
    """The proxy settings of one NodeConfig part's body.

    >>> body = b"kind: NodeConfig\\nspec:\\n  instance:\\n    environment:\\n      default:\\n"
    >>> read_proxy_settings(body + b"        NO_PROXY: 'Registry.Team.Internal,*,10.1.0.0/16'\\n")
    ProxySettings(sets_proxy=True, no_proxy=('registry.team.internal', '10.1.0.0/16'))
    """
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    lines = [line for line in text.split("\n") if not line.lstrip().startswith("#")]
    anchors: dict[str, str] = {}
    sets_proxy = False
    entries: list[str] = []
    for line in lines:
        for found in _ANCHORED_SCALAR.finditer(line):
            anchors.setdefault(found["name"], _unquote(found["value"]) or "")
        for key in _KEY.finditer(line):
            sets_proxy = True
            if key["key"].upper() == "NO_PROXY":
                flow = key["lead"].lstrip().startswith(("{", ","))
                value = _value(line[key.end() :], flow, anchors)
                if value is not None:
                    entries.extend(_valid_entries(value))
    return ProxySettings(sets_proxy, tuple(dict.fromkeys(entries)))


def _value(rest: str, flow: bool, anchors: dict[str, str]) -> str | None:
    """The scalar after ``KEY:`` on the same line, or None when it is not one of the forms we read."""
    rest = rest.strip(" \t")
    anchor = _ANCHOR.match(rest)
    if anchor:
        rest = rest[anchor.end() :]
    alias = _ALIAS.match(rest) if not flow else None
    if alias:
        return anchors.get(alias["name"])
    if rest[:1] in ("'", '"'):
        return _unquote(_quoted_prefix(rest))
    if not rest or rest[0] in "|>[{*&!%@`":
        return None  # block scalar, empty (continued on the next lines), collection, tag, reserved
    end = len(rest)
    for stop in (" #", "\t#", *((",", "}") if flow else ())):
        at = rest.find(stop)
        if at >= 0:
            end = min(end, at)
    value = rest[:end].strip(" \t")
    if not value or ": " in value or _NOT_A_STRING.fullmatch(value):
        return None
    return value


def _quoted_prefix(rest: str) -> str:
    quote = rest[0]
    if quote == '"':
        end = rest.find('"', 1)
        return rest[: end + 1] if end > 0 else ""
    at = 1
    while True:
        end = rest.find("'", at)
        if end < 0:
            return ""
        if rest[end + 1 : end + 2] == "'":
            at = end + 2
            continue
        return rest[: end + 1]


def _unquote(token: str) -> str | None:
    if len(token) < 2:
        return None
    if token[0] == '"':
        inner = token[1:-1]
        return None if "\\" in inner else inner
    return token[1:-1].replace("''", "'")


def _valid_entries(csv: str) -> list[str]:
    kept: list[str] = []
    for raw in csv.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            kept.append(validate_no_proxy_entry(entry))
        except ProxyValueError:
            continue
    return kept
