"""What the channel tests share: deliveries built by hand, and a compose whose message is hostile.

A channel's test builds ``Delivery`` values directly and hands the channel a ``Script``: a ``Compose``
that answers every (markup, detail) with a ``Message`` whose title, summary, event, status and services
carry attacker-controlled text (mentions, links, HTML, markdown, card expressions, line breaks), and
whose body is made of three marked parts (text, alerts, evidence) of chosen sizes, dropped as the
detail asked drops them. So a test asserts escaping, and the degradation order under a size limit.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from datetime import timedelta

from receiver.incidents.lifecycle import Signal
from receiver.notify.content import TRUNCATED, Detail, Markup, Message
from receiver.notify.model import Delivery, Target
from tests.conftest import T0

INCIDENT = "INC-20261122-0001"
LINK = f"https://receiver.example/incidents/{INCIDENT}"
HOSTILE = (
    "<!channel> <https://evil.example|x> & *bold* _it_ </td><script>alert(1)</script> "
    "[click](https://evil.example) {{DATE(2017-02-14T06:08:39Z, SHORT)}} <at>everyone</at>"
)
"""A label value meant to format, link, mention or run something in one markup or another."""
CRLF = "line one\r\nBcc: attacker@evil.example\r\n\r\nline two"
"""A value meant to break a one-line field (a header, a subject, a summary) into several."""


AT = T0 + timedelta(minutes=1)
"""When the deliveries' events happened (and were written to the outbox)."""
OPENED = Delivery(  # id, key, incident, signal, target, kind, text, actor, at, created_at, attempts
    1, f"{INCIDENT}/opened/ops", INCIDENT, Signal.OPENED, Target("ops"), "test", "opened", "alice", AT, AT, 1
)
"""A first attempt at telling channel ``ops`` the incident opened."""


def delivery(
    signal: Signal = Signal.OPENED,
    *,
    channel: str = "ops",
    destination: str = "",
    event: str | None = None,
    incident: str = INCIDENT,
    attempts: int = 1,
    resumed: bool = False,
) -> Delivery:
    """An outbox row as the sender would hand it over: the event named after its signal, its text hostile."""
    target = Target(channel, destination)
    key = f"{incident}/{event if event is not None else signal.value}/{target}"
    text = f"{signal.value}: {HOSTILE}"
    return replace(
        OPENED, key=key, incident=incident, signal=signal, target=target, text=text, attempts=attempts, resumed=resumed
    )


@dataclass
class Script:
    """A ``Compose`` for tests: hostile one-line fields, a body of marked parts, and what it was asked."""

    severity: str = "SEV2"
    status: str = "triggered"
    link: str = LINK
    title: str = f"[SEV2] {INCIDENT}: KubePodCrashLooping {HOSTILE}"
    summary: str = f"KubePodCrashLooping in shop {CRLF} {HOSTILE}"
    event: str = f"opened {CRLF}"
    services: tuple[str, ...] = ("shop", HOSTILE)
    text: str = "TEXT-START the incident TEXT-END"
    alerts: int = 0
    """Characters of the alert list (present at FULL and NO_EVIDENCE)."""
    evidence: int = 0
    """Characters of the evidence (present at FULL only)."""
    asked: list[tuple[Markup, Detail]] = field(default_factory=list)

    def __call__(self, markup: Markup, detail: Detail) -> Message:
        self.asked.append((markup, detail))
        parts = [self.text, marked("ALERTS", self.alerts), marked("EVIDENCE", self.evidence)]
        kept = parts[: 3 - detail]
        body = "\n".join(part for part in kept if part)
        return Message(self.title, self.severity, self.status, self.link, self.summary, self.event, body, self.services)


def marked(name: str, size: int) -> str:
    """``size`` characters starting ``<name>-START`` (empty for 0)."""
    if not size:
        return ""
    head = f"{name}-START "
    return (head + "x" * size)[:size]


@dataclass(frozen=True)
class Degradation:
    """A message too large for a limit, the detail ``fit`` must end at, and what must and must not remain."""

    script: Script
    detail: Detail
    kept: tuple[str, ...]
    dropped: tuple[str, ...]

    def check(self, body: str) -> bool:
        """Whether ``body`` (the delivered one) kept and dropped what it must."""
        return all(k in body for k in self.kept) and not any(d in body for d in self.dropped)


def degradations(big: int) -> list[Degradation]:
    """Evidence over the limit by itself (dropped first), then alerts (dropped next), then the text (cut)."""
    return [
        Degradation(Script(alerts=1000, evidence=big), Detail.NO_EVIDENCE, ("ALERTS-START",), ("EVIDENCE-START",)),
        Degradation(Script(alerts=big, evidence=1000), Detail.NO_ALERTS, ("TEXT-START",), ("ALERTS-START", "EVIDENCE")),
        Degradation(Script(text="TEXT-START " + "t" * big), Detail.NO_ALERTS, ("TEXT-START", TRUNCATED), ()),
    ]


def closed_url(path: str = "") -> str:
    """A loopback URL nothing listens on (a port the kernel gave and was given back): no answer, at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}{path}"
