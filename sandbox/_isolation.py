"""How the repo's code is fenced in: probed once per run, reported as it is.

The strongest rung this machine allows is chosen (notes/safety.md, B2): new
network and PID namespaces with a fresh /proc, so a test can neither reach the
host's loopback services nor read fixbot's environment from /proc, and every
process it starts dies with it. Where namespaces are not allowed the run goes on
with an allow-listed environment and process-group kills, and says so.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field

from ._process import repo_env, run

# `ip` brings the namespace's own loopback up so tests can still run local servers.
_UNSHARE = (
    "--net",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--",
    "sh",
    "-c",
    'ip link set lo up 2>/dev/null; exec "$@"',
    "sh",
)


@dataclass(frozen=True, slots=True)
class Isolation:
    """A command prefix for processes that run the repo's code, and what it gives."""

    wrapper: tuple[str, ...] = ()
    facts: dict[str, str] = field(default_factory=dict)


def _plain() -> Isolation:
    return Isolation(
        (),
        {
            "environment": "allow-listed",
            "network": "host (no namespace available)",
            "processes": "process group killed on timeout",
        },
    )


async def probe_isolation(python: str | None = None) -> Isolation:
    """Find the strongest isolation that works here, by trying it (about 10 ms)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return _plain()
    for prefix in ((unshare, *_UNSHARE), (unshare, "--map-root-user", *_UNSHARE)):
        done = await run(
            [*prefix, python or sys.executable, "-c", "import os; print(os.getpid())"],
            env=repo_env(),
            timeout=10,
        )
        if done.returncode == 0 and done.stdout.strip() == b"1":
            return Isolation(
                prefix,
                {
                    "environment": "allow-listed",
                    "network": "own namespace (no host network; own loopback)",
                    "processes": "own PID namespace, fresh /proc; all killed with the run",
                },
            )
    return _plain()
