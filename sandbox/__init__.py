"""Everything that touches the machine: git, subprocesses, ruff, tests, proof."""

from ._chain import carry_origins
from ._errors import (
    ConfigError,
    FixbotError,
    RepoError,
    ServiceError,
    TamperError,
    TestCommandError,
    ToolError,
)
from ._git import (
    GitError,
    checked_out_branches,
    common_dir,
    git,
    ls_tree_modes,
    rev_parse,
    toplevel,
)
from ._guard import Fingerprint, MetadataGuard
from ._impact import ImpactMap, build_impact_map
from ._isolation import Isolation, Limits, default_limits, probe_isolation
from ._judge import entropy_bound
from ._policy import is_protected
from ._process import Completed, no_git_env, repo_env, run
from ._prove import Baseline, Candidate, ProofStats, Prover
from ._ruff import FixDidNotConverge, LintResult, Ruff, default_ruff
from ._testcache import TestCache, environment_of
from ._testrun import TestCommand, find_python, resolve_test_command, run_tests
from ._text import BOM, apply_edits, decode, encode, line_starts, offset_of, split_lines
from ._types import (
    Edit,
    Fault,
    FileChange,
    Fix,
    LintCache,
    Location,
    Patch,
    Step,
    TestResults,
    Verdict,
    Violation,
    fingerprints,
    sha256,
)
from ._worktree import Worktree, WorktreePool, generated_files, sweep

__all__ = [
    "BOM",
    "Baseline",
    "Candidate",
    "Completed",
    "ConfigError",
    "Edit",
    "Fault",
    "FileChange",
    "Fingerprint",
    "Fix",
    "FixDidNotConverge",
    "FixbotError",
    "GitError",
    "ImpactMap",
    "Isolation",
    "Limits",
    "LintCache",
    "LintResult",
    "Location",
    "MetadataGuard",
    "Patch",
    "ProofStats",
    "Prover",
    "RepoError",
    "Ruff",
    "ServiceError",
    "Step",
    "TamperError",
    "TestCache",
    "TestCommand",
    "TestCommandError",
    "TestResults",
    "ToolError",
    "Verdict",
    "Violation",
    "Worktree",
    "WorktreePool",
    "apply_edits",
    "build_impact_map",
    "carry_origins",
    "checked_out_branches",
    "common_dir",
    "decode",
    "default_limits",
    "default_ruff",
    "encode",
    "entropy_bound",
    "environment_of",
    "find_python",
    "fingerprints",
    "generated_files",
    "git",
    "is_protected",
    "line_starts",
    "ls_tree_modes",
    "no_git_env",
    "offset_of",
    "probe_isolation",
    "repo_env",
    "resolve_test_command",
    "rev_parse",
    "run",
    "run_tests",
    "sha256",
    "split_lines",
    "sweep",
    "toplevel",
]
