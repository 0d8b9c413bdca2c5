"""The import-linter contracts of pyproject.toml hold, and they do catch a forbidden import.

``make test`` runs ``lint-imports`` on the tree; this proves the contracts
are not vacuous: a copy of the package with one forbidden import added (the
engine reaching into the web layer, as ``runner.py`` once did for its error
types) breaks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the copy, not the installed package
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "receiver", tmp_path / "receiver", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_its_layers(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("engine/runner.py", "from receiver.web import errors", "engine is not allowed to import receiver.web"),
        ("incidents/book.py", "from receiver.store import Store", "receiver.incidents is not allowed to import"),
        ("engine/processor.py", "import sqlite3", "only receiver.store speaks SQL"),
        ("playbooks/executor.py", "import kubernetes", "only receiver.kube imports the kubernetes client"),
        ("alerts/dedup.py", "from receiver.clock import utc_now", "the pure decisions touch no edge"),
        ("notify/__init__.py", "import sqlite3", "only receiver.store speaks SQL"),  # a package yet to come
        ("notify/__init__.py", "import kubernetes", "only receiver.kube imports the kubernetes client"),
        ("__main__.py", "import aiohttp.web", "only receiver.web, receiver.app and the command line import aiohttp"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tree: Path, module: str, line: str, broken: str) -> None:
    path = tree / "receiver" / module
    path.parent.mkdir(exist_ok=True)
    path.write_text((path.read_text() if path.exists() else '"""A module."""\n') + f"\n{line}  # noqa\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    assert broken in " ".join(result.stdout.split())


def test_every_module_of_the_package_has_a_layer() -> None:
    """A new package or top-level module must be placed in the layers, or no layer contract would see it."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    [layers] = [c["layers"] for c in contracts if c["id"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    children = {
        f"receiver.{p.stem}" if p.is_file() else f"receiver.{p.name}"
        for p in (ROOT / "receiver").iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__")) or (p / "__init__.py").is_file()
    }
    assert children - placed == set(), "modules in no layer of pyproject.toml's layers contract"
