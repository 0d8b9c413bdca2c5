"""Stories for notification tests: a crash-looping pod in namespace ``shop``, as the sender would read it.

``story(**overrides)`` is the incident a notification tells (``receiver.notify.story.Story``): one
KubePodCrashLooping alert of kube-prometheus-stack (labels and annotations from tests/corpus: pod
``web-7d4b9c6f5-x2x9z``, container ``web``), SEV3, triggered at ``T0``, one piece of evidence, one
playbook run, the next update due 30 minutes in. Any Story field can be overridden, and:

- ``signal=Signal.ACKNOWLEDGED`` (with ``text=``, ``actor=``, ``at=``): what the notification is about;
- ``alert_line(**overrides)``: one alert (``labels=``/``annotations=`` are merged into the corpus ones,
  so ``alert_line(annotations={"summary": "<!channel>"})`` is a hostile summary on a real alert).

    from tests.notify_support import T0, alert_line, story
    s = story(signal=Signal.RESOLVED, resolved_at=T0 + timedelta(minutes=40), status="resolved")
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from receiver.incidents.lifecycle import Signal
from receiver.notify.story import AlertLine, EventLine, EvidenceLine, Happening, RunLine, Story
from tests.corpus import alert

T0 = datetime(2026, 12, 1, 3, 20, tzinfo=UTC)
"""When the incident was detected."""
LINK = "https://receiver.example/incidents/INC-20261201-0001"
TEXTS = {
    Signal.OPENED: ("classified SEV3: label severity='warning' -> SEV3", "receiver"),
    Signal.ACKNOWLEDGED: ("looking into it", "alice"),
    Signal.RESOLVED: ("nothing has fired for 5m0s", "receiver"),
    Signal.STATUS_UPDATE: ("We rolled back the last deploy of web.", "alice"),
}
"""A realistic happening text and actor for some signals (others get ``<signal> happened``, ``receiver``)."""


def alert_line(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, **overrides: Any
) -> AlertLine:
    """KubePodCrashLooping of pod shop/web-7d4b9c6f5-x2x9z, firing since ``T0``; ``labels``/``annotations`` merged."""
    crash = alert("KubePodCrashLooping", namespace="shop", pod="web-7d4b9c6f5-x2x9z", container="web")
    line = AlertLine(
        name=crash.name,
        labels={**crash.labels, **(labels or {})},
        annotations={**crash.annotations, **(annotations or {})},
        firing=True,
        severity="SEV3",
        role="alert",
        fired_at=T0,
        service="shop/web",
    )
    return replace(line, **overrides)


def happening(
    signal: Signal = Signal.OPENED, text: str | None = None, actor: str | None = None, at: datetime = T0
) -> Happening:
    """What a notification is about, with the text and actor the engine gives ``signal``."""
    default_text, default_actor = TEXTS.get(signal, (f"{signal.value} happened", "receiver"))
    return Happening(signal, default_text if text is None else text, default_actor if actor is None else actor, at)


def story(
    signal: Signal = Signal.OPENED,
    text: str | None = None,
    actor: str | None = None,
    at: datetime = T0,
    **overrides: Any,
) -> Story:
    """The crash-looping pod's incident as ``signal`` tells it; any Story field overridden."""
    base = Story(
        id="INC-20261201-0001",
        title="KubePodCrashLooping in namespace shop",
        severity="SEV3",
        reasons=("label severity='warning' -> SEV3",),
        status="triggered",
        services=("shop/web",),
        detected_at=T0,
        happening=happening(signal, text, actor, at),
        link=LINK,
        next_update_at=T0 + timedelta(minutes=30),
        alerts=(alert_line(),),
        runs=(RunLine(1, "restart-crashlooping-pod", "succeeded", "deleted pod shop/web-7d4b9c6f5-x2x9z"),),
        evidence=(EvidenceLine("captured", "pod shop/web-7d4b9c6f5-x2x9z: 12 restarts, last exit code 1"),),
        timeline=(EventLine(T0, "alert_fired", "KubePodCrashLooping fired", "receiver"),),
        firing=1,
    )
    return replace(base, **overrides)
