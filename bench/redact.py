"""``python -m bench.redact``: redacting one pathological log line, with the redactor of a revision and today's.

A crash-looping pod's log is text the pod chose. The evidence redactor was
Python's backtracking ``re`` until the ReDoS fix: its secret-name rule
(``[A-Za-z0-9_.-]*token…``) was tried from every position of a long run of
name characters, so a line of ``a-a-a-…`` or of UUIDs joined by ``-`` cost
time quadratic in its length, on the event loop. This prints the time of
``redact`` on such lines for the redactor at ``--before`` (read from git) and
the one in the working tree (RE2), and of ``log_view`` (which cuts each line
before redacting it) on a log of them. Nothing here is a test: the tests
prove linearity by construction; this records the numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path

from receiver.evidence.content import Bounds, log_view
from receiver.evidence.redact import redact

ROOT = Path(__file__).resolve().parent.parent
SHAPES: dict[str, Callable[[int], str]] = {
    "a-a-a-": lambda size: ("a-" * size)[:size],
    "UUIDs joined by -": lambda size: "-".join(
        str(uuid.UUID(int=i * 0x9E3779B97F4A7C15)) for i in range(size // 36 + 1)
    )[:size],
}


def _before(revision: str) -> Callable[[str], str]:
    """The ``redact`` of ``receiver/evidence/redact.py`` at ``revision`` (it imported only ``re`` then)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:receiver/evidence/redact.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("redact_before")
    exec(compile(source, f"{revision}:redact.py", "exec"), module.__dict__)  # our own file, from git
    fn: Callable[[str], str] = module.redact
    return fn


def _time(fn: Callable[..., object], *args: object) -> str:
    started = time.perf_counter()
    fn(*args)
    return f"{(time.perf_counter() - started) * 1000:11.1f} ms"


def _size(text: str) -> str:
    return f"{len(text) // 1024} KB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="187bd9f", help="the revision whose redactor is measured as before")
    parser.add_argument("--before-sizes", default="8192,16384,65536", help="line sizes measured before (quadratic)")
    parser.add_argument("--sizes", default="8192,65536,1048576", help="line sizes measured now")
    args = parser.parse_args()
    print(f"# {platform.machine()}, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    old = _before(args.before)
    for shape, make in SHAPES.items():
        for size in map(int, args.before_sizes.split(",")):
            line = make(size)
            print(f"before ({args.before}) redact   {shape:18} {_size(line):>8}: {_time(old, line)}")
        for size in map(int, args.sizes.split(",")):
            line = make(size)
            print(f"now              redact   {shape:18} {_size(line):>8}: {_time(redact, line)}")
        log = "".join(f"{make(64 * 1024)}\n" for _ in range(16))
        bounds = Bounds(log_lines=100, log_bytes=1024 * 1024)
        took = _time(log_view, log, bounds)
        print(f"now              log_view {shape:18} {_size(log):>8}: {took}  (16 lines of 64 KB, each cut)")


if __name__ == "__main__":
    main()
