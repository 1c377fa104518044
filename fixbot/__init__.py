"""fixbot: pays down a repository's lint debt; only proven fixes land on a branch.

What installs is importable only under this name: `fixbot.sandbox` (what touches
the machine, and the proof), `fixbot.agents` (what proposes patches),
`fixbot.orchestrator` (the run and the command line) and `fixbot.configs` (shipped
defaults). The folders keep their short names in the repository; a top-level
`agents` would clash with other distributions (openai-agents installs one).
See docs/architecture.md.
"""
