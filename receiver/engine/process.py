"""The engine process: the one writer of derived state, beside the web process.

The web process answers Alertmanager: authenticate, validate, append to the
inbox, 200. Everything after that (dedup and incidents; playbooks later)
is the engine's, and it runs in a process of its own, so its CPU time
never competes with the webhook for the interpreter lock. The two share the
store's files and two pipes, nothing else. Every message on the pipes is a
frame (``receiver.engine.link``: a 4-byte big-endian length, then JSON), so
a message of any size the API admits crosses, where lines once broke the
link at 64 KiB:

- web -> engine, the engine's stdin: the settings (an object), then the
  inbox seq reached (an integer), one frame per wake-up. End of file means
  the web process is shutting down or gone: the engine stops and exits, so
  it never outlives its parent, even one killed with SIGKILL.
- engine -> web, its stdout: one frame per step, ``{"cursor": n, "tally":
  {...}}``. The web process adds the counts to its metrics and uses the
  cursor to refuse work when processing falls behind.
- Changes people make to incidents (acknowledge, resolve, notes) go the same
  way: an object on the engine's stdin, ``{"n": 7, "op": "resolve",
  "id": ..., "actor": ..., "text": ...}``, answered once committed by
  ``{"reply": 7, "error": null}`` (or ``"not_found"``, ``"conflict"``,
  ``"unavailable"``, with a ``message``). The engine stays the one writer of
  incidents.

Logs go to the shared stderr, and so does anything else the engine prints:
its stdout is the link's, and nothing but frames may reach it. One engine
works on a database at a time: it holds the backend's engine lock and waits
for a previous engine still finishing its step; the cursor check inside
every transaction is the second line of defence.

Nothing ends the link silently. Whatever ends it (the engine exits with any
status, closes its stdout, sends a broken frame, or reading raises) the web
process stops what is left of that engine, logs why at error level, counts
it in ``receiver_engine_restarts_total`` and starts another with backoff;
and the task that does this is itself started again if it ever fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

import orjson
import pydantic

from receiver import logs
from receiver import timer as timers
from receiver.alerts.wire import Valid
from receiver.clock import Clock, describe, parse, utc_now
from receiver.config import Settings
from receiver.engine import link
from receiver.engine.builder import Engine, build
from receiver.engine.processor import Processor
from receiver.engine.runner import RunConflict, Runner, UnknownRun
from receiver.incidents.book import UnknownIncident
from receiver.incidents.lifecycle import InvalidTransition
from receiver.metrics import Metrics, Tally
from receiver.store import InboxEntry, StoreError, backends
from receiver.timer import REAL, Timer

log = logging.getLogger("receiver.engine")  # not __main__ when run with -m


class EngineUnavailable(RuntimeError):
    """The engine cannot take the change now (restarting, or too slow to answer)."""


COMMAND = (sys.executable, "-m", "receiver.engine")
RESTART_BACKOFF_SECONDS = (0.5, 30.0)
"""First and longest wait before starting a dead engine again."""
_ENGINE_SETTINGS = frozenset(
    {"data_dir", "log_level", "store", "alerts", "engine", "incidents", "remediation", "evidence", "notify", "oncall"}
)
COMMAND_TIMEOUT_SECONDS = 10.0
"""How long a person's change may wait for the engine (it waits for the batch being written)."""
REAP_GRACE_SECONDS = 5.0
"""How long an engine whose link ended may take to finish its transaction and exit before it is killed."""
LINGER_SECONDS = 0.05
"""After a partial batch the engine lets entries gather this long: at a few thousand notifications
a second, batches of dozens instead of a few write far less (a batch of 32 wrote three times the
log per notification of a batch of 1024), and 50 ms is nothing to an incident."""


def settings_frame(settings: Settings) -> bytes:
    """The first frame on the engine's stdin: the settings it needs, the channels' and links' secrets in clear.

    A channel's password or key is a ``SecretStr`` (never printed, never logged), which a JSON dump
    masks: the engine sends with them, so they cross the pipe to it (its own child) as they are.
    """
    dumped = settings.model_dump(mode="json", include=set(_ENGINE_SETTINGS))
    dumped["notify"]["channels"] = {
        name: channel.model_dump(mode="json") | _secrets(channel)
        for name, channel in settings.notify.channels.items()
    }
    dumped["oncall"]["links"] |= _link_secrets(settings)
    return link.frame(dumped)


def _link_secrets(settings: Settings) -> dict[str, object]:
    """The secrets signed links are made with, in clear: the engine signs the links of its notifications."""
    links = settings.oncall.links
    return {
        "secret": links.secret.get_secret_value() if links.secret else None,
        "previous_secrets": [s.get_secret_value() for s in links.previous_secrets],
    }


def _secrets(channel: pydantic.BaseModel) -> dict[str, str]:
    """The channel's secret settings, in clear."""
    return {
        name: value.get_secret_value()
        for name in type(channel).model_fields
        if isinstance(value := getattr(channel, name), pydantic.SecretStr)
    }


class EngineProcess:
    """The web process's handle on the engine: starts it, wakes it, hears its progress, restarts it."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        command: Sequence[str] = COMMAND,
        clock: Clock = utc_now,
        timer: Timer = REAL,
    ) -> None:
        """``clock``, ``timer``: the engine's, as text on its command line (``UndescribableClock`` if it cannot be).

        The engine gets a fresh timer of the same kind (a ``VirtualTimer`` starts at 0 there).
        """
        self._settings_frame = settings_frame(settings)
        self._metrics = metrics
        described = describe(clock)
        self._command = (*command, "--clock", described) if described else tuple(command)
        timed = timers.describe(timer)
        self._command = (*self._command, "--timer", timed) if timed else self._command
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._respawn: asyncio.TimerHandle | None = None
        self._delay = RESTART_BACKOFF_SECONDS[0]
        self._latest = 0
        self._wake_pending = False
        self._closing = False
        self._requests = 0
        self._waiting: dict[int, asyncio.Future[tuple[str | None, str]]] = {}
        self.cursor = 0
        """The last inbox seq the engine reported processed."""

    @property
    def pid(self) -> int | None:
        """The engine's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    async def start(self, cursor: int) -> None:
        """Start the engine (and keep it running), ``cursor`` being where processing stands."""
        self.cursor = self._latest = cursor
        self._start_supervisor()

    def offer(self, entry: InboxEntry, valid: Valid) -> None:
        """Say that ``entry`` is committed to the inbox; wakes the engine once per loop iteration."""
        self._latest = max(self._latest, entry.seq)
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._wake)

    async def close(self, grace_seconds: float) -> None:
        """Stop the engine: end of file on its stdin, then SIGKILL after ``grace_seconds``."""
        self._closing = True
        if self._respawn is not None:
            self._respawn.cancel()
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), grace_seconds)
            except TimeoutError:
                log.error("the engine did not stop within %.1fs; killing it", grace_seconds)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # a failure was logged when it happened
                await self._supervisor

    async def acknowledge(self, id: str, actor: str, reason: str) -> None:
        """Have the engine acknowledge an incident; once committed."""
        await self._request("acknowledge", id, actor, reason)

    async def mitigate(self, id: str, actor: str, reason: str) -> None:
        """Have the engine mark an incident mitigated."""
        await self._request("mitigate", id, actor, reason)

    async def resolve(self, id: str, actor: str, reason: str) -> None:
        """Have the engine resolve an incident."""
        await self._request("resolve", id, actor, reason)

    async def note(self, id: str, actor: str, text: str) -> None:
        """Have the engine add a note to an incident's timeline."""
        await self._request("note", id, actor, text)

    async def update(self, id: str, actor: str, text: str) -> None:
        """Have the engine post a status update to every channel of an incident."""
        await self._request("update", id, actor, text)

    async def approve(self, run_id: str, actor: str, reason: str) -> None:
        """Have the engine start a run that waits for approval."""
        await self._request("approve", run_id, actor, reason)

    async def reject(self, run_id: str, actor: str, reason: str) -> None:
        """Have the engine refuse a run that waits for approval."""
        await self._request("reject", run_id, actor, reason)

    async def reset(self, playbook: str, actor: str, reason: str) -> None:
        """Have the engine close a playbook's circuit breaker."""
        await self._request("reset", playbook, actor, reason)

    async def _request(self, op: str, id: str, actor: str, text: str) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            raise EngineUnavailable("the engine is not running (it is being started again)")
        self._requests += 1
        n = self._requests
        try:
            command = link.frame({"n": n, "op": op, "id": id, "actor": actor, "text": text})
        except link.FrameTooLarge as err:
            raise EngineUnavailable(str(err)) from None
        answer = self._waiting[n] = asyncio.get_running_loop().create_future()
        proc.stdin.write(command)
        try:
            error, message = await asyncio.wait_for(answer, COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            raise EngineUnavailable(f"the engine did not answer within {COMMAND_TIMEOUT_SECONDS:g}s") from None
        finally:
            self._waiting.pop(n, None)
        if error == "not_found":
            raise UnknownRun(id) if op in ("approve", "reject", "reset") else UnknownIncident(id)
        if error == "conflict":
            raise RunConflict(message) if op in ("approve", "reject") else InvalidTransition(message)
        if error is not None:
            raise EngineUnavailable(message)

    def _wake(self) -> None:
        self._wake_pending = False
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        if proc.stdin.transport.get_write_buffer_size():
            return  # the engine has not read the last wake-up yet: one is enough
        proc.stdin.write(link.frame(self._latest))

    def _start_supervisor(self) -> None:
        self._respawn = None
        if self._closing:
            return
        self._supervisor = asyncio.create_task(self._supervise(), name="engine supervisor")
        self._supervisor.add_done_callback(self._supervisor_ended)

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        """A supervisor only ends when closing; one that failed is logged, counted and started again."""
        if self._closing or task.cancelled():
            return
        error = task.exception()
        self._metrics.engine_restarts.inc()
        log.error(
            "the engine supervisor failed; starting it again in %.1fs",
            self._delay,
            exc_info=(type(error), error, error.__traceback__) if error is not None else None,
        )
        self._respawn = asyncio.get_running_loop().call_later(self._delay, self._start_supervisor)
        self._delay = min(self._delay * 2, RESTART_BACKOFF_SECONDS[1])

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            started = loop.time()
            try:
                outcome = await self._run_once()
            except OSError as err:
                outcome = f"could not be started: {err}"
            except link.LinkBroken as err:
                outcome = f"broke the link: {err}"
            except Exception as err:  # whatever ends the link, the engine is started again
                outcome = f"lost its link: {err!r}"
            if self._closing:
                return
            await self._restart_after(outcome, loop.time() - started)

    async def _restart_after(self, outcome: str, ran_seconds: float) -> None:
        """Count and log an engine that ended, then wait the backoff."""
        first, longest = RESTART_BACKOFF_SECONDS
        self._metrics.engine_restarts.inc()
        if ran_seconds > 60:  # it had been running well: start over from the shortest wait
            self._delay = first
        log.error("the engine %s; starting it again in %.1fs", outcome, self._delay)
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, longest)

    async def _run_once(self) -> str:
        """Run one engine until its link ends; what ended it."""
        proc = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        self._proc = proc
        try:
            proc.stdin.write(self._settings_frame)
            proc.stdin.write(link.frame(self._latest))
            while (payload := await link.read(proc.stdout)) is not None:
                self._progress(payload)
            return f"exited with status {await _reap(proc)}"
        finally:
            self._proc = None
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_result(("unavailable", "the engine stopped before answering"))
            if proc.returncode is None:  # a broken link, or cancelled while it ran: never leave it behind
                await _reap(proc)

    def _progress(self, payload: bytes) -> None:
        try:
            raw = orjson.loads(payload)
            if "reply" in raw:
                self._answer(int(raw["reply"]), raw["error"], str(raw.get("message", "")))
                return
            cursor, tally = int(raw["cursor"]), Tally.from_json(raw["tally"])
        except (ValueError, KeyError, TypeError):
            text = payload[:200].decode(errors="replace")
            log.error("unreadable progress line from the engine", extra={"line": text})
            return
        self.cursor = max(self.cursor, cursor)
        self._metrics.add(tally)

    def _answer(self, n: int, error: str | None, message: str) -> None:
        waiting = self._waiting.get(n)
        if waiting is not None and not waiting.done():
            waiting.set_result((error, message))


async def _reap(proc: asyncio.subprocess.Process) -> int:
    """Stop an engine whose link ended: end of file on its stdin, SIGKILL after a grace; its exit status."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        return await asyncio.wait_for(proc.wait(), REAP_GRACE_SECONDS)
    except TimeoutError:
        log.error("the engine's link ended but it did not stop within %.1fs; killing it", REAP_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return await proc.wait()


# The engine's own side of the pipes.


GC_THRESHOLDS = (50_000, 20, 10)
"""The engine's collector thresholds (Python's are 700, 10, 10). A batch allocates tens of thousands of
objects that live until its transaction ends; with the defaults they were promoted to the oldest
generation, whose collections then ran every few thousand alerts and walked the whole book: with
100,000 open alerts, 0.28 s each and 1.6 s of every 50,000 updates (per-update cost 1.45x that with
1,000 open). Collecting the youngest generation every 50,000 net allocations lets a batch's objects die
young: the ratio fell to 1.03 (1.09 in the final benchmark; docs/benchmarks.md, ``python -m bench.processing``)."""


def tune_gc() -> None:
    """Set the engine's collector thresholds (the processing benchmark runs with them too)."""
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the engine process (``python -m receiver.engine [--clock SPEC] [--timer KIND]``)."""
    parser = argparse.ArgumentParser(prog="python -m receiver.engine")
    parser.add_argument("--clock", type=parse, default=utc_now, help="fixed:<instant> or offset:<seconds>")
    parser.add_argument("--timer", type=timers.parse, default=REAL, help="real or virtual (playbook steps' time)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C reaches the web process, which stops us
    tune_gc()
    out = link.Writer(_claim_stdout())
    try:
        asyncio.run(_serve(args.clock, args.timer, out))
    except link.LinkBroken as err:
        log.error("the link from the web process broke; the engine stops", extra={"error": str(err)})
        sys.exit(EXIT_LINK_BROKEN)
    except EngineTaskFailed as err:
        log.error("the engine's %s task ended by itself; the engine stops to be started again", err)
        sys.exit(EXIT_TASK_FAILED)


EXIT_LINK_BROKEN = 3
"""The engine's exit status when what the web process sent is not a frame."""
EXIT_TASK_FAILED = 4
"""The engine's exit status when one of its tasks (processor, runner, expiry) ended by itself."""


def _claim_stdout() -> BinaryIO:
    """The link's end of stdout, for frames only; anything else printed to stdout goes to stderr instead."""
    sys.stdout.flush()
    link_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(link_fd, "wb")


async def _serve(now: Clock, timer: Timer, out: link.Writer) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    first = await link.read(stdin)
    if first is None:
        return  # the web process went away before saying anything
    settings = Settings.model_validate_json(first)
    logs.setup(settings.log_level)
    os.nice(settings.engine.nice)
    async with backends.engine_lock(settings):
        await _work(settings, stdin, now, timer, out)


async def _work(settings: Settings, stdin: asyncio.StreamReader, now: Clock, timer: Timer, out: link.Writer) -> None:
    store = backends.create(settings, role="engine")
    await store.open()
    report = functools.partial(_report, out)
    engine = build(settings, store, clock=now, report=report, linger=LINGER_SECONDS, timer=timer)
    engine.start()
    log.info("engine started", extra={"store": str(settings.database_path), "pid": os.getpid()})
    listening = asyncio.create_task(_listen(stdin, engine, out), name="listen")
    assert engine.failed is not None
    watched: set[asyncio.Future[Any]] = {listening, engine.failed}
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():  # a task of the engine ended by itself: stop, and the web process starts another
            raise EngineTaskFailed(engine.failed.result())
        listening.result()  # a broken link from the web process ends the engine too
    finally:
        listening.cancel()
        await engine.stop()
        await store.close()
        log.info("engine stopped", extra={"cursor": engine.processor.cursor})


class EngineTaskFailed(RuntimeError):
    """A task of the engine (processor, runner, expiry) ended by itself: the engine exits to be started again."""


async def _listen(stdin: asyncio.StreamReader, engine: Engine, out: link.Writer) -> None:
    """Read the web process's frames until end of file: wake-ups and people's changes."""
    commands: set[asyncio.Task[None]] = set()
    while (payload := await link.read(stdin)) is not None:
        message = _decode(payload)
        if isinstance(message, dict):
            task = asyncio.create_task(_command(engine.processor, engine.runner, message, out))
            commands.add(task)
            task.add_done_callback(commands.discard)
        elif isinstance(message, int):
            engine.processor.wake()
        elif message is not None:
            log.error("unreadable message from the web process", extra={"error": f"a {type(message).__name__}"})
    await asyncio.gather(*commands, return_exceptions=True)


def _decode(payload: bytes) -> Any:
    """A frame's message; None (logged) when it is not JSON: the frames stay in step, so the engine reads on."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        log.error("unreadable message from the web process", extra={"error": str(err)})
        return None


async def _command(processor: Processor, runner: Runner, raw: dict[str, Any], out: link.Writer) -> None:
    """Carry out a person's change to an incident, and answer the web process."""
    n: Any = raw.get("n")
    error: str | None = None
    message = ""
    try:
        change = {
            "acknowledge": processor.acknowledge,
            "mitigate": processor.mitigate,
            "resolve": processor.resolve,
            "note": processor.note,
            "update": processor.update,
            "approve": runner.approve,
            "reject": runner.reject,
            "reset": runner.reset,
        }[raw["op"]]
        await change(raw["id"], raw["actor"], raw["text"])
    except (UnknownIncident, UnknownRun):
        error = "not_found"
    except (InvalidTransition, RunConflict) as err:
        error, message = "conflict", str(err)
    except StoreError as err:
        error, message = "unavailable", str(err)
    except (ValueError, KeyError, TypeError) as err:
        log.error("unreadable command from the web process", extra={"error": repr(err)})
        error, message = "unavailable", f"unreadable command: {err!r}"
    out.send({"reply": n, "error": error, "message": message})


def _report(out: link.Writer, cursor: int, tally: Tally) -> None:
    out.send({"cursor": cursor, "tally": tally.to_json()})
