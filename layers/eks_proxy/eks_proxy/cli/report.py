"""Human-readable reports of decisions and rollouts, shared by `eks-proxy plan`, `eks-proxy status` and `make demo`.

Pure text: no AWS here. Everything that ends up on a terminal passes through `redact` first. A proxy value with
credentials is refused long before it reaches a launch template, but the *user's own* parts of the user data (a
team script) may still hold a token or a password: a diff shows their context lines, so those are masked.

>>> redact("export HTTPS_PROXY=http://bob:hunter2@proxy:3128")
'export HTTPS_PROXY=http://***@proxy:3128'
>>> redact('DB_PASSWORD="s3cret" # keep')
'DB_PASSWORD=*** # keep'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eks_proxy.model import Decision, Outcome

# user:password@ in any URL-like text (the part before @ is dropped, whatever it is).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@\"']+@")
# KEY=value / KEY: value where the key names a secret (password, token, secret, api key, access key, credential).
# The runs around the keyword are bounded (unbounded, a long "token-token-..." line took cubic time) and need no word
# boundary: a longer key matches from a later position, and what precedes the match is left as it is.
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>[\w.\-]{0,64}(?:passw(?:or)?d|secret|token|api[_\-]?key|access[_\-]?key|credential|auth)[\w.\-]{0,64}"
    r"[\"']?\s*[:=]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;#]+)",
    re.IGNORECASE,
)
# AWS access key ids and long-lived secrets pasted into scripts.
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")

OUTCOME_LABEL = {
    Outcome.CREATE_VERSION: "would create a new launch template version",
    Outcome.ROLL_EXISTING: "would roll to a version made earlier",
    Outcome.UP_TO_DATE: "up to date",
    Outcome.OUT_OF_SCOPE: "out of scope",
}


def _mask_assignment(match: re.Match[str]) -> str:
    value = match["value"].strip("\"'")
    if value.startswith("$") or value.isdigit():  # a shell expansion or a number (a TTL) is no secret
        return match[0]
    return f"{match['key']}***"


def redact(text: str) -> str:
    """Mask credentials in one piece of text (URL user info, secret-looking assignments, AWS key ids)."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    text = _SECRET_ASSIGNMENT.sub(_mask_assignment, text)
    return _AWS_KEY_ID.sub("***", text)


def user_data_text(raw: bytes | None) -> list[str]:
    """Lines of decoded user data for a diff (undecodable bytes shown as U+FFFD, never raising)."""
    if not raw:
        return []
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")


def user_data_diff(
    before: bytes | None, after: bytes | None, from_label: str, to_label: str, *, context: int = 3
) -> list[str]:
    """A unified diff of two user data documents, redacted line by line (no trailing newlines).

    >>> user_data_diff(b"a\\nb\\n", b"a\\nc\\n", "v1", "v2")
    ['--- v1', '+++ v2', '@@ -1,3 +1,3 @@', ' a', '-b', '+c', ' ']
    """
    lines = difflib.unified_diff(
        user_data_text(before), user_data_text(after), fromfile=from_label, tofile=to_label, n=context, lineterm=""
    )
    return [redact(line) for line in lines]


def trim(lines: Sequence[str], limit: int) -> list[str]:
    """At most `limit` lines; the cut is said, with how many lines were left out."""
    if len(lines) <= limit:
        return list(lines)
    return [*lines[:limit], f"... ({len(lines) - limit} more diff lines; `eks-proxy plan` shows them all)"]


@dataclass(frozen=True)
class PlannedChange:
    """One node group's decision plus what a user wants to see next to it: the user data before and after."""

    decision: Decision
    before: bytes | None = None  # user data of the version the node group runs
    after: bytes | None = None  # user data it would run (the planned or the reusable version)

    @property
    def would_change(self) -> bool:
        return self.decision.needs_rollout


def _versions(decision: Decision) -> str:
    lt = decision.launch_template
    if lt is None:
        return "no launch template"
    label = f"launch template {lt.label()}"
    if decision.outcome is Outcome.CREATE_VERSION:
        return f"{label}: version {decision.current_version} -> new version (copy of {decision.current_version})"
    if decision.outcome is Outcome.ROLL_EXISTING:
        return f"{label}: version {decision.current_version} -> {decision.target_version} (already made)"
    if decision.current_version is not None:
        return f"{label}: version {decision.current_version}"
    return label


def describe(change: PlannedChange, *, diff_limit: int | None = None) -> list[str]:
    """The lines of one node group in a plan: decision, reason, launch template, fingerprints, diff."""
    d = change.decision
    head = f"{d.cluster}/{d.nodegroup}"
    lines = [f"{head}: {OUTCOME_LABEL[d.outcome]}" + (f" ({d.node_os})" if d.node_os else "")]
    if d.reason:
        lines.append(f"  why:         {redact(d.reason)}")
    if d.remedy:
        lines.append(f"  remedy:      {redact(d.remedy)}")
    lines.append(f"  versions:    {_versions(d)}")
    if d.desired_fingerprint:
        lines.append(f"  fingerprint: current {d.current_fingerprint or 'none'}, desired {d.desired_fingerprint}")
    lines.extend(ca_bundle_lines(change))
    if change.would_change and (change.before is not None or change.after is not None):
        lt = d.launch_template.label() if d.launch_template else "?"
        target = f"v{d.target_version}" if d.target_version else "new version"
        diff = user_data_diff(change.before, change.after, f"{lt} v{d.current_version}", f"{lt} {target}")
        if diff_limit is not None:
            diff = trim(diff, diff_limit)
        lines.append("  user data diff:" if diff else "  user data diff: (none)")
        lines.extend(f"    {line}" for line in diff)
    return lines


def ca_bundle_lines(change: PlannedChange) -> list[str]:
    """The CA bundle (TLS-inspecting proxy) the node group's user data installs, before and after, by certificate:
    a rotation reads as one certificate out, one in. Nothing when neither side installs one."""
    from eks_proxy.proxy.ca_bundle import certificates_in
    from eks_proxy.userdata.merge import installed_ca_bundle

    before = certificates_in(installed_ca_bundle(change.before or b""))
    after = certificates_in(installed_ca_bundle(change.after or b"")) if change.after is not None else before
    if not before and not after:
        return []
    if [c.sha256 for c in before] == [c.sha256 for c in after]:
        return [f"  CA bundle:   unchanged, {len(after)} certificate(s): " + "; ".join(c.describe() for c in after)]
    kept = {c.sha256 for c in before} & {c.sha256 for c in after}
    label = "added" if not before else "removed" if not after else "changes"
    lines = [f"  CA bundle:   {label} (TLS-inspecting proxy)"]
    lines += [f"    - {c.describe()}" for c in before if c.sha256 not in kept]
    lines += [f"    + {c.describe()}" for c in after if c.sha256 not in kept]
    lines += [f"      {c.describe()} (kept)" for c in after if c.sha256 in kept]
    return lines


def summary(decisions: Iterable[Decision]) -> str:
    """One line: how many node groups would change, are up to date, are out of scope."""
    counts = {o: 0 for o in Outcome}
    for d in decisions:
        counts[d.outcome] += 1
    change = counts[Outcome.CREATE_VERSION] + counts[Outcome.ROLL_EXISTING]
    return (
        f"{change} would change ({counts[Outcome.CREATE_VERSION]} new version(s), "
        f"{counts[Outcome.ROLL_EXISTING]} roll to an existing one), {counts[Outcome.UP_TO_DATE]} up to date, "
        f"{counts[Outcome.OUT_OF_SCOPE]} out of scope"
    )
