"""Shared fixtures: real git repos, real venvs, and fixbot run as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixbot.sandbox import _text

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_REPO = ROOT / "examples" / "sample-repo"
# The folder that holds pytest, so a throwaway venv can run it without installing.
PYTEST_SITE = Path(pytest.__file__).resolve().parent.parent


def _pytest_only_site() -> Path:
    """A folder with pytest and what it imports, and nothing else of fixbot's venv.

    Pointing a test repo's venv at all of fixbot's site-packages would load every
    pytest plugin installed there (anyio's doubles pytest's start-up).
    """
    import importlib  # noqa: PLC0415
    import importlib.metadata  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    folder = Path(tempfile.gettempdir()) / f"fixbot-tests-pytest-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py"):
        module = importlib.import_module(name)
        source = Path(module.__file__).resolve()
        source = source.parent if source.name == "__init__.py" else source
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source)
    # pytest reads its own version (and its plugins') from the installed metadata.
    for dist in ("pytest", "pluggy", "iniconfig", "packaging", "pygments"):
        info = Path(str(importlib.metadata.distribution(dist)._path))
        link = folder / info.name
        if not link.exists():
            link.symlink_to(info)
    return folder


PYTEST_ONLY = _pytest_only_site()


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, git or fixbot settings of the machine leak into a test."""
    for key in list(os.environ):
        if key.startswith(("GIT_", "FIXBOT_")) or key.lower().endswith("_proxy"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FIXBOT_LOG_FORMAT", "json")


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Each content `definitions` parses from now on, in order (the kept defs forgotten)."""
    seen: list[bytes] = []
    real = _text.definitions
    monkeypatch.setattr(_text, "definitions", lambda c: seen.append(c) or real(c))
    _text.hinted_definitions.cache_clear()
    _text._BY_OUTLINE.clear()
    return seen


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; return stdout."""
    done = subprocess.run(
        ["git", "-c", "user.name=Test User", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write dedented files under root."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


def make_venv(where: Path) -> Path:
    """A real venv at `where` that can import pytest (through a .pth file)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", where], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (where / "lib" / version / "site-packages" / "zz_pytest.pth").write_text(f"{PYTEST_ONLY}\n")
    return where


def commit_all(repo: Path, message: str = "init") -> str:
    """Commit everything; return the sha."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def init_repo(root: Path, files: dict[str, str], *, venv: bool = True) -> Path:
    """A git repo with `files` committed on branch main, and an untracked .venv."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    write_files(root, {".gitignore": ".venv/\n", **files})
    if venv:
        make_venv(root / ".venv")
    commit_all(root)
    return root


@pytest.fixture
def sample_repo(tmp_path: Path) -> Path:
    """The bundled example repo, as a fresh git repo with its own venv."""
    repo = tmp_path / "sample"
    shutil.copytree(SAMPLE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
    return init_repo(repo, {})


def checkout_tests(repo: Path, branch: str, where: Path) -> subprocess.CompletedProcess[str]:
    """The repo's tests, with its own venv, on `branch` checked out in a worktree at `where`."""
    git(repo, "worktree", "add", "-q", str(where), branch)
    return subprocess.run(
        [repo / ".venv" / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=where, capture_output=True, text=True, check=False,
    )  # fmt: skip


def fixbot(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`fixbot ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "fixbot", *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def report_of(repo: Path) -> dict:
    """The report of the latest run (by when it was written: two runs may share a second)."""
    reports = (repo / ".git" / "fixbot" / "runs").glob("*/report.json")
    return json.loads(max(reports, key=lambda p: p.stat().st_mtime_ns).read_text())
