"""`python -m orchestrator` is `fixbot`."""

from .cli import main

main()
