"""The email channel against a real SMTP server (tests/fakes/smtp.py): STARTTLS, AUTH, escaping, threading, failures."""

from __future__ import annotations

import asyncio
import contextlib
import html
import smtplib
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from receiver.incidents.lifecycle import Signal
from receiver.notify.channel import Io, Replay
from receiver.notify.channels import email as mail
from receiver.notify.content import TRUNCATED, Compose, Detail, Markup, Message
from receiver.notify.http import Http
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Target
from tests.conftest import T0, Clock
from tests.fakes.smtp import SmtpFake, SmtpFault

USER, PASSWORD = "alerts@example.org", "correct horse battery"
HOSTILE = "</td><script>alert(1)</script>"
INJECTION = "x\r\nBcc: evil@example.com"
INCIDENT = "INC-20261201-0001"


def delivery(
    signal: Signal = Signal.OPENED, *, destination: str = "", event: str = "opened", incident: str = INCIDENT
) -> Delivery:
    target = Target("mail", destination)
    return Delivery(
        id=1,
        key=f"{incident}/{event}/{target}",
        incident=incident,
        signal=signal,
        target=target,
        kind="email",
        text=event,
        actor="receiver",
        at=T0,
        created_at=T0,
        attempts=1,
    )


def composer(title: str = f"checkout down {HOSTILE}", event: str = "opened", sizes: tuple[int, ...] = ()) -> Compose:
    """Messages whose label text is hostile; ``sizes``: evidence, alerts and base body lengths, for the limit."""
    evidence, alerts, base = (*sizes, 0, 0, 0)[:3]

    def compose(markup: Markup, detail: Detail) -> Message:
        escape: Callable[[str], str] = html.escape if markup is Markup.HTML else str
        sections = [f"Label: {escape(HOSTILE)}", "b" * base]
        if detail < Detail.NO_ALERTS:
            sections.append("alerts:" + "a" * alerts)
        if detail < Detail.NO_EVIDENCE:
            sections.append("evidence:" + "e" * evidence)
        return Message(
            title=f"[SEV2] {INCIDENT}: {title}",
            severity="SEV2",
            status="triggered",
            link="https://receiver.example.org/incidents/INC-20261201-0001",
            summary=title,
            event=event,
            body="\n".join(sections),
        )

    return compose


def settings(fake: SmtpFake, **overrides: Any) -> mail.EmailSettings:
    raw: dict[str, Any] = {
        "type": "email",
        "host": fake.host,
        "port": fake.port,
        "username": USER,
        "password": PASSWORD,
        "sender": "receiver@example.org",
        "to": ["oncall@example.org", "sre@example.org"],
        "ca_file": str(fake.ca_file),
        "timeout": 5,
        "hello": "receiver.test",
    }
    raw.update(overrides)
    return mail.EmailSettings.model_validate({k: v for k, v in raw.items() if v is not None})


@pytest.fixture
async def relay(clock: Clock) -> AsyncIterator[SmtpFake]:
    async with SmtpFake(credentials={USER: PASSWORD}, require_starttls=True, clock=clock) as fake:
        yield fake


@pytest.fixture
def io(clock: Clock) -> Io:
    return Io(Http(), clock)


async def send(
    fake: SmtpFake, io: Io, what: Delivery | None = None, compose: Compose | None = None, **over: Any
) -> Result:
    channel = mail.EmailChannel("mail", settings(fake, **over))
    return await channel.send(what or delivery(), compose or composer(), io)


async def test_starttls_auth_and_both_parts_escaped(relay: SmtpFake, io: Io) -> None:
    result = await send(relay, io, compose=composer(event=f"acknowledged by {INJECTION}"))
    assert isinstance(result, Sent)
    [got] = relay.messages
    assert (got.tls, got.authenticated_as, got.mail_from) == (True, USER, "receiver@example.org")
    assert got.rcpt_tos == ("oncall@example.org", "sre@example.org")
    assert got.message.get_content_type() == "multipart/alternative"
    plain, rich = got.message.get_body(("plain",)), got.message.get_body(("html",))
    assert plain is not None and rich is not None
    text, markup = plain.get_content(), rich.get_content()
    assert HOSTILE in text and "https://receiver.example.org/incidents/" in text
    assert HOSTILE not in markup and "<script>" not in markup
    assert markup.count(html.escape(HOSTILE)) == 2  # the title (escaped here) and the body (by compose)
    assert result.provider_id == got.message["Message-ID"]
    assert "queued as" in result.note


async def test_a_header_injection_in_a_title_adds_no_header(relay: SmtpFake, io: Io) -> None:
    await send(relay, io, compose=composer(title=INJECTION, event=INJECTION))
    [got] = relay.messages
    head, _, _ = got.raw.partition(b"\r\n\r\n")
    assert got.message["Bcc"] is None and b"\nBcc:" not in head and b"\nBcc:" not in got.raw
    assert got.rcpt_tos == ("oncall@example.org", "sre@example.org")
    subject = got.message["Subject"]
    assert subject == f"[SEV2] {INCIDENT}: x Bcc: evil@example.com — x Bcc: evil@example.com"
    assert sorted(set(got.message.keys())) == sorted(
        {
            "From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "Auto-Submitted",
            "MIME-Version", "Content-Type",
        }
    )  # fmt: skip


async def test_subject_is_one_capped_line(relay: SmtpFake, io: Io) -> None:
    await send(relay, io, compose=composer(title="t\x00i\x1bt\u2028le " * 100, event="acknowledged\tby al\x7fice"))
    [got] = relay.messages
    subject = str(got.message["Subject"])
    assert len(subject) <= mail.MAX_SUBJECT and subject.endswith(" — acknowledged by al ice")
    assert not any(ord(c) < 32 or c in "\x7f\u2028" for c in subject)
    assert TRUNCATED in subject


async def test_ids_thread_an_incident_and_stay_with_a_delivery(relay: SmtpFake, io: Io, clock: Clock) -> None:
    first = delivery()
    acked = delivery(Signal.ACKNOWLEDGED, event="acknowledged@1")
    other = delivery(incident="INC-20261201-0002")
    for each in (first, first, acked, other):
        assert isinstance(await send(relay, io, each), Sent)
        clock.advance(minutes=1)
    one, again, reply, elsewhere = (m.message for m in relay.messages)
    assert one["Message-ID"] == again["Message-ID"] != reply["Message-ID"]
    assert one["References"] == one["In-Reply-To"] == reply["References"] == reply["In-Reply-To"]
    assert elsewhere["References"] != one["References"]
    assert one["Message-ID"].endswith("@example.org>") and one["References"].endswith("@example.org>")
    assert one["Date"].datetime == T0 and reply["Date"].datetime == T0 + timedelta(minutes=2)


async def test_the_route_destination_replaces_the_recipients(relay: SmtpFake, io: Io) -> None:
    result = await send(relay, io, delivery(destination="dba@example.org, ops@example.net"))
    assert isinstance(result, Sent)
    [got] = relay.messages
    assert got.rcpt_tos == ("dba@example.org", "ops@example.net")
    assert got.message["To"] == "dba@example.org, ops@example.net"


@pytest.mark.parametrize("destination", [INJECTION, "not-an-address", "a@example.org, b@", " , "])
async def test_a_bad_destination_is_a_permanent_client_error(relay: SmtpFake, io: Io, destination: str) -> None:
    result = await send(relay, io, delivery(destination=destination))
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.CLIENT_ERROR, True)
    assert "\n" not in result.message and "\r" not in result.message
    assert relay.exchanges == [] and relay.auth_attempts == []


async def test_a_large_incident_is_cut_to_the_limit_keeping_title_and_link(relay: SmtpFake, io: Io) -> None:
    huge = composer(sizes=(600_000, 600_000, 900_000))
    result = await send(relay, io, compose=huge)
    assert isinstance(result, Sent)
    [got] = relay.messages
    assert len(got.raw) <= mail.MAX_MESSAGE_BYTES
    plain, rich = got.message.get_body(("plain",)), got.message.get_body(("html",))
    assert plain is not None and rich is not None
    for part in (plain.get_content(), rich.get_content()):
        assert "evidence:" not in part and "alerts:" not in part and TRUNCATED in part
        assert "checkout down" in part and "https://receiver.example.org/incidents/" in part


async def test_evidence_goes_first_when_over_the_limit(relay: SmtpFake, io: Io) -> None:
    await send(relay, io, compose=composer(sizes=(2_000_000, 1000, 1000)))
    [got] = relay.messages
    plain = got.message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "alerts:" in text and "evidence:" not in text and TRUNCATED not in text


async def test_a_refused_password_is_a_permanent_auth_error_that_never_shows_it(relay: SmtpFake, io: Io) -> None:
    result = await send(relay, io, password="wrong horse")
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
    assert "535" in result.message and "wrong horse" not in result.message
    assert relay.messages == []


async def test_no_credentials_where_the_relay_wants_them_is_an_auth_error(relay: SmtpFake, io: Io) -> None:
    result = await send(relay, io, username=None, password=None)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
    assert result.message.startswith("MAIL: 530")


@pytest.mark.parametrize(
    ("stage", "code", "reason", "permanent"),
    [
        ("MAIL", 421, Reason.SERVER_ERROR, False),
        ("MAIL", 451, Reason.SERVER_ERROR, False),
        ("MAIL", 550, Reason.CLIENT_ERROR, True),
        ("RCPT", 450, Reason.SERVER_ERROR, False),
        ("RCPT", 452, Reason.SERVER_ERROR, False),
        ("RCPT", 550, Reason.CLIENT_ERROR, True),
        ("DATA", 451, Reason.SERVER_ERROR, False),
        ("DATA", 552, Reason.CLIENT_ERROR, True),
        ("DATA", 554, Reason.CLIENT_ERROR, True),
    ],
)
async def test_relay_refusals(relay: SmtpFake, io: Io, stage: Any, code: int, reason: Reason, permanent: bool) -> None:
    relay.faults.add(SmtpFault.reply(stage, code), times=2)  # RCPT: both recipients
    result = await send(relay, io)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent, result.maybe_sent) == (reason, permanent, False)  # the relay answered
    assert f"{stage}" in result.message and str(code) in result.message
    assert relay.messages == []


async def test_one_refused_recipient_is_a_send_that_says_so(relay: SmtpFake, io: Io) -> None:
    relay.faults.add(SmtpFault.reply("RCPT", 550))
    result = await send(relay, io)
    assert isinstance(result, Sent)
    assert "oncall@example.org (550)" in result.note
    [got] = relay.messages
    assert got.rcpt_tos == ("sre@example.org",)


async def test_a_connection_dropped_after_data_is_temporary_and_may_have_delivered(relay: SmtpFake, io: Io) -> None:
    relay.faults.add(SmtpFault.drop_after_data())
    result = await send(relay, io)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent, result.maybe_sent) == (Reason.OTHER, False, True)
    assert "may have been delivered" in result.message
    [got] = relay.messages
    assert got.replied is False  # it did arrive: a retry would deliver it twice


async def test_a_relay_without_starttls_gets_nothing_in_plaintext(clock: Clock, io: Io) -> None:
    async with SmtpFake(starttls=False, clock=clock) as plain:
        result = await send(plain, io, username=None, password=None)
        assert isinstance(result, Failed)
        assert (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
        assert "STARTTLS" in result.message
        assert plain.exchanges == [] and plain.messages == []


async def test_an_untrusted_certificate_sends_nothing(relay: SmtpFake, io: Io) -> None:
    result = await send(relay, io, ca_file=None)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent) == (Reason.AUTH_ERROR, True)
    assert "certificate" in result.message
    assert relay.auth_attempts == [] and relay.exchanges == []


async def test_implicit_tls_never_falls_back_to_plaintext(clock: Clock, io: Io) -> None:
    async with SmtpFake(starttls=False, clock=clock) as plain:
        result = await send(plain, io, security="tls", username=None, password=None)
        assert isinstance(result, Failed)
        assert (result.reason, result.permanent) == (Reason.OTHER, False)
        assert result.message.startswith("connect: SSLError")
        assert plain.exchanges == []


async def test_plaintext_to_a_local_relay(clock: Clock, io: Io) -> None:
    async with SmtpFake(starttls=False, clock=clock) as plain:
        result = await send(plain, io, security="none", username=None, password=None, ca_file=None)
        assert isinstance(result, Sent)
        [got] = plain.messages
        assert got.tls is False


async def test_connection_refused_is_temporary(relay: SmtpFake, io: Io) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = await send(relay, io, port=port)
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent, result.maybe_sent) == (Reason.OTHER, False, False)
    assert result.message.startswith("connect: ConnectionRefusedError")


async def test_a_silent_relay_is_a_timeout(relay: SmtpFake, io: Io) -> None:
    connected, ended = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # says nothing, until the client gives up and closes
        await closed(writer)
        ended.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await send(relay, io, port=port, timeout=0.3)
        await asyncio.wait_for(ended.wait(), 5)  # the worker thread gives up too (its socket's timeout)
    assert connected.is_set()
    assert isinstance(result, Failed)
    assert (result.reason, result.permanent, result.maybe_sent) == (Reason.TIMEOUT, False, False)
    assert result.message == "connect: no answer in time"


def test_failures_never_carry_the_password() -> None:
    configured = GOOD | {"username": USER, "password": PASSWORD}
    secrets = mail._secrets(mail.EmailSettings.model_validate(configured))
    echoed = mail.failure("auth", smtplib.SMTPAuthenticationError(535, f"bad: {PASSWORD}".encode()), secrets)
    assert PASSWORD not in echoed.message and "***" in echoed.message
    assert echoed.reason is Reason.AUTH_ERROR


def test_preview_sends_nothing_and_shows_the_mail(relay: SmtpFake) -> None:
    channel = mail.EmailChannel("mail", settings(relay))
    shown = channel.preview(delivery(), composer())
    assert shown["to"] == ["oncall@example.org", "sre@example.org"]
    assert shown["headers"]["Subject"] == f"[SEV2] {INCIDENT}: checkout down {HOSTILE} — opened"
    assert HOSTILE in shown["text"] and HOSTILE not in shown["html"]
    assert 0 < shown["bytes"] <= mail.MAX_MESSAGE_BYTES
    assert PASSWORD not in repr(shown) and PASSWORD not in repr(channel) and PASSWORD not in repr(channel.settings)
    assert relay.exchanges == []
    assert "error" in channel.preview(delivery(destination="nobody"), composer())


def test_what_the_channel_declares(relay: SmtpFake) -> None:
    channel = mail.EmailChannel("mail", settings(relay))
    assert mail.TYPE.kind == channel.kind == "email" and channel.audience == "internal"
    assert channel.replay(delivery()) is Replay.NEVER
    assert channel.rate_key(delivery()) == f"{USER} at {relay.host}:{relay.port}" and channel.min_interval() == 0
    assert {s for s in Signal if not channel.wants(s)} == {Signal.ALERTS_CHANGED, Signal.SERVICES_JOINED}


GOOD: dict[str, Any] = {"type": "email", "host": "smtp.example.org", "sender": "r@example.org", "to": ["a@example.org"]}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"security": "none"}, "only allowed for a relay on this machine"),
        ({"username": USER}, "set both or neither"),
        ({"password": PASSWORD}, "set both or neither"),
        ({"sender": "Receiver <r@example.org>"}, "is not a mail address"),
        ({"to": []}, "at least 1 item"),
        ({"to": ["a@example.org", "b@example.org\r\nBcc: evil@example.com"]}, "is not a mail address"),
        ({"host": "smtp.example.org\r\nX"}, "is not a host name"),
        ({"hello": "my host"}, "is not a host name"),
        ({"port": 0}, "greater than or equal to 1"),
        ({"timeout": 0}, "greater than 0"),
        ({"ca_file": "/nonexistent/ca.pem"}, "Path does not point to a file"),
        ({"smarthost": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_settings_are_validated(change: dict[str, Any], problem: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=problem):
        mail.EmailSettings.model_validate(GOOD | change)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_plaintext_is_allowed_for_this_machine(host: str) -> None:
    assert mail.EmailSettings.model_validate(GOOD | {"host": host, "security": "none"}).security == "none"


async def test_a_relay_hanging_after_data_is_a_timeout_that_may_have_delivered_within_the_budget(
    clock: Clock, io: Io
) -> None:
    async with SmtpFake(starttls=False, clock=clock) as hung:
        hung.faults.add(SmtpFault.stall_at("DATA"))
        started = time.monotonic()
        result = await send(hung, io, security="none", username=None, password=None, ca_file=None, timeout=0.5)
        took = time.monotonic() - started
        assert isinstance(result, Failed)
        assert (result.reason, result.permanent, result.maybe_sent) == (Reason.TIMEOUT, False, True)
        assert result.message.startswith("DATA: no answer in time") and "may have been delivered" in result.message
        assert took < 0.5 + 0.5, f"{took:.2f}s for a 0.5s budget"
        [got] = hung.messages
        assert got.replied is False  # the relay has it: the sender must not send it blindly again


@pytest.fixture
async def chatty() -> AsyncIterator[int]:
    """A relay that greets, then answers EHLO with continuation lines that never end: every read gets data."""
    done, ended = asyncio.Event(), asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(b"220 relay.test ESMTP\r\n")
        await reader.readline()
        with contextlib.suppress(ConnectionError):
            while not done.is_set():
                writer.write(b"250-x\r\n" * 100)
                await writer.drain()
                await asyncio.sleep(0)  # a turn for the rest of the loop: drain yields only when the client lags
        await closed(writer)
        ended.set()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    async with server:
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            done.set()
            for writer in writers:  # a client that stopped reading leaves drain() waiting: cut the connection
                writer.transport.abort()
            await asyncio.wait_for(ended.wait(), 5)


async def closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_the_timeout_bounds_the_whole_submission_not_each_read(relay: SmtpFake, chatty: int, io: Io) -> None:
    plain = {"security": "none", "username": None, "password": None, "ca_file": None}
    started = time.monotonic()
    async with asyncio.timeout(10):  # without a deadline for the whole submission, it never ends
        result = await send(relay, io, host="127.0.0.1", port=chatty, timeout=0.5, **plain)
    assert isinstance(result, Failed)
    assert (result.reason, result.maybe_sent) == (Reason.TIMEOUT, False)  # nothing was sent: EHLO never ended
    assert result.message == "MAIL: no answer in time"
    assert time.monotonic() - started < 5  # bounded by the 0.5 s deadline, not by the 10 s guard around it


async def test_a_submission_the_sender_gives_up_on_is_stopped_at_once(relay: SmtpFake, io: Io) -> None:
    """The sender's attempt timeout cancels ``send``; the worker thread, which no cancellation reaches, is stopped."""
    asked, shut = asyncio.Event(), asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 relay.test ESMTP\r\n")
        await reader.readline()  # EHLO, never answered
        asked.set()
        await reader.read()  # until the client shuts the connection
        await closed(writer)
        shut.set()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        plain = {"security": "none", "username": None, "password": None, "ca_file": None}
        attempt = asyncio.create_task(send(relay, io, host="127.0.0.1", port=port, timeout=30, **plain))
        await asyncio.wait_for(asked.wait(), 5)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        await asyncio.wait_for(shut.wait(), 5)  # not 30 s later


async def test_the_html_part_keeps_each_line(relay: SmtpFake, io: Io) -> None:
    lines = ["Firing: 2 alerts", "- KubePodCrashLooping cart-7d9", "- KubePodCrashLooping cart-8e1", "Runbook: below"]

    def compose(markup: Markup, detail: Detail) -> Message:
        body = "\n".join([*lines, html.escape(HOSTILE) if markup is Markup.HTML else HOSTILE])
        return Message(f"[SEV2] {INCIDENT}: checkout", "SEV2", "triggered", "", "checkout", "opened", body)

    assert isinstance(await send(relay, io, compose=compose), Sent)
    [got] = relay.messages
    rich = got.message.get_body(("html",))
    assert rich is not None
    markup = rich.get_content().replace("\r\n", "\n")  # as sent: CRLF line ends
    kept = "\n".join(lines)
    assert f'<div style="white-space: pre-wrap">{kept}\n{html.escape(HOSTILE)}</div>' in markup
    assert HOSTILE not in markup
