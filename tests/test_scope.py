"""sandbox.proof._scope: which tests of a test module an edit of it can change."""

from __future__ import annotations

from fixbot.sandbox import _text
from fixbot.sandbox.proof._scope import cleared, edited_functions, ids_named

MODULE = b"""import pytest

LIMIT = 3


@pytest.fixture
def numbers():
    return [1, 2]


def test_sum(numbers):
    assert sum(numbers) == 3


@pytest.mark.parametrize("n", [1, 2])
def test_small(n):
    assert n < LIMIT


class TestCase:
    def setup_method(self):
        self.value = 2

    def test_value(self):
        assert self.value == 2


class TestMore(TestCase):
    pass
"""


class TestEditedFunctions:
    def test_an_edit_inside_one_test_names_that_test(self) -> None:
        """A changed assertion in a test's body: that test, and nothing else."""
        after = MODULE.replace(b"sum(numbers) == 3", b"3 == sum(numbers)")
        assert edited_functions(MODULE, after) == {"test_sum"}

    def test_a_decorator_is_part_of_its_test(self) -> None:
        """A changed parametrize list edits the test it decorates."""
        after = MODULE.replace(b"[1, 2])", b"(1, 2))")
        assert edited_functions(MODULE, after) == {"test_small"}

    def test_a_method_is_named_without_its_class(self) -> None:
        """A test method is matched by its name, in whichever class runs it."""
        after = MODULE.replace(b"self.value == 2", b"2 == self.value")
        assert edited_functions(MODULE, after) == {"test_value"}

    def test_an_edit_between_functions_reaches_the_whole_module(self) -> None:
        """A changed import or constant is seen by every test."""
        assert edited_functions(MODULE, MODULE.replace(b"LIMIT = 3", b"LIMIT = 4")) is None
        assert edited_functions(MODULE, b"import os\n" + MODULE) is None

    def test_a_function_other_code_names_reaches_the_whole_module(self) -> None:
        """A fixture is asked for by name; its edit is not confined to itself."""
        after = MODULE.replace(b"return [1, 2]", b"return [2, 1]")
        assert edited_functions(MODULE, after) is None

    def test_a_renamed_or_added_function_reaches_the_whole_module(self) -> None:
        """Renaming a test or adding one changes what the module collects."""
        assert edited_functions(MODULE, MODULE.replace(b"def test_sum", b"def test_total")) is None
        added = MODULE + b"\n\ndef test_new():\n    pass\n"
        assert edited_functions(MODULE, added) is None

    def test_a_class_body_outside_its_methods_reaches_that_class(self) -> None:
        """A class attribute is seen by the class's tests, and its subclasses'."""
        after = MODULE.replace(b"(TestCase):\n    pass", b"(TestCase):\n    value = 1")
        assert edited_functions(MODULE, after) == {"TestMore::"}
        after = MODULE.replace(b"class TestCase:\n", b"class TestCase:\n    value = 1\n\n")
        assert edited_functions(MODULE, after) == {"TestCase::", "TestMore::"}

    def test_unparsable_content_reaches_the_whole_module(self) -> None:
        """What cannot be parsed cannot be scoped."""
        after = MODULE.replace(b"sum(numbers) == 3", b"sum(numbers ==")
        assert edited_functions(MODULE, after) is None

    def test_a_name_defined_twice_at_one_level_reaches_the_whole_module(self) -> None:
        """Which of two same-named tests pytest runs is not ours to guess."""
        twice = b"def test_a():\n    pass\n\n\ndef test_a():\n    assert 1\n"
        assert edited_functions(twice, twice.replace(b"assert 1", b"assert 2")) is None

    def test_same_content_edits_nothing(self) -> None:
        """No change, no function."""
        assert edited_functions(MODULE, MODULE) == frozenset()

    def test_an_inserted_line_inside_a_test_stays_in_it(self) -> None:
        """A wrapped statement adds lines; the test still holds them all."""
        wrapped = b"assert sum(\n        numbers\n    ) == 3"
        after = MODULE.replace(b"assert sum(numbers) == 3", wrapped)
        assert edited_functions(MODULE, after) == {"test_sum"}


CLASSES = b"""\"\"\"Tests of the parser\"\"\"
import unittest


class Mixin:
    \"\"\" Shared checks \"\"\"
    zone = "UTC"

    class context:
        def __init__(self, *args):
            pass

    def check(self):
        return self.zone

    def test_zone(self):
        assert self.check() == "UTC"


class TestParse(Mixin, unittest.TestCase):
    def test_parse(self):
        assert 1 + 1 == 2


class TestOther(unittest.TestCase):
    def test_other(self):
        assert 2 + 2 == 4
"""


class TestClassBodies:
    """Edits past the functions, in a top-level class's own body."""

    def test_a_class_docstring_reaches_its_class_and_subclasses(self) -> None:
        """D400 on a mixin's docstring: the tests of the classes that use it."""
        after = CLASSES.replace(b" Shared checks ", b" Shared checks. ")
        assert edited_functions(CLASSES, after) == {"Mixin::", "TestParse::"}

    def test_the_module_docstring_reaches_the_module(self) -> None:
        """Any test may read the module's `__doc__`, through a helper the graph cannot see."""
        assert edited_functions(CLASSES, CLASSES.replace(b"the parser", b"the parser.")) is None

    def test_a_nested_class_reaches_its_class_and_subclasses(self) -> None:
        """ANN204 on a nested class's `__init__`: the mixin's and its users' tests."""
        after = CLASSES.replace(b"*args):", b"*args) -> None:")
        assert edited_functions(CLASSES, after) == {"Mixin::", "TestParse::"}

    def test_a_method_of_an_edited_class_goes_with_it(self) -> None:
        """A helper method edited beside a class attribute needs no test of its own name."""
        after = CLASSES.replace(b'zone = "UTC"', b"zone = 'UTC'").replace(
            b"return self.zone", b"return (self.zone)"
        )
        assert edited_functions(CLASSES, after) == {"Mixin::", "TestParse::"}
        after = after.replace(b"2 + 2 == 4", b"4 == 2 + 2")
        assert edited_functions(CLASSES, after) == {"Mixin::", "TestParse::", "test_other"}

    def test_a_class_named_elsewhere_reaches_the_module(self) -> None:
        """A class used past its subclasses' bases (made in a helper, its docstring read)."""
        used = CLASSES + b"\n\ndef make():\n    return TestParse()\n"
        assert edited_functions(used, used.replace(b'zone = "UTC"', b'zone = "GMT"')) is None
        read = CLASSES + b"\n\ndef test_doc():\n    assert doc_of(Mixin)\n"
        after = read.replace(b" Shared checks ", b" Shared checks. ")
        assert edited_functions(read, after) is None

    def test_classes_found_without_a_name_reach_the_module(self) -> None:
        """`__subclasses__` finds a class that nothing names."""
        found = CLASSES + b"\n\ndef test_all():\n    assert object.__subclasses__()\n"
        after = found.replace(b'zone = "UTC"', b'zone = "GMT"')
        assert edited_functions(found, after) is None

    def test_a_class_body_that_runs_code_reaches_the_module(self) -> None:
        """A call, a store into another object, or a decorator that is no mark."""
        calls = CLASSES.replace(b'zone = "UTC"', b'zone = str("UTC")')
        assert edited_functions(calls, calls.replace(b'"UTC")', b'"GMT")')) is None
        stores = CLASSES.replace(b'zone = "UTC"', b'zone = "UTC"\n    CONFIG["z"] = 1')
        assert edited_functions(stores, stores.replace(b'"UTC"', b'"GMT"')) is None
        grows = CLASSES.replace(b'zone = "UTC"', b'zone = "UTC"\n    REG += ["a"]')
        assert edited_functions(grows, grows.replace(b'"UTC"', b'"GMT"')) is None
        registered = CLASSES.replace(b"class Mixin:", b"@register\nclass Mixin:")
        after = registered.replace(b'zone = "UTC"', b'zone = "GMT"')
        assert edited_functions(registered, after) is None
        marked = CLASSES.replace(
            b"class Mixin:", b'@pytest.mark.skipif(X, reason="x")\nclass Mixin:'
        )
        after = marked.replace(b'zone = "UTC"', b'zone = "GMT"')
        assert edited_functions(marked, after) == {"Mixin::", "TestParse::"}
        cases = marked.replace(b"(X, ", b"(cases(), ")
        assert edited_functions(cases, cases.replace(b'zone = "UTC"', b'zone = "GMT"')) is None

    def test_creating_a_class_that_runs_its_bases_code_reaches_the_module(self) -> None:
        """A base with `__init_subclass__`, or one that is no TestCase (a metaclass)."""
        level = b"    level = 1\n\n    def test_parse(self):"
        body = CLASSES.replace(b"    def test_parse(self):", level)
        assert edited_functions(body, body.replace(b"level = 1", b"level = 2")) == {"TestParse::"}
        hook = b"class Mixin:\n    def __init_subclass__(cls):\n        pass\n"
        hooked = body.replace(b"class Mixin:", hook)
        assert edited_functions(hooked, hooked.replace(b"level = 1", b"level = 2")) is None
        model = body.replace(b"(Mixin, unittest.TestCase)", b"(Mixin, BaseModel)")
        assert edited_functions(model, model.replace(b"level = 1", b"level = 2")) is None

    def test_methods_that_carry_an_attribute_into_module_state_reach_the_module(self) -> None:
        """An unchanged `setup_method` that copies the edited attribute into `os.environ`."""
        setup = b"    def setup_method(self):\n        os.environ['TZ'] = self.zone\n\n"
        source = CLASSES.replace(b"    def check(self):", setup + b"    def check(self):")
        source = source.replace(b"import unittest", b"import os\nimport unittest")
        assert edited_functions(source, source.replace(b'zone = "UTC"', b'zone = "GMT"')) is None

    def test_module_code_beside_a_class_edit_reaches_the_module(self) -> None:
        """An import changed as well: every test."""
        after = CLASSES.replace(b'zone = "UTC"', b'zone = "GMT"').replace(
            b"import unittest", b"import unittest\nimport os"
        )
        assert edited_functions(CLASSES, after) is None


class TestWhatOtherTestsSee:
    """Edits another test could see without naming the function are not confined."""

    def test_writing_module_state_reaches_the_module(self) -> None:
        """A test that writes a module-level object can change what the next one reads."""
        source = b"STATE = {}\n\n\ndef test_a():\n    STATE['x'] = 1\n\n\ndef test_b():\n    pass\n"
        assert edited_functions(source, source.replace(b"= 1", b"= 2")) is None
        calls = source.replace(b"STATE['x'] = 1", b"STATE.update(x=1)")
        assert edited_functions(calls, calls.replace(b"x=1", b"x=2")) is None

    def test_reading_what_another_test_writes_reaches_the_module(self) -> None:
        """A test that relies on the one before it runs with it."""
        source = (
            b"STATE = {}\n\n\ndef test_setup():\n    STATE['x'] = 1\n\n\n"
            b"def test_a():\n    assert STATE['x'] == 1\n"
        )
        assert edited_functions(source, source.replace(b"== 1", b"== 2")) is None

    def test_reading_a_constant_no_test_writes_stays_confined(self) -> None:
        """A module constant only read is no channel between tests."""
        after = MODULE.replace(b"n < LIMIT", b"LIMIT > n")
        assert edited_functions(MODULE, after) == {"test_small"}

    def test_global_and_class_attributes_reach_the_module(self) -> None:
        """`global` and a class attribute set through `self.__class__` are shared."""
        glob = b"X = 0\n\n\ndef test_a():\n    global X\n    X = 1\n"
        assert edited_functions(glob, glob.replace(b"X = 1", b"X = 2")) is None
        cls = b"class TestC:\n    def test_a(self):\n        self.__class__.seen = 1\n"
        assert edited_functions(cls, cls.replace(b"= 1", b"= 2")) is None

    def test_line_numbers_and_built_names_reach_the_module(self) -> None:
        """A module that reads line numbers or looks tests up by a built name."""
        edit = (b"sum(numbers) == 3", b"3 == sum(numbers)")
        assert edited_functions(MODULE, MODULE.replace(*edit)) == {"test_sum"}
        lines = MODULE + b"\n\ndef test_line():\n    assert inspect.currentframe().f_lineno\n"
        assert edited_functions(lines, lines.replace(*edit)) is None
        built = MODULE + b"\n\ndef test_all():\n    getattr(MODULE, 'test_' + 'sum')\n"
        assert edited_functions(built, built.replace(*edit)) is None
        named = MODULE + b"\n\ndef test_all(self):\n    getattr(self, 'test_sum')()\n"
        assert edited_functions(named, named.replace(*edit)) is None
        # A constant attribute that names no function here is no way to a test.
        plain = MODULE + b"\n\ndef test_fold(dt):\n    assert getattr(dt, 'fold', 0) == 0\n"
        assert edited_functions(plain, plain.replace(*edit)) == {"test_sum"}


class TestIdsNamed:
    IDS = (
        "tests/test_a.py::test_small[1]",
        "tests/test_a.py::test_small[2]",
        "tests/test_a.py::TestCase::test_value",
        "tests/test_a.py::TestMore::test_value",
        "tests/test_a.py::test_a.test_sum",
        "tests/test_b.py::test_small",
    )

    def test_every_class_and_parameter_of_a_name_in_its_file(self) -> None:
        """Inherited copies run too; parameters are dropped; other files are not matched."""
        assert ids_named(self.IDS, "tests/test_a.py", {"test_small", "test_value"}) == {
            "tests/test_a.py::test_small",
            "tests/test_a.py::TestCase::test_value",
            "tests/test_a.py::TestMore::test_value",
        }

    def test_a_name_without_a_test_selects_nothing(self) -> None:
        """An edited `setup_method` beside an edited test: no narrowing (the whole file)."""
        assert ids_named(self.IDS, "tests/test_a.py", {"test_small"})
        assert ids_named(self.IDS, "tests/test_a.py", {"test_small", "setup_method"}) == set()

    def test_a_class_selects_its_tests_and_doctests(self) -> None:
        """`TestCase::` selects every test run in that class; functions still need a test."""
        ids = (*self.IDS, "tests/test_a.py::test_a.TestCase")
        assert ids_named(ids, "tests/test_a.py", {"TestCase::"}) == {
            "tests/test_a.py::TestCase::test_value",
            "tests/test_a.py::test_a.TestCase",
        }
        assert ids_named(ids, "tests/test_a.py", {"TestMore::", "test_small"}) == {
            "tests/test_a.py::TestMore::test_value",
            "tests/test_a.py::test_small",
        }
        assert ids_named(ids, "tests/test_a.py", {"TestMore::", "helper"}) == set()

    def test_a_tests_doctest_is_matched(self) -> None:
        """--doctest-modules names a test's docstring `module.test`."""
        assert ids_named(self.IDS, "tests/test_a.py", {"test_sum"}) == {
            "tests/test_a.py::test_a.test_sum"
        }


TESTS = b"""def test_a():
    assert 1 == 1


def test_b():
    assert 2 == 2
"""


class TestCleared:
    PATH = "tests/test_m.py"

    def test_fixes_in_tests_that_passed_are_cleared(self) -> None:
        """test_a failed: the fix in test_b, whose test passed in that run, is cleared."""
        after = TESTS.replace(b"1 == 1", b"1 is 1").replace(b"2 == 2", b"2 is 2")
        steps = [({"fix-a": 2, "fix-b": 6}, after)]
        assert cleared(self.PATH, TESTS, steps, [f"{self.PATH}::test_a"]) == {"fix-b"}

    def test_a_fix_outside_the_test_functions_is_never_cleared(self) -> None:
        """An import can reach every test: it is not cleared, the fix in test_b still is."""
        start = b"import os\n\n\n" + TESTS
        after = start.replace(b"import os\n", b"").replace(b"2 == 2", b"2 is 2")
        steps = [({"fix-b": 9, "import": 1}, after)]
        assert cleared(self.PATH, start, steps, [f"{self.PATH}::test_a"]) == {"fix-b"}

    def test_nothing_is_cleared_when_a_test_elsewhere_failed(self) -> None:
        """A failing test in another module is not this module's tests' to explain."""
        after = TESTS.replace(b"2 == 2", b"2 is 2")
        steps = [({"fix-b": 6}, after)]
        assert cleared(self.PATH, TESTS, steps, ["tests/test_other.py::test_b"]) == set()

    def test_only_the_start_is_parsed(self, parsed: list[bytes]) -> None:
        """Three steps (quotes; a line added above test_b; a comment): every fix is placed
        in the start's defs through the steps' line diffs, and only the start is read."""
        start = TESTS.replace(b"1 == 1", b"'1' == '1'")
        quoted = start.replace(b"'1'", b'"1"')
        moved = quoted.replace(b"2 == 2", b"2 is 2").replace(b"\ndef test_b", b"\n\ndef test_b")
        last = moved.replace(b"2 is 2", b"2 is 2  # fixed")
        steps = [({"q": 2}, quoted), ({"fix-b": 6}, moved), ({"fix-c": 7}, last)]
        assert cleared(self.PATH, start, steps, [f"{self.PATH}::test_a"]) == {"fix-b", "fix-c"}
        assert cleared(self.PATH, start, steps, [f"{self.PATH}::test_b"]) == {"q"}
        assert parsed == [start]

    def test_a_line_added_at_a_defs_end_is_that_defs(self) -> None:
        """A step appends a line to test_a, with test_b right below it (no blank line): a
        fix on that line in the next step is in test_a, which failed, so not cleared."""
        start = (
            b"class TestX:\n    def test_a(self):\n        x = None\n"
            b"    def test_b(self):\n        pass\n"
        )
        added = start.replace(b"x = None\n", b"x = None\n        assert x == None\n")
        fixed = added.replace(b"x == None", b"x is None")
        steps = [({}, added), ({"e711": 4}, fixed)]
        failing = [f"{self.PATH}::TestX::test_a"]
        assert cleared(self.PATH, start, steps, failing) == set()
        assert cleared(self.PATH, start, steps, [f"{self.PATH}::TestX::test_b"]) == {"e711"}

    def test_annotated_def_lines_map_line_for_line(self) -> None:
        """ANN201 adds `-> None` to both def lines; the next step's fix in test_b is placed
        in test_b, and the annotations in their own defs."""
        annotated = TESTS.replace(b"():", b"() -> None:")
        fixed = annotated.replace(b"2 == 2", b"2 is 2")
        steps = [({"ann-a": 1, "ann-b": 5}, annotated), ({"fix-b": 6}, fixed)]
        assert cleared(self.PATH, TESTS, steps, [f"{self.PATH}::test_a"]) == {"ann-b", "fix-b"}
        assert cleared(self.PATH, TESTS, steps, [f"{self.PATH}::test_b"]) == {"ann-a"}

    def test_a_statement_moved_out_of_a_def_changes_the_outline(self) -> None:
        """Same lines and defs, but `y = 2` dedented to the module: a fix on it is outside
        every test (read again, not taken from the content before), so it is never cleared."""
        inside = b"def test_a():\n    x = 1\n    y = 2\ndef test_b():\n    pass\n"
        outside = inside.replace(b"    y = 2", b"y = 2")
        _text.hinted_definitions(inside)
        assert (
            cleared(self.PATH, outside, [({"F1": 3}, outside)], [f"{self.PATH}::test_b"]) == set()
        )

    def test_a_fix_is_placed_in_the_content_its_step_began_from(self) -> None:
        """Rows are read step by step: an earlier step's inserted lines move the next."""
        wrapped = TESTS.replace(b"assert 1 == 1", b"assert (\n        1 is 1\n    )")
        last = wrapped.replace(b"2 == 2", b"2 is 2")
        steps = [({"fix-a": 2}, wrapped), ({"fix-b": 8}, last)]
        failing = [f"{self.PATH}::test_a[x]"]
        assert cleared(self.PATH, TESTS, steps, failing) == {"fix-b"}
        assert cleared(self.PATH, TESTS, steps, [f"{self.PATH}::test_b"]) == {"fix-a"}
