"""The command line: ``receiver serve``, ``config check``, ``playbooks ...``, ``evidence rbac``, ``notify ...``,
``oncall ...``."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import disable_created_metrics

from receiver import __version__, config, logs
from receiver import timer as timers
from receiver.app import GUARD, create_app
from receiver.cli import escalation as escalation_cli
from receiver.cli import evidence as evidence_cli
from receiver.cli import notify as notify_cli
from receiver.cli import oncall as oncall_cli
from receiver.cli import playbooks as playbooks_cli
from receiver.clock import Clock, utc_now
from receiver.store import StoreError, backends
from receiver.web import serving
from receiver.web.tls import TlsError, server_context

EXIT_CONFIG = 2
EXIT_IN_USE = 1
"""The data directory is served by another daemon (or its lock cannot be taken)."""
log = logging.getLogger("receiver")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named on the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "playbooks":
        settings = _load(getattr(args, "config", None), {})
        return EXIT_CONFIG if settings is None else playbooks_cli.run(args, settings)
    if args.command == "evidence":
        return evidence_cli.run(args)
    if args.command == "notify":
        settings = _load(Path(args.config) if args.config else None, {})
        return EXIT_CONFIG if settings is None else notify_cli.run(args, settings)
    if args.command == "escalation":
        settings = _load(Path(args.config) if args.config else None, {})
        return EXIT_CONFIG if settings is None else escalation_cli.run(args, settings)
    if args.command == "oncall":
        settings = _load(Path(args.config) if args.config else None, {})
        return EXIT_CONFIG if settings is None else oncall_cli.run(args, settings)
    return _check(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="receiver", description="Alertmanager webhook receiver.")
    parser.add_argument("--version", action="version", version=f"receiver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", type=Path, help="YAML settings file (default: built-in safe defaults)")
    serve.add_argument("--listen", metavar="HOST:PORT", help="override the listen address")
    serve.add_argument("--data-dir", type=Path, metavar="DIR", help="override the data directory")
    serve.add_argument("--timer", type=timers.parse, default=timers.REAL, help=argparse.SUPPRESS)
    # --timer virtual: playbook steps' waits pass at once (tests of shipped playbooks with their real durations,
    # end to end); never in a cluster. Left out of --help on purpose, and logged at warning when set.
    check = commands.add_parser("config", help="work with settings files").add_subparsers(dest="action", required=True)
    check.add_parser("check", help="validate a settings file and exit").add_argument("file", type=Path)
    playbooks_cli.add_parser(commands)
    evidence_cli.add_parser(commands)
    notify_cli.add_parser(commands)
    oncall_cli.add_parser(commands)
    escalation_cli.add_parser(commands)
    return parser


def _load(path: Path | None, overrides: dict[str, Any]) -> config.Settings | None:
    try:
        return config.load(path, os.environ, overrides)
    except config.ConfigError as err:
        where = f"{path}: " if path else ""
        for key, message in err.problems:
            print(f"{where}{key}: {message}", file=sys.stderr)
        return None


def _check(args: argparse.Namespace, clock: Clock = utc_now) -> int:
    """Validate the file: errors exit 2; the coverage check's gaps are printed as warnings and do not."""
    settings = _load(args.file, {})
    if settings is None:
        return EXIT_CONFIG
    if settings.tls is not None:
        try:
            server_context(settings.tls)
        except TlsError as err:
            print(f"{args.file}: {err}", file=sys.stderr)
            return EXIT_CONFIG
    links_off = settings.oncall.links.off_because(settings.notify.external_url)
    if links_off:
        print(f"{args.file}: note: {links_off}", file=sys.stderr)
    for warning in oncall_cli.coverage_warnings(settings, clock()):
        print(f"{args.file}: {warning}", file=sys.stderr)
    print(f"{args.file}: ok")
    return 0


def _serve(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("listen", args.listen), ("data_dir", args.data_dir)) if v is not None}
    settings = _load(args.config, overrides)
    if settings is None:
        return EXIT_CONFIG
    logs.setup(settings.log_level)
    disable_created_metrics()  # type: ignore[no-untyped-call]  # _created series only add noise
    try:
        ssl_context = server_context(settings.tls) if settings.tls else None
    except TlsError as err:
        log.error("cannot start: %s", err)
        return EXIT_CONFIG
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(backends.serve_lock(settings))  # before listening; the kernel drops it on death
        except StoreError as err:
            log.error("cannot start: %s", err)
            return EXIT_IN_USE
        _run(settings, ssl_context, args.timer)
    log.info("receiver stopped")
    return 0


def _run(settings: config.Settings, ssl_context: ssl.SSLContext | None, timer: timers.Timer) -> None:
    if timer is not timers.REAL:
        log.warning(
            "--timer %s: playbook waits pass at once; for tests only, never in a cluster", timers.describe(timer)
        )
    app = create_app(settings, timer=timer)
    app.on_startup.append(_freeze_startup_objects)  # runs after every start-up step of the app
    serving.run(
        app,
        app[GUARD],
        settings.listen.host,
        settings.listen.port,
        ssl_context=ssl_context,
        shutdown_timeout=settings.shutdown_timeout.total_seconds(),
        keepalive_timeout=settings.server.keepalive_timeout.total_seconds(),
    )


async def _freeze_startup_objects(_: web.Application) -> None:
    """Take what start-up built out of the garbage collector's reach.

    Modules, settings and the app live as long as the process; every full
    collection scanned them again, and one such pause (19 ms) stalls every
    request in flight. ``gc.freeze`` moves them to a generation that is never
    collected; what requests allocate is collected as before.
    """
    gc.collect()
    gc.freeze()


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
