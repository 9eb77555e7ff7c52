"""The text eks-proxy plan, status and make demo print: secrets masked, diffs trimmed honestly, summary counts."""

from __future__ import annotations

import doctest
import subprocess
import sys

import pytest
from eks_proxy.cli import report
from eks_proxy.cli.report import PlannedChange, describe, redact, summary, trim, user_data_diff
from eks_proxy.model import Decision, LaunchTemplateRef, Outcome


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("export https_proxy=http://bob:hunter2@proxy:3128", "hunter2"),
        ("curl -u x https://deploy:tok3n@git.corp/repo.git", "tok3n"),
        ('DB_PASSWORD="s3cret value"', "s3cret"),
        ("api_key: abcdef123", "abcdef123"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI"),
        ("GITHUB_TOKEN=ghp_0123456789abcdef", "ghp_0123456789abcdef"),
        ("key AKIAABCDEFGHIJKLMNOP here", "AKIAABCDEFGHIJKLMNOP"),
    ],
)
def test_secrets_are_masked(text: str, hidden: str) -> None:
    assert hidden not in redact(text)
    assert "***" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "T=$(c -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \"$I/api/token\") &&",
        'h="X-aws-ec2-metadata-token: $T" && M=$(c -H "$h" "$I/meta-data/mac") &&',
        'HTTP_PROXY: &p "http://10.0.0.10:3128"',
        'https-proxy = "10.0.0.10:3128" # eks-proxy fingerprint=0e249137201e425f (managed, do not edit)',
        'https-proxy = "http://10.0.0.10:3128" # eks-proxy fingerprint=0e249137201e425f (managed, do not edit)',
        "P=$(g HTTP_PROXY) S=$(g HTTPS_PROXY) N=$(g NO_PROXY)",
    ],
)
def test_our_own_rendered_lines_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_diff_masks_the_users_context_lines() -> None:
    before = b"#!/bin/bash\nexport REGISTRY_PASSWORD=hunter2\necho hi\n"
    after = before + b"# eks-proxy part\n"
    diff = "\n".join(user_data_diff(before, after, "v1", "v2"))
    assert "hunter2" not in diff and "REGISTRY_PASSWORD=***" in diff and "+# eks-proxy part" in diff


def test_trim_says_how_much_was_cut() -> None:
    assert trim(["a", "b"], 2) == ["a", "b"]
    assert trim(["a", "b", "c"], 2) == ["a", "b", "... (1 more diff lines; `eks-proxy plan` shows them all)"]


def test_describe_and_summary() -> None:
    lt = LaunchTemplateRef(id="lt-1", version=1)
    created = Decision("prod", "ng-a", Outcome.CREATE_VERSION, "proxy configuration differs", node_os="al2023",
                       launch_template=lt, current_version=1, desired_fingerprint="f" * 16)  # fmt: skip
    skipped = Decision("prod", "ng-b", Outcome.OUT_OF_SCOPE, "opted out", "remove the tag")
    lines = describe(PlannedChange(created, b"a\n", b"a\nb\n"))
    assert lines[0] == "prod/ng-a: would create a new launch template version (al2023)"
    assert "  versions:    launch template lt-1: version 1 -> new version (copy of 1)" in lines
    assert "    +b" in lines
    assert describe(PlannedChange(skipped))[1:] == ["  why:         opted out", "  remedy:      remove the tag",
                                                    "  versions:    no launch template"]  # fmt: skip
    assert summary([created, skipped]) == (
        "1 would change (1 new version(s), 0 roll to an existing one), 0 up to date, 1 out of scope"
    )


def test_a_long_line_is_redacted_in_bounded_time_and_long_keys_are_still_masked() -> None:
    # The secret-key pattern had two unbounded runs around the keyword: a 16 KB line such as "token-token-..." took
    # cubic time (6 KB: 70 s), hanging `eks-proxy plan` on a launch template's user data. Run in a process, so the
    # old behaviour fails instead of hanging.
    code = "from eks_proxy.cli.report import redact\nfor line in ('token-' * 2700, 'auth' * 4000): redact(line)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    long_key = "X" * 100 + "_PASSWORD=hunter2"
    assert redact(long_key) == "X" * 100 + "_PASSWORD=***"


def test_docstring_examples() -> None:
    failures, tried = doctest.testmod(report)
    assert tried >= 3 and failures == 0
