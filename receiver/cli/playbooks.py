"""``receiver playbooks validate|plan|schema``: check playbooks, and see what they would do, touching nothing.

``validate`` loads every playbook of the directories and prints each
problem with its file, key path and reason. ``plan`` reads an Alertmanager
webhook payload (as Alertmanager posts it, e.g. a captured one) and prints,
for each alert, the playbooks it triggers, what the guardrails would say of a
first run (blocked, dry-run, needs approval), and every step they would
take, templates rendered and names checked; a refused step says why, and a
deferred one (guarded by ``when``, not renderable yet) what it waits for. ``schema``
prints the JSON Schema of the playbook format. ``rbac`` prints the RBAC rules
the playbooks need, and nothing more (namespaced, and cluster-scoped for
nodes), for those who deploy without the Helm chart; ``rbac --chart-table``
prints what the chart needs to build the same rules (every action's rules by
target kind), the content of ``charts/receiver/files/actions.yaml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from receiver.alerts.wire import InvalidNotification, decode
from receiver.clock import utc_now
from receiver.config import Settings
from receiver.incidents.severity import Severity
from receiver.playbooks import model as playbook
from receiver.playbooks import permissions
from receiver.playbooks.guardrails import Verdict, judge
from receiver.playbooks.plan import AlertFacts, Plan, plans
from receiver.playbooks.remediation import Remediation

EXIT_INVALID = 2


def add_parser(commands: Any) -> None:
    """Add ``playbooks`` and its actions to the command line."""
    actions = commands.add_parser("playbooks", help="check playbooks and plan their runs").add_subparsers(
        dest="action", required=True
    )
    validate = actions.add_parser("validate", help="load every playbook of the directories and report problems")
    validate.add_argument("dirs", nargs="*", type=Path, metavar="DIR", help="default: remediation.playbook_dirs")
    show = actions.add_parser("plan", help="print what the playbooks would do for an alert payload, touching nothing")
    show.add_argument("--alert", type=Path, required=True, metavar="FILE", help="an Alertmanager webhook payload")
    show.add_argument("--dir", type=Path, action="append", dest="dirs", metavar="DIR", help="repeatable")
    show.add_argument("--severity", choices=[str(s) for s in Severity], help="the incident's severity, if any")
    show.add_argument("--json", action="store_true", help="print the plans as JSON")
    actions.add_parser("schema", help="print the JSON Schema of a playbook file")
    rbac = actions.add_parser("rbac", help="print the RBAC rules the playbooks need (least privilege)")
    rbac.add_argument("dirs", nargs="*", type=Path, metavar="DIR", help="default: remediation.playbook_dirs")
    rbac.add_argument(
        "--chart-table",
        action="store_true",
        help="print every action's rules by target kind, for the Helm chart (charts/receiver/files/actions.yaml)",
    )
    for sub in (validate, show, rbac):
        sub.add_argument("--config", type=Path, help="settings file (playbook_dirs, allowed namespaces)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out ``receiver playbooks <action>``; the exit status."""
    if args.action == "schema":  # needs no settings
        print(json.dumps(playbook.schema(), indent=2))
        return 0
    if args.action == "rbac" and args.chart_table:  # from the registry of actions, not from playbooks
        print(permissions.chart_table_text(), end="")
        return 0
    dirs = args.dirs or settings.remediation.playbook_dirs
    loaded = playbook.load_dirs(dirs)
    for problem in loaded.problems:
        print(problem, file=sys.stderr)
    if args.action == "validate":
        print(f"{len(loaded.playbooks)} playbooks ok, {len(loaded.problems)} problems", file=sys.stderr)
        return EXIT_INVALID if loaded.problems else 0
    if args.action == "rbac":
        return _rbac(loaded)
    return _plan(args, settings, loaded.playbooks)


def _plan(args: argparse.Namespace, settings: Settings, playbooks: tuple[playbook.Playbook, ...]) -> int:
    try:
        notification = decode(args.alert.read_bytes())
    except OSError as err:
        print(f"{args.alert}: cannot be read: {err}", file=sys.stderr)
        return EXIT_INVALID
    except InvalidNotification as err:
        for problem in err.problems:
            print(f"{args.alert}: {problem[0]}: {problem[1]}", file=sys.stderr)
        return EXIT_INVALID
    namespaces = settings.remediation.namespace_policy()
    severity = Severity[args.severity] if args.severity else None
    remediation = Remediation(playbooks, namespaces)
    defaults = settings.remediation.guardrails.limits()
    report: list[tuple[AlertFacts, list[tuple[Plan, Verdict]]]] = []
    for alert in notification.alerts:
        facts = AlertFacts(alert.fingerprint, alert.status, alert.labels, alert.annotations, alert.starts_at)
        judged = [
            (p, judge(p, remediation.limits(p.playbook, defaults), [], breaker_open=False, now=utc_now()))
            for p in plans(playbooks, facts, namespaces, severity)
        ]
        report.append((facts, judged))
    if args.json:
        print(json.dumps([_json(facts, judged) for facts, judged in report], indent=2))
    else:
        for facts, judged in report:
            print(_text(facts, judged))
    return 0


def _rbac(loaded: playbook.Loaded) -> int:
    if loaded.problems:
        return EXIT_INVALID  # rules for a set of playbooks that does not load would be rules for the wrong set
    needed = permissions.of_playbooks(loaded.playbooks)
    namespaced = [p for p in needed if p.resource not in permissions.CLUSTER_SCOPED]
    cluster = [p for p in needed if p.resource in permissions.CLUSTER_SCOPED]
    print(f"# what {', '.join(p.name for p in loaded.playbooks) or 'no playbook'} need")
    print(yaml.safe_dump({"namespaced": permissions.rules(namespaced), "cluster": permissions.rules(cluster)}))
    return 0


def _verdict(verdict: Verdict) -> str:
    if verdict.block is not None:
        return f"blocked ({verdict.block.value}): {verdict.reason}"
    how = [w for w, on in (("dry-run", verdict.dry_run), ("needs approval", verdict.approval)) if on]
    return "allowed" + (f" ({', '.join(how)})" if how else "")


def _json(facts: AlertFacts, found: list[tuple[Plan, Verdict]]) -> dict[str, Any]:
    return {
        "alert": {"fingerprint": facts.fingerprint, "status": facts.status, "labels": dict(facts.labels)},
        "plans": [
            {
                "playbook": p.playbook,
                "refused": p.refused,
                "guardrails": _verdict(v),
                "steps": [
                    {
                        "name": s.name,
                        "action": s.action,
                        "inputs": dict(s.inputs),
                        "when": s.when,
                        "refused": s.refused,
                        "deferred": s.deferred,
                    }
                    for s in p.steps
                ],
            }
            for p, v in found
        ],
    }


def _text(facts: AlertFacts, found: list[tuple[Plan, Verdict]]) -> str:
    labels = " ".join(f"{k}={v}" for k, v in sorted(facts.labels.items()) if k != "alertname")
    lines = [f"alert {facts.labels.get('alertname', '?')} ({facts.status}, {facts.fingerprint}) {labels}"]
    if not found:
        lines.append("  no playbook is triggered")
    for p, v in found:
        lines.append(f"  playbook {p.playbook}: {_verdict(v)}")
        for i, s in enumerate(p.steps, 1):
            what = (
                (s.refused and f"refused: {s.refused}")
                or (s.pending and f"deferred (rendered at run time if its condition holds): {s.deferred}")
                or json.dumps(dict(s.inputs), sort_keys=True)
            )
            when = f"  when {s.when}" if s.when else ""
            lines.append(f"    {i}. {s.name}: {s.action} {what}{when}")
    return "\n".join(lines)
