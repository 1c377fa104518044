"""The proof algorithm: what "proven" means, batching, bisection, narrowing, static checks.

Apart from the machine adapters beside it (git, worktrees, processes, ruff, the
test runner, isolation), which it uses. See docs/architecture.md, "What proven means".
"""

from ._candidate import Candidate, ProofStats
from ._chain import ChainProblem, chain_problem
from ._identity import carry_origins, with_identity
from ._judge import Baseline, entropy_bound, test_file
from ._prove import Prover
from ._scope import cleared

__all__ = [
    "Baseline",
    "Candidate",
    "ChainProblem",
    "ProofStats",
    "Prover",
    "carry_origins",
    "chain_problem",
    "cleared",
    "entropy_bound",
    "test_file",
    "with_identity",
]
