"""One batch of the inbox, decided: the pure step between reading the store and writing to it.

The processor reads the entries after the cursor and the stored states of
the alerts they name; ``decide_all`` gives every alert its dedup decision,
in inbox order, each one seeing the state the ones before it left. What comes
out is values: what each entry became (``Processed``) and the decisions that
changed an alert's state, which the store writes as one ``Batch`` together
with what the incident book made of the news.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from receiver.alerts.dedup import AlertState, Decision
from receiver.alerts.wire import Alert, Notification
from receiver.store import InboxEntry, Processed

Decide = Callable[[AlertState | None, Alert, datetime], Decision]
"""The pure dedup decision (previous state, update, receipt time), policy bound."""
Entries = Sequence[tuple[InboxEntry, Notification | None]]
"""Inbox entries in order, each with its decoded notification (None: it could not be decoded)."""


def fingerprints(entries: Entries) -> set[str]:
    """Every alert the entries name."""
    return {a.fingerprint for _, n in entries if n is not None for a in n.alerts}


def decide_all(
    entries: Entries, known: Mapping[str, AlertState], decide: Decide
) -> tuple[list[Processed], list[tuple[Decision, Alert]]]:
    """Every alert's decision, in order; and the decisions that changed a state (to write), in order."""
    states = dict(known)
    processed: list[Processed] = []
    changed: list[tuple[Decision, Alert]] = []
    for entry, notification in entries:
        if notification is None:
            processed.append(Processed(entry.seq, None, received_at=entry.received_at))
            continue
        decisions = []
        for alert in notification.alerts:
            prev = states.get(alert.fingerprint)
            decision = decide(prev, alert, entry.received_at)
            if decision.state is not prev:  # the same state: nothing to write
                states[alert.fingerprint] = decision.state
                changed.append((decision, alert))
            decisions.append(decision)
        processed.append(Processed(entry.seq, notification, tuple(decisions), entry.received_at))
    return processed, changed
