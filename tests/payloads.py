"""Builders of webhook bodies for tests and benchmarks, with labels the test invents.

An alert kube-prometheus-stack raises (KubePodCrashLooping, KubeNodeNotReady...) comes from tests/corpus
(``from tests.corpus import alert, payload``), with the labels its rule really yields; these builders are
for cases that are about invented alerts.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any


def alert(name: str, status: str = "firing", starts: str = "2026-11-22T09:00:00Z", **labels: str) -> dict[str, Any]:
    """One alert in webhook form (no fingerprint: the receiver computes it); resolved 5 minutes in."""
    ends = datetime.fromisoformat(starts) + timedelta(minutes=5)
    return {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} is {status}"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else ends.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generatorURL": "http://prometheus.example/graph",
    }


def notification(*alerts: dict[str, Any], group_key: str = '{}:{alertname="X"}') -> dict[str, Any]:
    """A version-4 notification around ``alerts``."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "receiver": "receiver",
        "status": "firing" if firing else "resolved",
        "alerts": list(alerts),
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }


def body(*alerts: dict[str, Any]) -> bytes:
    """A notification around ``alerts``, encoded."""
    return json.dumps(notification(*alerts)).encode()
