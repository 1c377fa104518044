"""Everything that touches the machine: git, subprocesses, ruff, tests, proof."""

from ._errors import (
    ConfigError,
    FixbotError,
    RepoError,
    ServiceError,
    TamperError,
    TestCommandError,
    ToolError,
)
from ._git import GitError, git
from ._isolation import Isolation, Limits, default_limits, probe_isolation
from ._policy import is_protected
from ._process import Completed, no_git_env, repo_env, run
from ._prove import Baseline, Candidate, ProofStats, Prover
from ._ruff import FixDidNotConverge, LintResult, Ruff, default_ruff
from ._testrun import TestCommand, find_python, resolve_test_command, run_tests
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
    "Baseline",
    "Candidate",
    "Completed",
    "ConfigError",
    "Edit",
    "Fault",
    "FileChange",
    "Fix",
    "FixDidNotConverge",
    "FixbotError",
    "GitError",
    "Isolation",
    "Limits",
    "LintCache",
    "LintResult",
    "Location",
    "Patch",
    "ProofStats",
    "Prover",
    "RepoError",
    "Ruff",
    "ServiceError",
    "Step",
    "TamperError",
    "TestCommand",
    "TestCommandError",
    "TestResults",
    "ToolError",
    "Verdict",
    "Violation",
    "Worktree",
    "WorktreePool",
    "default_limits",
    "default_ruff",
    "find_python",
    "fingerprints",
    "generated_files",
    "git",
    "is_protected",
    "no_git_env",
    "probe_isolation",
    "repo_env",
    "resolve_test_command",
    "run",
    "run_tests",
    "sha256",
    "sweep",
]
