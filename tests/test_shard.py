"""Sharding: `fixbot plan`, `run --plan --shard --bundle-out` and `merge`, as separate processes."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import fixbot, git, init_repo
from fake_forge import FakeForge
from fake_forge import fake_forge as _fake_forge

from fixbot.orchestrator._shard import deal

fake_forge = _fake_forge  # a plain import of the fixture trips ruff's F401/F811
FILES = {
    "pkg/__init__.py": "",
    "pkg/a.py": (
        "import os\nimport sys\n\n\ndef a(x):\n    if x == None:\n        return 1\n    return 2\n"
    ),
    "pkg/b.py": "import json\n\n\ndef b(xs):\n    return [x for x in xs]\n",
    "pkg/c.py": "import re\n\n\ndef c():\n    return dict(a=1)\n",
    "tests/test_pkg.py": (
        "from pkg.a import a\nfrom pkg.b import b\nfrom pkg.c import c\n\n\n"
        "def test_all():\n    assert a(None) == 1\n    assert b((1, 2)) == [1, 2]\n"
        "    assert c() == {'a': 1}\n"
    ),
    "pyproject.toml": (
        '[tool.ruff.lint]\nselect = ["F401", "E711", "C416", "C408"]\n'
        "[tool.pytest.ini_options]\npythonpath = ['.']\n"
    ),
}


class TestDeal:
    """Files dealt into shards."""

    def test_disjoint_complete_and_balanced(self) -> None:
        """Every file in exactly one shard; the costliest spread first."""
        cost = {f"f{i}.py": c for i, c in enumerate([9, 7, 5, 4, 3, 2, 2, 1])}
        shards = deal(cost, 3)
        flat = [p for s in shards for p in s]
        assert sorted(flat) == sorted(cost)
        loads = [sum(cost[p] for p in s) for s in shards]
        assert max(loads) - min(loads) <= max(cost.values()) // 2

    def test_more_shards_than_files(self) -> None:
        """Extra shards are empty, never an error."""
        assert sorted(map(len, deal({"a.py": 1}, 3))) == [0, 0, 1]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repo with fixes in three files and a test that covers them."""
    return init_repo(tmp_path / "repo", FILES)


def sharded(repo: Path, tmp_path: Path, shards: int) -> list[Path]:
    """`fixbot plan`, then one `fixbot run --plan` process per shard; the bundle folders."""
    plan = tmp_path / "plan.json"
    done = fixbot("plan", repo, "--shards", str(shards), "--output", plan)
    assert done.returncode == 0, done.stderr
    folders = []
    for k in range(1, shards + 1):
        folder = tmp_path / f"bundle-{k}"
        done = fixbot("run", repo, "--plan", plan, "--shard", str(k), "--bundle-out", folder)
        assert done.returncode == 0, done.stderr
        folders.append(folder)
    return folders


class TestShardedRun:
    """The sharded path gives what a single run gives."""

    def test_same_branch_content_as_a_single_run(self, repo: Path, tmp_path: Path) -> None:
        """Two shards and a merge: the same tree as one `fixbot run`, and a green suite."""
        folders = sharded(repo, tmp_path, 2)
        plan = json.loads((tmp_path / "plan.json").read_text())
        assert sorted(p for s in plan["shards"] for p in s["paths"]) == [
            "pkg/a.py",
            "pkg/b.py",
            "pkg/c.py",
        ]
        done = fixbot("merge", *folders, "--repo", repo, "--branch", "sharded")
        assert done.returncode == 0, done.stderr
        done = fixbot("run", repo, "--branch", "single")
        assert done.returncode == 0, done.stderr
        trees = git(repo, "rev-parse", "sharded^{tree}", "single^{tree}").split()
        assert trees[0] == trees[1]
        assert git(repo, "rev-parse", "sharded") == git(repo, "rev-parse", "single")
        assert "import os" not in git(repo, "show", "sharded:pkg/a.py")

    def test_a_revealed_finding_passes_the_merges_gate(self, tmp_path: Path) -> None:
        """PT009 reveals a magic value to PLR2004: the merge, in a process that never saw
        the chain, lands the same tree as a single run (its gate judges from the base)."""
        files = {
            **FILES,
            "tests/test_unit.py": (
                "import unittest\n\nfrom pkg.b import b\n\n\nclass T(unittest.TestCase):\n"
                "    def test_b(self):\n        self.assertEqual(len(b([1, 2, 3])), 3)\n"
            ),
            "pyproject.toml": FILES["pyproject.toml"].replace(
                '"C408"', '"C408", "PT009", "PLR2004"'
            ),
        }
        repo = init_repo(tmp_path / "repo", files)
        folders = sharded(repo, tmp_path, 2)
        done = fixbot("merge", *folders, "--repo", repo, "--branch", "sharded")
        assert done.returncode == 0, done.stderr
        assert "gate.dropped" not in done.stderr
        done = fixbot("run", repo, "--branch", "single")
        assert done.returncode == 0, done.stderr
        trees = git(repo, "rev-parse", "sharded^{tree}", "single^{tree}").split()
        assert trees[0] == trees[1]
        assert "assert len(b([1, 2, 3])) == 3" in git(repo, "show", "sharded:tests/test_unit.py")

    def test_a_missing_shard_is_said_and_its_files_stay(self, repo: Path, tmp_path: Path) -> None:
        """Merging one of two bundles: a warning line; the other shard's files are untouched."""
        folders = sharded(repo, tmp_path, 2)
        done = fixbot("merge", folders[0], "--repo", repo, "--branch", "half")
        assert done.returncode == 0, done.stderr
        assert "shard(s) 2 missing" in done.stderr
        mine = json.loads((folders[1] / "bundle.json").read_text())["paths"]
        for path in mine:
            assert git(repo, "show", f"half:{path}") == git(repo, "show", f"main:{path}")


class TestRefused:
    """Bundles and plans that do not belong to this run: one line, exit 2."""

    def test_bundle_from_another_base(self, repo: Path, tmp_path: Path) -> None:
        """A bundle proven on another commit than its fellow's is refused."""
        folders = sharded(repo, tmp_path, 2)
        data = json.loads((folders[1] / "bundle.json").read_text())
        data["base"] = "0" * 40
        (folders[1] / "bundle.json").write_text(json.dumps(data))
        done = fixbot("merge", *folders, "--repo", repo)
        assert done.returncode == 2
        assert "was proven on 000000000000" in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.parametrize("tool", ["fixbot", "ruff"])
    def test_bundle_from_another_version(self, repo: Path, tmp_path: Path, tool: str) -> None:
        """A bundle made by another fixbot or ruff is refused, naming both versions."""
        folders = sharded(repo, tmp_path, 1)
        data = json.loads((folders[0] / "bundle.json").read_text())
        data["versions"][tool] = "0.0.1"
        (folders[0] / "bundle.json").write_text(json.dumps(data))
        done = fixbot("merge", *folders, "--repo", repo)
        assert done.returncode == 2
        assert f"made by {tool} 0.0.1, this is {tool} " in done.stderr

    def test_plan_edge_cases(self, repo: Path, tmp_path: Path) -> None:
        """A shard outside the plan, --shard without --plan, and a file that is no plan."""
        plan = tmp_path / "plan.json"
        assert fixbot("plan", repo, "--shards", "2", "--output", plan).returncode == 0
        done = fixbot("run", repo, "--plan", plan, "--shard", "3", "--bundle-out", tmp_path / "b")
        assert done.returncode == 2
        assert "the plan has shards 1 to 2" in done.stderr
        done = fixbot("run", repo, "--shard", "1")
        assert done.returncode == 2
        assert "--shard and --bundle-out go with --plan" in done.stderr
        (tmp_path / "junk.json").write_text("{}")
        done = fixbot("run", repo, "--plan", tmp_path / "junk.json", "--shard", "1",
                      "--bundle-out", tmp_path / "b")  # fmt: skip
        assert done.returncode == 2
        assert "not a fixbot plan" in done.stderr
        done = fixbot("run", repo, "--plan", plan, "--shard", "1", "--bundle-out",
                      tmp_path / "b", "--push")  # fmt: skip
        assert done.returncode == 2
        assert "fixbot merge` pushes" in done.stderr


class TestShardedNightly:
    """The nightly job's sharded shape, end to end against a bare remote and the fake API."""

    def test_merge_pushes_and_opens_one_pr(
        self, repo: Path, tmp_path: Path, fake_forge: FakeForge
    ) -> None:
        """plan, two shard processes, merge --open-pr: the branch is pushed and one PR opened."""
        remote = tmp_path / "remote.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
        git(repo, "remote", "add", "origin", str(remote))
        folders = sharded(repo, tmp_path, 2)
        env = {
            "GITHUB_TOKEN": fake_forge.token,
            "GITHUB_API_URL": fake_forge.github_api,
            "GITHUB_REPOSITORY": fake_forge.github_repo,
        }
        args = ("merge", *folders, "--repo", repo, "--open-pr", "--branch", "fixbot/nightly")
        done = fixbot(*args, env=env)
        assert done.returncode == 0, done.stderr
        (pull,) = fake_forge.reviews.values()
        assert pull.branch == "fixbot/nightly"
        tip = git(remote, "rev-parse", "fixbot/nightly")
        assert tip == git(repo, "rev-parse", "fixbot/nightly")
        assert fixbot(*args, env=env).returncode == 0  # the same bundles again: nothing new
        assert [r.method for r in fake_forge.requests if r.method != "GET"] == ["POST"]


class TestForgedBundle:
    """A bundle edited after its shard proved it is refused, never landed."""

    def test_a_step_that_does_not_follow(self, repo: Path, tmp_path: Path) -> None:
        """A step whose content before is not what the chain left: exit 2, no branch."""
        folders = sharded(repo, tmp_path, 1)
        path = folders[0] / "bundle.json"
        data = json.loads(path.read_text())
        record = next(r for r in data["records"] if r["status"] == "accepted")
        record["before"] = {"b64": base64.b64encode(b"something else\n").decode()}
        path.write_text(json.dumps(data))
        done = fixbot("merge", folders[0], "--repo", repo, "--branch", "forged")
        assert done.returncode == 2, done.stderr
        assert "does not follow from the content before it" in done.stderr
        assert git(repo, "branch", "--list", "forged") == ""


class TestUnfencedBundle:
    """A shard proven outside bubblewrap's fence cannot vouch for its bundle."""

    def test_publishing_needs_fenced_shards(self, repo: Path, tmp_path: Path) -> None:
        """Unfenced, its tests could rewrite the bundle: merge --push refuses it; a merge
        that only writes the branch locally goes on."""
        plan = tmp_path / "plan.json"
        assert fixbot("plan", repo, "--shards", "1", "--output", plan).returncode == 0
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for tool in ("git", "sh", "unshare", "prlimit", "env", "cat", "mkdir"):
            if found := shutil.which(tool):
                (bin_dir / tool).symlink_to(found)
        path = f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}"
        folder = tmp_path / "bundle"
        done = fixbot("run", repo, "--plan", plan, "--shard", "1", "--bundle-out", folder,
                      env={"PATH": path})  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads((folder / "bundle.json").read_text())["fenced"] is False
        remote = tmp_path / "remote.git"
        git(tmp_path, "init", "-q", "--bare", str(remote))
        git(repo, "remote", "add", "origin", str(remote))
        done = fixbot("merge", folder, "--repo", repo, "--push", "--branch", "n")
        assert done.returncode == 2
        assert "outside bubblewrap's fence" in done.stderr
        assert fixbot("merge", folder, "--repo", repo, "--branch", "n").returncode == 0
