"""The installed package: one `fixbot` namespace, beside a distribution that owns `agents`.

openai-agents (a top-1,000 PyPI project) installs a top-level `agents` package. When
fixbot installed top-level `agents`, `sandbox` and `orchestrator`, the two overwrote
each other's files. Here fixbot's wheel is built and installed into a fresh venv next
to such a distribution: both must work.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT, init_repo


def pip(python: Path, *args: str | Path) -> None:
    """The test's pip, installing into another venv (offline: no deps, no isolation)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-build-isolation", *map(str, args)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with fixbot's wheel and a distribution that owns top-level `agents`."""
    root = tmp_path_factory.mktemp("install")
    other = root / "other"
    (other / "agents").mkdir(parents=True)
    (other / "agents" / "__init__.py").write_text('NAME = "the other agents"\n')
    (other / "pyproject.toml").write_text(
        '[project]\nname = "other-agents"\nversion = "1"\n'
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    # fixbot's dependencies come from this interpreter's site-packages (a path, not a site
    # dir: its editable-install hooks are not run, so only the wheel provides `fixbot`).
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip(python, other)
    pip(python, ROOT)
    return venv


def run(venv: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*map(str, args)], cwd=cwd, capture_output=True, text=True, check=False,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)},
    )  # fmt: skip


def test_both_import(venv: Path, tmp_path: Path) -> None:
    """The other distribution's `agents` is its own; fixbot's lives under `fixbot.agents`."""
    python = venv / "bin" / "python"
    code = (
        "import agents, fixbot.agents, fixbot.sandbox, fixbot.orchestrator.cli\n"
        "assert agents.NAME == 'the other agents'\n"
        "assert hasattr(fixbot.agents, 'RuffAgent')\n"
        "from importlib import resources\n"
        "assert resources.files('fixbot.configs').joinpath('default.toml').is_file()\n"
    )
    done = run(venv, python, "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("sandbox", "orchestrator", "configs"):
        alone = run(venv, python, "-c", f"import {name}", cwd=tmp_path)
        assert "ModuleNotFoundError" in alone.stderr, name


def test_fixbot_runs(venv: Path, tmp_path: Path) -> None:
    """`fixbot --help`, `python -m fixbot` and a small run, from the installed wheel."""
    assert run(venv, venv / "bin" / "fixbot", "--help", cwd=tmp_path).returncode == 0
    assert (
        run(venv, venv / "bin" / "python", "-m", "fixbot", "--help", cwd=tmp_path).returncode == 0
    )
    repo = init_repo(tmp_path / "r", {"pkg/core.py": "import os\n\nX = 1\n"}, venv=False)
    done = run(
        venv, venv / "bin" / "fixbot", "run", repo, "--select", "F401", "--test-cmd", "",
        "--dry-run", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "violations 1 -> 0" in done.stdout
