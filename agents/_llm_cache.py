"""Model replies on disk, so a rerun over unchanged code sends nothing.

Keyed by the model and the exact request (streamed or not, the reply is the
same); written atomically, so a killed run leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("fixbot")


def cache_key(model: str, body: dict[str, Any]) -> str:
    """sha256 of the model and the exact request JSON, streamed or not."""
    unstreamed = {k: v for k, v in body.items() if k != "stream"}
    raw = json.dumps([model, unstreamed], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Reply:
    """The model's answer, the same whether it was streamed, sent whole or cached."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


class ReplyCache:
    """Replies under `folder` (or nowhere, when it is None)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path | None:
        return None if self.folder is None else self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> Reply | None:
        """The stored reply, marked cached, or None."""
        if (path := self._path(key)) is None or not path.is_file():
            return None
        try:
            return Reply(**{**json.loads(path.read_text(encoding="utf-8")), "cached": True})
        except (OSError, ValueError, TypeError):
            log.warning("llm.cache_unreadable", path=str(path))
            return None

    def put(self, key: str, reply: Reply) -> None:
        """Store a complete reply; a failure to write is logged, never raised."""
        if (path := self._path(key)) is None:
            return
        record = {k: v for k, v in asdict(reply).items() if k != "cached"}
        tmp: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", dir=path.parent, prefix=".tmp-", delete=False
            ) as out:
                tmp = Path(out.name)
                json.dump(record, out, ensure_ascii=False)
            tmp.replace(path)  # atomic: readers see the old file or the whole new one
        except OSError as exc:
            log.warning("llm.cache_write_failed", path=str(path), error=str(exc))
            if tmp is not None:
                tmp.unlink(missing_ok=True)
