"""A fake mail submission server: a real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS, AUTH and scripted faults.

Why: the email channel of issue #14 submits its notifications to an SMTP
relay. Unlike the HTTP fakes, this one speaks the protocol itself, so the
channel is tested with the real client library against real replies: the
STARTTLS upgrade with a certificate it must trust, AUTH, a refused login, and
the transient (4xx) and permanent (5xx) replies a relay gives at each step of
a transaction, including a connection that drops after the message was sent
but before its reply (what a crash between "sent" and "recorded" looks like
from the client side: the message may have been delivered, the client cannot
know).

Documentation followed:
- SMTP itself, its transaction (MAIL, RCPT, DATA) and reply codes (4yz
  transient, 5yz permanent; 421 closes the channel):
  https://www.rfc-editor.org/rfc/rfc5321#section-4.2 , #section-3.8
- STARTTLS, and 530 "Must issue a STARTTLS command first" before it when the
  server requires TLS: https://www.rfc-editor.org/rfc/rfc3207#section-4
- AUTH (PLAIN, LOGIN), 535 5.7.8 for bad credentials, 530 5.7.0 when a
  transaction needs authentication, 538 when a mechanism needs encryption:
  https://www.rfc-editor.org/rfc/rfc4954#section-6
- the server used, its hooks, ``authenticator`` and ``require_starttls``:
  https://aiosmtpd.aio-libs.org/en/latest/smtp.html ,
  https://aiosmtpd.aio-libs.org/en/latest/auth.html

Choices where the documents leave one:
- the certificate is issued at test time by a throwaway CA (``trustme``) for
  127.0.0.1 and localhost; a client trusts ``fake.ca_file`` (or
  ``fake.client_context()``).
- with credentials configured, MAIL needs AUTH (as a submission server on
  port 587 does) and AUTH is offered only over TLS; ``require_starttls=True``
  refuses every command but EHLO/HELO/NOOP/RSET/QUIT/STARTTLS before TLS.
- a scripted fault answers one command at its stage (``times`` counts
  commands: for single-recipient messages, transactions); a 421 fault also
  closes the connection after its reply, as RFC 5321 says 421 does; a stall
  answers nothing, ever (a relay that hangs: the client's timeout is what
  ends it).
- an accepted message is answered ``250 2.0.0 Ok: queued as <id>`` (Postfix's
  wording) and recorded with its envelope, whether it came over TLS and
  who had authenticated; a dropped one is recorded with ``replied=False``.
- ``hold_data()`` holds the reply to DATA: the message is taken whole and
  recorded (``held=True``), and its 250 waits until the test releases the
  hold: a relay that queued the mail while its answer is still in flight, the
  moment a test kills the client (tests/fakes/server.py's ``Hold``).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from receiver.clock import Clock, utc_now
from tests.fakes.server import Hold, grown

Stage = Literal["MAIL", "RCPT", "DATA"]
HOSTNAME = "smtp.fake.test"


@dataclass(frozen=True, slots=True)
class SmtpFault:
    """A reply a test scripted for one command at ``stage``, or no reply at all: the connection closed after DATA
    (``drop``), or left open (``stall``)."""

    stage: Stage
    code: int = 0
    text: str = ""
    drop: bool = False
    stall: bool = False

    @classmethod
    def reply(cls, stage: Stage, code: int, text: str = "") -> SmtpFault:
        """Answer ``code`` (4xx transient, 5xx permanent) instead of accepting the command at ``stage``."""
        if not 400 <= code <= 599:
            raise ValueError(f"a fault replies 4xx or 5xx, not {code}")
        return cls(stage, code, text or _DEFAULT_TEXT.get(code, "Error"))

    @classmethod
    def drop_after_data(cls) -> SmtpFault:
        """Take the message whole, then close the connection without replying to it."""
        return cls("DATA", drop=True)

    @classmethod
    def stall_at(cls, stage: Stage) -> SmtpFault:
        """Never answer the command at ``stage`` (at DATA: once the message is taken whole), as a relay that
        hangs; the connection stays open until the client closes it."""
        return cls(stage, stall=True)

    @property
    def line(self) -> str:
        return f"{self.code} {self.text}"


_DEFAULT_TEXT = {
    421: "4.3.2 Service not available, closing transmission channel",
    450: "4.2.0 Mailbox unavailable",
    451: "4.3.0 Local error in processing",
    452: "4.3.1 Insufficient system storage",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message size exceeds fixed limit",
    554: "5.7.1 Transaction failed",
}


class SmtpFaults:
    """Scripted faults, each served to the first command of its stage, in the order they were added."""

    def __init__(self) -> None:
        self._queue: list[SmtpFault] = []

    def add(self, fault: SmtpFault, *, times: int = 1) -> None:
        self._queue.extend([fault] * times)

    def take(self, stage: Stage) -> SmtpFault | None:
        for i, fault in enumerate(self._queue):
            if fault.stage == stage:
                return self._queue.pop(i)
        return None

    @property
    def pending(self) -> int:
        return len(self._queue)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One transaction command the fake received and the reply it gave (``None``: the connection was dropped)."""

    stage: Stage
    argument: str
    at: datetime
    reply: str | None
    faulted: bool

    @property
    def code(self) -> int | None:
        return int(self.reply[:3]) if self.reply else None


@dataclass(frozen=True, slots=True)
class AuthAttempt:
    mechanism: str
    login: str
    accepted: bool
    tls: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Received:
    """A message whose DATA the fake took whole, with its envelope and how it came."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    tls: bool
    authenticated_as: str | None
    at: datetime
    queue_id: str | None
    replied: bool
    held: bool = False
    """Its reply was held back (``SmtpFake.hold_data``) when it was recorded."""


class _Handler:
    """aiosmtpd's handler hooks and authenticator, recording into the fake."""

    def __init__(self, fake: SmtpFake) -> None:
        self.fake = fake
        self._ids = itertools.count(1)

    async def _fault(self, server: SMTP, stage: Stage, argument: str) -> str | None:
        fault = self.fake.faults.take(stage)
        if fault is not None and fault.stall:
            await self._hang(stage, argument)
        return None if fault is None else self._refuse(server, stage, argument, fault)

    async def _hang(self, stage: Stage, argument: str) -> None:
        """No reply, ever: aiosmtpd cancels this when the client closes the connection."""
        self.fake._log(stage, argument, None, faulted=True)
        await asyncio.get_running_loop().create_future()

    def _refuse(self, server: SMTP, stage: Stage, argument: str, fault: SmtpFault) -> str:
        if fault.code == 421 and server.transport is not None:
            asyncio.get_running_loop().call_soon(server.transport.close)
        self.fake._log(stage, argument, fault.line, faulted=True)
        return fault.line

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if (refused := await self._fault(server, "MAIL", address)) is not None:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return self.fake._log("MAIL", address, "250 2.1.0 Ok")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if (refused := await self._fault(server, "RCPT", address)) is not None:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return self.fake._log("RCPT", address, "250 2.1.5 Ok")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.fake.faults.take("DATA")
        if fault is not None and not (fault.drop or fault.stall):
            return self._refuse(server, "DATA", "", fault)
        raw = cast(bytes, envelope.original_content)
        dropped = fault is not None
        queue_id = None if dropped else f"{next(self._ids):010X}"
        login = cast("LoginPassword | None", session.auth_data)
        held = None if dropped else next((h for h in self.fake.holds if h.matches("DATA")), None)
        received = Received(
            mail_from=cast(str, envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=email.message_from_bytes(raw, policy=email.policy.default),
            raw=raw,
            tls=session.ssl is not None,
            authenticated_as=login.login.decode() if session.authenticated and login else None,
            at=self.fake.clock(),
            queue_id=queue_id,
            replied=not dropped,
            held=held is not None,
        )
        self.fake.messages.append(received)
        if fault is not None and fault.stall:
            await self._hang("DATA", "")
        if held is not None:
            self.fake._changed.set()
            await held.keep(received)
        if dropped:
            self.fake._log("DATA", "", None, faulted=True)
            if server.transport is not None:
                server.transport.close()
            return "250 2.0.0 Ok (never sent: the connection is closed)"
        return self.fake._log("DATA", "", f"250 2.0.0 Ok: queued as {queue_id}")

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        credentials = cast(LoginPassword, data)
        login, password = credentials.login.decode(), credentials.password.decode()
        accepted = self.fake.credentials.get(login) == password
        self.fake.auth_attempts.append(
            AuthAttempt(mechanism, login, accepted, session.ssl is not None, self.fake.clock())
        )
        return AuthResult(success=accepted, handled=False, auth_data=credentials)


class SmtpFake:
    """An SMTP submission server on 127.0.0.1 with a test-time certificate; use it as ``async with``."""

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        credentials: Mapping[str, str] | None = None,
        starttls: bool = True,
        require_starttls: bool = False,
        data_size_limit: int = 10 * 1024 * 1024,
    ) -> None:
        if credentials and not starttls:
            raise ValueError("AUTH is offered only over TLS: credentials need starttls=True")
        self.clock = clock
        self.credentials = dict(credentials or {})
        self.starttls = starttls
        self.require_starttls = require_starttls
        self.data_size_limit = data_size_limit
        self.messages: list[Received] = []
        self.exchanges: list[Exchange] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.faults = SmtpFaults()
        self.holds: list[Hold] = []
        self._server: asyncio.Server | None = None
        self._protocols: list[SMTP] = []
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._port = 0
        self._ca = trustme.CA()
        self._changed = asyncio.Event()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the fake is not serving: use it as `async with`")
        return self._port

    @property
    def ca_file(self) -> Path:
        """The PEM of the CA that issued the server's certificate, for a client to trust."""
        if self._dir is None:
            raise RuntimeError("the fake is not serving: use it as `async with`")
        return Path(self._dir.name) / "ca.pem"

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this fake's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost", HOSTNAME).configure_cert(context)
        return context

    def _protocol(self, handler: _Handler, tls: ssl.SSLContext | None) -> SMTP:
        protocol = SMTP(
            handler,
            hostname=HOSTNAME,
            data_size_limit=self.data_size_limit,
            tls_context=tls,
            require_starttls=self.require_starttls,
            auth_required=bool(self.credentials),
            auth_require_tls=True,
            authenticator=handler,
            loop=asyncio.get_running_loop(),
        )
        self._protocols.append(protocol)
        return protocol

    async def __aenter__(self) -> Self:
        self._dir = tempfile.TemporaryDirectory(prefix="smtp-fake-")
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        handler = _Handler(self)
        tls = self._server_context() if self.starttls else None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: self._protocol(handler, tls), host=self.host, port=0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for held in self.holds:
            held.release()
        if self._server is not None:
            self._server.close()
            for protocol in self._protocols:
                if protocol.transport is not None:
                    protocol.transport.close()
            await self._server.wait_closed()
        if self._dir is not None:
            self._dir.cleanup()
        self._server, self._dir, self._port = None, None, 0

    def hold_data(self) -> Hold:
        """Hold the replies to DATA (each message taken and recorded first) until the hold is released."""
        held = Hold("DATA")
        self.holds.append(held)
        return held

    def _log(self, stage: Stage, argument: str, reply: str | None, *, faulted: bool = False) -> str:
        self.exchanges.append(Exchange(stage, argument, self.clock(), reply, faulted))
        self._changed.set()
        return reply or ""

    async def wait_for_messages(self, count: int, *, within: float = 10.0) -> list[Received]:
        """The recorded messages once there are at least ``count``; TimeoutError past ``within`` seconds."""
        return await grown(self.messages, count, self._changed, within)
