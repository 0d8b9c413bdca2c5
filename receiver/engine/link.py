"""The framing of the link between the web process and the engine process.

The two processes talk over the engine's stdin and stdout. They used to
send one JSON line per message, read with ``StreamReader.readline``, whose
64 KiB limit a large message passes: a progress report of a tick that
resolved a few thousand incidents, or a note of control characters (each one
six bytes once escaped in JSON) on a long incident id. The reader then
raised, and the link was gone for good. So every message is a frame: its
length as 4 bytes, big-endian, then that many bytes of JSON. A frame may be
as large as ``MAX_FRAME`` (far above anything the API admits or a tick
reports); a larger one or a truncated one means the stream can no longer be
trusted, and ``LinkBroken`` says why. A whole frame whose JSON makes no sense
leaves the stream in step: its reader logs it and reads on.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from typing import Any, BinaryIO

import orjson

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
"""A frame's length: 4 bytes, big-endian, unsigned."""
MAX_FRAME = 64 * 1024 * 1024
"""The largest payload either side sends or reads (64 MiB): a note at the API's limit is under 100 KB and a
tick resolving 10,000 incidents reports about 300 KB. A declared length above this is a broken stream."""


class LinkBroken(RuntimeError):
    """The other side sent something that is not a frame: the stream is out of step and must be restarted."""


class FrameTooLarge(LinkBroken):
    """A message larger than ``MAX_FRAME``: it is never sent, and one announced is never read."""


def frame(message: Any, limit: int = MAX_FRAME) -> bytes:
    """``message`` as one frame: its JSON's length, then its JSON. ``FrameTooLarge`` past ``limit``. Pure."""
    payload = orjson.dumps(message)
    if len(payload) > limit:
        raise FrameTooLarge(f"a message of {len(payload)} bytes is over the link's limit of {limit} bytes")
    return HEADER.pack(len(payload)) + payload


async def read(reader: asyncio.StreamReader, limit: int = MAX_FRAME) -> bytes | None:
    """The next frame's payload (JSON, for ``orjson.loads``); None at a clean end of the stream (between frames).

    ``LinkBroken`` when the stream ends inside a frame or announces one over ``limit``.
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise LinkBroken(f"the stream ended inside a frame's header ({len(err.partial)} of 4 bytes)") from None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise FrameTooLarge(f"a frame announces {size} bytes, over the link's limit of {limit} bytes")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as err:
        raise LinkBroken(f"the stream ended inside a frame ({len(err.partial)} of {size} bytes)") from None


class Writer:
    """The engine's end of its stdout: whole frames, one at a time, flushed at once.

    A message over the limit is never sent: the writer logs why and closes,
    so the web process sees the link end, stops this engine and starts
    another (the message's counts are lost, nothing else: what it reported
    is committed). Writes after that are dropped.
    """

    def __init__(self, out: BinaryIO, limit: int = MAX_FRAME) -> None:
        self._out = out
        self._limit = limit
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        """Write ``message`` as one frame."""
        with self._lock:
            if self._out.closed:
                return
            try:
                data = frame(message, self._limit)
            except FrameTooLarge as err:
                log.error("the engine closes its link to be started again: %s", err)
                self._out.close()
                return
            self._out.write(data)
            self._out.flush()
