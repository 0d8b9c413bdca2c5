"""A fake Slack: the Web API as a bot token uses it, and incoming webhooks.

Why: the Slack channel of issue #14 posts an incident's message, edits it as
the incident moves, threads updates under it and, after a restart, finds its
own messages again by their metadata. This fake answers those calls the way
Slack's documentation says, so that code is tested against Slack's rules.

Documentation followed:
- Web API basics (HTTP 200 with ``{"ok": false, "error": ...}`` for API errors,
  warnings in ``response_metadata``, token in ``Authorization: Bearer`` or a
  ``token`` form field): https://github.com/slackhq/slack-api-docs/blob/master/index_web.md
- chat.postMessage (arguments, JSON or form bodies, errors such as
  ``channel_not_found``, ``not_in_channel``, ``is_archived``, ``no_text``,
  ``too_many_attachments``, ``not_authed``, ``invalid_auth``,
  ``account_inactive``, ``token_revoked``, ``missing_post_type``,
  ``invalid_post_type``, ``invalid_form_data``):
  https://docs.slack.dev/reference/methods/chat.postMessage ,
  https://github.com/slack-ruby/slack-api-ref/blob/master/methods/chat/chat.postMessage.json
- text over 40,000 characters is truncated and posted, with the warning
  ``message_truncated``: https://api.slack.com/changelog/2018-04-truncating-really-long-messages
- blocks: at most 50 in a message, a section's text at most 3,000 characters,
  errors ``invalid_blocks`` (with ``errors`` naming a json-pointer) and
  ``invalid_blocks_format``: https://api.slack.com/reference/block-kit/blocks ,
  as reported in https://github.com/slackapi/bolt-js/issues/2509
- chat.update (``message_not_found``, ``cant_update_message``, ``edit_window_closed``,
  ``msg_too_long``, ``no_text``; blocks left out keep the old ones):
  https://api.slack.com/methods/chat.update
- message metadata (``{"event_type": ..., "event_payload": {...}}``):
  https://docs.slack.dev/messaging/message-metadata
- conversations.history (newest first, ``limit`` default 100 and at most 999,
  cursor pagination through ``response_metadata.next_cursor``,
  ``include_all_metadata``): https://docs.slack.dev/reference/methods/conversations.history
- conversations.replies (the parent then its replies, ``thread_not_found``):
  https://api.slack.com/methods/conversations.replies
- rate limits (chat.postMessage: "one message per second per channel", short
  bursts allowed; HTTP 429 with ``Retry-After`` in seconds and the error
  ``ratelimited``; incoming webhooks one per second with bursts):
  https://api.slack.com/docs/rate-limits
- incoming webhooks (``POST /services/T…/B…/secret``, plain-text ``ok``; errors
  as HTTP statuses with a plain-text code: ``invalid_payload`` 400, ``no_text``
  400, ``too_many_attachments`` 400, ``invalid_token`` 403, ``action_prohibited`` 403,
  ``no_service`` 404, ``channel_not_found`` 404, ``channel_is_archived`` 410):
  https://api.slack.com/messaging/webhooks ,
  https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks

Where the documentation leaves a choice, the fake's is stated here:
- the burst chat.postMessage tolerates is not published: ``post_burst``
  messages per channel (default 3), then one per second (a token bucket on the
  fake's clock); only a message that would be posted counts, a call refused for
  its content is answered with its error whatever the rate (webhooks alike);
- a ``thread_ts`` naming no message of the channel is answered ``thread_not_found``;
- a missing ``channel`` or ``ts`` argument is ``invalid_arguments``;
- ``msg_too_long`` (documented without a threshold) is not produced by the
  fake's own rules: script it with ``fake.api_error("msg_too_long")``.
- interactivity: ``signed_interaction`` builds the request Slack sends to an app's Interactivity Request
  URL when someone clicks a button (``block_actions``, a form field ``payload`` holding JSON, signed
  ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the app's signing secret):
  https://api.slack.com/authentication/verifying-requests-from-slack ,
  https://api.slack.com/reference/interaction-payloads/block-actions ; a posted ``actions`` block is
  checked against the button's limits (25 elements, ``action_id`` 255, ``value`` 2,000, label 75):
  https://api.slack.com/reference/block-kit/block-elements#button ; what the app posts to the
  interaction's ``response_url`` (``SlackFake.response_url()``) is recorded and answered ``{"ok": true}``
  (the documentation shows no error bodies: the fake's 400s for a body without text are its choice).
- Socket Mode: ``apps.connections.open`` takes only an app-level token (``xapp-``; any other method
  refuses one: ``not_allowed_token_type``) and answers a one-use websocket URL; the connection says
  ``hello``, carries the envelopes a test pushes (``push_interaction``) and records the
  acknowledgements (``{"envelope_id": ...}``); ``disconnect()`` sends Slack's ``disconnect`` notice
  and closes: https://api.slack.com/apis/socket-mode , https://api.slack.com/methods/apps.connections.open .
  Slack's redelivery of an envelope left unacknowledged is not imitated.
Not implemented: ``oldest``/``latest`` filters of the history methods, the
workspace-wide posting limit, the tiers of methods other than chat.postMessage
(script a 429 with ``fake.rate_limit(...)``), files, reactions, scheduled messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import urllib.parse
import uuid
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal

from aiohttp import WSMsgType, web

from receiver.clock import Clock, utc_now
from tests.fakes.server import PARSED, FakeServer, Fault, TokenBucket, retry_after

TOKEN = "xoxb-0000000000-0000000000000-fakefakefakefakefakefake"
APP_TOKEN = "xapp-1-A0FAKEAPP1-0000000000000-fakefakefakefakefakefakefakefakefakefake"
"""An app-level token: the only kind ``apps.connections.open`` takes, and one no other method takes."""
TEAM = "T0FAKE0001"
BOT_USER = "U0FAKEBOT1"
BOT_ID = "B0FAKEBOT1"
APP_ID = "A0FAKEAPP1"
HUMAN = "U0HUMAN001"

MAX_TEXT = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3_000
MAX_HEADER_TEXT = 150
MAX_ATTACHMENTS = 100
MAX_ACTIONS = 25
MAX_ACTION_ID = 255
MAX_VALUE = 2_000
MAX_BUTTON_TEXT = 75
HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 999
REPLIES_DEFAULT_LIMIT = 1_000

TokenState = Literal["active", "inactive", "revoked"]
TOKEN_ERRORS: dict[str, str] = {"inactive": "account_inactive", "revoked": "token_revoked"}


class ApiError(Exception):
    """An answer ``{"ok": false, "error": code}`` with HTTP 200, as Slack gives API errors."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


class RateLimited(Exception):
    """An answer HTTP 429 with ``Retry-After``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


@dataclass
class Message:
    """A message as Slack keeps it in a channel."""

    channel: str
    ts: str
    text: str
    user: str
    bot_id: str | None
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    edited: dict[str, str] | None = None
    replies: list[str] = field(default_factory=list)

    def view(self, *, with_metadata: bool) -> dict[str, Any]:
        """The message object Slack's methods answer with."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts, "team": TEAM}
        if self.bot_id is not None:
            out |= {"bot_id": self.bot_id, "app_id": APP_ID}
        optional = {"blocks": self.blocks, "attachments": self.attachments, "thread_ts": self.thread_ts}
        out |= {k: v for k, v in optional.items() if v is not None}
        if self.edited is not None:
            out["edited"] = dict(self.edited)
        if self.replies:
            out |= {"reply_count": len(self.replies), "latest_reply": self.replies[-1], "thread_ts": self.ts}
        if with_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Channel:
    """A conversation: its messages in ``ts`` order and its posting limiter."""

    id: str
    name: str
    member: bool = True
    archived: bool = False
    messages: dict[str, Message] = field(default_factory=dict)
    bucket: TokenBucket | None = None
    last_ts: int = 0  # microseconds since the epoch of the newest ts handed out


@dataclass(frozen=True)
class Webhook:
    """An incoming webhook: the channel it posts to, and whether it was removed."""

    team: str
    bot: str
    secret: str
    channel: str
    disabled: bool = False

    @property
    def path(self) -> str:
        return f"/services/{self.team}/{self.bot}/{self.secret}"


class SlackFake(FakeServer):
    """The Slack Web API (``/api/<method>``) and incoming webhooks (``/services/...``) on 127.0.0.1."""

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        token: str = TOKEN,
        post_burst: int = 3,
        post_per_second: float = 1.0,
        webhook_burst: int = 3,
    ) -> None:
        super().__init__(clock=clock)
        self.token = token
        self.tokens: dict[str, TokenState] = {token: "active"}
        self.channels: dict[str, Channel] = {}
        self.webhooks: dict[tuple[str, str], Webhook] = {}
        self.post_burst = post_burst
        self.post_per_second = post_per_second
        self.webhook_burst = webhook_burst
        self._webhook_buckets: dict[tuple[str, str], TokenBucket] = {}
        self.tokens[APP_TOKEN] = "active"
        self.app_tokens = {APP_TOKEN}
        self.sockets: list[web.WebSocketResponse] = []
        """The Socket Mode connections open now, oldest first."""
        self.connections = 0
        """Socket Mode connections opened so far."""
        self.socket_acks: list[str] = []
        """The ``envelope_id`` of every acknowledgement received, in order."""
        self._tickets: set[str] = set()
        self._caller = ""
        self._socket_changed = asyncio.Condition()

    # ---- what a test sets up and reads -------------------------------------------------------

    def add_channel(self, id: str, name: str, *, member: bool = True, archived: bool = False) -> Channel:
        channel = Channel(id=id, name=name, member=member, archived=archived)
        channel.bucket = TokenBucket(capacity=self.post_burst, per_second=self.post_per_second)
        self.channels[id] = channel
        return channel

    def add_user(self, id: str) -> Channel:
        """A workspace member: ``chat.postMessage`` to their id posts in the app's direct message with them
        (https://docs.slack.dev/reference/methods/chat.postMessage, "channel": a user ID posts to the app's
        DM), and ``conversations.open`` names that DM. The DM channel, whose id is ``D`` + the user's."""
        return self.add_channel("D" + id[1:], f"dm-{id}")

    def dm(self, user: str) -> Channel:
        """The app's direct message with ``user``."""
        return self.channels["D" + user[1:]]

    def channel_settings(self, channel: str) -> dict[str, Any]:
        """The receiver's ``notify.channels`` entry posting to ``channel`` here with the bot token."""
        return {"type": "slack", "token": self.token, "channel": channel, "api_url": self.url + "/api"}

    def set_token(self, token: str, state: TokenState) -> None:
        self.tokens[token] = state

    def add_human_message(self, channel: str, text: str) -> str:
        """A message a person wrote (the bot may not edit it); its ``ts``."""
        c = self.channels[channel]
        message = Message(channel=c.id, ts=self._next_ts(c), text=text, user=HUMAN, bot_id=None)
        c.messages[message.ts] = message
        return message.ts

    def add_webhook(self, channel: str, *, secret: str = "fakeWebhookSecret000000") -> str:
        """A new incoming webhook posting to ``channel``; its URL path."""
        hook = Webhook(team=TEAM, bot=f"B0HOOK{len(self.webhooks):04d}", secret=secret, channel=channel)
        self.webhooks[(hook.team, hook.bot)] = hook
        return hook.path

    def disable_webhook(self, path: str) -> None:
        for key, hook in self.webhooks.items():
            if hook.path == path:
                self.webhooks[key] = replace(hook, disabled=True)

    def messages(self, channel: str) -> list[Message]:
        """Every message of ``channel`` (replies included), oldest first."""
        return sorted(self.channels[channel].messages.values(), key=lambda m: ts_micros(m.ts))

    def rate_limit(self, *, times: int = 1, retry_after: int = 3, method: str = "") -> None:
        """Answer the next ``times`` calls (of ``method``, or any) HTTP 429 with ``Retry-After``."""
        body = {"ok": False, "error": "ratelimited"}
        self.faults.add(Fault.json(429, body, retry_after=retry_after, path_prefix=f"/api/{method}"), times=times)

    def api_error(self, code: str, *, times: int = 1, method: str = "") -> None:
        """Answer the next ``times`` calls HTTP 200 ``{"ok": false, "error": code}``."""
        self.faults.add(Fault.json(200, {"ok": False, "error": code}, path_prefix=f"/api/{method}"), times=times)

    def server_error(self, *, times: int = 1, status: int = 500, path_prefix: str = "/") -> None:
        """Answer the next ``times`` requests with a bare HTTP ``status`` (500, 502, 503...)."""
        self.faults.add(Fault.status_only(status, path_prefix=path_prefix), times=times)

    # ---- the server --------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/services/{team}/{bot}/{secret}", self._webhook)
        app.router.add_post("/actions/{team}/{id}/{token}", self._response_url)
        app.router.add_get("/link/", self._link)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for ws in list(self.sockets):
            await ws.close()
        await super().__aexit__(kind, exc, tb)

    # ---- Socket Mode -------------------------------------------------------------------------

    async def wait_for_socket(self, connections: int = 1, *, within: float = 10.0) -> web.WebSocketResponse:
        """The newest connection, once ``connections`` have been opened and one is open."""
        async with asyncio.timeout(within), self._socket_changed:
            await self._socket_changed.wait_for(lambda: self.connections >= connections and bool(self.sockets))
        return self.sockets[-1]

    async def push_interaction(self, payload: dict[str, Any]) -> str:
        """An ``interactive`` envelope carrying ``payload`` sent over the newest connection; its ``envelope_id``."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": "interactive", "payload": payload}
        await (await self.wait_for_socket()).send_json(envelope | {"accepts_response_payload": False})
        return envelope_id

    async def wait_for_ack(self, envelope_id: str, *, within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._socket_changed:
            await self._socket_changed.wait_for(lambda: envelope_id in self.socket_acks)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's notice that it closes the connections, then the close."""
        for ws in list(self.sockets):
            await ws.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}})
            await ws.close()

    def _connections_open(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        if self._caller not in self.app_tokens:
            raise ApiError("not_allowed_token_type")
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"ok": True, "url": f"ws://127.0.0.1:{self.url.rsplit(':', 1)[1]}/link/?ticket={ticket}"}

    async def _link(self, request: web.Request) -> web.StreamResponse:
        """A Socket Mode connection: ``hello``, then envelopes; what the client sends back are acknowledgements."""
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            return plain(401, "invalid ticket")
        self._tickets.discard(ticket)  # a URL opens one connection
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        self.connections += 1
        await ws.send_json(
            {"type": "hello", "num_connections": len(self.sockets), "connection_info": {"app_id": APP_ID}}
        )
        await self._socket_notify()
        try:
            async for frame in ws:
                if frame.type is WSMsgType.TEXT:
                    sent = json.loads(frame.data)
                    if isinstance(sent, dict) and isinstance(sent.get("envelope_id"), str):
                        self.socket_acks.append(sent["envelope_id"])
                        await self._socket_notify()
        finally:
            self.sockets.remove(ws)
            await self._socket_notify()
        return ws

    async def _socket_notify(self) -> None:
        async with self._socket_changed:
            self._socket_changed.notify_all()

    def response_url(self) -> str:
        """An interaction's ``response_url`` here (what is posted to it is recorded: ``received("/actions/")``)."""
        return f"{self.url}/actions/{TEAM}/1/fakeResponseToken"

    async def _response_url(self, request: web.Request) -> web.Response:
        """Slack's answer to a post to a ``response_url``: ``{"ok": true}`` for a JSON message with text."""
        try:
            answer = json.loads(await request.read())
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        if not isinstance(answer, dict) or not answer.get("text"):
            return web.json_response({"ok": False, "error": "no_text"}, status=400)
        return web.json_response({"ok": True})

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        warnings: list[str] = []
        try:
            handler = self._methods().get(method)
            if handler is None:
                raise ApiError("unknown_method")
            args = await self._arguments(request, warnings)
            request[PARSED] = args
            self._authenticate(request, args)
            body = handler(args, warnings)
        except ApiError as err:
            body = {"ok": False, "error": err.code, **err.extra}
        except RateLimited as limited:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after(limited.seconds))},
            )
        if warnings:
            body["warning"] = ",".join(warnings)
            meta = body.setdefault("response_metadata", {})
            meta["warnings"] = warnings
        return web.json_response(body)

    def _methods(self) -> dict[str, Any]:
        return {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "apps.connections.open": self._connections_open,
            "conversations.open": self._open,
        }

    async def _arguments(self, request: web.Request, warnings: list[str]) -> dict[str, Any]:
        """The call's arguments: the query string, then a form or JSON body."""
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if not raw:
            return args
        if "Content-Type" not in request.headers:
            raise ApiError("missing_post_type")
        kind = request.content_type
        if kind == "application/json":
            if request.charset is None:
                warnings.append("missing_charset")
            try:
                body = json.loads(raw)
            except ValueError as err:
                raise ApiError("invalid_json") from err
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            body.pop("token", None)  # a JSON body carries no token: Slack wants it in the header
            return args | body
        if kind == "application/x-www-form-urlencoded":
            try:
                form = urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True)
            except (ValueError, UnicodeDecodeError) as err:
                raise ApiError("invalid_form_data") from err
            return args | dict(form)
        raise ApiError("invalid_post_type")

    def _authenticate(self, request: web.Request, args: dict[str, Any]) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else args.pop("token", "")
        if not token:
            raise ApiError("not_authed")
        state = self.tokens.get(token)
        if state is None:
            raise ApiError("invalid_auth")
        if state in TOKEN_ERRORS:
            raise ApiError(TOKEN_ERRORS[state])
        self._caller = token
        if token in self.app_tokens and request.match_info["method"] != "apps.connections.open":
            raise ApiError("not_allowed_token_type")

    # ---- the methods -------------------------------------------------------------------------

    def _post_message(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        channel = self._writable(required(args, "channel"))
        content = parse_content(args, warnings)
        if not any(content.values()):
            raise ApiError("no_text")
        metadata = parse_metadata(args.get("metadata"))
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None and thread_ts not in channel.messages:
            raise ApiError("thread_not_found")
        wait = channel.bucket.take(self.clock()) if channel.bucket is not None else None
        if wait is not None:
            raise RateLimited(wait)
        message = Message(
            channel=channel.id,
            ts=self._next_ts(channel),
            text=content["text"] or "",
            user=BOT_USER,
            bot_id=BOT_ID,
            blocks=content["blocks"],
            attachments=content["attachments"],
            thread_ts=thread_ts,
            metadata=metadata,
        )
        channel.messages[message.ts] = message
        if thread_ts is not None:
            channel.messages[thread_ts].replies.append(message.ts)
        return {"ok": True, "channel": channel.id, "ts": message.ts, "message": message.view(with_metadata=True)}

    def _update(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        channel = self._writable(required(args, "channel"))
        message = channel.messages.get(required(args, "ts"))
        if message is None:
            raise ApiError("message_not_found")
        if message.bot_id != BOT_ID:
            raise ApiError("cant_update_message")
        content = parse_content(args, warnings)
        if not any(content.values()):
            raise ApiError("no_text")
        if content["text"] is not None:
            message.text = content["text"]
        if content["blocks"] is not None:
            message.blocks = content["blocks"] or None
        if content["attachments"] is not None:
            message.attachments = content["attachments"] or None
        if "metadata" in args:
            message.metadata = parse_metadata(args["metadata"])
        message.edited = {"user": BOT_USER, "ts": self._next_ts(channel)}
        view = message.view(with_metadata=True)
        return {"ok": True, "channel": channel.id, "ts": message.ts, "text": message.text, "message": view}

    def _history(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        channel = self._readable(required(args, "channel"))
        top = [m for m in channel.messages.values() if m.thread_ts is None]
        newest_first = sorted(top, key=lambda m: ts_micros(m.ts), reverse=True)
        limit = parse_limit(args.get("limit"), HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT)
        return page(newest_first, args, limit, with_metadata=truthy(args.get("include_all_metadata")))

    def _replies(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        channel = self._readable(required(args, "channel"))
        parent = channel.messages.get(required(args, "ts"))
        if parent is None:
            raise ApiError("thread_not_found")
        if parent.thread_ts is not None:  # asked with a reply's ts: Slack answers with that reply alone
            thread = [parent]
        else:
            thread = [parent, *(channel.messages[ts] for ts in parent.replies)]
        limit = parse_limit(args.get("limit"), REPLIES_DEFAULT_LIMIT, REPLIES_DEFAULT_LIMIT)
        return page(thread, args, limit, with_metadata=truthy(args.get("include_all_metadata")))

    # ---- channels and timestamps -------------------------------------------------------------

    def _open(self, args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
        """conversations.open with ``users`` (one member): the app's DM with them
        (https://docs.slack.dev/reference/methods/conversations.open; ``user_not_found``)."""
        user = required(args, "users")
        dm = self.channels.get("D" + user[1:]) if user[:1] in ("U", "W") else None
        if dm is None:
            raise ApiError("user_not_found")
        return {"ok": True, "channel": {"id": dm.id}, "already_open": True}

    def _channel(self, ref: str) -> Channel:
        """A channel by ID (a member's ID: the app's DM with them), or by name with or without ``#``."""
        if ref in self.channels:
            return self.channels[ref]
        if ref[:1] in ("U", "W") and "D" + ref[1:] in self.channels:
            return self.channels["D" + ref[1:]]
        name = ref.removeprefix("#")
        for channel in self.channels.values():
            if channel.name == name:
                return channel
        raise ApiError("channel_not_found")

    def _writable(self, ref: str) -> Channel:
        channel = self._channel(ref)
        if channel.archived:
            raise ApiError("is_archived")
        if not channel.member:
            raise ApiError("not_in_channel")
        return channel

    def _readable(self, ref: str) -> Channel:
        channel = self._channel(ref)
        if not channel.member:
            raise ApiError("not_in_channel")
        return channel

    def _next_ts(self, channel: Channel) -> str:
        """The clock's time as a Slack ``ts``, strictly after the channel's last one."""
        now = self.clock()
        micros = max(int(now.timestamp() * 1_000_000), channel.last_ts + 1)
        channel.last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # ---- incoming webhooks -------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        key = (request.match_info["team"], request.match_info["bot"])
        hook = self.webhooks.get(key)
        if hook is None or hook.disabled:
            return plain(404, "no_service")
        if hook.secret != request.match_info["secret"]:
            return plain(403, "invalid_token")
        channel = self.channels.get(hook.channel)
        if channel is None:
            return plain(404, "channel_not_found")
        if channel.archived:
            return plain(410, "channel_is_archived")
        payload = webhook_payload(await request.read(), request.content_type)
        request[PARSED] = payload
        if payload is None:
            return plain(400, "invalid_payload")
        try:
            content = parse_content(payload, [])
        except ApiError as err:
            return plain(400, err.code)
        if not any(content.values()):
            return plain(400, "no_text")
        bucket = self._webhook_buckets.setdefault(key, TokenBucket(self.webhook_burst, 1.0))
        wait = bucket.take(self.clock())
        if wait is not None:
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": str(retry_after(wait))})
        message = Message(
            channel=channel.id,
            ts=self._next_ts(channel),
            text=content["text"] or "",
            user=BOT_USER,
            bot_id=hook.bot,
            blocks=content["blocks"],
            attachments=content["attachments"],
        )
        channel.messages[message.ts] = message
        return plain(200, "ok")


# ---- pure helpers ----------------------------------------------------------------------------


def plain(status: int, text: str) -> web.Response:
    """An incoming webhook's answer: a status and a short plain-text code."""
    return web.Response(status=status, text=text, content_type="text/html")


def required(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {name}"]})
    return value


def truthy(value: Any) -> bool:
    """A boolean argument as Slack reads it from JSON or a form. Pure."""
    return value is True or (isinstance(value, str) and value.lower() in {"1", "true"}) or value == 1


def ts_micros(ts: str) -> int:
    """A ``ts`` (``"1712345678.000123"``) in microseconds, for ordering. Pure."""
    seconds, _, fraction = ts.partition(".")
    return int(seconds) * 1_000_000 + int(fraction.ljust(6, "0")[:6] or 0)


def json_argument(value: Any, error: str) -> Any:
    """An argument a form carries as JSON text and a JSON body as a value. Pure."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as err:
            raise ApiError(error) from err
    return value


def parse_content(args: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """A message's text (truncated past 40,000 characters), blocks and attachments, validated."""
    text = args.get("text")
    if text is not None and not isinstance(text, str):
        text = str(text)
    if text is not None and len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
        warnings.append("message_truncated")
    blocks = None
    if args.get("blocks") is not None:
        blocks = json_argument(args["blocks"], "invalid_blocks_format")
        if not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        problems = block_problems(blocks)
        if problems:
            messages = [f"[ERROR] {p}" for p in problems]
            raise ApiError("invalid_blocks", errors=problems, response_metadata={"messages": messages})
    attachments = None
    if args.get("attachments") is not None:
        attachments = json_argument(args["attachments"], "invalid_attachments")
        if not isinstance(attachments, list):
            raise ApiError("invalid_attachments")
        if len(attachments) > MAX_ATTACHMENTS:
            raise ApiError("too_many_attachments")
    return {"text": text or None, "blocks": blocks, "attachments": attachments}


def block_problems(blocks: list[Any]) -> list[str]:
    """What is wrong with ``blocks``, each with the json-pointer Slack's errors name. Pure."""
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"missing required field: type [json-pointer:/blocks/{i}]")
            continue
        if block["type"] == "actions":
            problems += action_problems(block.get("elements"), i)
            continue
        text = block.get("text")
        limit = {"section": MAX_SECTION_TEXT, "header": MAX_HEADER_TEXT}.get(block["type"])
        if limit is not None and isinstance(text, dict) and len(str(text.get("text", ""))) > limit:
            problems.append(f"must be less than {limit + 1} characters [json-pointer:/blocks/{i}/text/text]")
    return problems


def action_problems(elements: Any, i: int) -> list[str]:
    """What is wrong with an actions block's buttons. Pure."""
    where = f"[json-pointer:/blocks/{i}/elements]"
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS:
        return [f"must be a list of 1 to {MAX_ACTIONS} elements {where}"]
    problems = []
    for n, element in enumerate(elements):
        if not isinstance(element, dict) or element.get("type") != "button":
            problems.append(f"only buttons here {where[:-1]}/{n}]")
            continue
        label = element.get("text") or {}
        if len(str(element.get("action_id", ""))) > MAX_ACTION_ID or len(str(element.get("value", ""))) > MAX_VALUE:
            problems.append(f"action_id or value too long {where[:-1]}/{n}]")
        if label.get("type") != "plain_text" or not 1 <= len(str(label.get("text", ""))) <= MAX_BUTTON_TEXT:
            problems.append(f"a button's text is plain_text of 1 to {MAX_BUTTON_TEXT} characters {where[:-1]}/{n}]")
    return problems


def block_actions(
    user: str, actions: list[tuple[str, str]], timestamp: int, *, kind: str = "block_actions", response_url: str = ""
) -> dict[str, Any]:
    """The interaction payload Slack sends when ``user`` clicks buttons (action_id, value)."""
    return {
        "type": kind,
        "team": {"id": TEAM, "domain": "fake"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": APP_ID,
        "container": {"type": "message", "channel_id": "C0FAKE0001", "message_ts": "1700000000.000100"},
        "trigger_id": "1234.5678.abcdef",
        "response_url": response_url or "https://hooks.slack.com/actions/T0FAKE0001/1/fake",
        "actions": [
            {"type": "button", "action_id": a, "block_id": "b", "value": v, "action_ts": f"{timestamp}.000200"}
            for a, v in actions
        ],
    }


def signed_interaction(
    secret: str,
    user: str,
    actions: list[tuple[str, str]],
    timestamp: int,
    *,
    kind: str = "block_actions",
    response_url: str = "https://hooks.slack.com/actions/T0FAKE0001/1/fake",
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the request Slack sends when ``user`` clicks buttons (action_id, value)."""
    payload = block_actions(user, actions, timestamp, kind=kind, response_url=response_url)
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return body, slack_signature_headers(secret, body, timestamp)


def slack_signature_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers Slack signs ``body`` with, sent at ``timestamp`` (Unix seconds)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
    }


def parse_metadata(value: Any) -> dict[str, Any] | None:
    """Message metadata: an object with a string ``event_type`` and an object ``event_payload``."""
    if value is None or value == "":
        return None
    metadata = json_argument(value, "invalid_metadata_format")
    if not isinstance(metadata, dict):
        raise ApiError("invalid_metadata_format")
    if not isinstance(metadata.get("event_type"), str) or not isinstance(metadata.get("event_payload"), dict):
        raise ApiError("invalid_metadata_schema")
    return {"event_type": metadata["event_type"], "event_payload": metadata["event_payload"]}


def parse_limit(value: Any, default: int, maximum: int) -> int:
    if value is None or value == "":
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError) as err:
        raise ApiError("invalid_limit") from err
    return default if limit <= 0 else min(limit, maximum)


def encode_cursor(ts: str) -> str:
    """Slack's cursor for "continue at this ts": base64 of ``next_ts:<ts without the dot>``. Pure."""
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise ApiError("invalid_cursor") from err
    digits = text.removeprefix("next_ts:")
    if digits == text or not digits.isdigit() or len(digits) <= 6:
        raise ApiError("invalid_cursor")
    return f"{digits[:-6]}.{digits[-6:]}"


def page(ordered: list[Message], args: dict[str, Any], limit: int, *, with_metadata: bool) -> dict[str, Any]:
    """One page of ``ordered`` from the cursor on, with the cursor of the next page."""
    start = 0
    if args.get("cursor"):
        ts = decode_cursor(str(args["cursor"]))
        positions = [i for i, m in enumerate(ordered) if m.ts == ts]
        if not positions:
            raise ApiError("invalid_cursor")
        start = positions[0]
    chunk = ordered[start : start + limit]
    rest = ordered[start + limit :]
    return {
        "ok": True,
        "messages": [m.view(with_metadata=with_metadata) for m in chunk],
        "has_more": bool(rest),
        "response_metadata": {"next_cursor": encode_cursor(rest[0].ts) if rest else ""},
    }


def webhook_payload(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """An incoming webhook's JSON body, or the JSON of its ``payload`` form field; None when unreadable. Pure."""
    try:
        text = raw.decode()
        if content_type == "application/x-www-form-urlencoded":
            text = dict(urllib.parse.parse_qsl(text)).get("payload", "")
        payload = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None
