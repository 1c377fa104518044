"""Which tests a change can reach: the import graph's files, narrowed to functions.

Test impact selection (docs/architecture.md, "Batches and their cost"): a run proves a
change with the tests that can reach it. Where the graph cannot say, the whole suite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._judge import test_file
from ._scope import ids_named

if TYPE_CHECKING:
    from collections.abc import Collection

    from fixbot.sandbox._impact import ImpactMap
    from fixbot.sandbox._testrun import TestCommand

    from ._judge import Baseline


def select_tests(
    impact: ImpactMap | None,
    baseline: Baseline,
    command: TestCommand | None,
    changed: Collection[str] | Mapping[str, frozenset[str] | None] | None,
    reverted: Collection[str] | None = None,
) -> list[str] | None:
    """The tests that can reach `changed`, or None for the whole suite.

    Test files, as the import graph selects them; where `changed` maps a test
    module to the functions or classes its change edits (`changed_scopes`), and
    nothing else changed reaches that module, just the tests of those in it.

    With `reverted`, the tree is one a run just tested with those files changed
    as well (a part of a failing batch): only the tests that can reach them run.
    """
    if changed is None or impact is None or baseline.results is None:
        return None
    if command is None or not command.is_pytest:
        return None
    if not baseline.results.per_test:
        return None
    selection = _reaching(impact, baseline, changed)
    if reverted is None or (back := impact.tests_for(reverted)) is None:
        return selection
    # A run with `reverted` as well passed every test but those the caller adds
    # (`also`): a test that cannot reach them would pass again.
    keep = back | (baseline.test_files - impact.tests)
    if selection is None:
        return sorted(keep & baseline.test_files)
    return [s for s in selection if test_file(s) in keep]


def _reaching(
    impact: ImpactMap,
    baseline: Baseline,
    changed: Collection[str] | Mapping[str, frozenset[str] | None],
) -> list[str] | None:
    assert baseline.results is not None  # noqa: S101 - select_tests checks
    reach = impact.tests_for(changed)
    if reach is None:
        return None
    known = baseline.test_files
    # Test files the map does not know (custom python_files) always run.
    files = set(reach & known) | (known - impact.tests)
    narrowed: set[str] = set()
    scopes = changed if isinstance(changed, Mapping) else {}
    whole = {test_file(t) for t in baseline.needs_file}
    for path, names in scopes.items():
        if names is None or path not in files or path in whole:
            continue
        others = impact.tests_for(p for p in changed if p != path)
        if others is None or path in others:
            continue  # another change reaches this module too: all its tests run
        if not names:
            files.discard(path)  # its content is the same: nothing there changed
        elif ids := ids_named(baseline.results.outcomes, path, names):
            files.discard(path)
            narrowed |= ids
    return sorted(files) + sorted(narrowed)
