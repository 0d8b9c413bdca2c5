"""The email channel: an incident's notifications submitted to an SMTP relay, threaded per incident.

Why a channel of its own: mail is what reaches everyone (managers, other teams, a ticket system's
inbox), and a relay is what most sites already run. It is sent with the standard library's
``smtplib`` in a worker thread (``Relay``, the SMTP edge: one connection, one transaction, within one
``Deadline``: a thread cannot be cancelled, so the submission stops itself when its ``timeout`` is up,
before the sender's attempt ends); what to send and what a failure means are pure functions of values.

Mail cannot be taken back nor asked about: a crash or a connection lost after the message was handed
over leaves it unknown whether it was delivered. So a delivery a crash interrupted is never sent again
(``Replay.NEVER``: marked ``interrupted``), and a connection dropped or timed out during DATA is a
failure marked ``maybe_sent`` (every attempt carries the same ``Message-ID``, so mailboxes that
collapse duplicates would show a second copy once).

Every message of an incident carries ``References`` and ``In-Reply-To`` naming one id derived from the
incident, so mail clients thread them. Untrusted text (label values in titles) never reaches a header
with a control character in it, nor the HTML part unescaped.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import html
import ipaddress
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime
from typing import Annotated, Any, Literal

import pydantic

from receiver.incidents.lifecycle import Signal
from receiver.notify import content
from receiver.notify.channel import Channel, ChannelSettingsBase, ChannelType, Io, Replay
from receiver.notify.content import Compose, Detail, Markup, Message, one_line
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped

MAX_MESSAGE_BYTES = 1_000_000
"""The whole message, headers included: under the 1 MB a relay is sure to take (most allow 10 MB or more)."""
MAX_SUBJECT = 200
PART_OVERHEAD = 1024
"""Room kept for the multipart boundaries and the parts' own headers."""
POLICY = SMTP.clone(cte_type="7bit")
"""CRLF line ends, and non-ASCII bodies in quoted-printable or base64: no relay needs 8BITMIME for them."""
UNWANTED = frozenset({Signal.ALERTS_CHANGED, Signal.SERVICES_JOINED})
"""A living message may show these; a mailbox would get one mail per alert."""

Security = Literal["starttls", "tls", "none"]
Stage = Literal["connect", "starttls", "auth", "MAIL", "RCPT", "DATA"]

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ADDRESS = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>{_LABEL}(?:\.{_LABEL})*)")


def address(text: str) -> str:
    """``text`` as a mail address (``local@domain``, ASCII, no display name); ValueError if it is not one. Pure."""
    candidate = text.strip()
    found = _ADDRESS.fullmatch(candidate)
    if found is None or len(candidate) > 254 or len(found["local"]) > 64:
        raise ValueError(f"{one_line(text, 80)!r} is not a mail address (local@domain, ASCII)")
    return candidate


def addresses(text: str) -> list[str]:
    """A comma-separated list of mail addresses (a route's destination); ValueError naming a bad one. Pure."""
    found = [address(part) for part in text.split(",") if part.strip()]
    if not found:
        raise ValueError("no mail address in the destination")
    return found


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``). Pure."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host(text: str) -> str:
    if not (_HOST_NAME.fullmatch(text) or _is_ip(text)):
        raise ValueError(f"{one_line(text, 80)!r} is not a host name or IP address")
    return text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _hello(text: str) -> str:
    if not _HOST_NAME.fullmatch(text):
        raise ValueError(f"{one_line(text, 80)!r} is not a host name (what EHLO says this client is)")
    return text


Address = Annotated[str, pydantic.AfterValidator(address)]


class EmailSettings(ChannelSettingsBase):
    """``notify.channels.<name>`` with ``type: email``: an SMTP relay and who receives the mail."""

    type: Literal["email"]
    host: Annotated[str, pydantic.AfterValidator(_host)]
    """The relay (submission server)."""
    port: Annotated[int, pydantic.Field(ge=1, le=65535)] = 587
    """587 for ``starttls`` (submission), 465 for ``tls``, 25 for a local relay with ``none``."""
    security: Security = "starttls"
    """``starttls`` (upgrade, never falls back to plaintext), ``tls`` (TLS from the first byte), ``none``
    (plaintext, refused unless ``host`` is this machine)."""
    username: str | None = None
    password: pydantic.SecretStr | None = None
    """Needs ``username``; never logged nor shown in a failure."""
    sender: Address
    """The ``From`` address (and the envelope sender)."""
    to: Annotated[list[Address], pydantic.Field(min_length=1)]
    """Recipients, unless a route's destination names others."""
    ca_file: pydantic.FilePath | None = None
    """A PEM bundle of CAs trusted besides the system's (a private relay's CA)."""
    timeout: Annotated[float, pydantic.Field(gt=0)] = 10.0
    """Seconds the whole submission may take (connect, STARTTLS, AUTH, MAIL, RCPT, DATA): each step is given
    what is left, and the connection is shut when none is. ``notify.retry.send_timeout`` must exceed it (a
    worker thread cannot be cancelled: a submission outliving the sender's attempt could still deliver)."""
    hello: Annotated[str | None, pydantic.AfterValidator(lambda v: v if v is None else _hello(v))] = None
    """The name EHLO gives (default: this machine's fully qualified name)."""

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> EmailSettings:
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError("security none (plaintext) is only allowed for a relay on this machine (localhost)")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        return self


# -- what is sent: pure ---------------------------------------------------------------------------------


def subject(message: Message) -> str:
    """``[SEV2] INC-...: <title> — <event>``, on one line, at most ``MAX_SUBJECT`` characters. Pure."""
    event = one_line(message.event, MAX_SUBJECT // 3)
    title = one_line(message.title, MAX_SUBJECT - len(event) - 3 if event else MAX_SUBJECT)
    return f"{title} — {event}" if event else title


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def message_id(delivery: Delivery, sender: str) -> str:
    """This delivery's ``Message-ID``: the same on every attempt, unique to its outbox row. Pure."""
    stamp = delivery.created_at.isoformat()
    return f"<{_digest(delivery.key, stamp, sender)}@{_domain(sender)}>"


def thread_id(incident: str, sender: str) -> str:
    """The id every message of ``incident`` refers to (``References``), so mail clients thread them. Pure."""
    return f"<incident.{_digest(incident, sender)}@{_domain(sender)}>"


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a mail is from and to, and the headers that place it."""

    sender: str
    recipients: tuple[str, ...]
    message_id: str
    thread_id: str
    date: datetime


def headers(envelope: Envelope, first: Message) -> EmailMessage:
    """A message with its headers and no body yet. Pure."""
    mail = EmailMessage(policy=POLICY)
    mail["From"] = envelope.sender
    mail["To"] = ", ".join(envelope.recipients)
    mail["Subject"] = subject(first)
    mail["Date"] = format_datetime(envelope.date)
    mail["Message-ID"] = envelope.message_id
    mail["In-Reply-To"] = envelope.thread_id
    mail["References"] = envelope.thread_id
    mail["Auto-Submitted"] = "auto-generated"
    return mail


def plain_text(message: Message) -> str:
    """The text/plain part: what happened, where to look, then the body. Pure."""
    facts = f"Severity: {message.severity} · Status: {message.status}" if message.severity else ""
    head = content.join_lines([one_line(message.title, 1000), one_line(message.event, 1000), facts, message.link])
    return f"{head}\n\n{message.body}\n"


def html_text(message: Message) -> str:
    """The text/html part: title, event and link escaped here; the body as compose escaped it, its lines
    kept (``white-space: pre-wrap``: the templates write text, not HTML paragraphs). Pure."""
    esc = html.escape
    title, event = one_line(message.title, 1000), one_line(message.event, 1000)
    facts = f"<p>Severity: {esc(message.severity)} · Status: {esc(message.status)}</p>" if message.severity else ""
    link = message.link
    anchor = f'<p><a href="{esc(link)}">{esc(link)}</a></p>' if link.startswith(("https://", "http://")) else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
        f"<p><strong>{esc(title)}</strong></p>\n<p>{esc(event)}</p>\n{facts}{anchor}\n"
        f'<div style="white-space: pre-wrap">{message.body}</div>\n</body></html>\n'
    )


def _encoded_size(text: str, subtype: str) -> int:
    """The bytes ``text`` takes as a MIME part of ``subtype``, encoded as it will be sent."""
    part = MIMEPart(policy=POLICY)
    part.set_content(text, subtype=subtype)
    return len(part.as_bytes())


def letter(envelope: Envelope, compose: Compose) -> EmailMessage:
    """The whole mail, within ``MAX_MESSAGE_BYTES``: each part as rich as fits (``content.fit``). Pure."""
    mail = headers(envelope, compose(Markup.PLAIN, Detail.FULL))
    room = MAX_MESSAGE_BYTES - len(mail.as_bytes()) - PART_OVERHEAD
    plain = content.fit(compose, Markup.PLAIN, plain_text, lambda t: _encoded_size(t, "plain"), room // 2)
    left = room - _encoded_size(plain, "plain")
    rich = content.fit(compose, Markup.HTML, html_text, lambda t: _encoded_size(t, "html"), left)
    mail.set_content(plain)
    mail.add_alternative(rich, subtype="html")
    return mail


# -- what a failure means: pure -------------------------------------------------------------------------

MAYBE_DELIVERED = "the mail may have been delivered; sending it again may deliver it twice"
AUTH_CODES = frozenset({530, 534, 535, 538})
"""Authentication required, too weak, refused, or needs encryption (RFC 4954): a person must fix it."""


def _said(text: str | bytes, secrets: Sequence[str]) -> str:
    """A relay's words, fit for a message: one line, short, without any of ``secrets``."""
    said = text.decode(errors="replace") if isinstance(text, bytes) else text
    for secret in secrets:
        said = said.replace(secret, "***")
    return one_line(said, 200)


def _reply(stage: Stage, code: int, text: str | bytes, secrets: Sequence[str]) -> Failed:
    """A refusing reply: authentication codes, 4xx temporary, 5xx permanent."""
    message = f"{stage}: {code} {_said(text, secrets)}"
    if code in AUTH_CODES:
        return Failed(Reason.AUTH_ERROR, message, permanent=True)
    if 400 <= code < 500:
        return Failed(Reason.SERVER_ERROR, message)
    if 500 <= code < 600:
        return Failed(Reason.CLIENT_ERROR, message, permanent=True)
    return Failed(Reason.OTHER, message)


def _refused_recipients(err: smtplib.SMTPRecipientsRefused, secrets: Sequence[str]) -> Failed:
    refusals = "; ".join(f"{rcpt}: {code} {_said(text, secrets)}" for rcpt, (code, text) in err.recipients.items())
    message = f"RCPT: every recipient refused ({one_line(refusals, 600)})"
    if all(500 <= code < 600 for code, _ in err.recipients.values()):
        return Failed(Reason.CLIENT_ERROR, message, permanent=True)
    return Failed(Reason.SERVER_ERROR, message)


def _tls(stage: Stage, err: Exception) -> Failed | None:
    if isinstance(err, ssl.SSLCertVerificationError):
        why = f"the relay's certificate is not trusted ({err.verify_message}); nothing was sent (ca_file?)"
        return Failed(Reason.AUTH_ERROR, why, permanent=True)
    if isinstance(err, smtplib.SMTPNotSupportedError) and stage == "starttls":
        why = "the relay does not offer STARTTLS; nothing was sent in plaintext"
        return Failed(Reason.AUTH_ERROR, why, permanent=True)
    return None


def _lost(stage: Stage, err: Exception) -> Failed:
    """No answer: the connection failed, closed or timed out (temporary)."""
    timed_out = isinstance(err, TimeoutError) or isinstance(err.__context__, TimeoutError)
    reason = Reason.TIMEOUT if timed_out else Reason.OTHER
    what = "no answer in time" if timed_out else f"{type(err).__name__}: {one_line(str(err), 200)}"
    message = f"{stage}: {what}"
    if stage == "DATA":
        return Failed(reason, f"{message}; {MAYBE_DELIVERED}", maybe_sent=True)
    return Failed(reason, message)


def failure(stage: Stage, err: Exception, secrets: Sequence[str] = ()) -> Failed:
    """What an error of ``smtplib`` (or the socket under it) at ``stage`` means. Pure.

    ``secrets`` are cut out of anything the relay said (a relay echoing a credential back).
    """
    if (tls := _tls(stage, err)) is not None:
        return tls
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        return _refused_recipients(err, secrets)
    if isinstance(err, smtplib.SMTPResponseException):
        return _reply(stage, err.smtp_code, err.smtp_error, secrets)
    disconnected = isinstance(err, smtplib.SMTPServerDisconnected)
    if stage == "auth" and isinstance(err, smtplib.SMTPException) and not disconnected:
        return Failed(Reason.AUTH_ERROR, f"auth: {_said(str(err), secrets)}", permanent=True)
    return _lost(stage, err)


# -- the SMTP edge --------------------------------------------------------------------------------------


class SubmitError(Exception):
    """Submission failed at ``stage``; ``error`` is what ``smtplib`` or the socket raised."""

    def __init__(self, stage: Stage, error: Exception) -> None:
        super().__init__(f"{stage}: {type(error).__name__}")
        self.stage = stage
        self.error = error


class Deadline:
    """One submission's time, shared by its worker thread and the event loop.

    The worker enters each step (``enter``), which gives the connection's socket what is left as its
    timeout and fails once nothing is. The loop stops waiting when the time is up (or the sender gives
    up on the attempt) and calls ``stop``: no step starts after it, and the connection is shut down,
    which wakes a ``recv`` or ``send`` blocked on it at once (the worker still closes it). So the
    channel answers within its time, and what it says about the stage it stopped at holds: a step
    entered before ``stop`` is the one ``stage`` names. (A relay still pouring out a reply is read
    until it stops, Linux delivering data after a shutdown, but nothing more is sent to it.)
    """

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._smtp: smtplib.SMTP | None = None
        self.stopped = False
        self.stage: Stage = "connect"
        """The step the worker entered last."""

    def enter(self, stage: Stage) -> None:
        """Start ``stage``: named first, then the watched socket's timeout set to what is left (TimeoutError if
        nothing is)."""
        self.stage = stage
        left = self.left()
        if self._smtp is not None and self._smtp.sock is not None:
            self._smtp.sock.settimeout(left)

    def left(self) -> float:
        """The seconds left; TimeoutError when none are, or it was stopped."""
        left = self._end - time.monotonic()
        if self.stopped or left <= 0:
            raise TimeoutError("the submission's time is up")
        return left

    def watch(self, smtp: smtplib.SMTP) -> None:
        """The connection ``stop`` shuts (at once, if it was stopped already)."""
        with self._lock:
            self._smtp = smtp
            if self.stopped:
                _shut(smtp)

    def stop(self) -> None:
        """No more time: the connection is shut, and every later step fails with TimeoutError."""
        with self._lock:
            self.stopped = True
            if self._smtp is not None:
                _shut(self._smtp)


def _shut(smtp: smtplib.SMTP) -> None:
    """Shut ``smtp``'s socket down (the plain socket's shutdown: under TLS too); closed already is fine."""
    if smtp.sock is not None:
        with suppress(OSError):
            socket.socket.shutdown(smtp.sock, socket.SHUT_RDWR)


@contextmanager
def _at(stage: Stage, deadline: Deadline) -> Iterator[None]:
    """A step, given what is left of the deadline; its errors as ``SubmitError`` naming it."""
    try:
        deadline.enter(stage)
        yield
    except (smtplib.SMTPException, OSError) as err:
        raise SubmitError(stage, err) from err


@dataclass(frozen=True, slots=True)
class Accepted:
    """The relay took the mail: its reply to DATA, and the recipients it refused (others got it)."""

    reply: str
    refused: Mapping[str, tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class Relay:
    """The SMTP edge: one connection, one transaction, closed. Blocking: run ``submit`` in a worker thread."""

    host: str
    port: int
    security: Security
    hello: str | None
    context: ssl.SSLContext = field(repr=False)
    login: tuple[str, str] | None = field(default=None, repr=False)

    def submit(self, sender: str, recipients: Sequence[str], data: bytes, deadline: Deadline) -> Accepted:
        """Send ``data`` from ``sender`` to ``recipients`` within ``deadline``; ``SubmitError`` naming the stage
        that failed."""
        with _at("connect", deadline):
            smtp = self._connect(deadline.left())
        deadline.watch(smtp)
        try:
            with _at("starttls", deadline):
                self._secure(smtp)
            with _at("auth", deadline):
                self._authenticate(smtp)
            return self._transaction(smtp, sender, recipients, data, deadline)
        finally:
            _close(smtp)

    def _connect(self, seconds: float) -> smtplib.SMTP:
        """Connected, the relay's greeting read (each socket operation within ``seconds``)."""
        if self.security == "tls":
            context = self.context
            return smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.hello, timeout=seconds, context=context)
        return smtplib.SMTP(self.host, self.port, local_hostname=self.hello, timeout=seconds)

    def _secure(self, smtp: smtplib.SMTP) -> None:
        if self.security == "starttls":
            smtp.starttls(context=self.context)

    def _authenticate(self, smtp: smtplib.SMTP) -> None:
        if self.login is not None:
            smtp.login(*self.login)

    def _transaction(
        self, smtp: smtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes, deadline: Deadline
    ) -> Accepted:
        with _at("MAIL", deadline):
            smtp.ehlo_or_helo_if_needed()
            _expect(smtp.mail(sender), 250)
        with _at("RCPT", deadline):
            refused = _recipients(smtp, recipients)
        with _at("DATA", deadline):
            code, reply = smtp.data(data)
            if code != 250:
                raise smtplib.SMTPDataError(code, reply)
        return Accepted(reply.decode(errors="replace"), refused)


def _expect(answer: tuple[int, bytes], code: int) -> None:
    if answer[0] != code:
        raise smtplib.SMTPResponseException(*answer)


def _recipients(smtp: smtplib.SMTP, recipients: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """RCPT for each; the refused ones. Raises when all are refused, or at a 421 (the relay is closing)."""
    refused: dict[str, tuple[int, bytes]] = {}
    for rcpt in recipients:
        code, text = smtp.rcpt(rcpt)
        if code == 421:
            raise smtplib.SMTPResponseException(code, text)
        if code not in (250, 251):
            refused[rcpt] = (code, text)
    if len(refused) == len(recipients):
        raise smtplib.SMTPRecipientsRefused(refused)
    return refused


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT, politely; whatever goes wrong now changes nothing about the mail."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


# -- the channel ----------------------------------------------------------------------------------------


class EmailChannel:
    """Mail to a fixed list (or a route's destination), one per notification, threaded per incident."""

    kind = "email"
    audience: content.Audience = "internal"

    def __init__(self, name: str, settings: EmailSettings) -> None:
        self.name = name
        self.settings = settings
        self._relay = _relay(settings)

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, {self.settings.host}:{self.settings.port})"

    def replay(self, delivery: Delivery) -> Replay:
        """Never: whether an interrupted mail reached the relay cannot be asked."""
        return Replay.NEVER

    def wants(self, signal: Signal) -> bool:
        """Every signal but the per-alert ones."""
        return signal not in UNWANTED

    def rate_key(self, delivery: Delivery) -> str:
        """The relay, and the account on it (relays limit each)."""
        relay = f"{self.settings.host}:{self.settings.port}"
        return f"{self.settings.username} at {relay}" if self.settings.username else relay

    def destination_problem(self, destination: str) -> str | None:
        """A route's destination is a comma-separated list of mail addresses; why it is not one, or None."""
        if not destination:
            return None
        try:
            addresses(destination)
        except ValueError as bad:
            return str(bad)
        return None

    def min_interval(self) -> float:
        """None documented: relays differ, and answer 4xx when pressed (temporary)."""
        return 0.0

    def recipients(self, delivery: Delivery) -> tuple[str, ...]:
        """The route's destination, else the configured ``to``; ValueError naming a bad address."""
        if delivery.target.destination:
            return tuple(addresses(delivery.target.destination))
        return tuple(self.settings.to)

    def envelope(self, delivery: Delivery, date: datetime) -> Envelope:
        """Who the delivery's mail is from and to, and the ids that place it."""
        sender = self.settings.sender
        return Envelope(
            sender,
            self.recipients(delivery),
            message_id(delivery, sender),
            thread_id(delivery.incident, sender),
            date,
        )

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """The mail ``send`` would submit (dated the delivery's time), as JSON-able values."""
        try:
            envelope = self.envelope(delivery, delivery.at)
        except ValueError as bad:
            return {"error": f"destination: {bad}"}
        mail = letter(envelope, compose)
        return {
            "relay": f"{self.settings.host}:{self.settings.port} ({self.settings.security})",
            "from": envelope.sender,
            "to": list(envelope.recipients),
            "headers": {k: str(v) for k, v in mail.items()},
            "text": _body(mail, "plain"),
            "html": _body(mail, "html"),
            "bytes": len(mail.as_bytes()),
        }

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """Submit the mail once; ``Failed`` with what the relay said, never the password."""
        if not self.wants(delivery.signal):
            return Skipped(f"no mail for {delivery.signal.value}: the next mail of the incident shows it")
        try:
            envelope = self.envelope(delivery, io.clock())
        except ValueError as bad:
            return Failed(Reason.CLIENT_ERROR, f"destination: {bad}", permanent=True)
        mail = letter(envelope, compose)
        return await self.submit(envelope, mail.as_bytes())

    async def submit(self, envelope: Envelope, data: bytes) -> Result:
        """Hand ``data`` to the relay in a worker thread, within ``timeout`` all told; what came of it.

        A thread cannot be cancelled: the submission is stopped (its connection shut) when its time is
        up, and at once if the sender gives up on the attempt first.
        """
        deadline = Deadline(self.settings.timeout)
        submit = functools.partial(self._relay.submit, envelope.sender, envelope.recipients, data, deadline)
        work = asyncio.ensure_future(asyncio.to_thread(submit))
        work.add_done_callback(_outcome_read)
        try:
            accepted = await asyncio.wait_for(asyncio.shield(work), self.settings.timeout)
        except SubmitError as failed:
            return failure(failed.stage, failed.error, self._secrets())
        except TimeoutError:
            deadline.stop()
            return failure(deadline.stage, TimeoutError("the submission's time is up"), self._secrets())
        except asyncio.CancelledError:
            deadline.stop()
            raise
        return Sent(envelope.message_id, note=self._note(accepted))

    def _note(self, accepted: Accepted) -> str:
        said = f"relay: {_said(accepted.reply, self._secrets())}"
        if not accepted.refused:
            return said
        refused = ", ".join(f"{r} ({code})" for r, (code, _) in accepted.refused.items())
        return f"{said}; refused recipients (not sent to them): {one_line(refused, 300)}"

    def _secrets(self) -> tuple[str, ...]:
        return _secrets(self.settings)


def _outcome_read(work: asyncio.Future[Accepted]) -> None:
    """Nothing to do with what a submission nobody waits for any more came to (read, so never logged)."""
    if not work.cancelled():
        work.exception()


def _body(mail: EmailMessage, subtype: str) -> str:
    part = mail.get_body((subtype,))
    return "" if part is None else str(part.get_content())


def _secrets(settings: EmailSettings) -> tuple[str, ...]:
    """The password, and the forms AUTH PLAIN and LOGIN send it in."""
    if settings.password is None or settings.username is None:
        return ()
    password = settings.password.get_secret_value()
    plain = f"\0{settings.username}\0{password}".encode()
    return (password, base64.b64encode(plain).decode(), base64.b64encode(password.encode()).decode())


def _relay(settings: EmailSettings) -> Relay:
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=str(settings.ca_file))
    login = None
    if settings.username is not None and settings.password is not None:
        login = (settings.username, settings.password.get_secret_value())
    return Relay(settings.host, settings.port, settings.security, settings.hello, context, login)


def build(name: str, settings: EmailSettings) -> Channel:
    """The email channel ``settings`` describe."""
    return EmailChannel(name, settings)


TYPE = ChannelType("email", EmailSettings, build)
