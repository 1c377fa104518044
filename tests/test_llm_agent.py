"""agents._llm: the model as a micro-agent, against a fake OpenAI server on 127.0.0.1.

The real ruff lints, and tells the rule's documentation; the fake server speaks the
chat-completions wire protocol over a real socket.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from fixbot.agents import Request, Task
from fixbot.agents._llm import SYSTEM, LlmAgent, build_messages
from fixbot.agents._llm_client import LlmAuthError, LlmClient, LlmSettings
from fixbot.agents._region import find_region
from fixbot.sandbox import Ruff, sha256
from fixbot.sandbox._ruff import default_ruff
from tests.fake_openai import FENCED, FakeOpenAI, Scripted
from tests.fake_openai import fake_openai as _fake_openai_fixture

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from fixbot.sandbox import Patch, Violation

pytestmark = pytest.mark.anyio
fake_openai = _fake_openai_fixture  # the fixture, under its own name

PATH = "pkg/errs.py"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

THREE = """\
def a(x):
    try:
        return int(x)
    except:
        return None


def b(x):
    try:
        return float(x)
    except:
        return None


def c(x):
    try:
        return x.strip()
    except:
        return ""
"""

ONE = """\
import os


def f(x):
    try:
        return os.sep + x
    except:
        return None
"""

# A method, so the region is indented; saved with CRLF endings.
METHOD = """\
class Parser:
    def parse(self, text):
        try:
            return int(text)
        except:
            return None
"""


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy of the machine's may sit in front of loopback."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A repo folder whose ruff config selects rules with and without fixes."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ruff.lint]\nselect = ["E711", "E722", "E741", "F401", "F841"]\n'
    )
    return tmp_path


@pytest.fixture
async def agent(root: Path, fake_openai: FakeOpenAI) -> AsyncIterator[LlmAgent]:
    """The agent, its client pointed at the fake server."""
    settings = LlmSettings(
        base_url=fake_openai.url,
        model="fake-model",
        api_key="sk-test-0123456789",
        timeout=10.0,
        retry_timeout=5.0,
        retry_wait_initial=0.01,
        retry_wait_max=0.05,
        retry_wait_jitter=0.0,
    )
    client = LlmClient(settings)
    try:
        yield LlmAgent(client, Ruff(root))
    finally:
        await client.aclose()


async def lint(root: Path, content: bytes, path: str = PATH) -> list[Violation]:
    """The real ruff's findings in `content` as the file at `path`."""
    return (await Ruff(root).lint_source(path, content)).violations


async def request(root: Path, content: bytes, **extra: Any) -> Request:
    """A request in mode 'llm' for PATH holding `content`."""
    (root / PATH).write_bytes(content)
    task = Task(key=PATH, files=(PATH,), violations=tuple(await lint(root, content)))
    return Request(task=task, mode="llm", content={PATH: content}, root=root, **extra)


def last_block(body: dict[str, Any]) -> str:
    """The fenced code of a request's last message."""
    found = FENCED.search(body["messages"][-1]["content"])
    assert found is not None
    return found.group(1)


def fixing(body: dict[str, Any], *, delay: float = 0.0) -> Scripted:
    """A model that fixes bare excepts in the region it was shown."""
    code = last_block(body).replace("except:", "except Exception:")
    return Scripted.reply(f"Here is the fix.\n\n```python\n{code}```\n", delay=delay)


def rule_docs(rule: str) -> dict[str, str]:
    """What the real `ruff rule` says of a rule."""
    done = subprocess.run(
        [default_ruff(), "rule", rule, "--output-format", "json"],
        capture_output=True,
        check=True,
    )
    return json.loads(done.stdout)


def assert_chain(steps: list[Patch], start: bytes) -> bytes:
    """Each step builds on the one before and names it; the final content."""
    content = start
    for i, step in enumerate(steps):
        assert step.parent == (steps[i - 1].id if i else None)
        assert step.agent == "llm"
        assert step.kind == "llm"
        assert step.files == (PATH,)
        (change,) = step.changes
        assert change.old_sha == sha256(content)
        content = change.new
    return content


class TestBuildMessages:
    async def test_system_then_user_with_one_block(self, root: Path) -> None:
        """Two messages; the last is the user's, with the region in exactly one block."""
        content = METHOD.encode()
        (v,) = await lint(root, content)
        region = find_region(content, v.location.row, v.end_location.row)
        assert region is not None
        docs = {"name": "bare-except", "summary": "S", "explanation": "```python\nx\n```"}
        messages = build_messages(v, region, docs, None)
        assert [m["role"] for m in messages] == ["system", "user"]
        user = messages[-1]["content"]
        assert FENCED.findall(user) == [region.text]
        assert user.count("```") == 2
        assert f"{v.rule} on line 4 of the region below" in user
        assert PATH in user
        # The documentation, code examples and all, is in the system message.
        assert "```python\nx\n```" in messages[0]["content"]

    async def test_feedback_in_system_unfenced(self, root: Path) -> None:
        """A previous verdict goes in the system message as plain text, never in a fence."""
        content = METHOD.encode()
        (v,) = await lint(root, content)
        region = find_region(content, v.location.row, v.end_location.row)
        assert region is not None
        docs = {"name": "bare-except", "summary": "S", "explanation": "E"}
        detail = "new violations: F841 pkg/errs.py:4: Local variable `e` is assigned"
        plain = build_messages(v, region, docs, None)
        messages = build_messages(v, region, docs, f"lint\n{detail}")
        system, user = messages[0]["content"], messages[1]["content"]
        assert "rejected (lint)" in system
        assert detail in system
        assert system.count("```") == plain[0]["content"].count("```")
        assert user == plain[1]["content"]


class TestRequests:
    async def test_region_and_docs_sent(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """The last message holds the region ('\\n' endings, original indent); docs in system."""
        content = METHOD.replace("\n", "\r\n").encode()
        fake_openai.script(fixing)
        await agent.propose(await request(root, content))
        (sent,) = fake_openai.requests
        messages = sent.json["messages"]
        assert sent.path.endswith("/chat/completions")
        assert messages[-1]["role"] == "user"
        assert [m["role"] for m in messages[:-1]] == ["system"]
        user = messages[-1]["content"]
        assert FENCED.findall(user) == [METHOD.split("\n", 1)[1]]
        assert "\r" not in user
        assert user.count("```") == 2
        docs = rule_docs("E722")
        system = messages[0]["content"]
        assert docs["summary"] in system
        assert docs["explanation"][:4000] in system
        # No fence there but the instructions' mention of one and the documentation's own.
        assert system.replace(docs["explanation"], "").count("```") == SYSTEM.count("```")

    async def test_feedback_from_request(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """The request's feedback for a violation reaches its system message, unfenced."""
        content = ONE.encode()
        (v,) = [v for v in await lint(root, content) if v.rule == "E722"]
        fake_openai.script(fixing)
        verdict = "tests\nFAILED tests/test_errs.py::test_f - AssertionError: boom"
        steps = await agent.propose(
            await request(
                root, content, feedback={v.fingerprint: verdict}, attempts={v.fingerprint: 1}
            )
        )
        (sent,) = fake_openai.requests
        system, user = (m["content"] for m in sent.json["messages"])
        assert "rejected (tests)" in system
        assert "FAILED tests/test_errs.py::test_f - AssertionError: boom" in system
        assert "FAILED" not in user
        assert not any("FAILED" in block for block in re.findall(r"```.*?```", system, re.DOTALL))
        assert [s.attempt for s in steps] == [2]

    async def test_crlf_file_spliced_back_with_crlf(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """The reply has '\\n' endings; the patched file keeps CRLF and its BOM."""
        content = b"\xef\xbb\xbf" + METHOD.replace("\n", "\r\n").encode()
        fake_openai.script(fixing)
        (step,) = await agent.propose(await request(root, content))
        expected = METHOD.replace("except:", "except Exception:").replace("\n", "\r\n")
        assert step.changes[0].new == b"\xef\xbb\xbf" + expected.encode()


class TestPropose:
    async def test_three_concurrent_requests_one_chain(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """Three bare excepts: three requests in flight at once, a chain of three one-fix steps."""
        content = THREE.encode()
        found = await lint(root, content)
        assert [v.rule for v in found] == ["E722"] * 3
        fake_openai.script(lambda body: fixing(body, delay=0.3))
        steps = await agent.propose(await request(root, content))
        assert len(fake_openai.requests) == 3
        assert fake_openai.max_in_flight == 3
        end = assert_chain(steps, content)
        assert end == THREE.replace("except:", "except Exception:").encode()
        assert [len(s.targets) for s in steps] == [1, 1, 1]
        assert [s.rules for s in steps] == [("E722",)] * 3
        assert {s.targets[0].fingerprint for s in steps} == {v.fingerprint for v in found}
        assert len({s.id for s in steps}) == 3
        assert await lint(root, end) == []
        assert agent.dropped == {}

    async def test_only_wanted_and_not_blocked(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """`wanted` narrows the violations asked about; `blocked` ones are never asked."""
        content = THREE.encode()
        a, b, _ = await lint(root, content)
        fake_openai.script(fixing)
        req = await request(
            root,
            content,
            wanted=frozenset({a.fingerprint, b.fingerprint}),
            blocked=frozenset({b.fingerprint}),
        )
        (step,) = await agent.propose(req)
        assert step.targets == (a,)
        assert len(fake_openai.requests) == 1

    async def test_no_code_dropped(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """A reply without a python block is dropped, and why is recorded."""
        content = ONE.encode()
        (v,) = [v for v in await lint(root, content) if v.rule == "E722"]
        fake_openai.script(Scripted.reply("I would catch Exception there."))
        assert await agent.propose(await request(root, content)) == []
        assert agent.dropped == {v.fingerprint: "reply has no python block"}

    async def test_unchanged_dropped(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """A reply that gives the region back unchanged is dropped (the server echoes)."""
        content = ONE.encode()
        (v,) = [v for v in await lint(root, content) if v.rule == "E722"]
        assert await agent.propose(await request(root, content)) == []
        assert len(fake_openai.requests) == 1
        assert v.fingerprint in agent.dropped
        assert "changes nothing" in agent.dropped[v.fingerprint]

    async def test_cut_off_dropped(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """A reply stopped by its length limit is dropped even if its code would fit."""
        content = ONE.encode()
        (v,) = [v for v in await lint(root, content) if v.rule == "E722"]
        region = find_region(content, v.location.row, v.end_location.row)
        assert region is not None
        fixed = region.text.replace("except:", "except Exception:")
        fake_openai.script(Scripted.cut_off(f"```python\n{fixed}```"))
        assert await agent.propose(await request(root, content)) == []
        assert agent.dropped == {v.fingerprint: "reply cut off at its length limit"}

    async def test_one_dropped_others_kept(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """A dropped reply costs only its own step; the chain holds the others."""
        content = THREE.encode()
        _, b, _ = await lint(root, content)

        def respond(body: dict[str, Any]) -> Scripted:
            if "def b" in last_block(body):
                return Scripted.reply("no idea")
            return fixing(body)

        fake_openai.script(respond)
        steps = await agent.propose(await request(root, content))
        end = assert_chain(steps, content)
        assert len(steps) == 2
        assert end.count(b"except:") == 1
        assert b in await lint(root, end)
        assert list(agent.dropped) == [b.fingerprint]

    async def test_auth_failure_raises(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """A 401 is not a dropped reply: LlmAuthError leaves propose."""
        fake_openai.script(Scripted.failure(401, "bad key"))
        with pytest.raises(LlmAuthError):
            await agent.propose(await request(root, THREE.encode()))

    async def test_nothing_to_ask(
        self, root: Path, agent: LlmAgent, fake_openai: FakeOpenAI
    ) -> None:
        """A file with only violations ruff can fix sends no request."""
        assert await agent.propose(await request(root, b"import os\n")) == []
        assert fake_openai.requests == []


class TestCanFix:
    async def test_rules_without_a_fix(self, root: Path, agent: LlmAgent) -> None:
        """Violations ruff cannot fix go to the model; only in mode 'llm'."""
        found = await lint(root, b"l = 1\ntry:\n    pass\nexcept:\n    pass\n")
        assert {v.rule for v in found} == {"E722", "E741"}
        assert all(v.fix is None for v in found)
        assert all(agent.can_fix(v, "llm") for v in found)
        assert not any(agent.can_fix(v, mode) for v in found for mode in ("safe", "unsafe", "fix"))

    async def test_rules_with_a_ruff_fix(self, root: Path, agent: LlmAgent) -> None:
        """Violations with a ruff fix, safe or unsafe, are left to ruff."""
        found = await lint(root, b"import os\n\n\ndef f(x):\n    y = 1\n    return x == None\n")
        assert {v.rule: v.applicability for v in found} == {
            "F401": "safe",
            "F841": "unsafe",
            "E711": "unsafe",
        }
        assert not any(agent.can_fix(v, "llm") for v in found)

    async def test_named_rules_even_with_a_fix(self, root: Path, agent: LlmAgent) -> None:
        """Rules named in `rules=` go to the model even with a ruff fix; others do not."""
        named = LlmAgent(agent.client, agent.ruff, rules=["F4"])
        f401, e722 = await lint(root, b"import os\ntry:\n    pass\nexcept:\n    pass\n")
        assert (f401.rule, e722.rule) == ("F401", "E722")
        assert named.can_fix(f401, "llm")
        assert not named.can_fix(e722, "llm")

    async def test_ignore_prefixes(self, root: Path, agent: LlmAgent) -> None:
        """`ignore=` prefixes are never the model's, even when named in `rules=`."""
        found = await lint(root, b"l = 1\ntry:\n    pass\nexcept:\n    pass\n")
        ignoring = LlmAgent(agent.client, agent.ruff, ignore=["E72"])
        assert {v.rule for v in found if ignoring.can_fix(v, "llm")} == {"E741"}
        both = LlmAgent(agent.client, agent.ruff, rules=["E7"], ignore=["E741"])
        assert {v.rule for v in found if both.can_fix(v, "llm")} == {"E722"}

    async def test_notebooks_excluded(self, root: Path, agent: LlmAgent) -> None:
        """A violation in a notebook cell is not the model's (notebooks are reported unfixed)."""
        cell = {
            "cell_type": "code",
            "execution_count": None,
            "id": "c1",
            "metadata": {},
            "outputs": [],
            "source": ["try:\n", "    pass\n", "except:\n", "    pass\n"],
        }
        notebook = {
            "cells": [cell],
            "metadata": {"language_info": {"name": "python"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        (v,) = await lint(root, json.dumps(notebook).encode(), "pkg/nb.ipynb")
        assert v.rule == "E722"
        assert v.cell is not None
        assert not agent.can_fix(v, "llm")
        assert agent.can_fix(dataclasses.replace(v, cell=None), "llm")
