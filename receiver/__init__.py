"""Alertmanager webhook receiver that turns alerts into incidents and remediation."""

__version__ = "0.1.0"
