"""The engine process: the one writer of derived state, beside the web process.

The web process answers Alertmanager: authenticate, validate, append to the
inbox, 200. Everything after that (dedup and incidents; playbooks later)
is the engine's, and it runs in a process of its own, so its CPU time
never competes with the webhook for the interpreter lock. The two share the
store's files and two pipes, nothing else:

- web -> engine, the engine's stdin: the settings as one JSON line, then
  the inbox seq reached, one line per wake-up. End of file means the web
  process is shutting down or gone: the engine stops and exits, so it never
  outlives its parent, even one killed with SIGKILL.
- engine -> web, its stdout: one JSON line per step,
  ``{"cursor": n, "tally": {...}}``. The web process adds the counts to its
  metrics and uses the cursor to refuse work when processing falls behind.
- Changes people make to incidents (acknowledge, resolve, notes) go the same
  way: a JSON object line on the engine's stdin, ``{"n": 7, "op": "resolve",
  "id": ..., "actor": ..., "text": ...}``, answered once committed by
  ``{"reply": 7, "error": null}`` (or ``"not_found"``, ``"conflict"``,
  ``"unavailable"``, with a ``message``). The engine stays the one writer of
  incidents.

Logs go to the shared stderr. One engine works on a database at a time: it
holds an exclusive lock on ``<database>.engine.lock`` and waits for a
previous engine still finishing its step; the cursor check inside every
transaction is the second line of defence. The web process restarts an
engine that dies, with backoff, and counts it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from receiver import logs
from receiver.alerts.wire import Valid
from receiver.clock import Clock, describe, parse, utc_now
from receiver.config import Settings
from receiver.engine.builder import build
from receiver.engine.processor import Processor
from receiver.engine.runner import RunConflict, Runner, UnknownRun
from receiver.incidents.book import UnknownIncident
from receiver.incidents.lifecycle import InvalidTransition
from receiver.metrics import Metrics, Tally
from receiver.store import InboxEntry, StoreError, backends

log = logging.getLogger("receiver.engine")  # not __main__ when run with -m


class EngineUnavailable(RuntimeError):
    """The engine cannot take the change now (restarting, or too slow to answer)."""


COMMAND = (sys.executable, "-m", "receiver.engine")
RESTART_BACKOFF_SECONDS = (0.5, 30.0)
"""First and longest wait before starting a dead engine again."""
_ENGINE_SETTINGS = frozenset({"data_dir", "log_level", "store", "alerts", "engine", "incidents", "remediation"})
COMMAND_TIMEOUT_SECONDS = 10.0
"""How long a person's change may wait for the engine (it waits for the batch being written)."""
LINGER_SECONDS = 0.05
"""After a partial batch the engine lets entries gather this long: at a few thousand notifications
a second, batches of dozens instead of a few write far less (a batch of 32 wrote three times the
log per notification of a batch of 1024), and 50 ms is nothing to an incident."""


def settings_line(settings: Settings) -> bytes:
    """The first line of the engine's stdin: the settings it needs, as JSON."""
    return orjson.dumps(settings.model_dump(mode="json", include=set(_ENGINE_SETTINGS))) + b"\n"


class EngineProcess:
    """The web process's handle on the engine: starts it, wakes it, hears its progress, restarts it."""

    def __init__(
        self, settings: Settings, metrics: Metrics, *, command: Sequence[str] = COMMAND, clock: Clock = utc_now
    ) -> None:
        """``clock``: the engine's, as text on its command line (``UndescribableClock`` if it cannot be)."""
        self._settings_line = settings_line(settings)
        self._metrics = metrics
        described = describe(clock)
        self._command = (*command, "--clock", described) if described else tuple(command)
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
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
        self._supervisor = asyncio.create_task(self._supervise(), name="engine supervisor")

    def offer(self, entry: InboxEntry, valid: Valid) -> None:
        """Say that ``entry`` is committed to the inbox; wakes the engine once per loop iteration."""
        self._latest = max(self._latest, entry.seq)
        if not self._wake_pending:
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._wake)

    async def close(self, grace_seconds: float) -> None:
        """Stop the engine: end of file on its stdin, then SIGKILL after ``grace_seconds``."""
        self._closing = True
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
            with contextlib.suppress(asyncio.CancelledError):
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
        answer = self._waiting[n] = asyncio.get_running_loop().create_future()
        proc.stdin.write(orjson.dumps({"n": n, "op": op, "id": id, "actor": actor, "text": text}) + b"\n")
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
        proc.stdin.write(b"%d\n" % self._latest)

    async def _supervise(self) -> None:
        first, longest = RESTART_BACKOFF_SECONDS
        delay = first
        loop = asyncio.get_running_loop()
        while not self._closing:
            started = loop.time()
            try:
                outcome = f"exited with status {await self._run_once()}"
            except OSError as err:
                outcome = f"could not be started: {err}"
            if self._closing:
                return
            self._metrics.engine_restarts.inc()
            if loop.time() - started > 60:  # it had been running well: start over from the shortest wait
                delay = first
            log.error("the engine %s; starting it again in %.1fs", outcome, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)

    async def _run_once(self) -> int:
        proc = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None  # both are pipes
        self._proc = proc
        proc.stdin.write(self._settings_line)
        proc.stdin.write(b"%d\n" % self._latest)
        try:
            async for line in proc.stdout:
                self._progress(line)
            return await proc.wait()
        finally:
            self._proc = None
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_result(("unavailable", "the engine stopped before answering"))
            if proc.returncode is None:  # cancelled while it ran: never leave it behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    def _progress(self, line: bytes) -> None:
        try:
            raw = orjson.loads(line)
            if "reply" in raw:
                self._answer(int(raw["reply"]), raw["error"], str(raw.get("message", "")))
                return
            cursor, tally = int(raw["cursor"]), Tally.from_json(raw["tally"])
        except (ValueError, KeyError, TypeError):
            log.error("unreadable progress line from the engine", extra={"line": line[:200].decode(errors="replace")})
            return
        self.cursor = max(self.cursor, cursor)
        self._metrics.add(tally)

    def _answer(self, n: int, error: str | None, message: str) -> None:
        waiting = self._waiting.get(n)
        if waiting is not None and not waiting.done():
            waiting.set_result((error, message))


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
    """Entry point of the engine process (``python -m receiver.engine [--clock SPEC]``), started by the web process."""
    parser = argparse.ArgumentParser(prog="python -m receiver.engine")
    parser.add_argument("--clock", type=parse, default=utc_now, help="fixed:<instant> or offset:<seconds>")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C reaches the web process, which stops us
    tune_gc()
    asyncio.run(_serve(args.clock))


async def _serve(now: Clock) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    first = await stdin.readline()
    if not first:
        return  # the web process went away before saying anything
    settings = Settings.model_validate_json(first)
    logs.setup(settings.log_level)
    os.nice(settings.engine.nice)
    async with backends.engine_lock(settings):
        await _work(settings, stdin, now)


async def _work(settings: Settings, stdin: asyncio.StreamReader, now: Clock) -> None:
    store = backends.create(settings, role="engine")
    await store.open()
    engine = build(settings, store, clock=now, report=_report, linger=LINGER_SECONDS)
    engine.start()
    log.info("engine started", extra={"store": str(settings.database_path), "pid": os.getpid()})
    commands: set[asyncio.Task[None]] = set()
    try:
        async for line in stdin:
            if line.startswith(b"{"):
                task = asyncio.create_task(_command(engine.processor, engine.runner, line))
                commands.add(task)
                task.add_done_callback(commands.discard)
            else:
                engine.processor.wake()
        await asyncio.gather(*commands, return_exceptions=True)
    finally:
        await engine.stop()
        await store.close()
        log.info("engine stopped", extra={"cursor": engine.processor.cursor})


async def _command(processor: Processor, runner: Runner, line: bytes) -> None:
    """Carry out a person's change to an incident, and answer the web process."""
    n: Any = None
    error: str | None = None
    message = ""
    try:
        raw = orjson.loads(line)
        n = raw["n"]
        change = {
            "acknowledge": processor.acknowledge,
            "mitigate": processor.mitigate,
            "resolve": processor.resolve,
            "note": processor.note,
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
    sys.stdout.buffer.write(orjson.dumps({"reply": n, "error": error, "message": message}) + b"\n")
    sys.stdout.buffer.flush()


def _report(cursor: int, tally: Tally) -> None:
    sys.stdout.buffer.write(orjson.dumps({"cursor": cursor, "tally": tally.to_json()}) + b"\n")
    sys.stdout.buffer.flush()
