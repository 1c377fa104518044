"""agents._region: the region a model sees, the code in its reply, and splicing it back."""

from __future__ import annotations

from fixbot.agents._region import (
    MAX_REGION_LINES,
    Region,
    extract_code,
    find_region,
    find_regions,
    splice,
)

SOURCE = '''\
"""A module."""
import functools

LIMITS = {
    "a": 1,
    "b": 2,
}


@functools.cache
@staticmethod
def parse(text):
    try:
        return int(text)
    except:
        return None


class Store:
    """Holds things."""

    size = 3

    def get(self, key):
        if key == None:
            return None
        return key


# A comment at module level.
'''


def lines_of(text: str, start: int, end: int) -> str:
    """Lines start..end (1-based, inclusive) of `text`."""
    return "".join(text.splitlines(keepends=True)[start - 1 : end])


class TestFindRegion:
    def test_enclosing_def_with_decorators(self) -> None:
        """The smallest enclosing def, from its first decorator to its last line."""
        region = find_region(SOURCE.encode(), 15, 15)
        assert region is not None
        assert (region.start, region.end) == (10, 16)
        assert region.text == lines_of(SOURCE, 10, 16)
        assert region.text.startswith("@functools.cache\n@staticmethod\ndef parse(text):\n")
        assert region.indent == ""

    def test_method_inside_class(self) -> None:
        """A violation in a method gets the method, with its indentation, not the class."""
        region = find_region(SOURCE.encode(), 25, 25)
        assert region is not None
        assert (region.start, region.end) == (24, 27)
        assert region.text.startswith("    def get(self, key):\n")
        assert region.indent == "    "

    def test_class_body_statement(self) -> None:
        """A statement of a class body outside any method gets the class."""
        region = find_region(SOURCE.encode(), 22, 22)
        assert region is not None
        assert (region.start, region.end) == (19, 27)

    def test_module_level_statement(self) -> None:
        """At module level, the whole statement, even across lines."""
        region = find_region(SOURCE.encode(), 5, 5)
        assert region is not None
        assert (region.start, region.end) == (4, 7)
        assert region.text == lines_of(SOURCE, 4, 7)

    def test_outside_any_statement(self) -> None:
        """A comment line between statements is its own region."""
        region = find_region(SOURCE.encode(), 30, 30)
        assert region == Region(30, 30, "# A comment at module level.\n")

    def test_huge_function_falls_back_to_statement(self) -> None:
        """A function past MAX_REGION_LINES is too big to show: the statement instead."""
        body = "".join(f"    x{i} = {i}\n" for i in range(MAX_REGION_LINES + 5))
        source = f"def big():\n{body}    if x1 == None:\n        return x2\n    return x0\n"
        row = MAX_REGION_LINES + 7
        assert "if x1 == None" in source.splitlines()[row - 1]
        region = find_region(source.encode(), row, row)
        assert region is not None
        assert (region.start, region.end) == (row, row + 1)
        assert region.text == "    if x1 == None:\n        return x2\n"

    def test_function_just_under_the_limit(self) -> None:
        """A function shorter than MAX_REGION_LINES is still shown whole."""
        body = "".join(f"    x{i} = {i}\n" for i in range(MAX_REGION_LINES - 5))
        source = f"def big():\n{body}    return x0\n"
        region = find_region(source.encode(), 3, 3)
        assert region is not None
        assert (region.start, region.end) == (1, len(source.splitlines()))

    def test_syntax_error(self) -> None:
        """A file that does not parse has no region."""
        assert find_region(b"def f(:\n    pass\n", 2, 2) is None
        assert find_regions(b"x = (\n", [(1, 1), (1, 1)]) == [None, None]

    def test_crlf_and_bom_normalised(self) -> None:
        """The region has '\\n' endings and no BOM, whatever the file has."""
        content = b"\xef\xbb\xbf" + SOURCE.replace("\n", "\r\n").encode()
        region = find_region(content, 25, 25)
        assert region is not None
        assert "\r" not in region.text
        assert region.text == lines_of(SOURCE, 24, 27)

    def test_many_at_once(self) -> None:
        """find_regions answers each span, in order, as find_region would."""
        spans = [(25, 25), (15, 15), (5, 6)]
        assert find_regions(SOURCE.encode(), spans) == [
            find_region(SOURCE.encode(), *span) for span in spans
        ]


class TestExtractCode:
    def test_python_block(self) -> None:
        """The body of a ```python block."""
        reply = "Here you go:\n\n```python\ndef f():\n    return 1\n```\nDone."
        assert extract_code(reply) == "def f():\n    return 1\n"

    def test_py_block(self) -> None:
        """A ```py block counts too, whatever the case."""
        assert extract_code("```py\nx = 1\n```") == "x = 1\n"
        assert extract_code("```Python\nx = 1\n```") == "x = 1\n"

    def test_no_block(self) -> None:
        """No fenced python block: None (a bare fence or another language does not count)."""
        assert extract_code("I cannot fix this.") is None
        assert extract_code("```\nx = 1\n```") is None
        assert extract_code("```js\nlet x = 1\n```") is None

    def test_first_of_two(self) -> None:
        """A reply with two blocks: the first is the region."""
        reply = "```python\nfirst = 1\n```\nor maybe\n```python\nsecond = 2\n```\n"
        assert extract_code(reply) == "first = 1\n"

    def test_adds_final_newline(self) -> None:
        """A block whose fence follows the code directly still ends with a newline."""
        assert extract_code("```python\nx = 1```") == "x = 1\n"

    def test_keeps_indentation(self) -> None:
        """The block is returned as written, indentation included."""
        reply = "```python\n    def m(self):\n        return 1\n```"
        assert extract_code(reply) == "    def m(self):\n        return 1\n"


METHOD = (
    "class A:\n    def m(self):\n        if x == None:\n            return 1\n        return 2\n"
)
FIXED_METHOD = "    def m(self):\n        if x is None:\n            return 1\n        return 2\n"


def method_region(content: bytes) -> Region:
    """The region of the method of METHOD-like content."""
    region = find_region(content, 3, 3)
    assert region is not None
    assert (region.start, region.end) == (2, 5)
    return region


class TestSplice:
    def test_replaces_the_region(self) -> None:
        """The region's lines are replaced; the rest stays byte for byte."""
        content = METHOD.encode()
        new = splice(content, method_region(content), FIXED_METHOD)
        assert new == b"class A:\n" + FIXED_METHOD.encode()

    def test_keeps_crlf_and_bom(self) -> None:
        """A CRLF file with a BOM keeps both; the reply's '\\n' become '\\r\\n'."""
        content = b"\xef\xbb\xbf" + METHOD.replace("\n", "\r\n").encode() + b"X = 1\r\n"
        new = splice(content, method_region(content), FIXED_METHOD)
        assert new == (
            b"\xef\xbb\xbf"
            + ("class A:\n" + FIXED_METHOD + "X = 1\n").replace("\n", "\r\n").encode()
        )

    def test_reindents_dedented_reply(self) -> None:
        """A model that dedented the method gets it shifted back to the region's indent."""
        content = METHOD.encode()
        dedented = "def m(self):\n    if x is None:\n        return 1\n\n    return 2\n"
        new = splice(content, method_region(content), dedented)
        assert new == (
            b"class A:\n    def m(self):\n        if x is None:\n            return 1\n"
            b"\n        return 2\n"
        )

    def test_refuses_mixed_indentation(self) -> None:
        """A reply whose lines do not all share its first line's indent cannot be shifted."""
        content = METHOD.encode()
        region = method_region(content)
        tabbed = "  def m(self):\n\tif x is None:\n\t\treturn 1\n\treturn 2\n"
        assert splice(content, region, tabbed) is None
        outdented = "        if x is None:\n            return 1\n    return 2\n"
        assert splice(content, region, outdented) is None

    def test_refuses_unchanged(self) -> None:
        """A reply that changes nothing, even once re-indented, is refused."""
        content = METHOD.encode()
        region = method_region(content)
        assert splice(content, region, region.text) is None
        dedented = "".join(ln[4:] + "\n" for ln in region.text.splitlines())
        assert splice(content, region, dedented) is None

    def test_refuses_blank_reply(self) -> None:
        """A reply with no code at all is refused."""
        content = METHOD.encode()
        assert splice(content, method_region(content), "\n\n") is None

    def test_keeps_missing_final_newline(self) -> None:
        """A file without a final newline still has none; one with it keeps it."""
        content = METHOD.rstrip("\n").encode()
        new = splice(content, method_region(content), FIXED_METHOD)
        assert new == b"class A:\n" + FIXED_METHOD.rstrip("\n").encode()
        crlf = METHOD.replace("\n", "\r\n").rstrip("\r\n").encode()
        new = splice(crlf, method_region(crlf), FIXED_METHOD)
        assert new == ("class A:\n" + FIXED_METHOD).replace("\n", "\r\n").rstrip("\r\n").encode()

    def test_reply_may_change_line_count(self) -> None:
        """A reply longer or shorter than the region fits; the lines below move."""
        content = (METHOD + "\n\nY = 2\n").encode()
        shorter = "    def m(self):\n        return 1 if x is None else 2\n"
        new = splice(content, method_region(content), shorter)
        assert new == b"class A:\n" + shorter.encode() + b"\n\nY = 2\n"

    def test_refuses_when_file_moved(self) -> None:
        """When the file's lines at the region differ from the region, nothing is spliced."""
        content = METHOD.encode()
        region = method_region(content)
        moved = b"import os\n" + content
        assert splice(moved, region, FIXED_METHOD) is None
        edited = content.replace(b"return 2", b"return 3")
        assert splice(edited, region, FIXED_METHOD) is None
