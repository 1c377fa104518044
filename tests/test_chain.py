"""sandbox._chain: a chain judged step by step, each finding's identity carried along."""

from __future__ import annotations

import dataclasses

from fixbot.sandbox import Location, Step, Violation
from fixbot.sandbox._types import Fix
from fixbot.sandbox.proof._chain import _found, chain_problem, judge_chain
from fixbot.sandbox.proof._identity import carry_origins, with_identity


def finding(rule: str, fp: str, row: int = 1, message: str = "m") -> Violation:
    """A finding of `rule` at `row`, its fingerprint given outright."""
    return Violation(
        code=rule,
        name=rule.lower(),
        message=message,
        path="a.py",
        location=Location(row, 1),
        end_location=Location(row, 2),
        fingerprint=fp,
    )


class TestCarryOrigins:
    def test_unchanged_finding_keeps_its_identity(self) -> None:
        """A fingerprint that stays is the same finding."""
        (kept,) = carry_origins([finding("E1", "x")], [finding("E1", "x")], [], 1)
        assert (kept.identity, kept.uncovered) == ("x", False)

    def test_rewritten_line_keeps_identity(self) -> None:
        """D400 after D300 rewrote its line: a new fingerprint, the same finding."""
        before = [finding("D300", "q"), finding("D400", "p")]
        (d400,) = carry_origins(before, [finding("D400", "p2")], [before[0]], 1)
        assert d400.identity == "p"
        assert not d400.uncovered

    def test_what_a_step_uncovers_is_marked(self) -> None:
        """F401 on an import UP006 left unused is uncovered by that step."""
        before = [finding("UP006", "u")]
        (f401,) = carry_origins(before, [finding("F401", "f")], before, 2)
        assert (f401.identity, f401.uncovered) == ("+2", True)

    def test_a_fixed_target_never_passes_its_identity_on(self) -> None:
        """A new finding of the fixed rule is uncovered, not the target come back."""
        before = [finding("E1", "x")]
        (again,) = carry_origins(before, [finding("E1", "y", row=5)], before, 1)
        assert again.uncovered

    def test_identity_survives_two_steps(self) -> None:
        """An identity is carried from the chain's start, not from the step before."""
        one = carry_origins([finding("D400", "a")], [finding("D400", "b")], [], 1)
        (two,) = carry_origins(one, [finding("D400", "c")], [], 2)
        assert two.identity == "a"

    def test_a_finding_made_elsewhere_is_new_though_one_of_its_rule_vanished(self) -> None:
        """A long line made at row 2 while the one at row 10 went: new, not the old one moved."""
        kept = [finding("W291", "k1", row=5), finding("W291", "k2", row=20)]
        before = [*kept, finding("E501", "long", row=10, message="Line too long (93 > 88)")]
        made = finding("E501", "made", row=2, message="Line too long (134 > 88)")
        after = [made, finding("W291", "k1", row=5), finding("W291", "k2", row=25)]
        carried = carry_origins(before, after, [], 3)
        assert carried[0].identity == "+3"

    def test_a_rewritten_finding_between_the_same_neighbours_keeps_its_identity(self) -> None:
        """The long line at row 10, rewritten and now at row 14 between the same neighbours."""
        before = [
            finding("W291", "k1", row=5),
            finding("E501", "long", row=10, message="Line too long (93 > 88)"),
            finding("W291", "k2", row=20),
        ]
        moved = finding("E501", "long2", row=14, message="Line too long (92 > 88)")
        after = [finding("W291", "k1", row=5), moved, finding("W291", "k2", row=25)]
        assert carry_origins(before, after, [], 3)[1].identity == "long"

    def test_a_rewritten_line_that_makes_a_twin_is_no_new_finding(self) -> None:
        """tenacity's COM812: a signature split one parameter per line makes `min`'s A002
        look like the two further down; the third of those is not new, nor its identity lost.
        """
        shadow = "Function argument `min` is shadowing a Python builtin"
        before = [
            finding("W291", "k1", row=1),
            finding("A002", "one-line", row=3, message=shadow),
            finding("A002", "twin", row=10, message=shadow),
            finding("W291", "k2", row=15),
            finding("A002", "twin", row=20, message=shadow),
        ]
        after = [
            finding("W291", "k1", row=1),
            finding("A002", "twin", row=5, message=shadow),  # row 3, split over rows 3-6
            finding("A002", "twin", row=13, message=shadow),
            finding("W291", "k2", row=18),
            finding("A002", "twin", row=23, message=shadow),
        ]
        carried = carry_origins(before, after, [], 2)
        assert not [v for v in carried if v.uncovered]
        assert sorted(v.identity for v in carried if v.rule == "A002") == [
            "one-line",
            "twin",
            "twin",
        ]

    def test_twins_moved_past_their_neighbours_keep_their_identity(self) -> None:
        """Two identical imports that I001 moved below another finding are still theirs."""
        before = [finding("F401", "os", row=2), finding("F401", "os", row=3)]
        before.append(finding("E741", "l", row=5))
        after = [finding("E741", "l", row=1), finding("F401", "os", row=6)]
        after.append(finding("F401", "os", row=7))
        carried = carry_origins(before, after, [], 1)
        assert [v.identity for v in carried] == ["l", "os", "os"]

    def test_a_finding_in_a_block_the_step_sorted_may_move_past_its_neighbours(self) -> None:
        """I001 rewrites `from m import b, A` below `from n import c`: its E402 went along."""
        sort = finding("I001", "block", row=5)
        sort = dataclasses.replace(sort, end_location=Location(11, 1))
        before = [sort, finding("E402", "p", row=5), finding("E402", "r", row=8)]
        before.append(finding("E402", "n", row=9))
        after = [finding("E402", "p", row=5), finding("E402", "n", row=6)]
        after.append(finding("E402", "r2", row=9))
        assert [v.identity for v in carry_origins(before, after, [sort], 1)] == ["p", "n", "r"]

    def test_twins_tell_where_rows_went(self) -> None:
        """A long line made at row 2 while the one at row 20 went, with only twins between."""
        before = [finding("W293", "t", row=8), finding("W293", "t", row=10)]
        before.append(finding("E501", "long", row=20, message="Line too long (93 > 88)"))
        after = [finding("E501", "made", row=2, message="Line too long (134 > 88)")]
        after += [finding("W293", "t", row=8), finding("W293", "t", row=10)]
        carried = carry_origins(before, after, [], 1)
        assert [v.location.row for v in carried if v.uncovered] == [2]

    def test_many_twins_pair_in_order(self) -> None:
        """Past 10,000 pairs to weigh (a file of identical lines), twins pair in order:
        the one left over is the last, where pairing closest would leave the first."""
        before = [finding("W293", "blank", row=r) for r in range(2, 103)]
        after = [finding("W293", "blank", row=r) for r in range(1, 103)]
        carried = carry_origins(before, after, [], 1)
        assert [v.location.row for v in carried if v.uncovered] == [102]

    def test_a_twin_made_elsewhere_is_new(self) -> None:
        """A third copy of a finding, beyond the neighbours of the two before, is new."""
        before = [
            finding("W291", "k1", row=1),
            finding("A002", "twin", row=10),
            finding("A002", "twin", row=12),
            finding("W291", "k2", row=15),
        ]
        after = [
            finding("W291", "k1", row=1),
            finding("A002", "twin", row=10),
            finding("A002", "twin", row=12),
            finding("W291", "k2", row=15),
            finding("A002", "twin", row=30),
        ]
        carried = carry_origins(before, after, [], 4)
        assert [v.location.row for v in carried if v.uncovered] == [30]


def lint_table(table: dict[bytes, list[Violation]]):
    """`lint_of` over a table of contents."""
    return lambda _path, data: table[data]


class TestWithIdentity:
    def test_a_finding_carried_again_is_the_same_copy(self) -> None:
        """The same shared finding, known by one identity twice: one copy, not two."""
        v = finding("D400", "p2")
        first, again = with_identity(v, "p"), with_identity(v, "p")
        assert first is again
        assert (first.identity, first.fingerprint) == ("p", "p2")
        assert with_identity(v, "q").identity == "q"  # another identity, another copy

    def test_a_finding_known_by_its_own_fingerprint_is_itself(self) -> None:
        """No copy where nothing changes; a carried copy comes back to its fingerprint."""
        v = finding("E1", "x")
        assert with_identity(v, "x") is v
        assert with_identity(with_identity(v, "y"), "x").origin is None


class TestChainProblem:
    def test_twin_targets_are_two_findings(self) -> None:
        """Two targets of one fingerprint are judged as found: each at its own row."""
        before = [finding("I001", "block", row=3), finding("I001", "block", row=30)]
        before = [before[0], dataclasses.replace(before[1], origin="first-seen-as")]
        targets = [finding("I001", "block", row=30), finding("I001", "block", row=3)]
        assert [(v.location.row, v.identity) for v in _found(targets, before)] == [
            (30, "first-seen-as"),
            (3, "block"),
        ]

    def test_cascade_passes(self) -> None:
        """UP006, then F401 on what it left unused: each step judged on its own content."""
        up006, f401 = finding("UP006", "u"), finding("F401", "f")
        table = {b"0": [up006], b"1": [f401], b"2": []}
        steps = [Step("a.py", b"0", b"1", (up006,)), Step("a.py", b"1", b"2", (f401,))]
        assert chain_problem(steps, lint_table(table)) is None

    def test_target_left_is_named(self) -> None:
        """A step that leaves its target is refused, naming it, and pinned on it."""
        e1 = finding("E1", "x", row=3, message="bad")
        problem = chain_problem(
            [Step("a.py", b"0", b"1", (e1,))], lint_table({b"0": [e1], b"1": [e1]})
        )
        assert problem is not None
        assert problem.detail == "targeted violation remains: E1 a.py:3: bad"
        (fault,) = problem.faults
        assert fault.blame == ("x",)
        assert fault.culprits == {"x": "targeted violation remains: E1 a.py:3: bad"}

    def test_uncovered_and_left_is_new(self) -> None:
        """What a step uncovered and no later step fixed is new, pinned on that step's fixes."""
        e731, d103 = finding("E731", "l"), finding("D103", "d", row=4, message="doc")
        table = {b"0": [e731], b"1": [d103]}
        problem = chain_problem([Step("a.py", b"0", b"1", (e731,))], lint_table(table))
        assert problem is not None
        assert problem.fresh == ("D103 a.py:4: doc",)
        (fault,) = problem.faults
        assert fault.blame == ("l",)

    def test_target_not_in_its_start_content(self) -> None:
        """A target must be in the content its own step starts from."""
        ghost = finding("E1", "ghost")
        problem = chain_problem(
            [Step("a.py", b"0", b"1", (ghost,))], lint_table({b"0": [], b"1": []})
        )
        assert problem is not None
        assert "not found in the content its step starts from" in problem.detail

    def test_blame_goes_back_past_an_uncovered_target(self) -> None:
        """A refused fix of an uncovered finding is pinned on the step that uncovered it."""
        up006, f401 = finding("UP006", "u"), finding("F401", "f")
        table = {b"0": [up006], b"1": [f401], b"2": [f401]}
        steps = [Step("a.py", b"0", b"1", (up006,)), Step("a.py", b"1", b"2", (f401,))]
        problem = chain_problem(steps, lint_table(table))
        assert problem is not None
        (fault,) = problem.faults
        assert fault.blame == ("u",)
        assert fault.culprits == {}  # the fix at fault uncovered nothing on its own lines

    def test_each_step_at_fault_is_named_with_its_culprits(self) -> None:
        """Two fixes of one step each leave a finding on their own lines: both are culprits."""
        a = finding("PT009", "a", row=2)
        b = finding("PT009", "b", row=4)
        ok = finding("PT009", "c", row=6)
        new_a = finding("PLR2004", "n1", row=2, message="magic")
        new_b = finding("PLR2004", "n2", row=4, message="magic")
        before = b"x\nA\nx\nB\nx\nC\n"
        after = b"x\nA2\nx\nB2\nx\nC2\n"
        table = {before: [a, b, ok], after: [new_a, new_b]}
        problem = chain_problem([Step("a.py", before, after, (a, b, ok))], lint_table(table))
        assert problem is not None
        (fault,) = problem.faults
        assert set(fault.blame) == {"a", "b", "c"}
        assert fault.culprits == {
            "a": "new violations: PLR2004 a.py:2: magic",
            "b": "new violations: PLR2004 a.py:4: magic",
        }

    def test_a_culprit_is_traced_back_through_the_fix_it_uncovered(self) -> None:
        """UP031 makes a `.format(` call, UP032 (uncovered) joins it into one line too
        long: the UP031 fix on that line is the culprit, named with the E501."""
        a, b = finding("UP031", "a", row=2), finding("UP031", "b", row=4)
        up032 = finding("UP032", "u", row=2)
        e501 = finding("E501", "e", row=2, message="too long")
        start, formatted = b"x\nA %\nx\nB %\n", b"x\nA .format(\n y)\nx\nB .format()\n"
        joined = b"x\nA f-string\nx\nB .format()\n"
        # A later step rewords the finding (its line's length): it is still the same one.
        quoted = joined.replace(b"B .format()", b"B' .format()")
        shorter = dataclasses.replace(e501, message="shorter", fingerprint="e2")
        q000 = finding("Q000", "q", row=4)
        table = {start: [a, b], formatted: [up032], joined: [e501, q000], quoted: [shorter]}
        steps = [
            Step("a.py", start, formatted, (a, b)),
            Step("a.py", formatted, joined, (up032,)),
            Step("a.py", joined, quoted, (q000,)),
        ]
        problem = chain_problem(steps, lint_table(table))
        assert problem is not None
        (fault,) = problem.faults
        assert set(fault.blame) == {"a", "b"}
        assert fault.culprits == {"a": "new violations: E501 a.py:2: shorter"}

    def test_a_reworded_finding_names_no_culprit_among_several(self) -> None:
        """A step uncovers two E501s; a later step rewords one and takes the other away:
        which fix made the one left cannot be told by rule, so none is named."""
        a, b = finding("UP031", "a", row=2), finding("UP031", "b", row=4)
        long2 = finding("E501", "e2", row=2, message="100")
        long4 = finding("E501", "e4", row=4, message="100")
        q2, u4 = finding("Q000", "q", row=2), finding("UP032", "u", row=4)
        start, made = b"x\nA\nx\nB\n", b"x\nA2\nx\nB2\n"
        last = b"x\nA3\nx\nB3\n"
        reworded = dataclasses.replace(long2, message="97", fingerprint="e2b")
        table = {start: [a, b], made: [long2, long4, q2, u4], last: [reworded]}
        steps = [Step("a.py", start, made, (a, b)), Step("a.py", made, last, (q2, u4))]
        problem = chain_problem(steps, lint_table(table))
        assert problem is not None
        (fault,) = problem.faults
        assert set(fault.blame) == {"a", "b"}
        assert fault.culprits == {}


class TestRevealed:
    """A fix may trade its finding for one it revealed, on its own lines, one for one."""

    BEFORE = b"x\nA\nx\nB\nx\n"
    AFTER = b"x\nA2\nx\nB2\nx\n"

    def judge(self, made: list[Violation]) -> tuple[object, tuple[Violation, ...]]:
        """Two PT009 fixes (rows 2 and 4) whose step leaves `made`, judged with `reveal`."""
        a, b = finding("PT009", "a", row=2), finding("PT009", "b", row=4)
        table = {self.BEFORE: [a, b], self.AFTER: made}
        return judge_chain(
            [Step("a.py", self.BEFORE, self.AFTER, (a, b))], lint_table(table), reveal=True
        )

    def test_one_finding_on_each_fixs_lines_is_revealed(self) -> None:
        """PLR2004 on each rewritten assertion: both revealed, nothing refused."""
        made = [finding("PLR2004", "n1", row=2), finding("PLR2004", "n2", row=4)]
        problem, shown = self.judge(made)
        assert problem is None
        assert [v.location.row for v in shown] == [2, 4]

    def test_off_by_default(self) -> None:
        """Without `reveal`, the same findings are new."""
        a = finding("PT009", "a", row=2)
        table = {self.BEFORE: [a], self.AFTER: [finding("PLR2004", "n", row=2)]}
        assert chain_problem([Step("a.py", self.BEFORE, self.AFTER, (a,))], lint_table(table))

    def test_two_on_one_fixs_lines_are_new(self) -> None:
        """Two findings for one fix is no trade: both are named."""
        made = [finding("PLR2004", "n1", row=2), finding("PT017", "n2", row=2)]
        problem, shown = self.judge(made)
        assert shown == ()
        assert problem is not None
        assert problem.fresh == ("PLR2004 a.py:2: m", "PT017 a.py:2: m")

    def test_what_may_mean_a_broken_fix_is_never_revealed(self) -> None:
        """An undefined name, a long line, a bugbear or bandit finding stay new."""
        rules = ("F821", "E501", "B015", "S101", "PLE0101", "C901", "PLR0912", "PLR1702")
        for rule in (*rules, "RUF018", "PT015"):  # what `python -O` strips from an assert
            problem, shown = self.judge([finding(rule, "n", row=2)])
            assert (problem is not None, shown) == (True, ()), rule

    def test_a_finding_with_a_fix_or_of_the_fixed_rule_is_new(self) -> None:
        """What ruff could fix (a later step would have), or the fixed rule again, is new."""
        fixable = dataclasses.replace(
            finding("PLR2004", "n", row=2), fix=Fix(applicability="unsafe", edits=[])
        )
        for made in ([fixable], [finding("PT009", "n", row=2)]):
            problem, shown = self.judge(made)
            assert (problem is not None, shown) == (True, ())

    def test_a_finding_off_the_fixs_lines_is_new(self) -> None:
        """A finding on a line no fix rewrote was not revealed by one."""
        problem, shown = self.judge([finding("PLR2004", "n", row=5)])
        assert (problem is not None, shown) == (True, ())

    def test_a_line_the_fix_left_as_it_was_is_not_its_own(self) -> None:
        """A target spanning rows 2-4 whose fix changed row 2 only: a finding on row 4
        is not on the fix's lines."""
        block = dataclasses.replace(finding("SIM105", "s", row=2), end_location=Location(4, 2))
        before, after = b"x\nA\nx\nB\nx\n", b"x\nA2\nx\nB\nx\n"
        table = {before: [block], after: [finding("PLR2004", "n", row=4)]}
        problem, shown = judge_chain(
            [Step("a.py", before, after, (block,))], lint_table(table), reveal=True
        )
        assert (problem is not None, shown) == (True, ())
