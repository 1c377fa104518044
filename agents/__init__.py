"""Agents propose patches: ruff's own fixes and a model over an OpenAI-compatible API."""

from typing import TYPE_CHECKING

from ._protocol import Agent, BatchAgent, Request, Task
from ._router import Router, Stage
from ._ruff_agent import RuffAgent

if TYPE_CHECKING:
    from ._llm import LlmAgent
    from ._llm_client import LlmClient, LlmSettings, honour_retry_after, parse_retry_after

__all__ = [
    "Agent",
    "BatchAgent",
    "LlmAgent",
    "LlmClient",
    "LlmSettings",
    "Request",
    "Router",
    "RuffAgent",
    "Stage",
    "Task",
    "honour_retry_after",
    "parse_retry_after",
]

# The model's agent and client import httpx: only when a model is used.
_LAZY = {
    "LlmAgent": "._llm",
    "LlmClient": "._llm_client",
    "LlmSettings": "._llm_client",
    "honour_retry_after": "._llm_client",
    "parse_retry_after": "._llm_client",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib  # noqa: PLC0415 - a lazy export

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
