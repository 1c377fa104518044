"""orchestrator._report_md: report.md as a pull request's body, from Report objects built here."""

from __future__ import annotations

from typing import Any

from fixbot.orchestrator import _report
from fixbot.orchestrator._plan import Plan
from fixbot.orchestrator._report import (
    LlmBlock,
    PatchEntry,
    Report,
    RuleCounts,
    TestsBlock,
)
from fixbot.orchestrator._report_md import render_markdown
from fixbot.sandbox import Location, Violation

NO_FIX = "no automatic fix; set FIXBOT_LLM_BASE_URL and FIXBOT_LLM_MODEL to let a model try"


def make_report(
    by_rule: dict[str, RuleCounts] | None = None,
    *,
    names: dict[str, str] | None = None,
    patches: list[PatchEntry] | None = None,
    **fields: Any,
) -> Report:
    """A report of a run with tests; `names` fills rule_info with each rule's ruff name."""
    by_rule = by_rule or {}
    values: dict[str, Any] = {
        "base": "0123456789abcdef0123",
        "branch": "fixbot/2024-05-01",
        "versions": {"fixbot": "0.4.1", "ruff": "0.17.6", "python": "3.12.3"},
        "selection": {"rules": None, "description": "the repo's own ruff configuration"},
        "violations_before": sum(c.found for c in by_rule.values()),
        "violations_after": sum(c.unfixed + c.rejected for c in by_rule.values()),
        "accepted": 1,
        "rejected": len(patches or []),
        "dropped": 0,
        "unfixed": sum(c.unfixed + c.rejected for c in by_rule.values()),
        "by_rule": by_rule,
        "patches": patches or [],
        "tests": TestsBlock(command="python -m pytest -q", mode="tests", passed_before=12),
        "timings": {"total": 3.5},
        "isolation": {"network": "own namespace (no host network; own loopback)"},
        "rule_info": {rule: {"name": name} for rule, name in (names or {}).items()},
    }
    return Report(**(values | fields))


def refused(
    path: str = "pkg/m.py", rule: str = "E711", reason: str = "tests", detail: str = ""
) -> PatchEntry:
    """A rejected patch of one fix to `path`."""
    return PatchEntry(
        id=f"{rule}-{path}",
        agent="ruff",
        kind="fix",
        rules=[rule],
        files=[path],
        status="rejected",
        reason=reason,
        detail=detail or "tests/test_m.py::test_missing: failed",
        fixes=1,
    )


def row_of(md: str, rule: str) -> str:
    """The per-rule table's row for `rule`."""
    (row,) = [line for line in md.splitlines() if line.startswith((f"| [{rule}", f"| {rule} |"))]
    return row


def why_of(md: str, rule: str) -> str:
    """The 'why unfixed' cell of `rule`'s row."""
    return row_of(md, rule).rstrip(" |").rsplit(" | ", 1)[-1]


class TestHeader:
    def test_versions_shown(self) -> None:
        """The header names fixbot's and ruff's versions, and 'unknown' for one not known."""
        md = render_markdown(make_report())
        assert md.splitlines()[0] == "## fixbot: proven lint fixes"
        assert "fixbot `0.4.1`" in md
        assert "ruff `0.17.6`" in md
        bare = render_markdown(make_report(versions={"fixbot": "0.4.1"}))
        assert "ruff `unknown`" in bare
        assert "None" not in bare


class TestRuleLinks:
    def test_rule_links_to_ruff_docs(self) -> None:
        """A rule's row links its code and name to ruff's page for it."""
        md = render_markdown(
            make_report({"F401": RuleCounts(found=2, fixed=2)}, names={"F401": "unused-import"})
        )
        assert row_of(md, "F401").startswith(
            "| [F401 unused-import](https://docs.astral.sh/ruff/rules/unused-import/) |"
        )

    def test_rule_without_code_links_by_name(self) -> None:
        """A rule ruff gives no code is keyed by its name, which is its page."""
        md = render_markdown(make_report({"unused-thing": RuleCounts(found=1, fixed=1)}))
        assert "| [unused-thing](https://docs.astral.sh/ruff/rules/unused-thing/) |" in md

    def test_names_and_not_attempted_come_from_the_plan(self) -> None:
        """build_report's rule_info holds each rule's name and its violations not attempted."""

        def violation(code: str, name: str, path: str) -> Violation:
            return Violation(
                code=code,
                name=name,
                message="m",
                path=path,
                location=Location(1, 1),
                end_location=Location(1, 2),
                fingerprint=f"{code}-{path}",
            )

        found = [
            violation("F401", "unused-import", "m.py"),
            violation("F401", "unused-import", "n.ipynb"),
        ]
        plan = Plan(violations=found, tasks=[], skipped={"F401-n.ipynb": "notebook"})
        info = _report.describe_rules(plan, [], [])
        assert {rule: i.model_dump() for rule, i in info.items()} == {
            "F401": {"name": "unused-import", "not_attempted": {"notebook": 1}}
        }


class TestWhyUnfixed:
    def test_no_fix_and_no_model(self) -> None:
        """A rule ruff cannot fix, with no model, says how to let one try."""
        md = render_markdown(make_report({"E722": RuleCounts(found=2, unfixed=2)}))
        assert why_of(md, "E722") == NO_FIX

    def test_no_fix_and_the_model_proposed_nothing(self) -> None:
        """With a model that ran and proposed nothing, the row points at its reasons."""
        md = render_markdown(
            make_report(
                {"E722": RuleCounts(found=2, unfixed=2)},
                llm=LlmBlock(requests=2, estimated_requests=2),
                unfixed_reasons={"reply has no python block": 2},
            )
        )
        assert why_of(md, "E722") == (
            "no automatic fix, and the model proposed nothing usable (reasons below)"
        )
        assert "The model proposed nothing for: 2 (reply has no python block)." in md

    def test_refused_by_a_test(self) -> None:
        """A fix a test refused says a test caught a behaviour change."""
        counts = RuleCounts(found=2, fixed=1, rejected=1, offered=2, landed=1, refused={"tests": 1})
        md = render_markdown(make_report({"E711": counts}, patches=[refused()]))
        assert why_of(md, "E711") == "the fix was refused: a test caught a behaviour change"

    def test_lint_could_not_confirm(self) -> None:
        """A fix refused by lint says lint could not confirm it."""
        counts = RuleCounts(found=1, rejected=1, offered=1, refused={"lint": 1})
        md = render_markdown(make_report({"E731": counts}, patches=[refused(reason="lint")]))
        assert why_of(md, "E731") == "lint could not confirm the fix"

    def test_what_lint_refusals_would_add_is_summed_up(self) -> None:
        """Above the lint refusals: which rule each fix would have added, most common first."""
        new = "lint: new violations: {} tests/t.py:3: Magic value used in comparison"
        patches = [
            *(refused(rule="PT009", reason="lint", detail=new.format("PLR2004")) for _ in "abc"),
            refused(rule="PT009", reason="lint", detail=new.format("PT017")),
            refused(rule="E711"),
        ]
        counts = RuleCounts(found=4, rejected=4, offered=4, refused={"lint": 4})
        md = render_markdown(make_report({"PT009": counts}, patches=patches))
        (said,) = [line for line in md.splitlines() if line.startswith("What these fixes")]
        assert "PT009 adding PLR2004 (3), PT009 adding PT017 (1)." in said
        assert "per-file-ignores" in said

    def test_final_gate(self) -> None:
        """A fix the final gate dropped says so, and why."""
        counts = RuleCounts(found=1, rejected=1, offered=1, refused={"gate: tests": 1})
        md = render_markdown(make_report({"E711": counts}))
        assert (
            why_of(md, "E711") == "the final gate dropped the fix: a test caught a behaviour change"
        )

    def test_not_attempted(self) -> None:
        """A notebook's violation says it was not attempted, and why."""
        counts = RuleCounts(found=2, fixed=1, unfixed=1, offered=2, landed=1)
        info = {"F401": {"name": "unused-import", "not_attempted": {"notebook": 1}}}
        md = render_markdown(make_report({"F401": counts}, rule_info=info))
        assert why_of(md, "F401") == "not attempted (notebook): fixbot does not fix notebooks yet"

    def test_several_reasons_are_counted(self) -> None:
        """A rule left for several reasons gives each with its count, one a line."""
        counts = RuleCounts(found=4, rejected=1, unfixed=3, offered=3, refused={"tests": 1})
        info = {"E711": {"name": "none-comparison", "not_attempted": {"symlink": 1}}}
        md = render_markdown(make_report({"E711": counts}, rule_info=info))
        assert why_of(md, "E711") == (
            "1: the fix was refused: a test caught a behaviour change"
            "<br>1: not attempted (symlink): the file it points at is fixed instead"
            f"<br>1: {NO_FIX}"
            "<br>1: ruff offers a fix, but none was proven in this run"
        )

    def test_fixed_rule_says_nothing(self) -> None:
        """A rule with nothing left has an empty 'why unfixed' cell, under its column."""
        md = render_markdown(make_report({"F401": RuleCounts(found=2, fixed=2, offered=2)}))
        assert "| why unfixed |" in md
        assert row_of(md, "F401").endswith("| 0 |  |")


class TestDedup:
    def test_identical_refusals_are_one_row_with_a_count(self) -> None:
        """The same file, rules, reason and detail twice is one row counting 2."""
        counts = RuleCounts(found=2, rejected=2, offered=2, refused={"tests": 2})
        md = render_markdown(make_report({"E711": counts}, patches=[refused(), refused()]))
        rows = [line for line in md.splitlines() if line.startswith("| `pkg/m.py` |")]
        assert rows == ["| `pkg/m.py` | E711 | tests: tests/test_m.py::test_missing: failed | 2 |"]

    def test_different_refusals_stay_apart(self) -> None:
        """Refusals that differ in their detail are separate rows, each counted once."""
        patches = [
            refused(detail="a: failed"),
            refused(detail="b: failed"),
            refused(detail="a: failed"),
        ]
        md = render_markdown(
            make_report({"E711": RuleCounts(found=1, rejected=1)}, patches=patches)
        )
        rows = [line for line in md.splitlines() if line.startswith("| `pkg/m.py` |")]
        assert rows == [
            "| `pkg/m.py` | E711 | tests: a: failed | 2 |",
            "| `pkg/m.py` | E711 | tests: b: failed | 1 |",
        ]


class TestSize:
    def test_long_table_is_folded(self) -> None:
        """More than 15 rules fold into <details>, with the blank line GitHub needs."""
        by_rule = {f"R{i:03d}": RuleCounts(found=1, unfixed=1) for i in range(20)}
        md = render_markdown(make_report(by_rule))
        assert "<details><summary>20 rules</summary>\n\n| rule |" in md
        assert md.index("</details>") > md.index("| R019 |")

    def test_short_table_is_not_folded(self) -> None:
        """A few rules are shown as a plain table, and the rejected diffs named without a path."""
        md = render_markdown(
            make_report({"E711": RuleCounts(found=1, rejected=1)}, patches=[refused()])
        )
        assert "<details>" not in md
        assert "the run's rejected/ folder" in md

    def test_two_thousand_rules_fit_with_a_cut_line(self) -> None:
        """2,000 rules and as many refusals fit under 60,000 characters, saying what was cut."""
        by_rule = {
            f"R{i:04d}": RuleCounts(found=i % 50 + 1, unfixed=i % 50 + 1) for i in range(2000)
        }
        names = {rule: f"rule-number-{rule.lower()}" for rule in by_rule}
        patches = [refused(f"pkg/m{i}.py", "R0001", detail="x" * 200) for i in range(2000)]
        md = render_markdown(make_report(by_rule, names=names, patches=patches))
        assert len(md) < 60_000
        assert "<details><summary>" in md
        last = md.rstrip("\n").splitlines()[-1]
        assert last.startswith("_Left out to keep this under 60,000 characters: ")
        assert "the details of 2,000 refused patches" in last
        assert "of 2,000 rules (those with the fewest violations left)" in last
        assert last.endswith("The run's report.json has everything._")
        assert "| [R0049 " in md  # 50 left: kept
        assert "| [R0050 " not in md  # 1 left: cut
        assert "x" * 200 not in md

    def test_refusal_details_are_cut_first(self) -> None:
        """When the refusals' details alone overflow, every rule row stays and they go."""
        by_rule = {f"R{i:03d}": RuleCounts(found=1, unfixed=1) for i in range(30)}
        patches = [refused(f"pkg/m{i}.py", detail="y" * 300) for i in range(300)]
        md = render_markdown(make_report(by_rule, patches=patches))
        assert len(md) < 60_000
        assert all(f"| R{i:03d} |" in md for i in range(30))
        assert "| `pkg/m299.py` | E711 | tests | 1 |" in md
        assert "_Left out to keep this under 60,000 characters: the details of 300 refused" in md
        assert "rules (those" not in md


class TestNoMachinePaths:
    def test_no_run_folder_or_absolute_path(self) -> None:
        """A verdict's detail naming the run's folder or a worktree loses the machine's path."""
        detail = (
            "/home/ci/repo/.git/fixbot/worktrees/3/pkg/m.py:1:8: F401 unused; "
            "/tmp/fixbot-wt-7/pkg/m.py:2:1: E731"
        )
        patches = [refused(reason="lint", detail=detail)]
        md = render_markdown(
            make_report({"E711": RuleCounts(found=1, rejected=1)}, patches=patches)
        )
        assert ".git/fixbot" not in md
        assert "/home/ci" not in md
        assert "/tmp/" not in md
        assert "…/m.py:2:1: E731" in md
        assert "`python -m pytest -q`" in md


class TestRevealed:
    """What landed fixes revealed: counted per rule, said in words, never taken as unfixed."""

    @staticmethod
    def found(rule: str, row: int) -> Violation:
        """A finding of `rule` at `row` of t.py, with no fix."""
        return Violation(
            code=rule,
            name=rule.lower(),
            message="m",
            path="t.py",
            location=Location(row, 1),
            end_location=Location(row, 2),
            fingerprint=f"{rule}{row}",
        )

    def test_counted_apart_from_what_was_found(self) -> None:
        """PLR2004: two found, one fixed, one revealed by a PT009 fix; PT009 fixed."""
        from fixbot.orchestrator._job import PatchRecord  # noqa: PLC0415
        from fixbot.sandbox import FileChange, Patch, Verdict  # noqa: PLC0415

        pt009, magic, other = (
            self.found("PT009", 3),
            self.found("PLR2004", 3),
            self.found("PLR2004", 5),
        )
        shown = "PLR2004 t.py:3: m"
        patch = Patch(
            id="p", agent="ruff", kind="unsafe", rules=("PT009",), files=("t.py",),
            targets=(pt009,),
            changes=(FileChange(path="t.py", old_sha="0", new=b""),),
        )  # fmt: skip
        verdict = Verdict(patch_id="p", accepted=True, reason="proven", revealed=((1, shown),))
        record = PatchRecord(patch, "accepted", verdict, b"")
        counts = _report.count_by_rule(
            [pt009, other, self.found("PLR2004", 9)], [magic, other], [record]
        )
        assert (counts["PT009"].fixed, counts["PT009"].landed) == (1, 1)
        plr = counts["PLR2004"]
        assert (plr.found, plr.fixed, plr.unfixed, plr.revealed) == (2, 1, 1, 1)
        assert _report.patch_entries([record])[0].revealed == [shown]

    def test_said_under_the_rules(self) -> None:
        """report.md says which fixes revealed what, and how to refuse them instead."""
        entry = refused(rule="PT009").model_copy(
            update={"status": "accepted", "reason": "proven", "revealed": ["PLR2004 t.py:3: m"]}
        )
        counts = {"PT009": RuleCounts(found=1, fixed=1, offered=1, landed=1)}
        counts["PLR2004"] = RuleCounts(revealed=1)
        md = render_markdown(make_report(counts, patches=[entry]))
        (said,) = [line for line in md.splitlines() if line.startswith("Revealed by landed")]
        assert said.startswith("Revealed by landed fixes: PT009 revealing PLR2004 (1). ")
        assert "`land-revealed = false`" in said
        assert row_of(md, "PLR2004").split(" | ")[1:5] == ["0", "0", "0", "1"]
        assert "nothing new but what a fix revealed (below)" in md
