"""How a task narrows a failing chain down (orchestrator/_job.py), without running anything."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING

from hypothesis import given, settings
from hypothesis import strategies as st

from fixbot.agents import RuffAgent, Stage, Task
from fixbot.orchestrator._chains import cosmetic, suspected
from fixbot.orchestrator._job import Job
from fixbot.sandbox import FileChange, Fix, Location, Patch, Verdict, Violation, sha256
from fixbot.sandbox._types import Fault

if TYPE_CHECKING:
    from collections.abc import Collection

PATH = "pkg/m.py"


def violation(name: str, applicability: str) -> Violation:
    return Violation(
        code=name,
        name=name.lower(),
        message=name,
        path=PATH,
        location=Location(1, 1),
        end_location=Location(1, 2),
        fix=Fix(applicability),  # type: ignore[arg-type]
        fingerprint=f"fp-{name}",
    )


def step(path: str, number: int, target: Violation, new: bytes) -> Patch:
    """The chain's `number`th step: `target` fixed, `new` left in `path`."""
    return Patch(
        id=f"{path}@fix.1.{number}",
        agent="ruff",
        kind=target.applicability or "llm",
        rules=(target.rule,),
        files=(path,),
        targets=(target,),
        changes=(FileChange(path=path, old_sha=sha256(b""), new=new),),
    )


def chain(*targets: Violation) -> list[Patch]:
    return [step(PATH, i, v, f"x = {i}\n".encode()) for i, v in enumerate(targets, 1)]


def job() -> Job:
    agent = RuffAgent("ruff", None, modes=("fix",))
    return Job(Task(PATH, (PATH,), ()), [Stage(agent, "fix")], b"x = 0\n")


REJECTED = Verdict(patch_id=PATH, accepted=False, reason="tests", detail="t::x failed")
PROVEN = Verdict(patch_id=PATH, accepted=True, reason="proven")
SAFE = [violation(f"S{i}", "safe") for i in range(5)]
RISKY = [violation(f"U{i}", "unsafe") for i in range(3)]


class TestNarrowing:
    """A rejected chain is narrowed down, never thrown away whole."""

    def test_risky_fixes_are_probed_one_by_one(self):
        """Each unsafe fix is tried alone, all at once; the safe rest is held back."""
        j = job()
        j.pending = chain(*SAFE, *RISKY)
        j.settle(REJECTED)
        assert j.queue == []
        assert j.held == {v.fingerprint for v in SAFE}
        assert sorted(j.probes) == sorted(frozenset({v.fingerprint}) for v in RISKY)
        assert j.active

    def test_held_safe_fixes_come_back_with_the_passing_probes(self):
        """One chain of the safe rest and the probes that passed; the failing probe is refused."""
        j = job()
        j.pending = chain(*SAFE, *RISKY)
        j.settle(REJECTED)
        j.probe_pending = [(group, chain(*RISKY)) for group in sorted(j.probes)]
        j.probes = []
        j.settle_probes([PROVEN, REJECTED, PROVEN], b"x = 0\n")
        (bad,) = j.blocked
        assert j.queue == [{v.fingerprint for v in (*SAFE, *RISKY)} - {bad}]
        assert j.held == frozenset()

    def test_a_failing_held_chain_is_probed_where_untried_then_halved(self):
        """When the safe rest with the good probes fails, the safe fixes (never tried) are
        each tried alone; when all have passed a probe and the chain still fails, it is
        halved in the queue, never probed in a loop."""
        j = job()
        j.pending = chain(*SAFE, *RISKY)
        j.settle(REJECTED)
        j.probe_pending = [(group, chain(*RISKY)) for group in sorted(j.probes)]
        j.probes = []
        j.settle_probes([PROVEN, PROVEN, PROVEN], b"x = 0\n")
        j.pending = chain(*SAFE, *RISKY)
        j.settle(REJECTED)
        assert sorted(j.probes) == sorted(frozenset({v.fingerprint}) for v in SAFE)
        assert j.held == {v.fingerprint for v in RISKY}
        j.probe_pending = [(group, chain(*SAFE)) for group in sorted(j.probes)]
        j.probes = []
        j.settle_probes([PROVEN] * len(SAFE), b"x = 0\n")
        j.pending = chain(*SAFE, *RISKY)
        j.settle(REJECTED)
        assert not j.probes
        assert j.queue == [{v.fingerprint for v in SAFE}, {v.fingerprint for v in RISKY}]

    def test_held_fixes_are_released_when_no_probe_is_tried(self):
        """If no probe had anything to propose, the held safe fixes are asked for at once."""
        j = job()
        j.pending = chain(*SAFE, *RISKY)
        j.settle(REJECTED)
        j.probes = []
        j.release_held()
        assert j.queue == [{v.fingerprint for v in SAFE}]

    def test_probes_that_pass_are_asked_for_together(self):
        """Passing probes come back as one group; a failing one is refused and blocked."""
        j = job()
        j.pending = chain(*RISKY)
        j.settle(REJECTED)
        j.probe_pending = [(group, chain(*RISKY)) for group in j.probes]
        j.probes = []
        verdicts = [PROVEN, REJECTED, PROVEN]
        j.settle_probes(verdicts, b"x = 0\n")
        bad = sorted(j.blocked)
        assert len(bad) == 1
        assert j.queue[0] | set(bad) == {v.fingerprint for v in RISKY}
        assert [r.status for r in j.records] == ["rejected"]

    def test_fixes_that_passed_alone_but_fail_together_are_halved(self):
        """No endless probing: a group of already-probed fixes is split in halves."""
        j = job()
        j.pending = chain(*RISKY)
        j.settle(REJECTED)
        j.probe_pending = [(group, chain(*RISKY)) for group in sorted(j.probes)]
        j.probes = []
        j.settle_probes([PROVEN, PROVEN, PROVEN], b"x = 0\n")
        j.pending = chain(*RISKY)
        j.settle(REJECTED)
        assert not j.probes
        assert len(j.queue) == 2
        assert j.queue[0] | j.queue[1] == {v.fingerprint for v in RISKY}

    def test_where_fixes_alone_mostly_fail_a_big_group_is_probed_fix_by_fix(self):
        """2 of 3 refused alone: a failing group of 20 is tried each alone, not halved."""
        many = [violation(f"S{i:02d}", "safe") for i in range(20)]
        for refused, expected in ((1, "halved"), (2, "alone")):
            j = job()
            j.pending = chain(*RISKY)
            j.settle(REJECTED)
            j.probe_pending = [(group, chain(*RISKY)) for group in sorted(j.probes)]
            j.probes = []
            j.settle_probes([REJECTED] * refused + [PROVEN] * (3 - refused), b"x = 0\n")
            j.queue, j.held = [None], frozenset()
            j.pending = chain(*many)
            j.settle(REJECTED)
            if expected == "alone":
                assert sorted(j.probes) == sorted(frozenset({v.fingerprint}) for v in many)
                assert j.queue == []
            else:
                assert [len(g) for g in j.probes] == [10, 10]
                assert j.queue == []

    def test_a_big_group_is_probed_in_halves_side_by_side(self):
        """20 safe fixes fail: both halves are probed in one round; a failing half is
        split again, a passing one waits with the held fixes until the probes are done."""
        many = [violation(f"S{i:02d}", "safe") for i in range(20)]
        j = job()
        j.pending = chain(*many)
        j.settle(REJECTED)
        assert [len(g) for g in j.probes] == [10, 10]
        assert j.queue == []
        first, second = j.probes
        j.probe_pending = [(first, chain(*many[:10])), (second, chain(*many[10:]))]
        j.probes = []
        j.settle_probes([PROVEN, REJECTED], b"x = 0\n")
        assert [len(g) for g in j.probes] == [5, 5]
        assert j.held == first
        assert j.queue == []

    def test_only_what_was_asked_is_narrowed(self):
        """Fixes a chain's own steps uncovered are never split off as groups of their own."""
        j = job()
        asked = frozenset({RISKY[0].fingerprint})
        j.queue = [asked]
        j.pending = chain(RISKY[0], SAFE[0])  # SAFE[0] uncovered by the first step
        j.settle(REJECTED)
        assert RISKY[0].fingerprint in j.blocked
        assert SAFE[0].fingerprint not in j.blocked
        assert not j.probes
        assert not j.active  # nothing else was asked: the stage is done


SOURCE = (
    b"def alpha(x):\n    return x == None\n\n\ndef beta(d):\n    return list(d.keys())\n"
    b"\n\ndef gamma(x):\n    return x == True\n"
)


def in_function(name: str, row: int) -> Violation:
    """An unsafe fix's finding on `row` of SOURCE."""
    v = violation(name, "unsafe")
    return dataclasses.replace(v, location=Location(row, 5), end_location=Location(row, 10))


def steps_on_source(*targets: Violation) -> list[Patch]:
    """A chain on SOURCE whose steps change the code on their target's row (`;0` added,
    but to a `def` line), so that SOURCE's functions stay where they are (a step that
    leaves the code around its fix the same is never a suspect)."""
    lines, out = SOURCE.splitlines(keepends=True), []
    for p, v in zip(chain(*targets), targets, strict=True):
        if not lines[v.location.row - 1].startswith(b"def "):
            lines[v.location.row - 1] = lines[v.location.row - 1].replace(b"\n", b";0\n")
        new = b"".join(lines)
        out.append(p.model_copy(update={"changes": (FileChange(path=PATH, old_sha="", new=new),)}))
    return out


class TestClues:
    """Where the failing tests' reports name a function, its fixes are tried alone first."""

    E711 = in_function("E711", 2)
    SIM118 = in_function("SIM118", 6)
    SIM300 = in_function("SIM300", 6)
    E712 = in_function("E712", 10)

    def settle_with_clues(self, clues: tuple[str, ...], *risky: Violation) -> Job:
        j = Job(job().task, job().stages, SOURCE)
        j.pending = steps_on_source(*SAFE[:2], *risky)
        j.settle(REJECTED.model_copy(update={"clues": clues}))
        return j

    def test_the_named_functions_fixes_are_probed_alone_the_rest_together(self):
        """`beta` named: its fix alone, the other risky fixes in one probe, the safe held."""
        j = self.settle_with_clues(("beta",), self.E711, self.SIM118)
        assert j.probes == [{self.SIM118.fingerprint}, {self.E711.fingerprint}]
        assert j.suspects == {self.SIM118.fingerprint}
        assert j.held == {v.fingerprint for v in SAFE[:2]}

    def test_fixes_are_placed_through_the_lines_earlier_steps_added(
        self, parsed: list[bytes]
    ) -> None:
        """A first step wraps alpha's return over three lines, moving beta down two: the
        SIM118 fix on beta's row (8 in its step's content) is beta's, found by mapping
        its row back to SOURCE, the one content parsed."""
        wrapped = SOURCE.replace(b"return x == None", b"return (\n        x is None\n    )")
        moved = dataclasses.replace(
            self.SIM118, location=Location(8, 5), end_location=Location(8, 10)
        )
        first, second = chain(self.E711, moved)
        fixed = wrapped.replace(b"list(d.keys())", b"list(d)")
        steps = [
            first.model_copy(update={"changes": (FileChange(path=PATH, old_sha="", new=wrapped),)}),
            second.model_copy(update={"changes": (FileChange(path=PATH, old_sha="", new=fixed),)}),
        ]
        assert suspected(steps, SOURCE, {"beta"}) == {moved.fingerprint}
        assert suspected(steps, SOURCE, {"alpha"}) == {self.E711.fingerprint}
        assert parsed == [SOURCE]

    def test_clues_naming_every_risky_fix_change_nothing(self):
        """When the clues point everywhere, each risky fix is probed alone as before."""
        j = self.settle_with_clues(("alpha", "beta"), self.E711, self.SIM118)
        assert sorted(j.probes) == sorted(
            [frozenset({self.E711.fingerprint}), frozenset({self.SIM118.fingerprint})]
        )
        assert not j.suspects

    def test_a_failing_probe_of_the_rest_is_probed_fix_by_fix(self):
        """The hunch was wrong: the fixes it did not point at are each tried alone next."""
        j = self.settle_with_clues(("alpha",), self.E711, self.SIM118, self.SIM300)
        assert j.probes[0] == {self.E711.fingerprint}
        j.probe_pending = [(group, steps_on_source(self.E711)) for group in j.probes]
        j.probes = []
        j.settle_probes([PROVEN, REJECTED], SOURCE)
        assert not j.blocked  # nothing refused on the strength of a group
        assert sorted(j.probes) == sorted(
            [frozenset({self.SIM118.fingerprint}), frozenset({self.SIM300.fingerprint})]
        )
        # What passed waits for those probes: no chain lands beside them.
        assert not j.queue
        assert j.held == {self.E711.fingerprint, *(v.fingerprint for v in SAFE[:2])}

    def test_the_next_group_is_predicted_for_one_suspect(self):
        """One suspect: if it fails and the rest passes, next comes the rest with the safe."""
        j = self.settle_with_clues(("beta",), self.E711, self.SIM118)
        j.probe_pending = [(group, steps_on_source(self.E711)) for group in j.probes]
        j.probes = []
        expected = {self.E711.fingerprint, *(v.fingerprint for v in SAFE[:2])}
        assert j.predicted_group() == expected
        j.settle_probes([REJECTED, PROVEN], SOURCE)
        assert j.queue == [expected]  # what settling does when the guess was right

    def test_the_suspect_the_failing_line_points_at_is_guessed_the_culprit(self):
        """Two suspects, the failing line in `beta`: its fix is guessed to fail, `alpha`'s
        to pass with the other risky fix and the safe ones."""
        j = Job(job().task, job().stages, SOURCE)
        j.pending = steps_on_source(*SAFE[:2], self.E711, self.SIM118, self.E712)
        j.settle(REJECTED.model_copy(update={"clues": ("alpha", "beta"), "pointed": ("beta",)}))
        assert j.suspects == {self.E711.fingerprint, self.SIM118.fingerprint}
        j.probe_pending = [(group, steps_on_source(self.E711)) for group in j.probes]
        j.probes = []
        assert j.guessed_culprit() == {self.SIM118.fingerprint}
        expected = {
            self.E711.fingerprint,
            self.E712.fingerprint,
            *(v.fingerprint for v in SAFE[:2]),
        }
        assert j.predicted_group() == expected
        verdicts = [
            REJECTED if group == {self.SIM118.fingerprint} else PROVEN
            for group, _ in j.probe_pending
        ]
        j.settle_probes(verdicts, SOURCE)
        assert j.queue == [expected]  # what settling does when the guess was right

    def test_no_prediction_with_two_suspects(self):
        """Two suspects and no failing line that points at one of them alone: which one
        passes cannot be guessed, so nothing is predicted."""
        j = self.settle_with_clues(("beta",), self.E711, self.SIM118, self.SIM300)
        j.probe_pending = [(group, steps_on_source(self.E711)) for group in j.probes]
        assert len(j.suspects) == 2
        assert j.predicted_group() is None

    def test_a_group_refused_for_a_limit_is_split_too(self):
        """Whatever refused the group (tests, a limit, lint), its fixes are tried alone."""
        j = self.settle_with_clues(("alpha",), self.E711, self.SIM118, self.SIM300)
        j.probe_pending = [(group, steps_on_source(self.E711)) for group in j.probes]
        j.probes = []
        limit = REJECTED.model_copy(update={"reason": "limit"})
        j.settle_probes([PROVEN, limit], SOURCE)
        assert not j.blocked
        assert len(j.probes) == 2

    def test_probes_asked_by_a_chain_in_the_same_round_are_kept(self):
        """A chain refused beside a failing group probe: both sets of probes are tried."""
        j = self.settle_with_clues(("alpha",), self.E711, self.SIM118, self.SIM300)
        others = j.probes[1]
        j.probe_pending = [(others, steps_on_source(self.SIM118, self.SIM300))]
        j.probes = []
        j.queue = [frozenset({SAFE[2].fingerprint, SAFE[3].fingerprint})]
        j.pending = steps_on_source(SAFE[2], SAFE[3])
        j.settle(REJECTED)  # asks for SAFE[2] and SAFE[3] alone
        j.settle_probes([REJECTED], SOURCE)  # asks for SIM118 and SIM300 alone
        singles = {fp for group in j.probes for fp in group}
        assert singles == {SAFE[2].fingerprint, SAFE[3].fingerprint} | others


LINT = Verdict(patch_id=PATH, accepted=False, reason="lint", detail="new violations: D103")


def fault(blame, culprits=None) -> Verdict:
    """A lint refusal pinned on one step's fixes."""
    pinned = Fault(blame=tuple(blame), detail="new violations: X", culprits=culprits or {})
    return LINT.model_copy(update={"faults": (pinned,)})


class TestStaticNarrowing:
    """A chain lint refuses is narrowed without a test run, pinned by the verdict's faults."""

    def test_one_fix_to_blame_is_refused(self):
        """A fault pinned on one fix: refused for good, and asked for no more."""
        j = job()
        j.pending = chain(*RISKY)
        blamed = RISKY[1].fingerprint
        assert j.refuse_static(fault([blamed]))
        assert j.blocked == {blamed}
        (record,) = j.records
        assert (record.status, [v.fingerprint for v in record.patch.targets]) == (
            "rejected",
            [blamed],
        )
        assert j.pending == []

    def test_culprits_are_refused_at_once(self):
        """Fixes whose own lines hold what is new are refused together, each naming its finding."""
        j = job()
        j.pending = chain(*SAFE)
        blame = [v.fingerprint for v in SAFE]
        culprits = {SAFE[1].fingerprint: "new violations: A", SAFE[3].fingerprint: "new: B"}
        assert j.refuse_static(fault(blame, culprits))
        assert j.blocked == set(culprits)
        assert sorted(r.verdict.detail for r in j.records) == sorted(culprits.values())
        assert len({r.patch.id for r in j.records}) == 2  # ids stay unique in the report
        assert j.groups == []  # the rest is asked for again whole

    def test_no_culprit_halves(self):
        """Without a culprit, the fixes at fault are split in two steps."""
        j = job()
        j.pending = chain(*SAFE[:4])
        blame = sorted(v.fingerprint for v in SAFE[:4])
        assert j.refuse_static(fault(blame))
        assert j.groups == [frozenset(blame[:2]), frozenset(blame[2:])]
        assert j.records == []

    def test_nothing_to_blame_takes_the_usual_way(self):
        """A refusal pinned on nothing (a policy one) is not narrowed here."""
        j = job()
        j.pending = chain(*SAFE)
        assert not j.refuse_static(LINT)
        assert j.pending


TEST_PATH = "tests/test_m.py"


def module_of_tests(touched: Collection[int], functions: int) -> bytes:
    """A module of `functions` tests, four lines each; the `touched` ones edited (each
    time it is named, as in a Counter: every step changes the code)."""
    times = touched if isinstance(touched, Counter) else Counter(set(touched))
    return b"".join(
        f"def test_f{k}():\n    v = {times[k]}\n\n\n".encode() for k in range(functions)
    )


def scoped_chain(fixes: list[Violation], functions: int, landed: set[int]) -> list[Patch]:
    """A chain in TEST_PATH on top of the `landed` edits: each fix edits the test whose
    body holds its row."""
    touched = Counter(landed)
    out = []
    for i, v in enumerate(fixes, 1):
        touched[(v.location.row - 2) // 4] += 1
        out.append(step(TEST_PATH, i, v, module_of_tests(touched, functions)))
    return out


def drive(
    j: Job,
    fixes: dict[str, Violation],
    bad: set[str],
    rounds: int = 200,
    functions: int | None = None,
) -> set[str]:
    """Rounds as FanOut runs them, where a chain or probe passes when it holds no bad fix;
    the fixes that landed. With `functions`, the fixes lie in the tests of a test
    module (row 2 + 4k is in test_fk), and a failing verdict names the tests that hold
    a bad fix."""

    def make(left: list[Violation]) -> list[Patch]:
        if functions is None:
            return chain(*left)
        done = {(fixes[fp].location.row - 2) // 4 for fp in landed}
        return scoped_chain(left, functions, done)

    def verdict(patches: list[Patch]) -> Verdict:
        held = [v for p in patches for v in p.targets if v.identity in bad]
        if not held:
            return PROVEN
        if functions is None:
            return REJECTED
        failing = sorted({f"{TEST_PATH}::test_f{(v.location.row - 2) // 4}" for v in held})
        return REJECTED.model_copy(update={"failing_tests": tuple(failing)})

    landed: set[str] = set()
    for _ in range(rounds):
        if not j.active:
            return landed
        # Proposing: the head of the queue (all that is left when None), unless probes run.
        while j.active and j.queue and not j.pending and not j.probes:
            group = j.queue[0]
            left = [
                v
                for fp, v in sorted(fixes.items())
                if fp not in landed | j.blocked and (group is None or fp in group)
            ]
            j.proposed(make(left))
        for group in j.probes:
            j.probe_proposed(
                group, make([fixes[fp] for fp in sorted(group) if fp not in landed | j.blocked])
            )
        j.end_proposing()
        if j.pending:
            asked = {v.identity for p in j.pending for v in p.targets}
            result = verdict(j.pending)
            if result.accepted:
                landed |= asked
            j.settle(result)
        if j.probe_pending:
            verdicts = [verdict(c) for _, c in j.probe_pending]
            j.settle_probes(verdicts, j.content)
    raise AssertionError("narrowing did not end")


class TestNarrowingEnds:
    """Whatever the mix of fixes and bad ones, narrowing ends, and lands every good fix."""

    @settings(max_examples=300, deadline=None)
    @given(
        safe=st.integers(0, 40),
        unsafe=st.integers(0, 12),
        bad=st.sets(st.integers(0, 51), max_size=20),
    )
    def test_every_good_fix_lands_and_no_bad_one(self, safe: int, unsafe: int, bad: set[int]):
        """No bad fix lands, every good one does, each bad one is refused on its own."""
        kinds = ["safe"] * safe + ["unsafe"] * unsafe
        fixes = {f"fp-F{i:02d}": violation(f"F{i:02d}", k) for i, k in enumerate(kinds)}
        bad_fps = {f"fp-F{i:02d}" for i in bad if i < len(kinds)}
        j = job()
        j.max_proposals = 10_000  # the bound is a guard; here, the narrowing must end by itself
        landed = drive(j, fixes, bad_fps)
        assert landed == set(fixes) - bad_fps
        refused = {v.identity for r in j.records if r.status == "rejected" for v in r.patch.targets}
        assert refused == bad_fps
        assert all(len(r.patch.targets) == 1 for r in j.records if r.status == "rejected")

    @settings(max_examples=200, deadline=None)
    @given(
        placed=st.lists(st.tuples(st.integers(0, 7), st.booleans()), max_size=30),
        bad=st.sets(st.integers(0, 29), max_size=12),
    )
    def test_in_a_test_module_too(self, placed: list[tuple[int, bool]], bad: set[int]):
        """The same, where the fixes lie in test functions and a failure names its tests
        (fixes in the tests that passed are cleared by the run)."""
        fixes = {}
        for i, (function, safe) in enumerate(placed):
            v = violation(f"F{i:02d}", "safe" if safe else "unsafe")
            at = Location(2 + 4 * function, 5)
            fixes[f"fp-F{i:02d}"] = dataclasses.replace(
                v, path=TEST_PATH, location=at, end_location=at
            )
        bad_fps = {f"fp-F{i:02d}" for i in bad if i < len(placed)}
        agent = RuffAgent("ruff", None, modes=("fix",))
        j = Job(Task(TEST_PATH, (TEST_PATH,), ()), [Stage(agent, "fix")], module_of_tests(set(), 8))
        j.max_proposals = 10_000
        landed = drive(j, fixes, bad_fps, functions=8)
        assert landed == set(fixes) - bad_fps
        refused = {v.identity for r in j.records if r.status == "rejected" for v in r.patch.targets}
        assert refused == bad_fps
        assert all(len(r.patch.targets) == 1 for r in j.records if r.status == "rejected")


class TestClearedByTheRun:
    """In a test module, fixes in tests that passed are held, not probed."""

    def fixes(self, functions: list[int], applicability: str = "unsafe") -> list[Violation]:
        out = []
        for i, function in enumerate(functions):
            at = Location(2 + 4 * function, 5)
            v = violation(f"F{i}", applicability)
            out.append(dataclasses.replace(v, path=TEST_PATH, location=at, end_location=at))
        return out

    def settle(self, fixes: list[Violation], failing: tuple[str, ...]) -> Job:
        agent = RuffAgent("ruff", None, modes=("fix",))
        j = Job(Task(TEST_PATH, (TEST_PATH,), ()), [Stage(agent, "fix")], module_of_tests(set(), 6))
        j.pending = scoped_chain(fixes, 6, set())
        j.settle(REJECTED.model_copy(update={"failing_tests": failing}))
        return j

    def test_only_the_failing_tests_fixes_are_probed(self):
        """Six fixes in six tests, test_f2 failed: its fix alone is probed, five are held."""
        fixes = self.fixes([0, 1, 2, 3, 4, 5])
        j = self.settle(fixes, (f"{TEST_PATH}::test_f2",))
        assert j.probes == [{fixes[2].identity}]
        assert j.held == {v.identity for i, v in enumerate(fixes) if i != 2}

    def test_fixes_of_one_failing_test_are_narrowed_among_themselves(self):
        """Two fixes in the failing test: each is probed alone; the rest is held."""
        fixes = self.fixes([0, 2, 2, 3])
        j = self.settle(fixes, (f"{TEST_PATH}::test_f2",))
        assert sorted(j.probes) == sorted(frozenset({v.identity}) for v in fixes[1:3])
        assert j.held == {fixes[0].identity, fixes[3].identity}

    def test_many_safe_fixes_in_the_failing_test_are_each_probed_at_once(self):
        """Ten safe fixes in test_f2, which failed: each alone, now; the one elsewhere held."""
        fixes = self.fixes([2] * 10 + [4], "safe")
        j = self.settle(fixes, (f"{TEST_PATH}::test_f2",))
        assert sorted(j.probes) == sorted(frozenset({v.identity}) for v in fixes[:10])
        assert j.held == {fixes[10].identity}

    def test_a_fix_in_the_failing_test_is_probed_alone_beside_many_risky_ones(self):
        """Nine unsafe fixes outside the failing test, one inside it: that one alone, the
        nine together, the safe held, in one round (halving took three on test_tz.py)."""
        *others, inside, safe = self.fixes([0, 1, 3, 4, 5, 0, 1, 3, 4, 2, 5])
        safe = dataclasses.replace(safe, fix=Fix("safe"))
        # A failure in another module too: nothing is cleared by the tests that passed.
        failing = (f"{TEST_PATH}::test_f2", "tests/test_b.py::test_x")
        j = self.settle([*others[:5], inside, safe, *others[5:]], failing)
        assert j.probes == [{inside.identity}, {v.identity for v in others}]
        assert j.suspects == {inside.identity}
        assert j.held == {safe.identity}

    def test_a_fix_in_the_failing_tests_decorator_is_in_that_test(self):
        """A fix in the parametrize list of the failing test (PT014 dropping a duplicate
        case) is that test's: probed alone, the risky fixes elsewhere together."""
        source = b"import pytest\n\n\n@pytest.mark.parametrize('x', [1, 1])\ndef test_a(x):\n"
        source += b"    assert x\n"
        # Each step changes the code: the parametrize list, then the import line twice.
        contents = [source.replace(b"[1, 1]", b"[1]"), b"import os\n" + source[7:]]
        contents.append(b"import sys\n" + contents[1])
        at = {"PT014": (4, "safe"), "UP009": (1, "unsafe"), "I001": (1, "unsafe")}
        j = job_on_test_module(source, at, contents)
        failing = (f"{TEST_PATH}::test_a[1-1]", "tests/test_b.py::test_x")
        j.settle(REJECTED.model_copy(update={"failing_tests": failing}))
        assert j.probes == [{"fp-PT014"}, {"fp-UP009", "fp-I001"}]

    def test_a_fix_that_leaves_the_same_code_is_no_suspect(self):
        """In the failing test, a step that only swaps quotes (same syntax tree) is held;
        the step that changed the code is probed alone, the other risky fixes together."""
        start = b"import os\n\n\ndef test_a():\n    x = 'a'\n    assert [1, 1] != x\n"
        quoted = start.replace(b"'a'", b'"a"')
        shorter = quoted.replace(b"[1, 1]", b"[1]")
        unused = shorter.replace(b"import os\n", b"")
        at = {"Q000": (5, "safe"), "PT014": (6, "unsafe"), "F401": (1, "unsafe")}
        j = job_on_test_module(start, at, [quoted, shorter, unused])
        failing = (f"{TEST_PATH}::test_a", "tests/test_b.py::test_x")
        j.settle(REJECTED.model_copy(update={"failing_tests": failing}))
        assert j.probes == [{"fp-PT014"}, {"fp-F401"}]
        assert j.held == {"fp-Q000"}

    def test_a_failure_elsewhere_clears_nothing(self):
        """A test in another module failed: every fix is probed as before."""
        fixes = self.fixes([0, 1, 2])
        j = self.settle(fixes, ("tests/test_other.py::test_x",))
        assert sorted(j.probes) == sorted(frozenset({v.identity}) for v in fixes)
        assert not j.held


def job_on_test_module(source: bytes, at: dict[str, tuple[int, str]], contents: list[bytes]) -> Job:
    """A job on a test module, pending a chain of one step per rule of `at` (its row and
    kind), each leaving the next of `contents`."""
    fixes = [
        dataclasses.replace(violation(rule, kind), path=TEST_PATH, location=Location(row, 1))
        for rule, (row, kind) in at.items()
    ]
    agent = RuffAgent("ruff", None, modes=("fix",))
    j = Job(Task(TEST_PATH, (TEST_PATH,), ()), [Stage(agent, "fix")], source)
    j.pending = [
        step(TEST_PATH, i, v, new)
        for i, (v, new) in enumerate(zip(fixes, contents, strict=True), 1)
    ]
    return j


class TestCosmetic:
    """Which fixes leave the def or class around them the same code."""

    SOURCE = b"class TestA:\n    def test_a(self):\n        assert 'a' != [1, 1]\n"

    def steps(self, *contents: bytes) -> list[Patch]:
        target = dataclasses.replace(violation("X", "safe"), location=Location(3, 9))
        return [step(PATH, i, target, c) for i, c in enumerate(contents, 1)]

    def test_quotes_in_a_method_are_cosmetic(self):
        """An indented method, its quotes swapped: the same code."""
        quoted = self.SOURCE.replace(b"'a'", b'"a"')
        assert cosmetic(self.steps(quoted), self.SOURCE, {"fp-X"}) == {"fp-X"}

    def test_a_step_that_keeps_the_outline_reads_one_content(self, parsed: list[bytes]) -> None:
        """Quotes swapped: the defs of the content before serve the content after."""
        quoted = self.SOURCE.replace(b"'a'", b'"a"')
        assert cosmetic(self.steps(quoted), self.SOURCE, {"fp-X"}) == {"fp-X"}
        assert parsed == [self.SOURCE]

    def test_a_changed_method_is_not(self):
        """A list made shorter: other code."""
        shorter = self.SOURCE.replace(b"[1, 1]", b"[1]")
        assert cosmetic(self.steps(shorter), self.SOURCE, {"fp-X"}) == set()

    def test_a_step_that_adds_a_def_is_not(self):
        """Defs are paired in order: one more, and nothing is known to be the same."""
        more = self.SOURCE.replace(b"'a'", b'"a"') + b"\n\ndef helper():\n    pass\n"
        assert cosmetic(self.steps(more), self.SOURCE, {"fp-X"}) == set()
