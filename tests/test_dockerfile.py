"""The Dockerfile's structure: no Docker engine runs here, so what can be checked without building is checked.

Multi-stage, pinned base (never ``latest``), a non-root numeric user, the
entrypoint ``receiver serve``, nothing copied that does not exist or that
``.dockerignore`` leaves out, no build tools or caches in the final stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Instruction:
    command: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            command, _, arguments = line.strip().partition(" ")
            found.append(Instruction(command.upper(), arguments.strip()))
    return found


def stages(found: list[Instruction]) -> list[list[Instruction]]:
    split: list[list[Instruction]] = []
    for instruction in found:
        if instruction.command == "FROM":
            split.append([])
        if split:
            split[-1].append(instruction)
    return split


DOCKERFILE = instructions((ROOT / "Dockerfile").read_text())
FINAL = stages(DOCKERFILE)[-1]


def test_it_is_multi_stage_on_a_pinned_slim_python_311() -> None:
    assert len(stages(DOCKERFILE)) >= 2
    args = {i.arguments.split("=", 1)[0]: i.arguments.split("=", 1)[1] for i in DOCKERFILE if i.command == "ARG"}
    for stage in stages(DOCKERFILE):
        image = stage[0].arguments.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and not tag.startswith("latest"), image
        assert name == "python" and tag.startswith("3.11") and "slim" in tag, image


def test_the_final_stage_runs_as_a_non_root_numeric_user() -> None:
    [user] = [i for i in FINAL if i.command == "USER"]
    uid = user.arguments.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert FINAL.index(user) > max(i for i, x in enumerate(FINAL) if x.command == "RUN")  # nothing runs as root after


def test_the_entrypoint_is_receiver_serve_with_data_on_a_volume() -> None:
    [entrypoint] = [i for i in FINAL if i.command == "ENTRYPOINT"]
    assert entrypoint.arguments == '["receiver", "serve"]'
    [cmd] = [i for i in FINAL if i.command == "CMD"]
    assert '"--data-dir", "/data"' in cmd.arguments
    assert any(i.command == "VOLUME" and "/data" in i.arguments for i in FINAL)


def test_the_files_it_copies_exist_and_are_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for instruction in DOCKERFILE:
        if instruction.command != "COPY" or instruction.arguments.startswith("--from"):
            continue
        *sources, _ = instruction.arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, f"{source} is copied but .dockerignore leaves it out"
    assert {".git", ".venv", "tests", "data"} <= set(ignored)


def test_no_build_tools_or_caches_in_the_final_stage() -> None:
    final_runs = " ".join(i.arguments for i in FINAL if i.command == "RUN")
    assert "apt-get install" not in final_runs and "gcc" not in final_runs and "pip install" not in final_runs
    build_runs = " ".join(i.arguments for s in stages(DOCKERFILE)[:-1] for i in s if i.command == "RUN")
    assert "compileall" in build_runs  # bytecode made at build: a read-only root never has to write it
    env = " ".join(i.arguments for i in DOCKERFILE if i.command == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert any(i.command == "COPY" and i.arguments.startswith("--from=build /venv") for i in FINAL)
