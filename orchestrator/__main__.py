"""`python -m fixbot.orchestrator` is the `fixbot` command too."""

from .cli import main

main()
