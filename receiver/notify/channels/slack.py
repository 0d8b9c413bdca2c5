"""Slack: one living message per incident in a channel, its news threaded under it.

With a bot token (the Web API) the first delivery of an incident to a channel posts the incident's
message, carrying metadata that names the incident and the delivery (so it can be found again after
a crash); ``alerts_changed`` edits that message (``chat.update``) and every other signal replies in
its thread, then edits it, so it always shows the incident as it is. With an incoming webhook (the
degraded mode) every signal is a new post, nothing can be edited, threaded or found again.

What is posted is decided in ``slack_blocks`` (pure); this module sends it and classifies Slack's
answers: HTTP 429 and ``ratelimited`` are rate limits (``Retry-After``), token and permission
errors are authentication errors, Slack's own failures are temporary, anything else it refuses is a
client error. Neither the token nor the webhook URL ever appears in a message.

Web API: https://api.slack.com/web (errors as HTTP 200 ``ok: false``), chat.postMessage,
chat.update, conversations.history, conversations.replies; rate limits:
https://api.slack.com/docs/rate-limits ; incoming webhooks: https://api.slack.com/messaging/webhooks ,
https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks .
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pydantic

from receiver.incidents.lifecycle import Signal
from receiver.notify import failures
from receiver.notify.channel import ChannelSettingsBase, ChannelType, Io, Replay
from receiver.notify.channels.endpoint import digest
from receiver.notify.channels.slack_blocks import Payload, fitted_main, fitted_reply
from receiver.notify.content import Audience, Compose
from receiver.notify.http import Response, Unreachable
from receiver.notify.model import Delivery, Failed, Reason, Result, Sent, Skipped
from receiver.notify.slack_actions import awaiting_run

MAIN_EVENT = "receiver_incident"
"""The metadata ``event_type`` of an incident's message."""
REPLY_EVENT = "receiver_incident_event"
"""The metadata ``event_type`` of a reply in its thread."""
LOOKUP_PAGES = 5
LOOKUP_PAGE_SIZE = 200
"""A lookup after a crash reads at most this many pages of this many messages."""
CLOCK_MARGIN = timedelta(minutes=5)
"""A lookup reads messages from this long before the delivery was written (our clock against Slack's)."""
INTERVAL = 1.0
CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
"""A workspace member's id: a page to a person posts in the app's direct message with them."""
"""A channel's id: public (C), private (G), direct (D)."""

AUTH_CODES = frozenset(
    {
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope",
        "no_permission", "ekm_access_denied",
    }
)  # fmt: skip
CLIENT_CODES = frozenset(
    {
        "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks", "invalid_blocks_format",
        "invalid_metadata_format", "invalid_metadata_schema", "too_many_attachments", "no_text", "message_not_found",
        "cant_update_message", "edit_window_closed", "thread_not_found", "invalid_arguments",
    }
)  # fmt: skip
SERVER_CODES = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
WEBHOOK_AUTH_WORDS = frozenset(
    {"no_service", "invalid_token", "action_prohibited", "posting_to_general_channel_denied"}
)
"""An incoming webhook's answers that only a person can fix: removed (``no_service``) or not allowed."""


class SlackSettings(ChannelSettingsBase):
    """``notify.channels.<name>`` of ``type: slack``: a bot token and a channel, or an incoming webhook."""

    type: Literal["slack"]
    token: str | None = pydantic.Field(default=None, min_length=1, repr=False)
    """A bot token (``xoxb-...``) with ``chat:write`` and, to find messages after a crash,
    ``channels:history`` (``groups:history`` for a private channel)."""
    webhook_url: str | None = pydantic.Field(default=None, min_length=1, repr=False)
    """An incoming webhook's URL (a secret): the degraded mode."""
    channel: str = ""
    """The channel's id (``C0123ABCD``), with a token; an incoming webhook posts to its own."""
    api_url: str = "https://slack.com/api"
    mention: str = pydantic.Field(default="", max_length=500)
    """Put before the incident's message (``<!subteam^S0123ABCD>``): trusted, sent as written."""
    signing_secret: pydantic.SecretStr | None = None
    """The Slack app's signing secret (``env:NAME``): with it the messages carry buttons (acknowledge, resolve,
    approve or reject a run) and ``POST /api/v1/slack/interactions`` accepts the clicks Slack signs with it."""
    app_token: pydantic.SecretStr | None = None
    """An app-level token (``xapp-...``, scope ``connections:write``; ``env:NAME``): the clicks come over Socket
    Mode, a websocket the receiver opens, for clusters Slack cannot reach (no signing secret needed)."""

    @pydantic.field_validator("signing_secret")
    @classmethod
    def _secret(cls, value: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("an empty signing secret is refused")
        return value

    @pydantic.field_validator("app_token")
    @classmethod
    def _app_token(cls, value: pydantic.SecretStr | None) -> pydantic.SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp- (Basic Information → App-Level Tokens)")
        return value

    @property
    def interactive(self) -> bool:
        """Whether the messages carry buttons: their clicks can be taken (signed requests, or Socket Mode)."""
        return self.signing_secret is not None or self.app_token is not None

    @pydantic.field_validator("channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        problem = channel_problem(value) if value else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @pydantic.model_validator(mode="after")
    def _one_way_in(self) -> SlackSettings:
        """A token with a channel, or a webhook URL alone."""
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError("set exactly one of token (a bot token) and webhook_url (an incoming webhook)")
        if self.token is not None and not self.channel:
            raise ValueError("channel (the channel's id) is required with a token")
        if self.webhook_url is not None and self.channel:
            raise ValueError("channel must be left out with webhook_url: an incoming webhook posts to its own")
        if self.webhook_url is not None and not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError("webhook_url must be an https:// URL")
        return self


def channel_problem(channel: str) -> str | None:
    """Why ``channel`` is not a Slack channel's id (``C0123ABCD``; ``G...`` private, ``D...`` direct); None if it is.
    Pure."""
    if CHANNEL_ID.fullmatch(channel):
        return None
    return f"{channel[:100]!r} is not a Slack channel id (C0123ABCD: its name is not one; Slack shows the id)"


# ---- Slack's answers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A Web API call's outcome: Slack's answer, or why there is none to use."""

    body: Mapping[str, Any] = field(default_factory=dict)
    failed: Failed | None = None
    code: str = ""
    """Slack's error code when it answered ``ok: false``."""


def answer_of(method: str, response: Response, now: datetime) -> Answer:
    """What a Web API call's HTTP answer means. Pure."""
    body = response.json()
    if response.status != 200:
        words = body.get("error", "") if isinstance(body, dict) else response.text(100)
        failed = failures.of_status(response.status, response.headers, f"{method}: {words}", now)
        return Answer(failed=failed or Failed(Reason.OTHER, f"{method}: HTTP {response.status}"))
    if not isinstance(body, dict):
        return Answer(failed=Failed(Reason.OTHER, f"{method}: an answer that is not Slack's JSON"))
    if body.get("ok") is True:
        return Answer(body)
    code = str(body.get("error") or "unknown_error")[:100]
    return Answer(body, refusal(method, code, body, response.headers, now), code)


def refusal(method: str, code: str, body: Mapping[str, Any], headers: Mapping[str, str], now: datetime) -> Failed:
    """The failure an ``ok: false`` answer means. Pure."""
    message = f"{method}: {code}{_explained(body)}"
    if code == "ratelimited":
        return Failed(Reason.RATE_LIMITED, message, failures.retry_after(headers, now))
    if code in AUTH_CODES:
        return Failed(Reason.AUTH_ERROR, message, permanent=True)
    if code in SERVER_CODES:
        return Failed(Reason.SERVER_ERROR, message)
    if code in CLIENT_CODES:
        return Failed(Reason.CLIENT_ERROR, message, permanent=True)
    return Failed(Reason.CLIENT_ERROR, f"{message} (an error this channel does not know)", permanent=True)


def _explained(body: Mapping[str, Any]) -> str:
    """What Slack added to an error: the scope needed, the block at fault. Pure."""
    said = [f"needed: {body['needed']}"] if body.get("needed") else []
    metadata = body.get("response_metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("messages"), list):
        said += [str(m) for m in metadata["messages"][:3]]
    return f" ({'; '.join(said)[:300]})" if said else ""


def webhook_failure(response: Response, now: datetime) -> Failed | None:
    """What an incoming webhook's answer means (None: posted); its errors are plain-text words. Pure."""
    words = response.text(100).strip()
    if 200 <= response.status < 300:
        return None
    if words in WEBHOOK_AUTH_WORDS and response.status != 429:
        return Failed(Reason.AUTH_ERROR, f"incoming webhook: HTTP {response.status}: {words}", permanent=True)
    found = failures.of_status(response.status, response.headers, f"incoming webhook: {words}", now)
    return found or Failed(Reason.OTHER, f"incoming webhook: HTTP {response.status}")


# ---- the Web API -------------------------------------------------------------------------------


def _metadata(event_type: str, delivery: Delivery) -> dict[str, Any]:
    return {"event_type": event_type, "event_payload": {"incident": delivery.incident, "key": delivery.key}}


def _names(event_type: str, delivery: Delivery) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a message from a history carries this delivery's metadata."""

    def named(message: Mapping[str, Any]) -> bool:
        metadata = message.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("event_type") != event_type:
            return False
        payload = metadata.get("event_payload")
        return isinstance(payload, dict) and payload.get("key") == delivery.key

    return named


@dataclass(frozen=True, slots=True)
class WebApi:
    """Slack's Web API for one send: its calls, and the lookups that find a post after a crash."""

    io: Io
    url: str
    token: str

    async def call(self, method: str, arguments: Mapping[str, Any]) -> Answer:
        """A write method, its arguments as JSON (as Slack's SDKs send them)."""
        return await self._request("POST", method, json=dict(arguments))

    async def read(self, method: str, arguments: Mapping[str, str]) -> Answer:
        """A read method, its arguments in the query (the history methods take no JSON body)."""
        return await self._request("GET", method, params=arguments)

    async def _request(self, verb: str, method: str, **how: Any) -> Answer:
        """A call; a write whose answer was lost may have been made (``maybe_sent``), a read changes nothing."""
        auth = {"Authorization": f"Bearer {self.token}"}
        try:
            response = await self.io.http.request(verb, f"{self.url.rstrip('/')}/{method}", headers=auth, **how)
        except Unreachable as err:
            maybe_sent = err.maybe_sent and verb != "GET"
            return Answer(failed=Failed(err.reason, f"{method}: {err}", maybe_sent=maybe_sent))
        return answer_of(method, response, self.io.clock())

    async def find(
        self, method: str, arguments: Mapping[str, str], wanted: Callable[[Mapping[str, Any]], bool]
    ) -> Answer:
        """The first message of a history a few pages long that ``wanted`` names (an empty answer: none)."""
        cursor = ""
        for _ in range(LOOKUP_PAGES):
            page = await self.read(method, {**arguments, "cursor": cursor} if cursor else arguments)
            if page.failed is not None:
                return page
            messages = page.body.get("messages")
            for message in messages if isinstance(messages, list) else ():
                if isinstance(message, dict) and wanted(message):
                    return Answer(message)
            cursor = str((page.body.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        return Answer()


@dataclass(frozen=True, slots=True)
class Posted:
    """What a send has posted so far: the incident's message and what is worth saying."""

    channel: str
    ts: str
    notes: tuple[str, ...] = ()

    @property
    def thread(self) -> dict[str, str]:
        return {"channel": self.channel, "ts": self.ts}

    def sent(self, provider_id: str = "", note: str = "") -> Sent:
        """The outcome of the send."""
        said = "; ".join((*self.notes, note) if note else self.notes)
        return Sent(provider_id or self.ts, self.thread, said)


class Slack:
    """What both ways of posting to Slack share."""

    kind = "slack"
    audience: Audience = "internal"

    def __init__(self, name: str, settings: SlackSettings, secret: str) -> None:
        self.name = name
        self._settings = settings
        self._secret = secret
        """The bot token, or the incoming webhook's URL."""

    def min_interval(self) -> float:
        """Slack's rate for posting: about one message a second per channel (webhooks alike)."""
        return INTERVAL

    def _interactive(self, delivery: Delivery) -> str:
        """The incident whose buttons the message carries: none if the clicks cannot be taken, nor in a test."""
        return delivery.incident if self._settings.interactive and delivery.signal is not Signal.TEST else ""


class SlackApi(Slack):
    """A Slack channel posting with a bot token."""

    def replay(self, delivery: Delivery) -> Replay:
        """An edit is safe to make again; a post is looked for first (by its metadata)."""
        return Replay.SAFE if self._edits_only(delivery) else Replay.RECONCILE

    def wants(self, signal: Signal) -> bool:
        """Every signal: a post, a reply or an edit."""
        return True

    def rate_key(self, delivery: Delivery) -> str:
        """The Slack channel, in the token's workspace: Slack limits an app's posting per channel. The same
        channel configured under two names (or reached by a route's destination) shares one key."""
        return f"{self._destination(delivery)}@{digest(self._settings.api_url + ' ' + self._secret)}"

    def destination_problem(self, destination: str) -> str | None:
        """A route's destination must be a channel's id (``C0123ABCD``): names change, and posts are found
        again after a crash by reading the channel by its id."""
        return channel_problem(destination) if destination else None

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """The calls ``send`` would make (without the lookups a resumed delivery makes first)."""
        channel, ts = delivery.thread.get("channel") or self._destination(delivery), delivery.thread.get("ts")
        main = self._main(delivery, compose)
        if self._edits_only(delivery):
            calls = [("chat.update", {"channel": channel, "ts": ts, **main})]
        elif ts:
            reply = self._reply(delivery, compose, channel, ts)
            calls = [("chat.postMessage", reply), ("chat.update", {"channel": channel, "ts": ts, **main})]
        else:
            calls = [("chat.postMessage", self._first(delivery, main, channel))]
            if self._follows_up(delivery):
                calls.append(("chat.postMessage", self._reply(delivery, compose, channel, "<the new message's ts>")))
        return {"requests": [{"method": m, "arguments": a} for m, a in calls]}

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """Post, reply or edit, as the incident's thread so far says."""
        api = WebApi(io, self._settings.api_url, self._secret)
        ts = delivery.thread.get("ts")
        if not ts:
            return await self._open(api, delivery, compose)
        posted = Posted(delivery.thread.get("channel") or self._destination(delivery), ts)
        if self._edits_only(delivery):
            return await self._refresh(api, delivery, compose, posted)
        return await self._follow_up(api, delivery, compose, posted)

    # ---- what each delivery does ------------------------------------------------------------------

    async def _open(self, api: WebApi, delivery: Delivery, compose: Compose, note: str = "") -> Result:
        """The incident's message (found again if a crash interrupted its post), and the news under it."""
        channel = await self._conversation(api, delivery)
        if isinstance(channel, Failed):
            return channel
        found = await self._look(api, delivery, "conversations.history", {"channel": channel}, MAIN_EVENT)
        if isinstance(found, Failed):
            return found
        notes = (note,) if note else ()
        if found.ts:
            posted = Posted(channel, found.ts, (*notes, found.note))
        else:
            answer = await api.call("chat.postMessage", self._first(delivery, self._main(delivery, compose), channel))
            if answer.failed is not None:
                return answer.failed
            posted = Posted(str(answer.body["channel"]), str(answer.body["ts"]), (*notes, *found.notes))
        if not self._follows_up(delivery):
            return posted.sent()
        reply = await self._post_reply(api, delivery, compose, posted)
        if isinstance(reply, Failed):
            return posted.sent(note=f"the follow-up in its thread was not posted ({reply.message})")
        return posted.sent(note=reply.note)

    async def _refresh(self, api: WebApi, delivery: Delivery, compose: Compose, posted: Posted) -> Result:
        """The incident's message edited to show it as it is now."""
        edited = await self._edit(api, delivery, compose, posted)
        return edited if isinstance(edited, Failed) else edited.sent()

    async def _follow_up(self, api: WebApi, delivery: Delivery, compose: Compose, posted: Posted) -> Result:
        """A reply in the incident's thread, then its message edited; a new message if it was deleted."""
        reply = await self._post_reply(api, delivery, compose, posted)
        if isinstance(reply, Failed):
            return reply
        if reply.gone:
            return await self._open(api, delivery, compose, note="the incident's message was gone: posted a new one")
        edited = await self._edit(api, delivery, compose, posted)
        if isinstance(edited, Failed):
            note = f"the incident's message was not updated ({edited.message}); the next update repairs it"
            return posted.sent(reply.ts, "; ".join(filter(None, (reply.note, note))))
        return edited.sent(reply.ts, reply.note)

    # ---- the steps --------------------------------------------------------------------------------

    async def _post_reply(self, api: WebApi, delivery: Delivery, compose: Compose, posted: Posted) -> Reply | Failed:
        """The delivery's reply in the thread (found again if a crash interrupted its post)."""
        where = {"channel": posted.channel, "ts": posted.ts}
        found = await self._look(api, delivery, "conversations.replies", where, REPLY_EVENT)
        if isinstance(found, Failed):
            return found
        if found.ts:
            return Reply(found.ts, found.note)
        answer = await api.call("chat.postMessage", self._reply(delivery, compose, posted.channel, posted.ts))
        if answer.code == "thread_not_found":
            return Reply("", gone=True)
        if answer.failed is not None:
            return answer.failed
        return Reply(str(answer.body["ts"]), "; ".join(found.notes))

    async def _edit(self, api: WebApi, delivery: Delivery, compose: Compose, posted: Posted) -> Posted | Failed:
        """The incident's message edited; posted anew if someone deleted it."""
        main = self._main(delivery, compose)
        answer = await api.call("chat.update", {"channel": posted.channel, "ts": posted.ts, **main})
        if answer.code != "message_not_found":
            return answer.failed or posted
        answer = await api.call("chat.postMessage", self._first(delivery, main, posted.channel))
        if answer.failed is not None:
            return answer.failed
        note = "the incident's message was deleted: posted a new one"
        return Posted(str(answer.body["channel"]), str(answer.body["ts"]), (*posted.notes, note))

    async def _look(
        self, api: WebApi, delivery: Delivery, method: str, where: Mapping[str, str], event_type: str
    ) -> Lookup | Failed:
        """After a crash, the post this delivery may have made; nothing to look for otherwise."""
        if not delivery.resumed:
            return Lookup()
        oldest = (delivery.created_at - CLOCK_MARGIN).timestamp()
        arguments = {**where, "include_all_metadata": "true", "limit": str(LOOKUP_PAGE_SIZE), "oldest": f"{oldest:.6f}"}
        answer = await api.find(method, arguments, _names(event_type, delivery))
        if answer.failed is not None and not answer.failed.permanent:
            return answer.failed
        if answer.failed is not None:
            return Lookup(notes=(f"could not look for a post before the crash ({answer.failed.message}): posted",))
        if answer.body:
            return Lookup(str(answer.body.get("ts", "")), ("found the message posted before the crash",))
        return Lookup()

    # ---- payloads ---------------------------------------------------------------------------------

    def _main(self, delivery: Delivery, compose: Compose) -> Payload:
        return fitted_main(compose, self._settings.mention, self._interactive(delivery))

    def _first(self, delivery: Delivery, main: Payload, channel: str) -> Payload:
        return {"channel": channel, **main, "metadata": _metadata(MAIN_EVENT, delivery), **_QUIET}

    def _reply(self, delivery: Delivery, compose: Compose, channel: str, ts: str) -> Payload:
        run = awaiting_run(delivery.text) if delivery.signal is Signal.RUN_AWAITING_APPROVAL else None
        reply = fitted_reply(compose, run if run and self._settings.interactive else "")
        return {"channel": channel, "thread_ts": ts, **reply, "metadata": _metadata(REPLY_EVENT, delivery), **_QUIET}

    def _destination(self, delivery: Delivery) -> str:
        return delivery.target.destination or self._settings.channel

    async def _conversation(self, api: WebApi, delivery: Delivery) -> str | Failed:
        """Where the incident's first post goes: the destination, or for a person paged (a member id), the
        app's direct message with them once a crash makes it look for an earlier post there (history is read
        by conversation id; ``conversations.open`` names it)."""
        destination = self._destination(delivery)
        if not (delivery.resumed and MEMBER_ID.fullmatch(destination)):
            return destination
        answer = await api.call("conversations.open", {"users": destination})
        if answer.failed is not None:
            return answer.failed
        opened = answer.body.get("channel")
        return str(opened["id"]) if isinstance(opened, dict) and "id" in opened else destination

    @staticmethod
    def _edits_only(delivery: Delivery) -> bool:
        return delivery.signal is Signal.ALERTS_CHANGED and bool(delivery.thread.get("ts"))

    @staticmethod
    def _follows_up(delivery: Delivery) -> bool:
        """A first post for news other than the opening carries that news in its thread too (not a test's)."""
        return delivery.signal not in (Signal.OPENED, Signal.ALERTS_CHANGED, Signal.TEST)


_QUIET = {"unfurl_links": False, "unfurl_media": False}
"""No preview of a link an alert's text carries."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a lookup after a crash found: the ``ts`` of the post (empty: none), and what to say."""

    ts: str = ""
    notes: tuple[str, ...] = ()

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply in the thread: its ``ts``, what to say; ``gone``: the thread's message no longer exists."""

    ts: str
    note: str = ""
    gone: bool = False


# ---- incoming webhooks -------------------------------------------------------------------------


class SlackWebhook(Slack):
    """A Slack channel posting through an incoming webhook: a new post for each signal, nothing else."""

    def replay(self, delivery: Delivery) -> Replay:
        """A webhook's post cannot be found again: one a crash interrupted is never sent twice."""
        return Replay.NEVER

    def wants(self, signal: Signal) -> bool:
        """Not ``alerts_changed``: a webhook cannot edit, and a post per alert would flood the channel."""
        return signal is not Signal.ALERTS_CHANGED

    def rate_key(self, delivery: Delivery) -> str:
        """The webhook, by a digest of its URL (the URL is a secret)."""
        return "webhook:" + digest(self._secret)

    def destination_problem(self, destination: str) -> str | None:
        """None is one: an incoming webhook posts only to its own channel."""
        return "an incoming webhook posts only to its own channel: it takes no destination" if destination else None

    def preview(self, delivery: Delivery, compose: Compose) -> Mapping[str, Any]:
        """The post ``send`` would make (the webhook's URL left out: it is a secret)."""
        return {"requests": [{"method": "incoming webhook", "arguments": self._payload(delivery, compose)}]}

    async def send(self, delivery: Delivery, compose: Compose, io: Io) -> Result:
        """A new post."""
        if delivery.signal is Signal.ALERTS_CHANGED:
            return Skipped("an incoming webhook cannot update a message")
        if delivery.target.destination:
            why = f"an incoming webhook posts only to its own channel, not to {delivery.target.destination[:100]}"
            return Failed(Reason.CLIENT_ERROR, why, permanent=True)
        try:
            response = await io.http.request("POST", self._secret, json=self._payload(delivery, compose))
        except Unreachable as err:
            return Failed(err.reason, f"incoming webhook: {err}", maybe_sent=err.maybe_sent)
        return webhook_failure(response, io.clock()) or Sent(thread={"posted": "webhook"})

    def _payload(self, delivery: Delivery, compose: Compose) -> Payload:
        """The incident as it is now; the operator's mention on the first post to the channel only."""
        mention = "" if delivery.thread.get("posted") else self._settings.mention
        return {**fitted_main(compose, mention, self._interactive(delivery)), **_QUIET}


def build(name: str, settings: SlackSettings) -> SlackApi | SlackWebhook:
    """The channel ``settings`` describe: the Web API with a token, else the incoming webhook."""
    if settings.token is not None:
        return SlackApi(name, settings, settings.token)
    return SlackWebhook(name, settings, settings.webhook_url or "")


TYPE = ChannelType("slack", SlackSettings, build)
