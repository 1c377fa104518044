"""Tests for orchestrator._config: layering, naming, validation and secrets."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import TYPE_CHECKING, Any

import pytest

from fixbot.orchestrator import _config
from fixbot.orchestrator._config import ENV_OR_FLAG_ONLY, SETTINGS, Config, load_config
from fixbot.sandbox._errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

CANARY = "sk-test-0123456789abcdef"  # a stand-in key that must never show


def write_pyproject(repo: Path, fixbot_table: str, *, preamble: str = "") -> Path:
    """Write repo/pyproject.toml with the given [tool.fixbot] body."""
    path = repo / "pyproject.toml"
    path.write_text(f'{preamble}[project]\nname = "demo"\n\n[tool.fixbot]\n{fixbot_table}\n')
    return path


def load(
    repo: Path, *, flags: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> Config:
    """load_config with an explicit (by default empty) environment."""
    return load_config(repo, flags=flags or {}, environ=env or {})


def config_error(repo: Path, **kwargs: Any) -> str:
    """The message of the ConfigError load() raises."""
    with pytest.raises(ConfigError) as info:
        load(repo, **kwargs)
    return str(info.value)


def shipped_defaults() -> dict[str, Any]:
    """configs/default.toml, parsed."""
    text = (resources.files("fixbot.configs") / "default.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


class TestShippedDefaults:
    """configs/default.toml is the lowest layer and agrees with the model."""

    def test_every_shipped_key_equals_the_model_default(self):
        """Each key in default.toml parses to the Config field's default."""
        table = shipped_defaults()
        assert table, "default.toml sets nothing"
        for key, value in table.items():
            name = key.replace("-", "_")
            field = Config.model_fields[name]
            assert "-" in key or "_" not in key, key
            assert field.get_default(call_default_factory=True) == value, key

    def test_every_set_default_is_shipped(self):
        """Every setting with a non-None default appears as a key in default.toml."""
        table = shipped_defaults()
        for name in SETTINGS:
            default = Config.model_fields[name].get_default(call_default_factory=True)
            if default is not None:
                assert name.replace("_", "-") in table, name

    def test_every_setting_is_documented(self):
        """Every setting's kebab-case key has an entry (maybe commented) in default.toml."""
        text = (resources.files("fixbot.configs") / "default.toml").read_text(encoding="utf-8")
        for name in SETTINGS:
            key = name.replace("_", "-")
            assert f"\n{key} = " in text or f"\n# {key} = " in text or f"\n# {key}: " in text, key
        assert "[tool.fixbot]\n" not in text

    def test_nothing_set_gives_the_model_defaults(self, tmp_path):
        """With no pyproject, env or flags the result equals Config()."""
        config = load(tmp_path)
        assert config == Config()
        assert config.sources == {}
        assert config.source("select") == "default"

    def test_the_shipped_file_really_is_read(self, tmp_path, monkeypatch):
        """A defaults package with other values changes the result."""
        package = tmp_path / "site" / "fixbot_test_defaults"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "default.toml").write_text('base = "main"\njobs = 7\nexclude = ["a/*"]\n')
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.setattr(_config, "DEFAULTS_PACKAGE", "fixbot_test_defaults")
        config = load(tmp_path)
        assert (config.base, config.jobs, config.exclude) == ("main", 7, ["a/*"])
        assert config.source("jobs") == "default"

    def test_unknown_key_in_defaults_names_the_file(self, tmp_path, monkeypatch):
        """A bad key in the defaults file is reported with that file."""
        package = tmp_path / "site" / "fixbot_bad_defaults"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "default.toml").write_text("bogus = 1\n")
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.setattr(_config, "DEFAULTS_PACKAGE", "fixbot_bad_defaults")
        message = config_error(tmp_path)
        assert "'bogus'" in message
        assert "default.toml" in message


class TestRepoConfig:
    """[tool.fixbot] in the repo's pyproject.toml."""

    def test_overrides_the_defaults(self, tmp_path):
        """Keys in [tool.fixbot] beat default.toml."""
        write_pyproject(tmp_path, 'base = "develop"\nmax-patches = 5\nlog-format = "json"')
        config = load(tmp_path)
        assert (config.base, config.max_patches, config.log_format) == ("develop", 5, "json")
        assert config.source("max_patches") == "config"

    def test_lists_are_toml_arrays(self, tmp_path):
        """select, exclude and agents come from TOML arrays."""
        write_pyproject(
            tmp_path, 'select = ["F401", "UP"]\nexclude = ["build/*"]\nagents = ["ruff"]'
        )
        config = load(tmp_path)
        assert config.select == ["F401", "UP"]
        assert config.exclude == ["build/*"]
        assert config.agents == ["ruff"]

    def test_no_pyproject_is_fine(self, tmp_path):
        """A repo without pyproject.toml gets the defaults."""
        assert load(tmp_path) == Config()

    def test_pyproject_without_fixbot_table_is_fine(self, tmp_path):
        """Other [tool] tables are ignored."""
        (tmp_path / "pyproject.toml").write_text("[tool.ruff]\nline-length = 88\n")
        assert load(tmp_path) == Config()

    def test_unknown_key_names_key_and_file(self, tmp_path):
        """An unknown key is a ConfigError naming the key and pyproject.toml."""
        path = write_pyproject(tmp_path, "max-patch = 3")
        message = config_error(tmp_path)
        assert message.startswith(f"unknown key 'max-patch' in [tool.fixbot] of {path}")
        assert "did you mean 'max-patches'?" in message

    def test_snake_case_key_is_refused_with_a_hint(self, tmp_path):
        """TOML keys are kebab-case; the snake_case spelling gets a hint."""
        write_pyproject(tmp_path, "max_patches = 3")
        assert "did you mean 'max-patches'?" in config_error(tmp_path)

    def test_invalid_toml_names_the_file(self, tmp_path):
        """Broken TOML is a ConfigError with the file's path."""
        path = tmp_path / "pyproject.toml"
        path.write_text("[tool.fixbot]\nbase = \n")
        message = config_error(tmp_path)
        assert message.startswith(f"invalid TOML in {path}")
        assert "\n" not in message

    def test_non_utf8_pyproject_names_the_file(self, tmp_path):
        """Bytes that are not UTF-8 are a ConfigError with the file's path."""
        path = tmp_path / "pyproject.toml"
        path.write_bytes(b'[tool.fixbot]\nbase = "\xff"\n')
        assert str(path) in config_error(tmp_path)

    def test_fixbot_must_be_a_table(self, tmp_path):
        """tool.fixbot set to a scalar is a ConfigError."""
        (tmp_path / "pyproject.toml").write_text("[tool]\nfixbot = 3\n")
        assert "must be a table" in config_error(tmp_path)

    def test_bad_value_names_key_and_file(self, tmp_path):
        """A value of the wrong type names the key, the file and what was expected."""
        path = write_pyproject(tmp_path, "jobs = 0")
        message = config_error(tmp_path)
        assert f"'jobs' in [tool.fixbot] of {path}" in message
        assert "greater than or equal to 1" in message
        assert "\n" not in message


class TestEnvironment:
    """FIXBOT_* variables."""

    def test_overrides_repo_config(self, tmp_path):
        """FIXBOT_BASE beats [tool.fixbot] base."""
        write_pyproject(tmp_path, 'base = "develop"')
        config = load(tmp_path, env={"FIXBOT_BASE": "release"})
        assert config.base == "release"
        assert config.source("base") == "env"

    @pytest.mark.parametrize(
        ("var", "raw", "field", "expected"),
        [
            ("FIXBOT_MAX_PATCHES", "12", "max_patches", 12),
            ("FIXBOT_TEST_CMD", "pytest -x", "test_cmd", "pytest -x"),
            ("FIXBOT_TEST_TIMEOUT", "30.5", "test_timeout", 30.5),
            ("FIXBOT_LLM_TOKEN_BUDGET", "5000", "llm_token_budget", 5000),
            ("FIXBOT_COMMIT_AUTHOR_NAME", "Bot", "commit_author_name", "Bot"),
            ("FIXBOT_LOG_FORMAT", "console", "log_format", "console"),
        ],
    )
    def test_upper_snake_names(self, tmp_path, var, raw, field, expected):
        """FIXBOT_ + UPPER_SNAKE of the kebab key sets the setting."""
        assert getattr(load(tmp_path, env={var: raw}), field) == expected

    def test_lists_are_comma_separated(self, tmp_path):
        """Items are split on commas, stripped, and empty items dropped."""
        env = {"FIXBOT_SELECT": " F401, E501 ,,UP ", "FIXBOT_AGENTS": "ruff,"}
        config = load(tmp_path, env=env)
        assert config.select == ["F401", "E501", "UP"]
        assert config.agents == ["ruff"]

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [("1", True), ("true", True), ("YES", True), ("0", False), ("False", False), ("no", False)],
    )
    def test_bool_words(self, tmp_path, raw, expected):
        """Booleans accept 1/0/true/false/yes/no in any case."""
        assert load(tmp_path, env={"FIXBOT_DRY_RUN": raw}).dry_run is expected

    def test_bad_bool_names_the_variable(self, tmp_path):
        """Another word is a one-line ConfigError naming the variable and the choices."""
        message = config_error(tmp_path, env={"FIXBOT_FORCE": "maybe"})
        assert (
            message == "bad value 'maybe' for FIXBOT_FORCE: expected 1, 0, true, false, yes or no"
        )

    def test_empty_variable_counts_as_unset(self, tmp_path):
        """An empty FIXBOT_ variable leaves the lower layer in place."""
        write_pyproject(tmp_path, 'base = "develop"')
        assert load(tmp_path, env={"FIXBOT_BASE": ""}).base == "develop"

    def test_unknown_variable_is_a_warning(self, tmp_path):
        """An unknown FIXBOT_ variable is named in a notice (with a hint), never an exit."""
        config = load(tmp_path, env={"FIXBOT_MAX_PATCH": "3", "FIXBOT_VERSION": "0.1.0"})
        assert config.max_patches is None
        first, second = config.notices
        assert first.startswith("unknown environment variable FIXBOT_MAX_PATCH ignored")
        assert "FIXBOT_MAX_PATCHES" in first
        assert second.startswith("unknown environment variable FIXBOT_VERSION ignored")

    def test_other_variables_are_ignored(self, tmp_path):
        """Variables without the FIXBOT_ prefix are not settings."""
        assert load(tmp_path, env={"FIXBOTX": "1", "JOBS": "3", "PATH": "/bin"}) == Config()

    def test_bad_value_names_the_variable(self, tmp_path):
        """A value that does not parse names the variable and the expectation, on one line."""
        message = config_error(tmp_path, env={"FIXBOT_JOBS": "many"})
        assert message.startswith("bad value 'many' for FIXBOT_JOBS: ")
        assert "valid integer" in message
        assert "\n" not in message

    def test_reads_os_environ_by_default(self, tmp_path, monkeypatch):
        """environ=None reads the process environment."""
        monkeypatch.setenv("FIXBOT_JOBS", "3")
        assert load_config(tmp_path, flags={}).jobs == 3


class TestFlags:
    """The flags mapping, the top layer."""

    def test_overrides_environment(self, tmp_path):
        """A flag beats FIXBOT_ and [tool.fixbot]."""
        write_pyproject(tmp_path, "jobs = 2")
        config = load(tmp_path, flags={"jobs": 8}, env={"FIXBOT_JOBS": "4"})
        assert config.jobs == 8
        assert config.source("jobs") == "flag"

    def test_none_means_not_given(self, tmp_path):
        """A flag whose value is None leaves the lower layers in place."""
        config = load(tmp_path, flags={"jobs": None, "dry_run": None}, env={"FIXBOT_JOBS": "4"})
        assert config.jobs == 4
        assert config.dry_run is False

    def test_false_is_given(self, tmp_path):
        """A flag set to False overrides a true lower layer."""
        config = load(tmp_path, flags={"unsafe_fixes": False}, env={"FIXBOT_UNSAFE_FIXES": "1"})
        assert config.unsafe_fixes is False

    def test_kebab_and_snake_names(self, tmp_path):
        """Flag names may be snake_case, kebab-case or with leading dashes."""
        config = load(tmp_path, flags={"max_patches": 1, "llm-attempts": 2, "--llm-timeout": 9})
        assert (config.max_patches, config.llm_attempts, config.llm_timeout) == (1, 2, 9.0)

    def test_lists_from_text_or_sequence(self, tmp_path):
        """A list flag may be comma-separated text or a sequence of such."""
        config = load(tmp_path, flags={"select": "F401,E5", "exclude": ["a/*,b/*", "c/*"]})
        assert config.select == ["F401", "E5"]
        assert config.exclude == ["a/*", "b/*", "c/*"]

    def test_unknown_flag(self, tmp_path):
        """A flag that is no setting is a ConfigError naming it."""
        assert config_error(tmp_path, flags={"max_patch": 1}) == "unknown flag --max-patch"

    def test_bad_value_names_the_flag(self, tmp_path):
        """A bad flag value names the flag."""
        message = config_error(tmp_path, flags={"llm_concurrency": 5000})
        assert message.startswith("bad value 5000 for --llm-concurrency: ")
        assert "less than or equal to 1024" in message


class TestSecrets:
    """Secrets and where they are sent never come from the repo."""

    @pytest.mark.parametrize(
        "toml",
        [
            'llm-base-url = "https://evil.example/v1"',
            'llm-api-key = "sk-x"',
            'github-api-url = "https://evil.example"',
            "push = true",
            "open-pr = true",
        ],
    )
    def test_refused_from_repo_config(self, tmp_path, toml):
        """Each secret-bearing key in [tool.fixbot] is a ConfigError that says why."""
        path = write_pyproject(tmp_path, toml)
        key = toml.split(" = ")[0]
        message = config_error(tmp_path)
        assert message.startswith(f"'{key}' may not be set in [tool.fixbot] of {path}")
        assert "secret" in message

    def test_all_secret_keys_are_covered(self):
        """The refused set is exactly the documented one: secrets and where they go, and
        what runs outside the fence or decides what fixbot deletes or overwrites."""
        secrets = {"llm_base_url", "llm_api_key", "github_api_url", "push", "open_pr"}
        secrets |= {"remote", "forge"}
        outside = {"ruff_path", "worktree_dir", "report_dir", "output_file", "force"}
        assert secrets | outside == set(ENV_OR_FLAG_ONLY)

    @pytest.mark.parametrize(
        "key", ["ruff-path = 'tools/ruff.sh'", "worktree-dir = '/tmp/x'", "force = true"]
    )
    def test_repo_cannot_name_what_runs_or_is_deleted(self, tmp_path, key):
        """A repo's [tool.fixbot] may not name the ruff fixbot runs (outside the fence, with
        every secret), the folder its sweep empties, or force over foreign commits."""
        write_pyproject(tmp_path, key)
        assert "[tool.fixbot]" in config_error(tmp_path) or "environment" in config_error(tmp_path)

    def test_allowed_from_env_and_flags(self, tmp_path):
        """The same settings come from the environment and flags."""
        env = {"FIXBOT_LLM_BASE_URL": "http://127.0.0.1:9/v1/", "FIXBOT_PUSH": "no"}
        config = load(tmp_path, env=env, flags={"open_pr": False, "github_api_url": "https://g.x"})
        assert config.llm_base_url == "http://127.0.0.1:9/v1"
        assert (config.push, config.open_pr, config.github_api_url) == (False, False, "https://g.x")

    def test_model_name_may_come_from_repo(self, tmp_path):
        """llm-model is not a secret and may be set in [tool.fixbot]."""
        write_pyproject(tmp_path, 'llm-model = "tiny-coder"')
        assert load(tmp_path).llm_model == "tiny-coder"

    def test_openai_api_key_fallback(self, tmp_path):
        """Without FIXBOT_LLM_API_KEY the key comes from OPENAI_API_KEY."""
        config = load(tmp_path, env={"OPENAI_API_KEY": CANARY})
        assert config.llm_api_key is not None
        assert config.llm_api_key.get_secret_value() == CANARY
        assert config.source("llm-api-key") == "env"

    def test_fixbot_api_key_wins(self, tmp_path):
        """FIXBOT_LLM_API_KEY beats OPENAI_API_KEY."""
        config = load(tmp_path, env={"OPENAI_API_KEY": "sk-other", "FIXBOT_LLM_API_KEY": CANARY})
        assert config.llm_api_key is not None
        assert config.llm_api_key.get_secret_value() == CANARY

    def test_github_variables(self, tmp_path):
        """GITHUB_API_URL and GITHUB_TOKEN are read; FIXBOT_GITHUB_API_URL wins."""
        env = {"GITHUB_API_URL": "https://ghe.example/api/v3", "GITHUB_TOKEN": CANARY}
        config = load(tmp_path, env=env)
        assert config.github_api_url == "https://ghe.example/api/v3"
        assert config.github_token is not None
        assert config.github_token.get_secret_value() == CANARY
        env["FIXBOT_GITHUB_API_URL"] = "https://other.example"
        assert load(tmp_path, env=env).github_api_url == "https://other.example"

    def test_github_token_only_from_github_token(self, tmp_path):
        """FIXBOT_GITHUB_TOKEN, a github-token key and flag are all unknown (the variable is
        named in a warning and ignored: the token is never taken from it)."""
        config = load(tmp_path, env={"FIXBOT_GITHUB_TOKEN": "x"})
        assert config.github_token is None
        assert "FIXBOT_GITHUB_TOKEN" in config.notices[0]
        assert "unknown flag" in config_error(tmp_path, flags={"github_token": "x"})
        write_pyproject(tmp_path, 'github-token = "x"')
        assert "unknown key 'github-token'" in config_error(tmp_path)

    def test_key_never_shown(self, tmp_path):
        """repr, str and JSON of Config never show the key or token."""
        config = load(tmp_path, env={"OPENAI_API_KEY": CANARY, "GITHUB_TOKEN": CANARY})
        for text in (repr(config), str(config), config.model_dump_json()):
            assert CANARY not in text

    def test_base_url_must_be_http(self, tmp_path):
        """A base URL that is not http(s) is refused with what was expected."""
        message = config_error(tmp_path, env={"FIXBOT_LLM_BASE_URL": "file:///etc"})
        assert message == (
            "bad value 'file:///etc' for FIXBOT_LLM_BASE_URL: expected an http:// or https:// URL"
        )


class TestLayering:
    """All four layers together, and which one set select."""

    @pytest.mark.parametrize(
        ("layers", "expected", "source"),
        [
            ((None, None, None), None, "default"),
            (('["A"]', None, None), ["A"], "config"),
            (('["A"]', "B", None), ["B"], "env"),
            (('["A"]', "B", "C"), ["C"], "flag"),
            ((None, None, "C"), ["C"], "flag"),
        ],
    )
    def test_select_and_its_source(self, tmp_path, layers, expected, source):
        """Each higher layer wins, and the source says which one set select."""
        repo_select, env_select, flag_select = layers
        if repo_select is not None:
            write_pyproject(tmp_path, f"select = {repo_select}")
        env = {"FIXBOT_SELECT": env_select} if env_select else {}
        config = load(tmp_path, flags={"select": flag_select}, env=env)
        assert config.select == expected
        assert config.source("select") == source

    def test_layers_merge_per_key(self, tmp_path):
        """Each key takes its highest layer; others keep theirs."""
        write_pyproject(tmp_path, 'base = "develop"\njobs = 2\nllm-model = "m"')
        config = load(tmp_path, flags={"jobs": 6}, env={"FIXBOT_LLM_ATTEMPTS": "5"})
        assert (config.base, config.jobs, config.llm_attempts) == ("develop", 6, 5)
        assert config.sources == {
            "base": "config",
            "jobs": "flag",
            "llm_model": "config",
            "llm_attempts": "env",
        }
        assert config.source("test-timeout") == "default"

    def test_unknown_setting_source_is_a_key_error(self):
        """source() of a name that is no setting raises KeyError."""
        with pytest.raises(KeyError):
            Config().source("nope")

    def test_config_is_frozen(self, tmp_path):
        """A loaded Config cannot be changed."""
        config = load(tmp_path)
        with pytest.raises(ValueError, match="frozen"):
            config.jobs = 3  # type: ignore[misc]


class TestLlmEnabled:
    """Config.llm_enabled and the llm agent's prerequisites."""

    @pytest.mark.parametrize(
        ("url", "model", "enabled"),
        [
            (None, None, False),
            ("http://h/v1", None, False),
            (None, "m", False),
            ("http://h", "m", True),
        ],
    )
    def test_needs_both_url_and_model(self, url, model, enabled):
        """llm_enabled only when base URL and model are both set."""
        assert Config(llm_base_url=url, llm_model=model).llm_enabled is enabled

    def test_llm_agent_without_a_model_is_refused(self, tmp_path):
        """Asking for the llm agent without URL and model is a ConfigError."""
        message = config_error(tmp_path, flags={"agents": "ruff,llm"})
        assert message.startswith("agents include 'llm' (--agents)")

    def test_llm_agent_with_a_model_is_accepted(self, tmp_path):
        """With URL and model set the llm agent may be chosen."""
        env = {"FIXBOT_LLM_BASE_URL": "http://127.0.0.1:1/v1", "FIXBOT_LLM_MODEL": "m"}
        assert load(tmp_path, flags={"agents": ["llm"]}, env=env).agents == ["llm"]


class TestPublishing:
    """Publishing settings: where secrets go, so never from a repo's file."""

    def test_push_with_dry_run_is_refused(self, tmp_path):
        """--push with --dry-run has no branch to publish: one line."""
        message = config_error(tmp_path, env={"FIXBOT_PUSH": "1"}, flags={"dry_run": True})
        assert message.startswith("--push and --open-pr publish a branch")

    @pytest.mark.parametrize("key", ["remote", "forge", "push", "open-pr"])
    def test_not_from_the_repo(self, tmp_path, key):
        """[tool.fixbot] may not say where the token is pushed."""
        value = "true" if key in {"push", "open-pr"} else '"github"'
        (tmp_path / "pyproject.toml").write_text(f"[tool.fixbot]\n{key} = {value}\n")
        assert f"{key!r} may not be set" in config_error(tmp_path)

    def test_gitlab_token_from_its_variable(self, tmp_path):
        """GITLAB_TOKEN is read, kept secret, and never a FIXBOT_ setting."""
        config = load(tmp_path, env={"GITLAB_TOKEN": "glpat-x", "FIXBOT_PR_BASE": "dev"})
        assert config.gitlab_token is not None
        assert config.gitlab_token.get_secret_value() == "glpat-x"
        assert "glpat-x" not in repr(config)
        assert config.pr_base == "dev"


class TestNotBuiltYet:
    """A setting whose code does not exist yet is refused with one line, never ignored."""

    def test_codemod_agent(self, tmp_path):
        """--agents codemod names the agent that does not exist."""
        message = config_error(tmp_path, flags={"agents": "ruff,codemod"})
        assert message.startswith("agents include 'codemod' (--agents), which is not built yet")
