"""Which agents a run uses, built from the config, and what the model will cost."""

from __future__ import annotations

import dataclasses
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fixbot.agents import RuffAgent

from ._report import LlmBlock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from fixbot.agents import Agent, LlmClient, Router
    from fixbot.sandbox import LintCache, Ruff

    from ._config import Config
    from ._plan import Plan

# A rough prompt size for the estimate: system message with the rule's docs, plus a region.
PROMPT_TOKENS_ESTIMATE = 1500


def wanted(config: Config, name: str) -> bool:
    """Whether `--agents` allows this agent (unset: every agent that can serve)."""
    return config.agents is None or name in config.agents


@asynccontextmanager
async def make_agents(
    config: Config, ruff: Ruff, cache: Path, lint_cache: LintCache | None = None
) -> AsyncIterator[tuple[list[Agent], LlmClient | None]]:
    """The enabled agents, cheapest and surest first, and the model client if any."""
    agents: list[Agent] = []
    if wanted(config, "ruff"):
        # Safe and unsafe fixes in one chain per file: one round of proof instead of two;
        # a rejection is narrowed down to the fix that broke something.
        modes = ("fix",) if config.unsafe_fixes else ("safe",)
        agents.append(
            RuffAgent(ruff.executable, ruff.select, config.max_fix_iterations, modes, lint_cache)
        )
    client = None
    if wanted(config, "llm") and config.llm_enabled:
        from fixbot.agents import LlmAgent, LlmClient, LlmSettings  # noqa: PLC0415 - httpx only when a model is used

        client = LlmClient(
            LlmSettings(
                base_url=config.llm_base_url or "",
                model=config.llm_model or "",
                api_key=config.llm_api_key,
                concurrency=config.llm_concurrency,
                max_requests=config.llm_max_requests,
                token_budget=config.llm_token_budget,
                timeout=config.llm_timeout,
                max_tokens=config.llm_max_tokens,
                stream=config.llm_stream,
                api_version=config.llm_api_version,
                cache_dir=cache / "llm",
            )
        )
        agents.append(LlmAgent(client, ruff, rules=config.llm_select, ignore=config.llm_ignore))
    try:
        yield agents, client
    finally:
        if client is not None:
            await client.aclose()


def estimate_llm(plan: Plan, router: Router, config: Config) -> dict[str, int]:
    """Requests and tokens the model would take if every first attempt were used."""
    llm = [s for s in router.stages if s.agent.name == "llm"]
    if not llm:
        return {"estimated_requests": 0, "estimated_tokens": 0}
    stage = llm[0]
    count = sum(1 for v in plan.violations if stage.agent.can_fix(v, stage.mode))
    return {
        "estimated_requests": count,
        "estimated_tokens": count * (PROMPT_TOKENS_ESTIMATE + config.llm_max_tokens),
    }


def llm_block(client: LlmClient | None, estimate: dict[str, int]) -> LlmBlock:
    """report.json's `llm` block."""
    if client is None:
        return LlmBlock.model_validate(estimate)
    return LlmBlock.model_validate({**dataclasses.asdict(client.usage), **estimate})
