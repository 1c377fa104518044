"""fixbot under a real pseudo-terminal, its output played into a terminal emulator (pyte)."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest
from conftest import init_repo

COLUMNS, LINES = 120, 60
SPINNER = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 120) -> bytes:
    """Run fixbot with a pty as its terminal (stdout and stderr); everything it wrote."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "fixbot", *args],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    os.close(primary)
    assert process.returncode == 0, out.decode(errors="replace")
    return bytes(out)


def screen_of(raw: bytes) -> list[str]:
    """The terminal's lines once all of `raw` is played, trailing blanks cut."""
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    stream.feed(raw.replace(b"\n", b"\r\n"))
    return [line.rstrip() for line in screen.display]


@pytest.fixture
def slow_repo(tmp_path: Path) -> Path:
    """A repo whose suite takes a second, so the live line has time to show itself."""
    return init_repo(
        tmp_path / "repo",
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "import os\n\n\ndef add(a, b):\n    return a + b\n",
            "tests/test_core.py": (
                "import time\n\nfrom pkg.core import add\n\n\n"
                "def test_add():\n    time.sleep(1)\n    assert add(2, 3) == 5\n"
            ),
            "pyproject.toml": (
                '[tool.ruff.lint]\nselect = ["F401"]\n'
                "[tool.pytest.ini_options]\npythonpath = ['.']\n"
            ),
        },
    )


def term_env() -> dict[str, str]:
    """A colour terminal's environment, with fixbot's test-suite JSON logs switched off."""
    env = {k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "FORCE_COLOR", "CI"}}
    env |= {"TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    env.pop("FIXBOT_LOG_FORMAT", None)
    return env


class TestLiveScreen:
    """What a person at a terminal sees."""

    def test_progress_then_a_summary_that_stays(self, slow_repo: Path) -> None:
        """The live line counts; it is gone at the end; the summary is on screen."""
        raw = run_in_pty(["run", str(slow_repo), "--branch", "lint"], term_env())
        text = raw.decode(errors="replace")
        assert "violations decided" in text
        assert "test run" in text
        lines = screen_of(raw)
        shown = "\n".join(lines)
        assert "violations 1 -> 0" in shown
        assert "branch: lint (your checkout was not touched)" in shown
        assert any(line.startswith("report: ") for line in lines)
        assert not any(SPINNER & set(line) for line in lines)  # the status line is gone

    def test_verbose_logs_print_above_the_live_line(self, slow_repo: Path) -> None:
        """-v: each log line whole on its own line, never mixed with the status line."""
        raw = run_in_pty(["run", str(slow_repo), "-v", "--branch", "lint"], term_env())
        lines = screen_of(raw)
        logs = [line for line in lines if "stage.start" in line or "plan.ready" in line]
        assert len(logs) >= 3
        for line in logs:
            assert not SPINNER & set(line), line
            assert "violations decided" not in line, line
        assert "\x1b[" in raw.decode(errors="replace")  # a terminal gets colour

    def test_no_color_on_a_terminal(self, slow_repo: Path) -> None:
        """NO_COLOR: not one colour code, logs included, even on a terminal."""
        env = term_env() | {"NO_COLOR": "1"}
        raw = run_in_pty(["run", str(slow_repo), "-v", "--test-cmd", "", "--dry-run"], env)
        # Colour is SGR 30-38 and 90-97 (foreground), 40-48 and 100-107 (background);
        # bold or italic are not colour, and NO_COLOR leaves them.
        codes = re.findall(rb"\x1b\[([0-9;]*)m", raw)
        colours = [
            c for c in codes for n in c.split(b";") if n and (30 <= int(n) <= 48 or int(n) >= 90)
        ]
        assert not colours
        assert codes  # still a terminal: bold and the like are there
