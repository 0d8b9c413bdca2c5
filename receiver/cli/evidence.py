"""``receiver evidence rbac``: the RBAC rules evidence capture needs, for the chart or a hand-made deployment."""

from __future__ import annotations

import argparse
from typing import Any

from receiver.evidence import permissions


def add_parser(commands: Any) -> None:
    """Add ``evidence`` and its actions to the command line."""
    actions = commands.add_parser("evidence", help="evidence captured when an incident opens").add_subparsers(
        dest="action", required=True
    )
    actions.add_parser(
        "rbac", help="print the read-only RBAC rules evidence needs (charts/receiver/files/evidence.yaml)"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out ``receiver evidence <action>``; the exit status."""
    print(permissions.table_text(), end="")
    return 0
