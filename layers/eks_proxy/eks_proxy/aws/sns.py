"""SNS: the alarm topic's notifications (a JSON document; never a proxy value)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SUBJECT_MAX = 100  # SNS refuses a longer Subject


def publish_alarm(sns: Any, topic_arn: str, subject: str, document: Mapping[str, Any]) -> None:
    """Publish `document` (pretty JSON) to the alarm topic; the subject is cut to SNS's 100 characters."""
    sns.publish(TopicArn=topic_arn, Subject=subject[:SUBJECT_MAX], Message=json.dumps(document, indent=2))
