"""A label set's canonical text: JSON with sorted keys, so that equal sets are equal strings.

The store writes label sets this way, and the incident book keeps an open alert's labels as this
text rather than as a dict (a fraction of the memory).
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson


def canonical_json(labels: Mapping[str, str]) -> str:
    """``labels`` as JSON with sorted keys."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS).decode()
