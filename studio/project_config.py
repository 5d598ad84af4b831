"""One Label Studio project of the studio (`ProjectConfig`) and its demo data (`DemoConfig`): the primary project
from `[labelstudio]` + `[demo]`, every further one from a `[projects.<key>]` table (see studio/config.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from studio.config_base import ConfigSection, coerce, did_you_mean_or_keys, require
from studio.errors import ConfigError

#: A project key names its state folder (<state>/projects/<key>/), a CLI option value and a URL query parameter.
PROJECT_KEY = re.compile(r"[a-z][a-z0-9_-]{0,39}")


#: Label Studio refuses a project title longer than this.
MAX_TITLE = 50

@dataclass
class DemoConfig(ConfigSection):
    """The demo data imported on first start of the embedded server."""

    SECTION = "demo"
    enabled: bool = True
    file: str = "data/demo/banking77_demo.csv"
    text_column: str = "text"
    label_column: str = "category"
    annotated: int = 600  # how many demo tasks arrive already annotated, so every page has something to show
    annotator: str = "banking77-original@demo.local"  # the Label Studio user the demo's own labels are by
    annotator_name: str = "BANKING77 original labels"  # that user's name, as Label Studio shows it

    def __post_init__(self) -> None:
        require(self.annotated >= 0, self.SECTION, "annotated", self.annotated, "0 or more")
        require("@" in self.annotator, self.SECTION, "annotator", self.annotator, "an email address")


@dataclass
class ProjectConfig:
    """One Label Studio project of the studio: its key, how to find (or create) it, and its demo data.

    key: names the project's state folder (<state>/projects/<key>/), `studio --project KEY` and the app's picker.
    title / project_id: the project on the Label Studio server (project_id 0 = find or create it by title).
    primary: the project `[labelstudio]` and `[demo]` define; the others come from `[projects.<key>]` tables.
    """

    key: str
    title: str
    project_id: int = 0
    labeling_config: str = "labeling_configs/text_classification.xml"
    demo: DemoConfig = field(default_factory=lambda: DemoConfig(enabled=False))
    primary: bool = False

    def __post_init__(self) -> None:
        section = self.section
        require(bool(PROJECT_KEY.fullmatch(self.key)), section, "key", self.key,
                "a short key of lowercase letters, digits, '-' and '_', starting with a letter")
        require(bool(self.title.strip()), section, self.title_field, self.title, "a non-empty title")
        require(len(self.title) <= MAX_TITLE, section, self.title_field, self.title,
                f"at most {MAX_TITLE} characters (Label Studio's limit for a project title)")
        require(self.project_id >= 0, section, "project_id", self.project_id, "0 or a project id")

    @property
    def section(self) -> str:
        """The studio.toml table that defines this project, for messages."""
        return "labelstudio" if self.primary else f"projects.{self.key}"

    @property
    def demo_section(self) -> str:
        """The table of its demo settings: [demo] for the primary project, else [projects.<key>.demo]."""
        return "demo" if self.primary else f"projects.{self.key}.demo"

    @property
    def title_field(self) -> str:
        return "project_title" if self.primary else "title"

    @property
    def where(self) -> str:
        """Where its title and id are set, for hints: "[projects.support] title / project_id"."""
        return f"[{self.section}] {self.title_field} / project_id"

    @classmethod
    def from_dict(cls, key: str, data: Mapping[str, Any]) -> ProjectConfig:
        """A `[projects.<key>]` table: title, project_id, labeling_config and a `demo` sub-table."""
        section = f"projects.{key}"
        if not isinstance(data, Mapping):
            raise ConfigError(f"[{section}] must be a table, got {data!r}.",
                              hint=f"write it as a [{section}] table with title = \"...\" and labeling_config")
        known = ["title", "project_id", "labeling_config", "demo"]
        for name in data:
            if name not in known:
                raise ConfigError(f"[{section}] has no key '{name}'.{did_you_mean_or_keys(name, known)}",
                                  hint=f"remove or rename '{name}' in the [{section}] table of studio.toml")
        if "title" not in data:
            raise ConfigError(f"[{section}] has no title.",
                              hint=f"add title = \"...\" (the Label Studio project's title) to [{section}]")
        if not PROJECT_KEY.fullmatch(key):
            raise ConfigError(f"[{section}]: the key '{key}' cannot name a project.",
                              hint="use lowercase letters, digits, '-' and '_', starting with a letter")
        demo = DemoConfig(enabled=False)
        if "demo" in data:
            table = data["demo"]
            if not isinstance(table, Mapping):
                raise ConfigError(f"[{section}] demo = {table!r} must be a table.",
                                  hint=f"write the demo settings as a [{section}.demo] table")
            if table.get("enabled", True) and "file" not in table:
                raise ConfigError(f"[{section}.demo] names no file.",
                                  hint=f"add file = \"data/demo/....csv\" to [{section}.demo], or enabled = false")
            # The demo's own labels are by a user named after the project unless the table names one.
            table = {"annotator": f"{key}-demo@demo.local", "annotator_name": f"{data['title']} demo labels",
                     **table}
            demo = DemoConfig.from_dict(table, section=f"{section}.demo")
        values = {name: coerce(section, name, data[name], kind) for name, kind in
                  (("title", "str"), ("project_id", "int"), ("labeling_config", "str")) if name in data}
        return cls(key=key, demo=demo, **values)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "project_id": self.project_id, "labeling_config": self.labeling_config,
                "demo": self.demo.to_dict()}
