"""Alerts as Alertmanager sends them, and what each update means.

Owns the webhook's wire format (``wire``: decode, validate, fingerprint), the
dedup decision (``dedup``: duplicate, stale, news), label matchers in
Alertmanager's syntax and a label set's canonical text. The bottom of the
domain: it imports nothing else of the daemon.
"""
