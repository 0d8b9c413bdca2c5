"""The corpus as a ``promtool test rules`` file: every entry's proof, built from the entry itself.

Each entry's proof lists input series the way an exporter exposes them; merging in its scrape target's
labels (honor_labels as the chart's ServiceMonitor sets it) gives the series Prometheus stores. The test
expects the vendored rule to fire at eval_time with exactly the entry's labels (less the external labels,
which promtool does not add) and annotations. Built from alerts.yaml at test time, so the data and the
proof cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.corpus.entries import RULES, Entry, document, entries, external_labels, find, render_annotations

INTERVAL = "1m"


def scraped(series: Mapping[str, Any]) -> dict[str, str]:
    """The labels Prometheus stores for one proof series: the exporter's, merged with its target's."""
    own = {k: str(v) for k, v in series.get("labels", {}).items()}
    if "target" not in series:
        return own
    target = document()["targets"][series["target"]]
    attached = {**target["labels"], **series.get("target_labels", {})}
    merged = dict(attached)
    for key, value in own.items():
        if key in attached and not target["honor_labels"]:
            merged[f"exported_{key}"] = value  # Prometheus keeps the target's, renames the series'
        else:
            merged[key] = value
    return merged


def series_text(name: str, labels: Mapping[str, str]) -> str:
    """``name{k="v", ...}`` in the series notation promtool reads."""
    inner = ", ".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expected(entry: Entry) -> list[dict[str, Any]]:
    """The alerts promtool must see firing under ``entry``'s name at its proof's eval_time."""
    keep = external_labels().keys() | {"alertname"}
    alerts = [_expected(entry.labels, dict(entry.annotations), keep)]
    for variant in entry.proof.get("also_firing", []):
        other = find(entry.name, variant)
        labels = {**entry.labels, "severity": other.severity}
        alerts.append(_expected(labels, render_annotations(other.rule, labels, entry.value), keep))
    return alerts


def _expected(labels: Mapping[str, str], annotations: dict[str, str], drop: Any) -> dict[str, Any]:
    return {"exp_labels": {k: v for k, v in labels.items() if k not in drop}, "exp_annotations": annotations}


def unit_test_group(entry: Entry) -> dict[str, Any]:
    """One promtool test group proving ``entry``."""
    proof = entry.proof
    return {
        "name": f"{entry.name} ({entry.variant})" if entry.variant else entry.name,
        "interval": INTERVAL,
        "input_series": [
            {"series": series_text(s["metric"], scraped(s)), "values": _values(s)} for s in proof["series"]
        ],
        "alert_rule_test": [{"eval_time": proof["eval_time"], "alertname": entry.name, "exp_alerts": expected(entry)}],
    }


def _values(series: Mapping[str, Any]) -> str:
    values = series["values"]
    if not isinstance(values, str):  # YAML reads an unquoted 0x30 as the number 48
        raise ValueError(f"{series['metric']}: values must be a quoted string, got {values!r}")
    return values


def unit_test_file() -> dict[str, Any]:
    """The whole promtool test file (rule files by absolute path)."""
    files = sorted({e.rule.file for e in entries()})
    return {
        "rule_files": [str(RULES / f) for f in files],
        "evaluation_interval": INTERVAL,
        "tests": [unit_test_group(e) for e in entries()],
    }
