"""A bounded cache of committed alert states, so dedup rarely reads the database.

Most updates concern alerts seen moments ago (a group's repeat, the HA
peer's copy, the resolve of what fired). The SQLite store keeps the states it
committed last in this LRU and reads only the misses. It holds nothing that
is not committed: the store fills it after COMMIT and evicts what a
transaction outside dedup (expiry) changed. Used from the store's writer
thread only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from receiver.dedup import AlertState


class StateCache:
    """Least-recently-used alert states by fingerprint, at most ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: OrderedDict[str, AlertState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, fingerprint: str) -> AlertState | None:
        """The cached state, marked as just used; None when not cached."""
        state = self._states.get(fingerprint)
        if state is not None:
            self._states.move_to_end(fingerprint)
        return state

    def put_all(self, states: Iterable[AlertState]) -> None:
        """Remember committed states, forgetting the least recently used beyond capacity."""
        for state in states:
            self._states[state.fingerprint] = state
            self._states.move_to_end(state.fingerprint)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)

    def discard_all(self, fingerprints: Iterable[str]) -> None:
        """Forget states that changed behind the cache's back."""
        for fingerprint in fingerprints:
            self._states.pop(fingerprint, None)
