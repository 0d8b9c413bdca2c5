"""Incidents: how alert news becomes incidents people can trust.

Pure decisions, each in its module: ``correlation`` (which incident),
``suppression`` (symptoms of a firing root cause), ``severity`` (SEV1-SEV4 with
reasons), ``lifecycle`` (states, transitions, timeline events); ``book`` is the
engine's working set that applies them to news. Imports only ``alerts``.
"""
