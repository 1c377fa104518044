"""Agents propose patches: ruff's own fixes now; codemods and models plug in here."""

from ._protocol import Agent, Request, Task
from ._router import Router, Stage
from ._ruff_agent import RuffAgent

__all__ = ["Agent", "Request", "Router", "RuffAgent", "Stage", "Task"]
