"""The final gate: lint and the whole suite on the merged tree, culprits dropped.

Every patch was proven already, but patches proven in different batches can
still fail together. The gate proves each changed file's whole chain against
the base, as one batch; a failure is bisected to the culprit files, whose
patches are dropped, and the rest is proven again. The branch is never worse
than the base.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import structlog

from fixbot.sandbox import Candidate

if TYPE_CHECKING:
    from fixbot.sandbox import Prover, Worktree

    from ._job import Job

log = structlog.get_logger("fixbot")
ROUNDS = 3


def _drop(job: Job, reference: Worktree, reason: str, detail: str) -> None:
    job.drop_accepted(reason, detail, reference.read(job.path))


def _candidate(job: Job, reference: Worktree) -> Candidate:
    """A file's accepted chain as one step from the base. Its fixes' findings are its
    targets, for what a fix revealed (the base holds those of round 1's fixes); where
    agents that may reveal and others share the file, none of it was revealed."""
    accepted = [r for r in job.records if r.status == "accepted"]
    agents = {r.patch.agent for r in accepted}
    return Candidate(
        key=job.path,
        agent=agents.pop() if len(agents) == 1 else "mixed",
        before={job.path: reference.read(job.path)},
        after={job.path: job.content},
        targets=Counter(v.fingerprint for r in accepted for v in r.patch.targets),
        accepted_chain=True,
    )


async def final_gate(prover: Prover, jobs: list[Job], reference: Worktree) -> None:
    """Prove the merged tree; drop culprits until it passes, or drop everything."""
    for _ in range(ROUNDS):
        changed = [j for j in jobs if any(r.status == "accepted" for r in j.records)]
        if not changed:
            return
        candidates = [_candidate(job, reference) for job in changed]
        verdicts = await prover.prove(candidates, {}, whole=True, split=True)
        culprits = [j for j in changed if not verdicts[j.path].accepted]
        if not culprits:
            return
        for job in culprits:
            verdict = verdicts[job.path]
            log.warning("gate.dropped", path=job.path, reason=verdict.reason)
            _drop(job, reference, f"gate: {verdict.reason}", verdict.detail)
    # Still failing: land nothing rather than anything unproven.
    for job in jobs:
        _drop(job, reference, "gate: did not settle", f"the merged tree failed {ROUNDS} gates")
