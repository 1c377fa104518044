"""The model as micro-agents, end to end: fixbot against a local, imperfect model.

A real HTTP server on 127.0.0.1 plays the model (tests/fake_openai.py): it fixes
some violations well, breaks a test with another, cheats with a noqa (and then
learns from the verdict), answers without code, and throws in a 429, a 500 and a
dropped connection. fixbot runs as a subprocess, as a user would run it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import fixbot, git, init_repo
from tests.fake_openai import FakeOpenAI, Scripted
from tests.fake_openai import fake_openai as _fake_openai_fixture

if TYPE_CHECKING:
    from pathlib import Path

fake_openai = _fake_openai_fixture
KEY = "sk-test-very-secret-key-4242"

REPO = {
    "pyproject.toml": """
        [tool.ruff.lint]
        select = ["E722", "B904", "E741", "F401"]
    """,
    "pkg/__init__.py": "",
    "pkg/errs.py": """
        import os


        def parse_int(text):
            try:
                return int(text)
            except:
                return None


        def lookup(table, key):
            try:
                return table[key]
            except KeyError:
                raise LookupError(f"missing {key}")


        def first_word(text):
            try:
                return text.split()[0]
            except:
                return ""


        def ratio(a, b):
            try:
                return a / b
            except:
                return 0.0


        def total(values):
            l = 0
            for v in values:
                l += v
            return l
    """,
    "tests/test_errs.py": """
        import pytest

        from pkg.errs import first_word, lookup, parse_int, ratio, total


        def test_parse_int():
            assert parse_int("4") == 4
            assert parse_int("x") is None


        def test_lookup():
            with pytest.raises(LookupError):
                lookup({}, "a")


        def test_first_word():
            assert first_word("a b") == "a"
            assert first_word("") == ""


        def test_ratio():
            assert ratio(1, 0) == 0.0


        def test_total():
            assert total([1, 2]) == 3
    """,
}


def region(request: dict[str, Any]) -> str:
    user = request["messages"][-1]["content"]
    return re.search(r"```python\n(.*?)```", user, re.DOTALL).group(1)


class ImperfectModel:
    """Answers like a small, fast, not always right model."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, request: dict[str, Any]) -> Scripted:
        code = region(request)
        system = request["messages"][0]["content"]
        name = re.search(r"def (\w+)", code).group(1)
        self.seen[name] = self.seen.get(name, 0) + 1
        first = self.seen[name] == 1
        fixed = code
        if name == "parse_int":
            if first:
                return Scripted.dropped()
            fixed = code.replace("except:", "except ValueError:")
        elif name == "lookup":
            if first:
                return Scripted.failure(429, "slow down", retry_after=0.1)
            fixed = code.replace("except KeyError:", "except KeyError as err:").replace(
                '{key}")', '{key}") from err'
            )
        elif name == "first_word":
            if "previous attempt" not in system:
                fixed = code.replace("except:", "except:  # noqa: E722")
            else:
                fixed = code.replace("except:", "except IndexError:")
        elif name == "ratio":
            if first:
                return Scripted.failure(500, "overloaded")
            fixed = code.replace("except:", "except ValueError:")  # ZeroDivisionError escapes
        elif name == "total":
            return Scripted.reply("I would rename the variable to something clearer.")
        return Scripted.reply(f"Here is the fix:\n```python\n{fixed}```\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo", REPO)


def run(repo: Path, server: FakeOpenAI, *args: str) -> Any:
    env = {
        "FIXBOT_LLM_BASE_URL": server.url,
        "FIXBOT_LLM_MODEL": "tiny-fast-coder",
        "FIXBOT_LLM_API_KEY": KEY,
    }
    return fixbot("run", repo, "--report-dir", repo.parent / "out", *args, env=env)


def report(repo: Path) -> dict[str, Any]:
    return json.loads((repo.parent / "out" / "report.json").read_text())


class TestImperfectModel:
    """Good fixes land; every cheat and break is rejected with its reason; the run finishes."""

    def test_good_fixes_land_bad_ones_do_not(self, repo: Path, fake_openai: FakeOpenAI) -> None:
        """The right fixes are on the branch, the wrong ones are reported, tests stay green."""
        fake_openai.script(ImperfectModel())
        done = run(repo, fake_openai, "--branch", "llm")
        assert done.returncode == 0, done.stderr
        fixed = git(repo, "show", "llm:pkg/errs.py")
        assert (
            "except ValueError:\n        return None" in fixed
        )  # parse_int, after a dropped connection
        assert 'raise LookupError(f"missing {key}") from err' in fixed  # lookup, after a 429
        assert "except IndexError:" in fixed  # first_word: the noqa cheat, then a real fix
        assert "noqa" not in fixed
        assert "    except:\n        return 0.0" in fixed  # ratio's fix broke test_ratio
        assert "import os" not in fixed  # ruff's own fix, before any model
        data = report(repo)
        patches = [p for p in data["patches"] if p["agent"] == "llm"]
        reasons = {(p["rules"][0], p["status"], p["reason"]) for p in patches}
        assert ("E722", "rejected", "policy") in reasons
        assert ("E722", "rejected", "tests") in reasons
        assert ("B904", "accepted", "proven") in reasons
        e722 = data["by_rule"]["E722"]
        assert (e722["found"], e722["fixed"], e722["rejected"], e722["unfixed"]) == (3, 2, 1, 0)
        # Three model replies broke a test, one tried a noqa: both kept apart by reason.
        assert e722["refused"] == {"tests": 3, "policy": 1}
        assert data["by_rule"]["E741"]["unfixed"] == 2  # the reply had no code
        assert data["unfixed_reasons"].get("reply has no python block", 0) >= 1
        llm = data["llm"]
        assert llm["retries"] >= 3  # the 429, the 500, the dropped connection
        assert llm["requests"] >= len(fake_openai.requests) > 0
        assert llm["prompt_tokens"] > 0
        assert llm["completion_tokens"] > 0
        ratio_tries = [p for p in patches if p["status"] == "rejected" and p["reason"] == "tests"]
        assert len(ratio_tries) == 3  # llm-attempts, in total

    def test_the_key_goes_nowhere_else(self, repo: Path, fake_openai: FakeOpenAI) -> None:
        """The key is sent to the model only: not in logs, reports, or the tests' environment."""
        fake_openai.script(ImperfectModel())
        # The tests may write nowhere outside their worktree, so the spy cannot carry
        # the key out to be looked at: it fails the run at base if it sees the key.
        spy = (
            "import glob, os\n"
            "seen = [repr(dict(os.environ))]\n"
            "for p in glob.glob('/proc/*/environ'):\n"
            "    try:\n"
            "        seen.append(open(p, 'rb').read().decode('latin-1'))\n"
            "    except OSError:\n"
            "        pass\n"
            f"if {KEY!r} in ''.join(seen) or 'PATH' not in os.environ:\n"
            "    raise SystemExit('the spy saw the key')\n"
        )
        (repo / "tests" / "conftest.py").write_text(spy)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "spy")
        done = run(repo, fake_openai, "--log-format", "json")
        assert done.returncode == 0, done.stderr
        assert KEY not in done.stdout + done.stderr
        for path in (repo.parent / "out").iterdir():
            assert KEY not in path.read_text()
        for path in (repo / ".git" / "fixbot").rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes()
        assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake_openai.requests)

    def test_rerun_is_served_from_the_cache(self, repo: Path, fake_openai: FakeOpenAI) -> None:
        """A second run over unchanged code makes no request."""
        fake_openai.script(ImperfectModel())
        assert run(repo, fake_openai, "--dry-run").returncode == 0
        sent = len(fake_openai.requests)
        assert run(repo, fake_openai, "--dry-run").returncode == 0
        assert len(fake_openai.requests) == sent
        assert report(repo)["llm"]["requests"] == 0
        assert report(repo)["llm"]["cache_hits"] > 0

    def test_refused_key_is_exit_3(self, repo: Path, fake_openai: FakeOpenAI) -> None:
        """A model that refuses the key ends the run with exit 3 and one line."""
        fake_openai.script(Scripted.failure(401, "invalid api key"))
        done = run(repo, fake_openai)
        assert done.returncode == 3, done.stderr
        assert KEY not in done.stderr
        assert "Traceback" not in done.stderr
        assert git(repo, "branch", "--list", "fixbot/*") == ""

    def test_no_request_before_the_tests_run_at_base(
        self, repo: Path, fake_openai: FakeOpenAI
    ) -> None:
        """A test command that fails at base ends the run before the model costs anything."""
        fake_openai.script(ImperfectModel())
        done = run(repo, fake_openai, "--select", "E722", "--test-cmd", "sh -c 'sleep 2; exit 3'")
        assert done.returncode == 2, done.stderr
        assert "fails at base" in done.stderr
        assert fake_openai.requests == []

    def test_budget_holds(self, repo: Path, fake_openai: FakeOpenAI) -> None:
        """With a request cap, no more requests are sent and the report says the budget ran out."""
        fake_openai.script(Scripted.reply("no code"))
        done = run(repo, fake_openai, "--llm-max-requests", "2", "--dry-run")
        assert done.returncode == 0, done.stderr
        assert len(fake_openai.requests) <= 2
        assert report(repo)["llm"]["budget_exhausted"] is True


class TestNothingRevealedForAModel:
    """A model's rewrite is no known transformation: what is new on its lines is its own."""

    def test_a_blind_except_the_model_wrote_is_refused(
        self, tmp_path: Path, fake_openai: FakeOpenAI
    ) -> None:
        """`except:` made `except Exception:`, where BLE001 (no fix) reports a blind except:
        refused for lint, naming it, though a fix of ruff's would trade it."""
        files = {
            "pyproject.toml": '[tool.ruff.lint]\nselect = ["E722", "BLE001"]\n',
            "pkg/__init__.py": "",
            "pkg/errs.py": REPO["pkg/errs.py"],
            "tests/test_errs.py": REPO["tests/test_errs.py"],
        }
        repo = init_repo(tmp_path / "repo", files)
        fake_openai.script(
            lambda request: Scripted.reply(
                "```python\n" + region(request).replace("except:", "except Exception:") + "```\n"
            )
        )
        done = run(repo, fake_openai, "--agents", "llm", "--dry-run")
        assert done.returncode == 0, done.stderr
        patches = report(repo)["patches"]
        assert patches
        assert {(p["status"], p["reason"]) for p in patches} == {("rejected", "lint")}
        assert all("new violations: BLE001 pkg/errs.py:" in p["detail"] for p in patches)
