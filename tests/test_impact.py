"""sandbox._impact: test impact selection from the real `ruff analyze graph` on real files."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import pytest

from fixbot.sandbox._impact import ImpactMap, build_impact_map
from fixbot.sandbox._ruff import default_ruff
from tests.conftest import write_files

if TYPE_CHECKING:
    from pathlib import Path

# A package with a direct import (core -> util), a string import (plugins -> lazy),
# a re-exporting package (shapes), and two levels of conftest.
TREE = {
    "pkg/__init__.py": "",
    "pkg/util.py": "def f():\n    return 1\n",
    "pkg/core.py": "from pkg.util import f\n\n\ndef g():\n    return f()\n",
    "pkg/lazy.py": "X = 1\n",
    "pkg/plugins.py": """
        import importlib


        def load():
            return importlib.import_module("pkg.lazy")
        """,
    "shapes/__init__.py": "from shapes.circle import area\n\n__all__ = ['area']\n",
    "shapes/circle.py": "def area(r):\n    return 3 * r * r\n",
    "tests/conftest.py": "",
    "tests/test_core.py": "from pkg.core import g\n\n\ndef test_g():\n    assert g() == 1\n",
    "tests/test_util.py": "import pkg.util\n\n\ndef test_f():\n    assert pkg.util.f() == 1\n",
    "tests/test_plugins.py": "from pkg.plugins import load\n\n\ndef test_load():\n    load()\n",
    "tests/test_shapes.py": "from shapes import area\n\n\ndef test_area():\n    area(1)\n",
    "tests/test_circle.py": "from shapes.circle import area\n\n\ndef test_a():\n    area(1)\n",
    "tests/sub/conftest.py": "import pkg.core\n",
    "tests/sub/test_x.py": "def test_x():\n    pass\n",
    "README.md": "# pkg\n",
}


def build(root: Path, always_full: tuple[str, ...] = ()) -> ImpactMap:
    """The impact map of `root`, built with the pinned ruff."""
    return anyio.run(lambda: build_impact_map(root, default_ruff(), always_full=always_full))


@pytest.fixture(scope="module")
def impact(tmp_path_factory: pytest.TempPathFactory) -> ImpactMap:
    root = tmp_path_factory.mktemp("tree")
    write_files(root, TREE)
    return build(root)


class TestBuild:
    def test_every_python_file_is_a_key(self, impact: ImpactMap):
        """Each analysed .py file is in the graph, with or without dependents."""
        assert {p for p in TREE if p.endswith(".py")} <= impact.dependents.keys()

    def test_tests_and_conftests_found(self, impact: ImpactMap):
        """test_*.py files are tests; conftest.py files are conftests, not tests."""
        assert impact.tests == {p for p in TREE if p.rsplit("/", 1)[-1].startswith("test_")}
        assert impact.conftests == {"tests/conftest.py", "tests/sub/conftest.py"}

    def test_ancestor_init_edges_added(self, impact: ImpactMap):
        """Every module in pkg depends on pkg/__init__.py, which ruff leaves out."""
        assert impact.dependents["pkg/__init__.py"] == {
            "pkg/util.py",
            "pkg/core.py",
            "pkg/lazy.py",
            "pkg/plugins.py",
        }

    def test_clean_tree_has_no_opaque_files(self, impact: ImpactMap):
        """Nothing is opaque when ruff read every file."""
        assert impact.opaque == frozenset()
        assert impact.blind is None


class TestTestsFor:
    def test_util_reaches_importers_and_sub_conftest(self, impact: ImpactMap):
        """util -> core -> test_core and tests/sub/conftest.py -> every test under tests/sub."""
        assert impact.tests_for(["pkg/util.py"]) == {
            "tests/test_core.py",
            "tests/test_util.py",
            "tests/sub/test_x.py",
        }

    def test_string_import_is_followed(self, impact: ImpactMap):
        """lazy is only named in importlib.import_module("pkg.lazy"), and is still reached."""
        assert impact.tests_for(["pkg/lazy.py"]) == {"tests/test_plugins.py"}

    def test_changed_test_selects_itself(self, impact: ImpactMap):
        """A test file nothing imports selects only itself."""
        assert impact.tests_for(["tests/test_core.py"]) == {"tests/test_core.py"}

    @pytest.mark.parametrize("conftest", ["tests/conftest.py", "tests/sub/conftest.py"])
    def test_changed_conftest_means_full_suite(self, impact: ImpactMap, conftest: str):
        """A conftest change cannot be scoped by imports."""
        assert impact.tests_for([conftest]) is None

    def test_reexporting_init_reaches_package_users(self, impact: ImpactMap):
        """shapes/__init__.py re-exports circle: its users and circle's users are selected."""
        assert impact.tests_for(["shapes/__init__.py"]) == {
            "tests/test_shapes.py",
            "tests/test_circle.py",
        }

    def test_reexported_module_reaches_through_init(self, impact: ImpactMap):
        """A change to circle reaches `from shapes import area` through the re-export."""
        assert impact.tests_for(["shapes/circle.py"]) == {
            "tests/test_shapes.py",
            "tests/test_circle.py",
        }

    def test_dotted_import_reaches_parent_init(self, impact: ImpactMap):
        """`import pkg.util` runs pkg/__init__.py, so a change there selects test_util."""
        selected = impact.tests_for(["pkg/__init__.py"])
        assert selected is not None
        assert "tests/test_util.py" in selected
        assert selected == {
            "tests/test_core.py",
            "tests/test_util.py",
            "tests/test_plugins.py",
            "tests/sub/test_x.py",
        }

    def test_file_not_in_graph_means_full_suite(self, impact: ImpactMap):
        """An unknown path cannot be scoped."""
        assert impact.tests_for(["pkg/missing.py"]) is None

    @pytest.mark.parametrize("path", ["README.md", "pkg/data.json", "pkg/util.pyi"])
    def test_non_python_means_full_suite(self, impact: ImpactMap, path: str):
        """Only .py files are scoped."""
        assert impact.tests_for([path]) is None

    def test_one_unknown_among_many_means_full_suite(self, impact: ImpactMap):
        """A single unknown file in the change set decides for the whole set."""
        assert impact.tests_for(["pkg/lazy.py", "README.md"]) is None

    def test_union_of_changes(self, impact: ImpactMap):
        """Several changed files select the union of their tests."""
        assert impact.tests_for(["pkg/lazy.py", "shapes/circle.py"]) == {
            "tests/test_plugins.py",
            "tests/test_shapes.py",
            "tests/test_circle.py",
        }

    def test_nothing_changed_selects_nothing(self, impact: ImpactMap):
        """An empty change set needs no tests."""
        assert impact.tests_for([]) == frozenset()

    def test_dot_slash_paths_are_normalised(self, impact: ImpactMap):
        """./pkg/lazy.py is pkg/lazy.py."""
        assert impact.tests_for(["./pkg/lazy.py"]) == {"tests/test_plugins.py"}


class TestConservative:
    def test_always_full_globs_and_folders(self, tmp_path: Path):
        """A configured file glob or folder means the full suite; others are still scoped."""
        write_files(tmp_path, TREE)
        impact = build(tmp_path, always_full=("pkg/c*.py", "shapes/"))
        assert impact.tests_for(["pkg/core.py"]) is None
        assert impact.tests_for(["shapes/circle.py"]) is None
        assert impact.tests_for(["pkg/lazy.py"]) == {"tests/test_plugins.py"}

    def test_unparsable_file_is_unknown_and_always_reached(self, tmp_path: Path):
        """A syntax error hides a file's imports: changing it is unknown, any change reaches it."""
        write_files(tmp_path, TREE)
        write_files(
            tmp_path,
            {
                "pkg/bad.py": "def broken(:\n    pass\n",
                "tests/test_bad.py": "import pkg.bad\n\n\ndef test_b():\n    pass\n",
            },
        )
        impact = build(tmp_path)
        assert impact.opaque == {"pkg/bad.py"}
        assert impact.tests_for(["pkg/bad.py"]) is None
        assert impact.tests_for(["pkg/lazy.py"]) == {"tests/test_plugins.py", "tests/test_bad.py"}

    def test_files_excluded_from_ruff_are_opaque(self, tmp_path: Path):
        """Excluded files' imports are unread: their importers and excluded tests are always run."""
        write_files(tmp_path, TREE)
        write_files(
            tmp_path,
            {
                "pyproject.toml": '[tool.ruff]\nextend-exclude = ["pkg/_vendor", "tests/legacy"]\n',
                "pkg/_vendor/__init__.py": "",
                "pkg/_vendor/six.py": "import pkg.util\n",
                "pkg/compat.py": "from pkg._vendor import six\n",
                "tests/test_compat.py": "import pkg.compat\n",
                "tests/legacy/test_old.py": "import pkg.core\n",
                ".venv/lib/site-packages/dep/test_dep.py": "",
            },
        )
        impact = build(tmp_path)
        assert impact.opaque == {"pkg/_vendor/six.py", "tests/legacy/test_old.py"}
        assert "tests/legacy/test_old.py" in impact.tests
        assert impact.tests_for(["pkg/_vendor/six.py"]) is None
        assert impact.tests_for(["pkg/lazy.py"]) == {
            "tests/test_plugins.py",
            "tests/test_compat.py",
            "tests/legacy/test_old.py",
        }

    def test_excluded_file_of_standard_imports_is_a_leaf(self, tmp_path: Path):
        """A generated, excluded _version.py that imports only the stdlib widens nothing."""
        write_files(tmp_path, TREE)
        write_files(
            tmp_path,
            {
                "pyproject.toml": '[tool.ruff]\nextend-exclude = ["*/_version.py", "*/_gen.py"]\n',
                "pkg/_version.py": "from __future__ import annotations\nimport sys\nV = '1'\n",
                "pkg/_gen.py": "from . import util\n",
                "pkg/__init__.py": "from pkg._version import V\n",
                "shapes/__init__.py": "from shapes.circle import area\nfrom pkg._gen import util\n",
            },
        )
        impact = build(tmp_path)
        # _gen.py's relative import could reach anything: it stays opaque, and what
        # reaches it (shapes) always runs; what reaches only _version.py does not.
        assert impact.opaque == {"pkg/_gen.py"}
        assert impact.tests_for(["tests/test_util.py"]) == {
            "tests/test_util.py",
            "tests/test_shapes.py",
            "tests/test_circle.py",
        }

    def test_reached_root_conftest_selects_every_test(self, tmp_path: Path):
        """A conftest.py at the root that imports lazy makes lazy reach every test."""
        write_files(tmp_path, TREE)
        write_files(tmp_path, {"conftest.py": "import pkg.lazy\n"})
        impact = build(tmp_path)
        assert impact.tests_for(["pkg/lazy.py"]) == impact.tests
        assert impact.tests_for(["conftest.py"]) is None

    def test_ruff_failure_is_blind_not_an_error(self, tmp_path: Path):
        """A config ruff rejects gives a map that always answers 'full suite'."""
        write_files(tmp_path, TREE)
        write_files(tmp_path, {"pyproject.toml": '[tool.ruff]\nline-length = "wide"\n'})
        impact = build(tmp_path)
        assert impact.blind is not None
        assert "exited" in impact.blind
        assert impact.tests_for(["pkg/lazy.py"]) is None

    def test_missing_ruff_is_blind_not_an_error(self, tmp_path: Path):
        """A ruff that cannot start gives a blind map, not an exception."""
        write_files(tmp_path, TREE)
        impact = anyio.run(build_impact_map, tmp_path, str(tmp_path / "no-such-ruff"))
        assert impact.blind is not None
        assert impact.tests_for(["pkg/lazy.py"]) is None


class TestScale:
    def test_five_thousand_modules(self, tmp_path: Path):
        """Time build_impact_map on 5,000 small modules (printed, not asserted)."""
        packages, per_package = 50, 100
        for p in range(packages):
            folder = tmp_path / "big" / f"p{p:02d}"
            folder.mkdir(parents=True)
            (folder / "__init__.py").write_text("")
            for m in range(per_package):
                # A chain inside each package plus one edge into the previous package.
                imports = [f"from big.p{p:02d} import m{m - 1:03d}"] if m else []
                if p and m == 0:
                    imports.append(f"import big.p{p - 1:02d}.m{per_package - 1:03d}")
                body = "\n".join([*imports, "", f"def f{m}():", f"    return {m}", ""])
                (folder / f"m{m:03d}.py").write_text(body)
        (tmp_path / "big" / "__init__.py").write_text("")
        tests = tmp_path / "tests"
        tests.mkdir()
        for p in range(packages):
            (tests / f"test_p{p:02d}.py").write_text(f"import big.p{p:02d}.m050\n")
        start = time.perf_counter()
        impact = build(tmp_path)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        selected = impact.tests_for(["big/p00/m000.py"])
        query = time.perf_counter() - start
        assert selected is not None
        assert len(selected) == packages  # p00/m000 reaches every package down the chain
        edges = sum(len(v) for v in impact.dependents.values())
        print(  # noqa: T201 - the measurement is the point of this test
            f"\nbuild_impact_map: {len(impact.dependents)} files, {edges} edges "
            f"in {elapsed:.2f}s; one tests_for query {query * 1000:.1f}ms"
        )
