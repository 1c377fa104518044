"""`line_opcodes`: a line diff anchored on unique lines, checked as an edit script."""

from __future__ import annotations

import difflib

from hypothesis import given, settings
from hypothesis import strategies as st

from fixbot.sandbox._text import line_opcodes

# Few distinct lines, so that most repeat (blank lines, `)`), as in real code.
LINES = st.lists(st.sampled_from([b"", b")", b"x = 1", b"y = 2", b"def f():", b"pass"]))


def _rebuilt(old: list[bytes], new: list[bytes]) -> list[bytes]:
    """`new` made from `old` by the opcodes, with each opcode's ranges checked."""
    out: list[bytes] = []
    at_old = at_new = 0
    for tag, i1, i2, j1, j2 in line_opcodes(old, new):
        assert (i1, j1) == (at_old, at_new), "opcodes must tile both sides in order"
        assert tag in {"equal", "replace", "delete", "insert"}
        if tag == "equal":
            assert old[i1:i2] == new[j1:j2]
        assert (tag == "delete") == (j1 == j2 and i1 < i2)
        assert (tag == "insert") == (i1 == i2 and j1 < j2)
        out += new[j1:j2]
        at_old, at_new = i2, j2
    assert (at_old, at_new) == (len(old), len(new))
    return out


class TestLineOpcodes:
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=3), max_size=200), st.data())
    def test_an_edit_script_for_any_two_contents(
        self, old: list[bytes], data: st.DataObject
    ) -> None:
        """Whatever the lines, the opcodes rebuild the new side from ranges of both."""
        new = data.draw(st.lists(st.sampled_from([*old, b"n1", b"n2"]), max_size=200))
        assert _rebuilt(old, new) == new

    @settings(max_examples=100, deadline=None)
    @given(LINES, LINES)
    def test_repeated_lines(self, old: list[bytes], new: list[bytes]) -> None:
        """Mostly repeated lines, long enough to be anchored, still an exact script."""
        assert _rebuilt(old * 20, new * 20) == new * 20

    def test_one_changed_line_in_a_long_file_is_one_replace(self) -> None:
        """5,000 lines, mostly repeats, one edited: exactly that line is replaced."""
        old = [f"assert f({i}) == {i}".encode() if i % 3 else b"" for i in range(5000)]
        new = list(old)
        new[2501] = b"assert f(2501) is 2501"
        ops = [op for op in line_opcodes(old, new) if op[0] != "equal"]
        assert ops == [("replace", 2501, 2502, 2501, 2502)]

    def test_as_minimal_as_difflib_where_lines_move(self) -> None:
        """Lines inserted and deleted at both ends of a long file: no more lines marked
        changed than difflib marks."""
        body = [f"line {i}".encode() for i in range(300)] + [b""] * 50
        old = [b"import os", *body, b"tail"]
        new = [*body[:100], b"new", *body[100:], b"tail", b"more"]
        ours = sum(
            i2 - i1 + j2 - j1 for t, i1, i2, j1, j2 in line_opcodes(old, new) if t != "equal"
        )
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        theirs = sum(
            i2 - i1 + j2 - j1 for t, i1, i2, j1, j2 in matcher.get_opcodes() if t != "equal"
        )
        assert ours == theirs == 3
