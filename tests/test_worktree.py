"""sandbox._worktree: the pool of worktrees at base, path checks and the sweep.

Real git repos in tmp dirs; the user's checkout is checked byte for byte after
each scenario.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from fixbot.sandbox._worktree import (
    MARKER,
    UnsafePathError,
    Worktree,
    WorktreePool,
    check_path,
    generated_files,
    sweep,
)
from tests.conftest import commit_all, git, init_repo, write_files

pytestmark = pytest.mark.anyio

FILES = {
    "pkg/__init__.py": "",
    "pkg/mod.py": "VALUE = 1\n",
    "pkg/other.py": "OTHER = 2\n",
    "README.md": "hello\n",
}


def user_state(repo: Path) -> dict[str, object]:
    """Everything of the user's checkout fixbot must leave alone."""
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file()
        and ".git" not in p.relative_to(repo).parts
        and ".venv" not in p.relative_to(repo).parts
    }
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "index": git(repo, "ls-files", "-s"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "files": files,
    }


def dirty_checkout(repo: Path) -> None:
    """A staged change, an unstaged change and an untracked file, as a user leaves them."""
    (repo / "pkg" / "other.py").write_text("OTHER = 'staged'\n")
    git(repo, "add", "pkg/other.py")
    (repo / "pkg" / "mod.py").write_text("VALUE = 'work in progress'\n")
    (repo / "notes.txt").write_text("untracked\n")


def worktree_paths(repo: Path) -> list[Path]:
    """The linked worktrees git knows of (the main one left out)."""
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    paths = [Path(ln.removeprefix("worktree ")) for ln in lines if ln.startswith("worktree ")]
    return [p for p in paths if p.resolve() != repo.resolve()]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repo whose checkout the user has left dirty."""
    root = init_repo(tmp_path / "repo", FILES, venv=False)
    dirty_checkout(root)
    return root


@pytest.fixture
def base(repo: Path) -> str:
    """The base commit's full sha."""
    return git(repo, "rev-parse", "HEAD").strip()


class TestCheckPath:
    def test_regular_file_resolves(self, tmp_path: Path) -> None:
        """An existing file inside the tree comes back as its full path."""
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "a.py").write_text("")
        assert check_path(tmp_path, "pkg/a.py") == tmp_path / "pkg" / "a.py"

    @pytest.mark.parametrize("rel", ["/etc/passwd", "../outside.py", "pkg/../../x.py", ""])
    def test_absolute_and_parent_paths_are_refused(self, tmp_path: Path, rel: str) -> None:
        """Absolute paths, '..' anywhere and the empty path are refused."""
        (tmp_path.parent / "outside.py").write_text("")
        with pytest.raises(UnsafePathError, match="outside the repository"):
            check_path(tmp_path, rel)

    @pytest.mark.parametrize("rel", [".git/config", "pkg/.git/hooks/pre-commit.py"])
    def test_git_folder_is_refused(self, tmp_path: Path, rel: str) -> None:
        """Nothing in a .git folder, at any depth, even when it exists."""
        target = tmp_path / rel
        target.parent.mkdir(parents=True)
        target.write_text("")
        with pytest.raises(UnsafePathError):
            check_path(tmp_path, rel)

    def test_path_through_a_symlinked_folder_is_refused(self, tmp_path: Path) -> None:
        """A folder that is a symlink (here to outside the tree) is never gone through."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "a.py").write_text("")
        tree = tmp_path / "tree"
        tree.mkdir()
        (tree / "linked").symlink_to(outside, target_is_directory=True)
        with pytest.raises(UnsafePathError, match="symlink"):
            check_path(tree, "linked/a.py")

    def test_symlink_file_is_refused(self, tmp_path: Path) -> None:
        """A file that is itself a symlink, even to a file inside the tree, is refused."""
        (tmp_path / "real.py").write_text("")
        (tmp_path / "link.py").symlink_to(tmp_path / "real.py")
        with pytest.raises(UnsafePathError, match="symlink"):
            check_path(tmp_path, "link.py")

    def test_missing_file_is_refused(self, tmp_path: Path) -> None:
        """A patch may not create files: a path that does not exist is refused."""
        with pytest.raises(UnsafePathError, match="not an existing regular file"):
            check_path(tmp_path, "pkg/new.py")

    def test_folder_is_refused(self, tmp_path: Path) -> None:
        """A folder is not a regular file."""
        (tmp_path / "pkg").mkdir()
        with pytest.raises(UnsafePathError, match="not an existing regular file"):
            check_path(tmp_path, "pkg")

    def test_worktree_write_refuses_unsafe_paths(self, tmp_path: Path) -> None:
        """Worktree.write goes through the same check and writes nothing outside."""
        tree = Worktree(tmp_path)
        with pytest.raises(UnsafePathError):
            tree.write({"../escaped.py": b"x = 1\n"})
        assert not (tmp_path.parent / "escaped.py").exists()


class TestWorktreePool:
    async def test_worktree_is_at_base(self, repo: Path, base: str, tmp_path: Path) -> None:
        """A handed-out worktree is a detached checkout of the base commit's content."""
        async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool, pool.use() as tree:
            assert git(tree.path, "rev-parse", "HEAD").strip() == base
            assert (tree.path / "pkg" / "mod.py").read_text() == "VALUE = 1\n"
            assert (tree.path / "pkg" / "other.py").read_text() == "OTHER = 2\n"
            assert not (tree.path / "notes.txt").exists()
            assert tree.path.name.startswith(MARKER)
            assert git(tree.path, "status", "--porcelain") == ""

    async def test_base_other_than_head(self, repo: Path, base: str, tmp_path: Path) -> None:
        """The pool checks out the base it is given, not the user's HEAD."""
        git(repo, "stash", "-q", "--include-untracked")
        (repo / "pkg" / "mod.py").write_text("VALUE = 2\n")
        commit_all(repo, "second")
        async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool, pool.use() as tree:
            assert (tree.path / "pkg" / "mod.py").read_text() == "VALUE = 1\n"

    async def test_worktree_is_reused(self, repo: Path, base: str, tmp_path: Path) -> None:
        """A second use gets the same worktree back, not a new one."""
        async with WorktreePool(repo, base, tmp_path / "wt", size=2) as pool:
            async with pool.use() as first:
                pass
            async with pool.use() as second:
                pass
            assert second.path == first.path
            assert len(worktree_paths(repo)) == 1

    async def test_reset_restores_written_files(
        self, repo: Path, base: str, tmp_path: Path
    ) -> None:
        """Files written through the worktree are back at base on the next use."""
        async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
            async with pool.use() as tree:
                tree.write({"pkg/mod.py": b"VALUE = 'patched'\n"})
                assert tree.read("pkg/mod.py") == b"VALUE = 'patched'\n"
            async with pool.use() as tree:
                assert tree.read("pkg/mod.py") == b"VALUE = 1\n"
                assert git(tree.path, "status", "--porcelain") == ""

    async def test_reset_undoes_what_tests_did(self, repo: Path, base: str, tmp_path: Path) -> None:
        """Files tests create, change or delete behind fixbot's back are undone too."""
        async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
            async with pool.use() as tree:
                (tree.path / "created.txt").write_text("left by a test\n")
                (tree.path / "newdir" / "deep").mkdir(parents=True)
                (tree.path / "newdir" / "deep" / "x.py").write_text("")
                (tree.path / "pkg" / "other.py").write_text("OTHER = 'changed by a test'\n")
                (tree.path / "README.md").unlink()
                git(tree.path, "add", "created.txt")
            async with pool.use() as tree:
                assert not (tree.path / "created.txt").exists()
                assert not (tree.path / "newdir").exists()
                assert (tree.path / "pkg" / "other.py").read_text() == "OTHER = 2\n"
                assert (tree.path / "README.md").read_text() == "hello\n"
                assert git(tree.path, "status", "--porcelain", "--untracked-files=all") == ""

    @pytest.mark.parametrize("switch", [[], ["switch", "-q", "-c", "made-by-a-test"]])
    async def test_reset_restores_a_moved_head(
        self, repo: Path, base: str, tmp_path: Path, switch: list[str]
    ) -> None:
        """A test that commits (on a branch or not) does not move the next user off base."""
        async with WorktreePool(repo, base, tmp_path / "wt", size=1) as pool:
            async with pool.use() as tree:
                if switch:
                    git(tree.path, *switch)
                tree.write({"pkg/other.py": b"OTHER = 'patched'\n"})
                (tree.path / "pkg" / "mod.py").write_text("VALUE = 'committed by a test'\n")
                git(tree.path, "commit", "-q", "-am", "a test committed")
                assert git(tree.path, "status", "--porcelain") == ""
            async with pool.use() as tree:
                assert git(tree.path, "rev-parse", "HEAD").strip() == base
                assert git(tree.path, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD\n"
                assert tree.read("pkg/mod.py") == b"VALUE = 1\n"
                assert tree.read("pkg/other.py") == b"OTHER = 2\n"

    async def test_at_most_size_in_use(self, repo: Path, base: str, tmp_path: Path) -> None:
        """With size 2, a third and fourth user wait; only two worktrees are made."""
        in_use = 0
        peak = 0
        paths: set[Path] = set()

        async def user() -> None:
            nonlocal in_use, peak
            async with pool.use() as tree:
                in_use += 1
                peak = max(peak, in_use)
                paths.add(tree.path)
                await anyio.sleep(0.2)
                in_use -= 1

        async with WorktreePool(repo, base, tmp_path / "wt", size=2) as pool:
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(user)
            assert peak == 2
            assert len(paths) == 2
            assert len(worktree_paths(repo)) == 2

    async def test_broken_worktree_is_replaced(self, repo: Path, base: str, tmp_path: Path) -> None:
        """A worktree that cannot be reset is dropped; later users still get clean ones."""
        async with WorktreePool(repo, base, tmp_path / "wt", size=2) as pool:
            async with pool.use() as first, pool.use() as second:
                # A test that wrecks its checkout: git no longer sees a worktree there.
                (first.path / ".git").unlink()
                (first.path / "junk.txt").write_text("")
                kept = second.path
            for _ in range(2):
                async with pool.use() as a, pool.use() as b:
                    assert {a.path, b.path} != {first.path}
                    assert kept in {a.path, b.path}
                    for tree in (a, b):
                        assert git(tree.path, "rev-parse", "HEAD").strip() == base
                        assert git(tree.path, "status", "--porcelain") == ""
        assert worktree_paths(repo) == []
        assert not (tmp_path / "wt").exists()

    async def test_close_removes_everything(self, repo: Path, base: str, tmp_path: Path) -> None:
        """After close, git lists no worktree of the pool and the folder is gone."""
        root = tmp_path / "wt"
        async with (
            WorktreePool(repo, base, root, size=3) as pool,
            pool.use(),
            pool.use(),
            pool.use(),
        ):
            assert len(worktree_paths(repo)) == 3
        assert worktree_paths(repo) == []
        assert not root.exists()
        assert not (repo / ".git" / "worktrees").exists() or not any(
            (repo / ".git" / "worktrees").iterdir()
        )

    async def test_close_twice(self, repo: Path, base: str, tmp_path: Path) -> None:
        """close() may be called again (the context exit calls it too)."""
        pool = WorktreePool(repo, base, tmp_path / "wt", size=1)
        async with pool:
            async with pool.use():
                pass
            await pool.close()
        await pool.close()
        assert worktree_paths(repo) == []

    async def test_cancelled_user_leaves_nothing(
        self, repo: Path, base: str, tmp_path: Path
    ) -> None:
        """A user cancelled mid-use still gets its worktree reset and removed on close."""
        root = tmp_path / "wt"
        async with WorktreePool(repo, base, root, size=1) as pool:
            with anyio.move_on_after(0.3):
                async with pool.use() as tree:
                    tree.write({"pkg/mod.py": b"VALUE = 'half done'\n"})
                    await anyio.sleep(10)
            async with pool.use() as again:
                assert again.read("pkg/mod.py") == b"VALUE = 1\n"
        assert worktree_paths(repo) == []
        assert not root.exists()

    async def test_users_checkout_untouched(self, repo: Path, base: str, tmp_path: Path) -> None:
        """HEAD, branch, index, modified and untracked files of the user stay as they were."""
        before = user_state(repo)
        async with WorktreePool(repo, base, tmp_path / "wt", size=2) as pool:
            async with pool.use() as a, pool.use() as b:
                a.write({"pkg/mod.py": b"VALUE = 'a'\n"})
                b.write({"pkg/other.py": b"OTHER = 'b'\n"})
                (b.path / "made_by_test.txt").write_text("")
            async with pool.use():
                pass
        assert user_state(repo) == before
        assert before["status"] == " M pkg/mod.py\nM  pkg/other.py\n?? notes.txt\n"


class TestSweep:
    async def _leave_worktree(self, repo: Path, base: str, root: Path) -> Path:
        """What a killed run leaves: a pool never closed, its worktree still registered."""
        pool = WorktreePool(repo, base, root, size=1)
        await pool.__aenter__()
        async with pool.use() as tree:
            tree.write({"pkg/mod.py": b"VALUE = 'left'\n"})
        # Killed here: no close().
        return tree.path

    async def test_sweep_removes_left_worktrees(
        self, repo: Path, base: str, tmp_path: Path
    ) -> None:
        """Worktrees a killed run left under the root are removed and counted."""
        root = tmp_path / "wt"
        first = await self._leave_worktree(repo, base, root)
        # A second killed run of another process id, by hand, as git would have made it.
        second = root / f"{MARKER}1-999999"
        git(repo, "worktree", "add", "-q", "--detach", str(second), base)
        assert len(worktree_paths(repo)) == 2
        assert await sweep(repo, root) == 2
        assert worktree_paths(repo) == []
        assert not first.exists()
        assert not second.exists()
        assert git(repo, "worktree", "prune", "--dry-run", "-v") == ""

    async def test_sweep_leaves_other_worktrees(
        self, repo: Path, base: str, tmp_path: Path
    ) -> None:
        """A user's own worktree, elsewhere or without the marker, is never swept."""
        root = tmp_path / "wt"
        users = tmp_path / "users-worktree"
        git(repo, "worktree", "add", "-q", "--detach", str(users), base)
        unmarked = root / "mine"
        unmarked.mkdir(parents=True)
        git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "elsewhere" / f"{MARKER}1-1"))
        await self._leave_worktree(repo, base, root)
        assert await sweep(repo, root) == 1
        left = {p.resolve() for p in worktree_paths(repo)}
        assert left == {users.resolve(), (tmp_path / "elsewhere" / f"{MARKER}1-1").resolve()}
        # Only fixbot's own folders go: the root may be a folder the user named.
        assert unmarked.exists()

    async def test_sweep_removes_unregistered_leftovers(self, repo: Path, tmp_path: Path) -> None:
        """A marker folder git no longer knows of (already pruned) is removed and counted."""
        root = tmp_path / "wt"
        stale = root / f"{MARKER}3-12345"
        stale.mkdir(parents=True)
        (stale / "half.py").write_text("")
        assert await sweep(repo, root) == 1
        assert not stale.exists()

    async def test_sweep_with_nothing_left(self, repo: Path, tmp_path: Path) -> None:
        """No root folder yet: nothing to do, 0."""
        assert await sweep(repo, tmp_path / "never-made") == 0

    async def test_sweep_then_new_pool(self, repo: Path, base: str, tmp_path: Path) -> None:
        """After a sweep the next run's pool works in the same root."""
        root = tmp_path / "wt"
        await self._leave_worktree(repo, base, root)
        await sweep(repo, root)
        async with WorktreePool(repo, base, root, size=1) as pool, pool.use() as tree:
            assert tree.read("pkg/mod.py") == b"VALUE = 1\n"
        assert worktree_paths(repo) == []

    async def test_sweep_leaves_users_checkout(self, repo: Path, base: str, tmp_path: Path) -> None:
        """A killed run and its sweep leave the user's checkout exactly as it was."""
        before = user_state(repo)
        root = tmp_path / "wt"
        await self._leave_worktree(repo, base, root)
        await sweep(repo, root)
        assert user_state(repo) == before


class TestGeneratedFiles:
    """Ignored files an install generates beside the code are copied into each worktree."""

    @pytest.fixture
    def generated_repo(self, tmp_path: Path) -> Path:
        files = {**FILES, ".gitignore": ".venv/\npkg/_version.py\n*.so\nnotes/\nbuild/\n"}
        repo = init_repo(tmp_path / "repo", files)
        (repo / "pkg" / "_version.py").write_text("__version__ = '1.0'\n")
        (repo / "pkg" / "_speedups.so").write_bytes(b"\x7fELF")
        (repo / "notes").mkdir()
        (repo / "notes" / "scratch.py").write_text("x = 1\n")
        (repo / "build" / "lib" / "pkg").mkdir(parents=True)
        (repo / "build" / "lib" / "pkg" / "mod.py").write_text("VALUE = 1\n")
        return repo

    async def test_finds_only_what_the_package_may_import(self, generated_repo: Path) -> None:
        """Version files and in-place extensions, not venvs, build folders or other folders."""
        assert await generated_files(generated_repo) == ["pkg/_speedups.so", "pkg/_version.py"]

    async def test_worktrees_get_a_copy(self, generated_repo: Path, tmp_path: Path) -> None:
        """The copy is there in every worktree and outlives a reset; the checkout is untouched."""
        base = git(generated_repo, "rev-parse", "HEAD").strip()
        before = user_state(generated_repo)
        found = await generated_files(generated_repo)
        async with WorktreePool(generated_repo, base, tmp_path / "wt", 1, found) as pool:
            async with pool.use() as tree:
                tree.write({"pkg/mod.py": b"VALUE = 2\n"})
                assert (tree.path / "pkg" / "_version.py").read_text() == "__version__ = '1.0'\n"
            async with pool.use() as tree:
                assert (tree.path / "pkg" / "_version.py").is_file()
                assert tree.read("pkg/mod.py") == b"VALUE = 1\n"
        assert user_state(generated_repo) == before


class TestRefillThroughLinks:
    async def test_generated_file_never_written_through_a_symlink(self, tmp_path: Path) -> None:
        """A base whose package folder is a symlink elsewhere gets no generated file there."""
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        repo = init_repo(tmp_path / "repo", {".gitignore": "pkg/_version.py\n", "m.py": ""})
        (repo / "pkg").symlink_to(elsewhere)
        git(repo, "add", "pkg")
        git(repo, "commit", "-q", "-m", "pkg is a link")
        base = git(repo, "rev-parse", "HEAD").strip()
        git(repo, "rm", "-q", "pkg")
        write_files(repo, {"pkg/__init__.py": ""})
        git(repo, "add", "pkg")
        git(repo, "commit", "-q", "-m", "pkg is a folder")
        (repo / "pkg" / "_version.py").write_text("v = 1\n")  # generated in the checkout
        generated = ["pkg/_version.py"]
        pool = WorktreePool(repo, base, tmp_path / "wt", size=1, generated=generated)
        async with pool, pool.use():
            pass
        assert not (elsewhere / "_version.py").exists()
