"""How an HTTP answer or its absence becomes a ``Result``: the classification every channel shares.

Like Alertmanager's notifier: 5xx is a server error (temporary), 4xx a client error (permanent),
no answer a timeout or other (temporary). Two client errors are told apart: 401/403 are
authentication errors (permanent, a person must fix the credentials) and 429 is a rate limit
(temporary, sent again after ``Retry-After``). A channel with other conventions (Slack's
``ok: false`` with 200, Statuspage's 420) adds its own before calling ``of_status``. Pure.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import datetime

from receiver.notify.model import Failed, Reason


def of_status(status: int, headers: Mapping[str, str], what: str, now: datetime | None = None) -> Failed | None:
    """The failure an HTTP status means (None for 2xx); ``what``: the provider's words, for the message."""
    if 200 <= status < 300:
        return None
    message = f"HTTP {status}: {what}".strip().rstrip(":")
    if status == 429:
        return Failed(Reason.RATE_LIMITED, message, retry_after(headers, now))
    if status in (401, 403):
        return Failed(Reason.AUTH_ERROR, message, permanent=True)
    if status == 408:
        return Failed(Reason.TIMEOUT, message)
    if 400 <= status < 500:
        return Failed(Reason.CLIENT_ERROR, message, permanent=True)
    if 500 <= status < 600:
        return Failed(Reason.SERVER_ERROR, message, retry_after(headers, now))
    return Failed(Reason.OTHER, message)


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds ``Retry-After`` asks to wait (seconds, or an HTTP date against ``now``); None if absent or unreadable."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if now is None or when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)
