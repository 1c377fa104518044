"""The run's settings, layered: shipped defaults < [tool.fixbot] < FIXBOT_* env < flags.

Keys are kebab-case in TOML (`max-patches`), `FIXBOT_` + UPPER_SNAKE in the
environment (`FIXBOT_MAX_PATCHES`, lists comma-separated, booleans
1/0/true/false/yes/no, an empty variable counts as unset) and snake_case on the
model and in the `flags` mapping (a flag whose value is None was not given).
Settings that are secrets or say where secrets go never come from a repo's
`[tool.fixbot]`, so a repository cannot send the user's key elsewhere.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from fixbot.sandbox import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

AgentName = Literal["ruff", "codemod", "llm"]
ForgeName = Literal["auto", "github", "gitlab"]
SplitBy = Literal["none", "rule", "directory", "codeowners"]
LogFormat = Literal["auto", "json", "console"]
Color = Literal["auto", "always", "never"]
OutputFormat = Literal["text", "github", "gitlab", "json"]
Source = Literal["flag", "env", "config", "default"]

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
_Identity = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[^<>\n]+$")]
_Count = Annotated[int, Field(ge=1)]
_Seconds = Annotated[float, Field(gt=0)]

DEFAULTS_PACKAGE = "fixbot.configs"
DEFAULTS_FILE = "default.toml"


class Config(BaseModel):
    """Every setting of a run, after all layers are merged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    select: list[_Text] | None = None
    exclude: list[_Text] = Field(default_factory=list)
    max_patches: _Count | None = None
    base: _Text = "HEAD"
    branch: _Text | None = None
    jobs: _Count | None = None
    agents: list[AgentName] | None = None
    test_cmd: str | None = None  # "" asks for lint-only proof
    test_timeout: _Seconds = 900.0
    test_impact: bool = True
    test_cache: bool = True
    always_run: list[_Text] = Field(default_factory=list)
    report_dir: _Text | None = None
    dry_run: bool = False
    push: bool = False
    open_pr: bool = False
    remote: _Text = "origin"
    pr_base: _Text | None = None
    forge: ForgeName = "auto"
    split_by: SplitBy = "none"
    pr_max_lines: _Count | None = None
    force: bool = False
    llm_base_url: _Text | None = None
    llm_model: _Text | None = None
    llm_api_key: SecretStr | None = None
    llm_concurrency: Annotated[int, Field(ge=1, le=1024)] = 16
    llm_max_requests: _Count | None = None
    llm_token_budget: _Count | None = None
    llm_attempts: _Count = 3
    llm_timeout: _Seconds = 120.0
    llm_select: list[_Text] | None = None
    llm_ignore: list[_Text] = Field(default_factory=list)
    llm_max_tokens: _Count = 2048
    llm_stream: bool = False
    llm_api_version: _Text | None = None
    log_format: LogFormat = "auto"
    color: Color = "auto"
    diff: bool = False
    exit_non_zero_on_fix: bool = False
    output_format: OutputFormat = "text"
    output_file: _Text | None = None
    fail_on_unfixed: bool = False
    worktree_dir: _Text | None = None
    ruff_path: _Text | None = None
    max_fix_iterations: _Count = 10
    commit_author_name: _Identity = "fixbot"
    commit_author_email: _Identity = "fixbot@users.noreply.github.com"
    unsafe_fixes: bool = True
    land_revealed: bool = True
    github_api_url: _Text = "https://api.github.com"
    github_token: SecretStr | None = None
    gitlab_token: SecretStr | None = None
    # Where each setting that did not come from the defaults was set (snake_case keys).
    sources: dict[str, Source] = Field(default_factory=dict, repr=False)
    # What is worth a warning but not an exit (an unknown FIXBOT_* variable).
    notices: tuple[str, ...] = Field(default=(), repr=False)

    @field_validator("llm_base_url", "github_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        try:
            parts = urlsplit(value)
            _ = parts.port  # a port that is not a number raises here
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if not parts.hostname:
            raise ValueError("expected a host in the URL")
        return value.rstrip("/")

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: dict[str, Source]) -> dict[str, Source]:
        unknown = sorted(set(value) - set(cls.model_fields) - {"sources", "notices"})
        if unknown:
            raise ValueError(f"not settings: {', '.join(unknown)}")
        return value

    @property
    def secrets(self) -> dict[str, str]:
        """The secrets set, by what a message may call them: what logs and reports
        blank, and what no test may run beside unfenced."""
        named = (
            ("the model's key", self.llm_api_key),
            ("GITHUB_TOKEN", self.github_token),
            ("GITLAB_TOKEN", self.gitlab_token),
        )
        return {name: value.get_secret_value() for name, value in named if value}

    @property
    def llm_enabled(self) -> bool:
        """Whether the model can serve: both its base URL and its name are set."""
        return bool(self.llm_base_url and self.llm_model)

    def source(self, name: str) -> Source:
        """Where a setting came from; `name` may be snake_case or kebab-case."""
        field = name.replace("-", "_")
        if field not in type(self).model_fields or field in {"sources", "notices"}:
            raise KeyError(name)
        return self.sources.get(field, "default")


# Every setting a TOML key, a FIXBOT_ variable or a flag may set (snake_case).
_NOT_SETTINGS = frozenset({"github_token", "gitlab_token", "sources", "notices"})
SETTINGS: tuple[str, ...] = tuple(n for n in Config.model_fields if n not in _NOT_SETTINGS)
# Settings a repo's [tool.fixbot] may not set: secrets and where secrets are sent.
# Also what runs outside the fence, or what fixbot deletes or overwrites: a repo must
# not name the ruff binary fixbot runs (it would see every secret), the folder its
# sweep empties, where reports are written, or that foreign commits may be replaced.
ENV_OR_FLAG_ONLY: frozenset[str] = frozenset(
    {
        "llm_base_url",
        "llm_api_key",
        "github_api_url",
        "push",
        "open_pr",
        "remote",
        "forge",
        "ruff_path",
        "worktree_dir",
        "report_dir",
        "output_file",
        "force",
    }
)
# Other variables read besides FIXBOT_*: (setting, variable), used when FIXBOT_* is unset.
_FALLBACK_ENV = (
    ("llm_api_key", "OPENAI_API_KEY"),
    ("github_api_url", "GITHUB_API_URL"),
    ("github_token", "GITHUB_TOKEN"),
    ("gitlab_token", "GITLAB_TOKEN"),
)
_SECRETS = frozenset({"llm_api_key", "github_token", "gitlab_token"})
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"0", "false", "no"})

_BY_KEY = {n.replace("_", "-"): n for n in SETTINGS}
_BY_ENV = {"FIXBOT_" + n.upper(): n for n in SETTINGS}

# field -> (value, source, where it was set, for messages)
_Layer = dict[str, tuple[Any, Source, str]]


def setting_flags(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Of a command's parameters (its `locals()` on entry), those that are settings, named
    as the flags layer of `load_config` takes them: one list of settings, not one per
    command."""
    return {name: value for name, value in parameters.items() if name in SETTINGS}


def load_config(
    repo: Path,
    *,
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Config:
    """Merge every layer for `repo` into one validated `Config`.

    The file layer is `config_file` when given (a pyproject.toml's [tool.fixbot], or
    any other TOML file's top level), else the nearest pyproject.toml with a
    [tool.fixbot] from `repo` up to the repository's top level, as ruff finds its own.

    Raises:
        ConfigError: an unknown key, variable or flag, a bad value, invalid TOML,
            or a secret-bearing key in the repo's `[tool.fixbot]`.
    """
    env = os.environ if environ is None else environ
    merged: _Layer = {}
    notices: list[str] = []
    for layer in (
        _defaults_layer(),
        _file_layer(repo, config_file),
        _env_layer(env, notices),
        _flags_layer(flags),
    ):
        merged.update(layer)
    values = {name: value for name, (value, _, _) in merged.items()}
    sources = {name: src for name, (_, src, _) in merged.items() if src != "default"}
    try:
        config = Config.model_validate({**values, "sources": sources, "notices": tuple(notices)})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, merged)) from None
    model = {"llm-base-url": config.llm_base_url, "llm-model": config.llm_model}
    if any(model.values()) and not all(model.values()):
        given, missing = sorted(model, key=lambda k: not model[k])
        notices.append(
            f"{given} is set but {missing} is not, so no model is used:"
            f" set FIXBOT_{missing.upper().replace('-', '_')} too"
        )
        config = config.model_copy(update={"notices": tuple(notices)})
    if (config.push or config.open_pr) and config.dry_run:
        raise ConfigError("--push and --open-pr publish a branch, which --dry-run does not write")
    if config.agents is not None and "codemod" in config.agents:
        raise ConfigError(
            f"agents include 'codemod' ({merged['agents'][2]}), which is not built yet:"
            " use 'ruff' and 'llm'"
        )
    if config.agents is not None and "llm" in config.agents and not config.llm_enabled:
        raise ConfigError(
            f"agents include 'llm' ({merged['agents'][2]}) but llm-base-url and llm-model"
            " are not both set (FIXBOT_LLM_BASE_URL, FIXBOT_LLM_MODEL)"
        )
    return config


def _defaults_layer() -> _Layer:
    resource = resources.files(DEFAULTS_PACKAGE) / DEFAULTS_FILE
    try:
        table = tomllib.loads(resource.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read fixbot's defaults {resource}: {exc}") from None
    return _table_layer(table, label=str(resource), source="default", repo_config=False)


def _file_layer(repo: Path, config_file: Path | None) -> _Layer:
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"--config: no such file: {config_file}")
        return _repo_layer(config_file, whole=config_file.name != "pyproject.toml")
    for folder in (repo.resolve(), *repo.resolve().parents):
        layer = _repo_layer(folder / "pyproject.toml")
        # The repository's top level is as far as a setting of the repo's may come from.
        if layer or (folder / ".git").exists():
            return layer
    return {}


def _repo_layer(path: Path, *, whole: bool = False) -> _Layer:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"invalid TOML in {path}: not UTF-8 text") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None
    if whole:
        return _table_layer(document, label=str(path), source="config", repo_config=True)
    tool = document.get("tool")
    table = tool.get("fixbot") if isinstance(tool, dict) else None
    if table is None:
        return {}
    label = f"[tool.fixbot] of {path}"
    if not isinstance(table, dict):
        raise ConfigError(f"{label} must be a table, not {type(table).__name__}")
    return _table_layer(table, label=label, source="config", repo_config=True)


def _table_layer(table: dict[str, Any], *, label: str, source: Source, repo_config: bool) -> _Layer:
    layer: _Layer = {}
    for key, value in table.items():
        name = _BY_KEY.get(key)
        if name is None:
            raise ConfigError(f"unknown key {key!r} in {label}{_hint(key, _BY_KEY)}")
        if repo_config and name in ENV_OR_FLAG_ONLY:
            raise ConfigError(
                f"{key!r} may not be set in {label}: it is a secret, says where secrets go,"
                " or names what fixbot runs or removes,"
                f" so only {_env_var(name)} or --{key} may set it"
            )
        layer[name] = (value, source, f"{key!r} in {label}")
    return layer


def _env_layer(environ: Mapping[str, str], notices: list[str]) -> _Layer:
    layer: _Layer = {}
    for var in sorted(environ):
        if not var.startswith("FIXBOT_"):
            continue
        name = _BY_ENV.get(var)
        if name is None:
            # A CI job's environment holds variables of other tools' making (a
            # FIXBOT_VERSION of the pipeline's own): worth a warning, not an exit.
            notices.append(f"unknown environment variable {var} ignored{_hint(var, _BY_ENV)}")
            continue
        raw = environ[var].strip()
        if raw:
            layer[name] = (_parse_env(name, var, raw), "env", var)
    for name, var in _FALLBACK_ENV:
        raw = environ.get(var, "").strip()
        if name not in layer and raw:
            layer[name] = (raw, "env", var)
    return layer


def _parse_env(name: str, var: str, raw: str) -> Any:
    kind = _kind(name)
    if kind is list:
        return _split(raw)
    if kind is bool:
        word = raw.lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ConfigError(f"bad value {raw!r} for {var}: expected 1, 0, true, false, yes or no")
    return raw


def _flags_layer(flags: Mapping[str, Any]) -> _Layer:
    layer: _Layer = {}
    for key, value in flags.items():
        if value is None:
            continue
        name = key.removeprefix("--").replace("-", "_")
        flag = "--" + name.replace("_", "-")
        if name not in SETTINGS:
            raise ConfigError(f"unknown flag {flag}")
        layer[name] = (_split(value) if _kind(name) is list else value, "flag", flag)
    return layer


def _split(value: Any) -> Any:
    """Comma-separated text (or a sequence of such) to a list; anything else as is."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        return value
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _kind(name: str) -> type | None:
    """`list` or `bool` when a setting is one of those (None aside), else None."""
    annotation = Config.model_fields[name].annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        annotation = next(a for a in args if a is not type(None))
    if typing.get_origin(annotation) is list:
        return list
    return bool if annotation is bool else None


def _env_var(name: str) -> str:
    return "FIXBOT_" + name.upper()


def _hint(word: str, choices: Mapping[str, str]) -> str:
    """`` (did you mean 'x'?)`` for a near miss, else the empty string."""
    normal = word.replace("_", "-").lower()
    if word.startswith("FIXBOT_"):
        normal = word.upper()
    close = difflib.get_close_matches(normal, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_line(exc: ValidationError, merged: _Layer) -> str:
    """The first validation problem as one line naming the setting and where it was set."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    where = merged[name][2] if name in merged else repr(name.replace("_", "-"))
    message = str(first["msg"]).removeprefix("Value error, ")
    shown = "" if name in _SECRETS else f" {first.get('input')!r}"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return " ".join(f"bad value{shown} for {where}: {message}{more}".split())
