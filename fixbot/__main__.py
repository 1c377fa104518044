"""`python -m fixbot` is the `fixbot` command."""

from fixbot.orchestrator.cli import main

main()
