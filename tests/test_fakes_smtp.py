"""The SMTP fake behaves as a submission server does (RFC 5321, 3207, 4954), seen through Python's smtplib."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

import pytest

from tests.fakes.smtp import SmtpFake, SmtpFault

T = TypeVar("T")
USERS = {"alerts@example.org": "correct horse"}
START = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def message(subject: str = "SEV2: checkout latency", to: str = "oncall@example.org") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "receiver@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("p99 latency above 2s for 10m")
    return msg


async def client(fake: SmtpFake, session: Callable[[smtplib.SMTP], T]) -> T:
    """Run ``session`` against a fresh smtplib connection to the fake, in a thread, closing it after."""

    def run() -> T:
        with smtplib.SMTP(fake.host, fake.port, local_hostname="client.test", timeout=10) as smtp:
            return session(smtp)

    return await asyncio.to_thread(run)


def submit(
    fake: SmtpFake, msg: EmailMessage, *, login: tuple[str, str] | None = None
) -> Callable[[smtplib.SMTP], None]:
    def session(smtp: smtplib.SMTP) -> None:
        smtp.starttls(context=fake.client_context())
        if login is not None:
            smtp.login(*login)
        smtp.send_message(msg)

    return session


@pytest.fixture
async def plain() -> AsyncIterator[SmtpFake]:
    async with SmtpFake(starttls=False) as fake:
        yield fake


@pytest.fixture
async def submission() -> AsyncIterator[SmtpFake]:
    async with SmtpFake(credentials=USERS, require_starttls=True, clock=Clock()) as fake:
        yield fake


async def test_plain_message_is_recorded_with_its_envelope(plain: SmtpFake) -> None:
    refused = await client(
        plain, lambda s: s.sendmail("bounce@example.org", ["a@example.org", "b@example.org"], message().as_bytes())
    )
    assert refused == {}
    [got] = plain.messages
    assert got.mail_from == "bounce@example.org"
    assert got.rcpt_tos == ("a@example.org", "b@example.org")
    assert got.message["Subject"] == "SEV2: checkout latency"
    assert got.message.get_content().strip() == "p99 latency above 2s for 10m"
    assert (got.tls, got.authenticated_as, got.replied) == (False, None, True)
    assert [(e.stage, e.code) for e in plain.exchanges] == [("MAIL", 250), ("RCPT", 250), ("RCPT", 250), ("DATA", 250)]


async def test_plain_server_offers_no_starttls(plain: SmtpFake) -> None:
    def session(smtp: smtplib.SMTP) -> bool:
        smtp.ehlo()
        return smtp.has_extn("starttls")

    assert await client(plain, session) is False


async def test_starttls_and_auth_plain(submission: SmtpFake) -> None:
    await client(submission, submit(submission, message(), login=("alerts@example.org", "correct horse")))
    [got] = await submission.wait_for_messages(1)
    assert (got.tls, got.authenticated_as) == (True, "alerts@example.org")
    assert got.at == START
    assert got.queue_id is not None
    [attempt] = submission.auth_attempts
    assert (attempt.mechanism, attempt.accepted, attempt.tls) == ("PLAIN", True, True)


async def test_auth_login_mechanism(submission: SmtpFake) -> None:
    def session(smtp: smtplib.SMTP) -> tuple[int, bytes]:
        smtp.starttls(context=submission.client_context())
        smtp.ehlo()
        smtp.user, smtp.password = "alerts@example.org", "correct horse"
        return smtp.auth("LOGIN", smtp.auth_login)

    code, _ = await client(submission, session)
    assert code == 235
    assert [a.mechanism for a in submission.auth_attempts] == ["LOGIN"]


async def test_certificate_is_verified_against_the_fakes_ca_only(submission: SmtpFake) -> None:
    def session(smtp: smtplib.SMTP) -> None:
        smtp.starttls(context=ssl.create_default_context())

    with pytest.raises(ssl.SSLCertVerificationError):
        await client(submission, session)


async def test_bad_credentials_are_refused_with_535(submission: SmtpFake) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        await client(submission, submit(submission, message(), login=("alerts@example.org", "wrong")))
    assert refused.value.smtp_code == 535
    assert submission.messages == []
    # smtplib tries every mechanism both sides know before it gives up
    assert [(a.mechanism, a.accepted) for a in submission.auth_attempts] == [("PLAIN", False), ("LOGIN", False)]


async def test_mail_without_auth_is_refused_with_530(submission: SmtpFake) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:
        await client(submission, submit(submission, message()))
    assert refused.value.smtp_code == 530
    assert submission.messages == []


async def test_auth_before_starttls_is_refused_when_tls_is_required(submission: SmtpFake) -> None:
    def session(smtp: smtplib.SMTP) -> tuple[int, bytes]:
        smtp.ehlo()
        advertised = smtp.has_extn("auth")
        assert not advertised
        return smtp.docmd("AUTH", "PLAIN AGFsZXJ0c0BleGFtcGxlLm9yZwBjb3JyZWN0IGhvcnNl")

    code, text = await client(submission, session)
    assert code == 530
    assert b"Must issue a STARTTLS command first" in text
    assert submission.auth_attempts == []


async def test_auth_before_starttls_is_refused_even_when_tls_is_optional() -> None:
    async with SmtpFake(credentials=USERS) as fake:
        code, _ = await client(fake, lambda s: (s.ehlo(), s.docmd("AUTH", "PLAIN AGEAYg=="))[1])
    assert code == 538
    assert fake.auth_attempts == []


async def test_multipart_message_is_recorded_with_both_parts(submission: SmtpFake) -> None:
    msg = message()
    msg.add_alternative("<p>p99 latency above <b>2s</b></p>", subtype="html")
    await client(submission, submit(submission, msg, login=("alerts@example.org", "correct horse")))
    [got] = submission.messages
    assert got.message.is_multipart()
    assert got.message.get_content_type() == "multipart/alternative"
    plain_part = got.message.get_body(("plain",))
    html_part = got.message.get_body(("html",))
    assert plain_part is not None and html_part is not None
    assert plain_part.get_content().strip() == "p99 latency above 2s for 10m"
    assert html_part.get_content().strip() == "<p>p99 latency above <b>2s</b></p>"


@pytest.mark.parametrize(
    ("stage", "code", "error"),
    [
        ("MAIL", 451, smtplib.SMTPSenderRefused),
        ("MAIL", 550, smtplib.SMTPSenderRefused),
        ("RCPT", 450, smtplib.SMTPRecipientsRefused),
        ("RCPT", 550, smtplib.SMTPRecipientsRefused),
        ("DATA", 451, smtplib.SMTPDataError),
        ("DATA", 554, smtplib.SMTPDataError),
    ],
)
async def test_scripted_fault_reaches_the_client_at_its_stage(
    plain: SmtpFake, stage: str, code: int, error: type[smtplib.SMTPException]
) -> None:
    plain.faults.add(SmtpFault.reply(stage, code), times=2)  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(error) as refused:
            await client(plain, lambda s: s.send_message(message()))
        codes = (
            [c for c, _ in refused.value.recipients.values()]
            if isinstance(refused.value, smtplib.SMTPRecipientsRefused)
            else [refused.value.smtp_code]  # type: ignore[attr-defined]
        )
        assert codes == [code]
    assert plain.messages == []
    assert plain.faults.pending == 0
    await client(plain, lambda s: s.send_message(message()))
    assert len(plain.messages) == 1
    faulted = [(e.stage, e.code) for e in plain.exchanges if e.faulted]
    assert faulted == [(stage, code), (stage, code)]


async def test_421_closes_the_connection_after_its_reply(plain: SmtpFake) -> None:
    plain.faults.add(SmtpFault.reply("MAIL", 421))

    def session(smtp: smtplib.SMTP) -> None:
        smtp.ehlo()
        code, _ = smtp.mail("receiver@example.org")
        assert code == 421
        smtp.noop()

    with pytest.raises(smtplib.SMTPServerDisconnected):
        await client(plain, session)


async def test_only_the_faulted_recipient_is_refused(plain: SmtpFake) -> None:
    plain.faults.add(SmtpFault.reply("RCPT", 550))
    refused = await client(
        plain, lambda s: s.sendmail("r@example.org", ["gone@example.org", "b@example.org"], message().as_bytes())
    )
    assert refused == {"gone@example.org": (550, b"5.1.1 Mailbox unavailable")}
    [got] = plain.messages
    assert got.rcpt_tos == ("b@example.org",)


async def test_drop_after_data_leaves_the_client_not_knowing(submission: SmtpFake) -> None:
    submission.faults.add(SmtpFault.drop_after_data())
    with pytest.raises(smtplib.SMTPServerDisconnected):
        await client(submission, submit(submission, message(), login=("alerts@example.org", "correct horse")))
    [got] = submission.messages
    assert (got.replied, got.queue_id, got.tls) == (False, None, True)
    assert got.message["Subject"] == "SEV2: checkout latency"
    assert submission.exchanges[-1].reply is None
    await client(submission, submit(submission, message(), login=("alerts@example.org", "correct horse")))
    assert [m.replied for m in submission.messages] == [False, True]


@pytest.mark.parametrize("stage", ["MAIL", "DATA"])
async def test_a_stall_answers_nothing_until_the_client_gives_up(plain: SmtpFake, stage: Any) -> None:
    plain.faults.add(SmtpFault.stall_at(stage))

    def impatient() -> None:
        with smtplib.SMTP(plain.host, plain.port, local_hostname="client.test", timeout=0.3) as smtp:
            smtp.send_message(message())

    with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
        await asyncio.to_thread(impatient)
    assert (plain.exchanges[-1].stage, plain.exchanges[-1].reply) == (stage, None)
    assert [m.replied for m in plain.messages] == ([False] if stage == "DATA" else [])  # taken whole, unanswered
    await client(plain, lambda s: s.send_message(message()))
    assert plain.messages[-1].replied and plain.faults.pending == 0


async def test_a_held_data_reply_waits_for_the_release_with_the_message_already_recorded(plain: SmtpFake) -> None:
    held = plain.hold_data()
    sending = asyncio.create_task(client(plain, lambda s: s.sendmail("a@example.org", ["b@example.org"], b"x")))
    [got] = await held.wait_for_arrivals(1)
    assert plain.messages == [got] and got.held and got.queue_id is not None
    assert not sending.done()  # the client still waits for its 250
    assert [e.stage for e in plain.exchanges] == ["MAIL", "RCPT"]
    held.release()
    assert await asyncio.wait_for(sending, 10) == {}
    assert [(e.stage, e.code) for e in plain.exchanges] == [("MAIL", 250), ("RCPT", 250), ("DATA", 250)]
    await client(plain, lambda s: s.sendmail("a@example.org", ["b@example.org"], b"y"))  # released: not held
    assert [m.held for m in plain.messages] == [True, False] and len(held.arrived) == 1


async def test_times_follow_the_injected_clock() -> None:
    clock = Clock()
    async with SmtpFake(starttls=False, clock=clock) as fake:
        await client(fake, lambda s: s.send_message(message()))
        clock.now += timedelta(hours=1)
        await client(fake, lambda s: s.send_message(message()))
    assert [m.at for m in fake.messages] == [START, START + timedelta(hours=1)]


async def test_wait_for_messages_is_bounded(plain: SmtpFake) -> None:
    with pytest.raises(TimeoutError):
        await plain.wait_for_messages(1, within=0.2)


def test_a_fault_replies_4xx_or_5xx_only() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        SmtpFault.reply("MAIL", 250)


def test_credentials_need_tls() -> None:
    with pytest.raises(ValueError, match="only over TLS"):
        SmtpFake(credentials=USERS, starttls=False)
