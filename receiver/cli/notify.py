"""``receiver notify test`` and ``notify preview``: try a channel, and see what each channel would send.

``test --channel NAME`` sends one test message through a configured channel now (not through the
outbox: it is a person checking the credentials and the destination) and says what the provider
answered. ``preview --incident ID`` reads the incident from the store and prints, per channel, the
request each would send for an event (``--event``, default ``opened``), rendered with the configured
templates; nothing is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from receiver import config
from receiver.clock import utc_now
from receiver.engine import stories
from receiver.incidents.lifecycle import Signal
from receiver.notify import channels as channel_types
from receiver.notify.channel import Channel, Io
from receiver.notify.composer import RouteComposer
from receiver.notify.content import Compose, Detail, Markup, Message
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Failed, Sent, Skipped, Target
from receiver.notify.story import Happening, Story
from receiver.store import StoreError, backends

EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(commands: Any) -> None:
    """Add ``notify`` and its actions to the command line."""
    actions = commands.add_parser("notify", help="notification channels").add_subparsers(dest="action", required=True)
    test = actions.add_parser("test", help="send a test message through a channel now")
    test.add_argument("--channel", required=True, help="a name from notify.channels")
    test.add_argument("--config", type=str, help="YAML settings file")
    preview = actions.add_parser("preview", help="print what each channel would send for an incident")
    preview.add_argument("--incident", required=True, help="an incident id (INC-20261201-0001)")
    preview.add_argument("--event", default="opened", choices=[s.value for s in Signal], help="the event to render")
    preview.add_argument("--config", type=str, help="YAML settings file")


def run(args: argparse.Namespace, settings: config.Settings) -> int:
    """Carry out ``receiver notify <action>``; the exit status."""
    channels = {name: channel_types.build(name, s) for name, s in settings.notify.channels.items()}
    if not channels:
        print("no channel is configured (notify.channels)", file=sys.stderr)
        return EXIT_USAGE
    composer = settings.notify.composer()
    if args.action == "test":
        channel = channels.get(args.channel)
        if channel is None:
            print(f"no channel {args.channel!r}: configured are {', '.join(sorted(channels))}", file=sys.stderr)
            return EXIT_USAGE
        return asyncio.run(_test(channel, composer))
    return asyncio.run(_preview(settings, channels, composer, args.incident, Signal(args.event)))


async def _test(channel: Channel, composer: RouteComposer) -> int:
    now = utc_now()
    delivery = _delivery(channel.name, channel.kind, "RECEIVER-TEST", Signal.TEST, now, f"test/{now.timestamp():.0f}")
    story = Story(
        id="RECEIVER-TEST",
        title="a test notification from receiver notify test",
        severity="SEV4",
        reasons=("a person ran receiver notify test",),
        status="triggered",
        services=(),
        detected_at=now,
        happening=Happening(Signal.TEST, "this is a test: nothing is wrong", "receiver notify test", now),
    )
    compose = _compose(composer, story, channel)
    async with Http() as http:
        result = await channel.send(delivery, compose, Io(http, utc_now))
    if isinstance(result, Sent):
        said = (f" ({result.provider_id})" if result.provider_id else "") + (f": {result.note}" if result.note else "")
        print(f"{channel.name}: sent{said}")
        return 0
    if isinstance(result, Skipped):
        print(f"{channel.name}: nothing sent: {result.why}")
        return 0
    assert isinstance(result, Failed)
    print(f"{channel.name}: failed ({result.reason.value}): {result.message}", file=sys.stderr)
    return EXIT_FAILED


async def _preview(
    settings: config.Settings, channels: dict[str, Channel], composer: RouteComposer, incident: str, signal: Signal
) -> int:
    store = backends.create(settings, role="engine")
    try:
        await store.open()
        targets, _ = await store.notify_state(incident)
        chosen = [(t, r) for _, t, r in targets] or [(Target(name), "") for name in sorted(channels)]
        now = utc_now()
        out: dict[str, Any] = {}
        for target, route in chosen:
            channel = channels.get(target.channel)
            if channel is None:
                continue
            key = f"preview/{signal}"
            delivery = _delivery(target.channel, channel.kind, incident, signal, now, key, target, route)
            correlation = settings.incidents.policy().correlation
            story = await stories.read(store, delivery, settings.notify.link(incident), correlation=correlation)
            wanted = channel.wants(signal)
            out[str(target)] = channel.preview(delivery, _compose(composer, story, channel, route)) if wanted else None
    except stories.UnknownStory:
        print(f"no incident {incident}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as err:
        print(f"cannot read the store: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await store.close()
    print(json.dumps(out, indent=2, default=str))
    return 0


def _delivery(
    channel: str,
    kind: str,
    incident: str,
    signal: Signal,
    now: datetime,
    key: str,
    target: Target | None = None,
    route: str = "",
) -> Delivery:
    text = "this is a test: nothing is wrong" if signal is Signal.TEST else f"preview of {signal}"
    where = target or Target(channel)
    return Delivery(0, key, incident, signal, where, kind, text, "receiver", now, now, 1, route=route)


def _compose(composer: RouteComposer, story: Story, channel: Channel, route: str = "") -> Compose:
    def compose(markup: Markup, detail: Detail) -> Message:
        return composer.compose(story, channel.audience, markup, detail, route)

    return compose
