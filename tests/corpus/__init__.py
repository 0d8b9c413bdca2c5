"""Real alerts for tests: kube-prometheus-stack's rules, the labels and annotations they really yield.

``alert(name, **subject)`` gives one corpus alert (labels exactly as Alertmanager delivers them, subject
labels re-valued); ``payload(alerts, ...)`` the Alertmanager 0.25 webhook body for a group of them,
``webhook_alert`` one alert of such a body, ``prometheus_alert`` the alert as Prometheus posts it to
Alertmanager; ``CORPUS`` every entry with its source rule; ``ALERTMANAGER_CONFIG`` an alertmanager.yml routed like the
chart's defaults. README.md in this directory says where everything comes from and how to add an alert;
tests/test_corpus.py proves every entry with ``promtool test rules`` against the vendored rules.
"""

from __future__ import annotations

from pathlib import Path

from tests.corpus.entries import CorpusAlert, Entry, alert, entries
from tests.corpus.webhook import payload, prometheus_alert, webhook_alert

__all__ = [
    "ALERTMANAGER_CONFIG",
    "CORPUS",
    "WEBHOOK_URL_PLACEHOLDER",
    "CorpusAlert",
    "Entry",
    "alert",
    "alertmanager_config",
    "payload",
    "prometheus_alert",
    "webhook_alert",
]

CORPUS: tuple[Entry, ...] = entries()
"""Every corpus entry: name, variant, source rule (file, group, chart version), expr, for, labels, annotations."""

WEBHOOK_URL_PLACEHOLDER = "__WEBHOOK_URL__"
ALERTMANAGER_CONFIG: str = (Path(__file__).parent / "alertmanager.yml").read_text()
"""alertmanager.yml routed like kube-prometheus-stack's defaults; the webhook URL is WEBHOOK_URL_PLACEHOLDER."""


def alertmanager_config(webhook_url: str, bearer_token: str | None = None) -> str:
    """ALERTMANAGER_CONFIG sending to ``webhook_url`` (with a bearer token when given)."""
    text = ALERTMANAGER_CONFIG.replace(WEBHOOK_URL_PLACEHOLDER, webhook_url)
    if bearer_token is not None:
        auth = f"    http_config:\n      authorization: {{type: Bearer, credentials: {bearer_token}}}\n"
        text = text.replace("    send_resolved: true\n", "    send_resolved: true\n" + auth)
    return text
