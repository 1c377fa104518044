"""Agents propose patches: ruff's own fixes and a model over an OpenAI-compatible API."""

from ._protocol import Agent, Request, Task
from ._router import Router, Stage
from ._ruff_agent import RuffAgent

__all__ = ["Agent", "Request", "Router", "RuffAgent", "Stage", "Task"]
