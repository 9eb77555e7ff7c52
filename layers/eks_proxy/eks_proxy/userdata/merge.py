"""Node user data: render it fresh, or merge our proxy configuration into what a launch template already has.

Input encodings: ``inject`` and ``find_fingerprint`` take ``bytes`` or ``str``, raw or base64 (as EC2's API returns
it; line-wrapped base64 is accepted). ``inject`` answers in the same encoding and the same Python type it was given
(base64 in, base64 out; an empty input counts as raw). When nothing changes, the input object itself comes back.

Amazon Linux (al2023, al2): MIME multipart. Every part that is not ours is kept byte for byte and in order, with
the document's headers, preamble, epilogue and line endings. Our parts (see render/__init__.py for the marker)
are replaced in place on refresh (at the position of the first one; any others are dropped, never duplicated)
and go last when added: nodeadm merges NodeConfig parts in MIME order with later parts winning, so a stale
hand-made proxy environment in a user's NodeConfig cannot override ours (EKS still appends its own part after).
al2023, users' own NodeConfig parts (nodeconfig.py): their NO_PROXY entries join ours (after ours), and when one
that sets proxy variables comes after ours (added later), our parts move last again: the node gets our proxy, and
``inject(...).changed`` says so, so the engine refreshes such a node group although its fingerprint is current.
A non-MIME user data that cloud-init would recognize by its first line (``#!``,
``#cloud-config``, ``#cloud-boothook``, ...) or a bare NodeConfig is wrapped, byte for byte, as one part.
Whitespace-only input counts as empty.

Bottlerocket: TOML, our two keys set in ``[settings.network]``, everything else kept (render/bottlerocket.py).

Refused with :class:`UserDataError`, never guessed: gzip-compressed user data, MIME we cannot split, content we
cannot recognize, TOML we cannot parse, and any result over EC2's 16,384-byte limit (measured before base64).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, replace

from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig
from eks_proxy.userdata import mime
from eks_proxy.userdata.node_os import NodeOS
from eks_proxy.userdata.nodeconfig import read_proxy_settings
from eks_proxy.userdata.render import MARKER_RE, RENDERER_VERSION, ProxyEnvironment, al2, al2023, proxy_environment
from eks_proxy.userdata.render.bottlerocket import PKI_NAME, BottlerocketError, apply_ca_bundle, apply_settings

USER_DATA_LIMIT = 16384
BOUNDARY = b"//"  # as in the EC2 documentation's MIME examples; short, and user data is size-limited

# First-line prefixes cloud-init recognizes in non-MIME user data (longest first: prefixes overlap).
_STARTS_WITH: tuple[tuple[bytes, str], ...] = (
    (b"#cloud-config-archive", "text/cloud-config-archive"),
    (b"#cloud-config-jsonp", "text/cloud-config-jsonp"),
    (b"#cloud-config", "text/cloud-config"),
    (b"#cloud-boothook", "text/cloud-boothook"),
    (b"#include-once", "text/x-include-once-url"),
    (b"#include", "text/x-include-url"),
    (b"#part-handler", "text/part-handler"),
    (b"#upstart-job", "text/upstart-job"),
    (b"## template: jinja", "text/jinja2"),
    (b"#!", "text/x-shellscript"),
)
# A bare NodeConfig: comments, blank lines or a "---" document start, then its apiVersion. Each alternative matches
# one whole line and no two can match the same one (no "\s*", which spans lines): linear, not exponential, time.
_NODECONFIG = re.compile(rb"(?:[ \t\r]*#[^\n]*\n|[ \t\r]*\n|---[ \t]*\r?\n)*apiVersion:[ \t]*node\.eks\.aws/")
_B64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")
# The here-document of our boothook's CA step (render/boothook.ca_step).
_CA_HEREDOC = re.compile(r"cat >\$A <<'EOF'\n(.*?)^EOF$", re.S | re.M)


class UserDataError(ValueError):
    """User data we cannot merge safely, or a result EC2 would refuse; one line, says why."""


_CA_NOT_READ = (
    'the proxy value names a CA bundle ("ca_bundle") whose certificates were not read; '
    "read the parameter (or give the PEM file with --ca-bundle)"
)


@dataclass(frozen=True)
class InjectResult:
    """What :func:`inject` produced: the user data (input's encoding and type), our fingerprint, whether the user
    data differs from the input, and, when it differs for a reason the fingerprint cannot show, that reason."""

    user_data: bytes | str
    fingerprint: str
    changed: bool
    note: str = ""


def desired_fingerprint(config: ProxyConfig, context: NodeContext, node_os: NodeOS) -> str:
    """16 hex characters identifying everything that shapes what we write for a node group.

    Covers the proxy configuration, the cluster context, the node OS and the renderer version, so a change in any
    of them refreshes the nodes. Stable across processes and Python versions.
    """
    canonical: dict[str, object] = {
        "renderer": RENDERER_VERSION,
        "os": NodeOS(node_os).value,
        "http_proxy": config.http_proxy,
        "https_proxy": config.https_proxy,
        "no_proxy": list(config.no_proxy),
        "region": context.region,
        "service_cidr": context.service_cidr,
        "cluster_endpoint_host": context.endpoint_host,
        "vpc_cidrs": list(context.vpc_cidrs),
    }
    if not config.vpc_endpoints:  # only when set, so every fingerprint made before the key existed stays valid
        canonical["vpc_endpoints"] = False
    if config.needs_ca_bundle:
        raise UserDataError(_CA_NOT_READ)
    if config.ca_bundle is not None:  # the content, not the parameter's name or version: rotating the CA rolls nodes
        canonical["ca_bundle"] = config.ca_bundle.digest
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def render_userdata(config: ProxyConfig, context: NodeContext, node_os: NodeOS) -> bytes:
    """Complete raw user data for a fresh launch template: MIME multipart (al2023, al2) or TOML (bottlerocket)."""
    result = inject(b"", config, context, node_os).user_data
    assert isinstance(result, bytes)
    return result


def inject(existing: bytes | str, config: ProxyConfig, context: NodeContext, node_os: NodeOS) -> InjectResult:
    """Merge our proxy configuration into ``existing`` user data (see the module docstring for the rules).

    >>> from eks_proxy.proxy.value import parse_proxy_value
    >>> cfg, ctx = parse_proxy_value("proxy:3128"), NodeContext("eu-west-1")
    >>> once = inject(b"#!/bin/bash\\necho hi\\n", cfg, ctx, NodeOS.AL2023)
    >>> once.changed, inject(once.user_data, cfg, ctx, NodeOS.AL2023).changed
    (True, False)
    """
    node_os = NodeOS(node_os)
    raw, was_base64 = _decode(existing)
    fingerprint = desired_fingerprint(config, context, node_os)
    note = ""
    if node_os is NodeOS.BOTTLEROCKET:
        merged = _inject_toml(raw, config, context, fingerprint)
    else:
        merged, note = _inject_mime(raw, proxy_environment(config, context), node_os, fingerprint)
    if merged == raw:
        return InjectResult(existing, fingerprint, changed=False)
    if len(merged) > USER_DATA_LIMIT:
        ca = config.ca_bundle
        ca_bytes = (len(ca.pem) + 2) // 3 * 4 if ca and node_os is NodeOS.BOTTLEROCKET else len(ca.pem) if ca else 0
        ca_share = f" ({ca_bytes} of them the CA bundle)" if ca else ""
        raise UserDataError(
            f"user data with the proxy configuration would be {len(merged)} bytes{ca_share}, over EC2's limit of "
            f"{USER_DATA_LIMIT} bytes (before base64); shrink the launch template's own user data"
            + (" or the CA bundle" if ca else "")
        )
    return InjectResult(
        _encode(merged, was_base64, as_text=isinstance(existing, str)), fingerprint, changed=True, note=note
    )


def find_fingerprint(existing: bytes | str) -> str | None:
    """The fingerprint our parts (or Bottlerocket keys) carry in ``existing``; None when absent.

    Also None when our parts disagree with each other (a half-edited user data is not up to date) and when the
    user data cannot be read at all (``inject`` raises the reason).
    """
    try:
        raw, _ = _decode(existing)
    except UserDataError:
        return None
    if mime.looks_like_mime(raw):
        try:
            document = mime.split_multipart(raw)
        except mime.MimeError:
            return None
        found = {fp for part in document.parts if (fp := _part_fingerprint(part)) is not None}
        return found.pop() if len(found) == 1 else None
    text = raw.decode("utf-8", "replace")
    found = set(MARKER_RE.findall(text))
    return found.pop() if len(found) == 1 else None


def installed_ca_bundle(existing: bytes | str) -> str:
    """The PEM of the CA bundle our parts (or Bottlerocket keys) install in ``existing``; "" when none.

    Only what we wrote counts (a user's own script installing a certificate is theirs): the anchor file of our
    boothook (Amazon Linux) or ``settings.pki.eks-proxy.data`` (Bottlerocket). For reports: never raises.
    """
    try:
        raw, _ = _decode(existing)
    except UserDataError:
        return ""
    if mime.looks_like_mime(raw):
        try:
            document = mime.split_multipart(raw)
        except mime.MimeError:
            return ""
        bodies = [part.body().decode("utf-8", "replace") for part in document.parts if _is_ours(part)]
        return "".join(_CA_HEREDOC.findall("".join(bodies)))
    try:
        entry = tomllib.loads(raw.decode("utf-8")).get("settings", {}).get("pki", {}).get(PKI_NAME, {})
        return base64.b64decode(str(entry.get("data", "")), validate=True).decode("ascii")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, binascii.Error, ValueError, AttributeError):
        return ""


# --- encodings -------------------------------------------------------------------------------------------------


def _decode(existing: bytes | str) -> tuple[bytes, bool]:
    """Raw bytes and whether the input was base64."""
    if isinstance(existing, str):
        raw = existing.encode("utf-8", "surrogateescape")
    elif isinstance(existing, bytes | bytearray | memoryview):
        raw = bytes(existing)
    else:
        raise UserDataError(f"user data must be bytes or str, got {type(existing).__name__}")
    compact = b"".join(raw.split())
    if compact and len(compact) % 4 == 0 and _B64.fullmatch(compact):
        try:
            decoded = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if decoded and (_is_gzip(decoded) or _is_text(decoded)):
            raw = decoded
            if _is_gzip(raw):
                raise UserDataError("user data is gzip-compressed; eks-proxy only edits uncompressed user data")
            return raw, True
    if _is_gzip(raw):
        raise UserDataError("user data is gzip-compressed; eks-proxy only edits uncompressed user data")
    return raw, False


def _encode(raw: bytes, as_base64: bool, *, as_text: bool) -> bytes | str:
    data = base64.b64encode(raw) if as_base64 else raw
    return data.decode("utf-8", "surrogateescape") if as_text else data


def _is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- Amazon Linux: MIME ---------------------------------------------------------------------------------------


_OVERRIDDEN = (
    "a NodeConfig part after ours sets proxy variables and would override ours in nodeadm's merge: ours move last"
)


def _inject_mime(raw: bytes, env: ProxyEnvironment, node_os: NodeOS, fingerprint: str) -> tuple[bytes, str]:
    """The merged document, and the note for a move the fingerprint cannot show ("" otherwise)."""
    if not raw.strip():
        document = mime.new_document(BOUNDARY, [])
    elif mime.looks_like_mime(raw):
        try:
            document = mime.split_multipart(raw)
        except mime.MimeError as exc:
            raise UserDataError(str(exc)) from None
    else:
        document = _wrap(raw)
    parts = list(document.parts)
    mine = [index for index, part in enumerate(parts) if _is_ours(part)]
    kept = [part for index, part in enumerate(parts) if index not in mine]
    position = mine[0] if mine else len(parts)
    note = ""
    if node_os is NodeOS.AL2023:
        theirs, last_setter = _users_nodeconfig_proxy(parts, mine)
        env = replace(env, no_proxy=tuple(dict.fromkeys((*env.no_proxy, *theirs))))
        if last_setter > position:
            position = len(kept)  # a user's proxy settings after ours would win in nodeadm's merge
            note = _OVERRIDDEN
        ours = al2023.render_parts(env, fingerprint)
    else:
        ours = al2.render_parts(env, fingerprint)
    new_parts = [
        mime.build_part(
            document.delimiter_line(),
            [("Content-Type", part.content_type)],
            part.body.encode("ascii"),
            document.eol,
        )
        for part in ours
    ]
    for part in new_parts:
        if b"\n--" + document.boundary in part.raw:
            raise UserDataError("the user data's MIME boundary occurs in our own content; cannot merge safely")
    kept[position:position] = new_parts
    return document.with_parts(kept).join(), note


def _users_nodeconfig_proxy(parts: list[mime.MimePart], mine: list[int]) -> tuple[list[str], int]:
    """The NO_PROXY entries of the user's NodeConfig parts (in order) and the index of the last one that sets proxy
    variables (-1: none)."""
    entries: list[str] = []
    last_setter = -1
    for index, part in enumerate(parts):
        if index in mine or b"proxy" not in part.raw.lower():  # the cheap answer for almost every part
            continue
        if part.headers().get_content_type() != al2023.NODECONFIG_CONTENT_TYPE:
            continue
        found = read_proxy_settings(part.body())
        entries.extend(found.no_proxy)
        if found.sets_proxy:
            last_setter = index
    return entries, last_setter


def _wrap(raw: bytes) -> mime.MultipartDocument:
    """A non-MIME user data as the single part of a new multipart document (its bytes untouched)."""
    content_type = _content_type_of(raw)
    boundary = BOUNDARY
    counter = 0
    while b"--" + boundary in raw:  # never a delimiter that occurs in the wrapped content
        counter += 1
        boundary = BOUNDARY + b"eks-proxy-" + str(counter).encode()
    delimiter = b"--" + boundary + b"\n"
    return mime.new_document(boundary, [mime.build_part(delimiter, [("Content-Type", content_type)], raw)])


def _content_type_of(raw: bytes) -> str:
    start = raw.lstrip(b"\xef\xbb\xbf")
    for prefix, content_type in _STARTS_WITH:
        if start.startswith(prefix):
            return content_type
    if _NODECONFIG.match(start):
        return "application/node.eks.aws"
    raise UserDataError(
        "user data is neither MIME multipart nor a script, cloud-config or NodeConfig eks-proxy can wrap "
        "(expected MIME-Version headers or a first line such as #!/bin/bash or #cloud-config)"
    )


def _is_ours(part: mime.MimePart) -> bool:
    return _part_fingerprint(part) is not None


def _part_fingerprint(part: mime.MimePart) -> str | None:
    """The fingerprint in the marker comment on the first or second line of a part's body (after a shebang)."""
    head = b"\n".join(part.body().lstrip(b"\r\n").split(b"\n", 2)[:2])
    found = MARKER_RE.search(head.decode("utf-8", "replace"))
    return found.group(1) if found else None


# --- Bottlerocket: TOML ---------------------------------------------------------------------------------------


def _inject_toml(raw: bytes, config: ProxyConfig, context: NodeContext, fingerprint: str) -> bytes:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserDataError("Bottlerocket user data is not UTF-8 text; expected TOML") from None
    if mime.looks_like_mime(raw):
        raise UserDataError("Bottlerocket user data is MIME multipart; Bottlerocket expects TOML settings")
    try:
        env = proxy_environment(config, context)
        merged = apply_ca_bundle(apply_settings(text, env, fingerprint), env)
    except BottlerocketError as exc:
        raise UserDataError(str(exc)) from None
    return raw if merged == text else merged.encode("utf-8")
