"""What every config section shares: strict keys with a "did you mean", values coerced to the declared type
(TOML values and STUDIO_* environment strings alike), and `require` for messages that name the field, the value
and the fix. The sections themselves live in studio/config.py (and the stages' own modules)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import fields
from typing import Any, Mapping, TypeVar

from studio.errors import ConfigError, did_you_mean

T = TypeVar("T", bound="ConfigSection")


def did_you_mean_or_keys(name: str, choices: list[str]) -> str:
    return did_you_mean(name, choices) or f" Known keys: {', '.join(sorted(choices))}."


def _type_ok(value: Any, kind: str) -> bool:
    """Whether a TOML value fits one alternative of a declared type ("int", "float", "str", "bool", "list[...]",
    "dict[...]", "None", or something this does not know, which is left to the section's own checks)."""
    if kind == "None":
        return value is None
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("list"):
        return isinstance(value, list)
    if kind.startswith("dict"):
        return isinstance(value, dict)
    return True


def coerce(section: str, name: str, value: Any, target: Any) -> Any:
    """Turn an environment string (or a TOML value) into the field's declared type; a TOML value of another type
    (`port = true`, `port = 8080.5`, `project_title = 5`) is a ConfigError naming the field."""
    kind = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    kinds = [k.strip() for k in kind.split("|")]
    if not isinstance(value, str) or "str" in kinds:
        if not any(_type_ok(value, k) for k in kinds):
            shown = " or ".join("a whole number" if k == "int" else "a (finite) number" if k == "float" else
                                "true or false" if k == "bool" else "text" if k == "str" else k for k in kinds)
            raise ConfigError(f"[{section}] {name} = {value!r} is {type(value).__name__}, expected {shown}.",
                              hint=f"set {name} to {shown} in {_where(section, name)}")
        if kinds == ["float"] and isinstance(value, int):
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
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        if kind.startswith("list"):
            return [item.strip() for item in value.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(
            f"[{section}] {name} = {value!r} is not a valid {kind}.",
            hint=f"set {name} to a {kind}, e.g. in {_where(section, name)}",
        ) from None
    return value


def _where(section: str, name: str) -> str:
    """Where a person sets a field: studio.toml, or its STUDIO_* variable (the [projects.*] tables have none)."""
    if "." in section:
        return f"the [{section}] table of studio.toml"
    return f"studio.toml or STUDIO_{section.upper()}_{name.upper()}"


class ConfigSection:
    """Mixin for config dataclasses: `from_dict` (strict keys, typed) and `to_dict`."""

    SECTION = ""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, section: str | None = None) -> T:
        """Build the section from a TOML table; section: the table's name in messages when it is not SECTION
        (a project's `[projects.<key>.demo]`)."""
        section = section or cls.SECTION
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"[{section}] must be a table (a [{section}] header with key = value lines), got "
                              f"{data!r}.", hint=f"write it as\n[{section}]\nkey = value")
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"[{section}] has no key '{key}'.{did_you_mean_or_keys(key, list(known))}",
                    hint=f"remove or rename '{key}' in the [{section}] section of studio.toml",
                )
        kwargs = {key: coerce(section, key, value, known[key].type) for key, value in data.items()}
        if section == cls.SECTION:
            return cls(**kwargs)
        obj = cls.__new__(cls)
        obj.SECTION = section  # so __post_init__'s messages name the table the value came from
        obj.__init__(**kwargs)  # type: ignore[misc]
        return obj

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def require(condition: bool, section: str, name: str, value: Any, expected: str) -> None:
    """Raise a ConfigError naming the field, the value received and what was expected."""
    if not condition:
        where = f"[{section}] section of studio.toml" + ("" if "." in section else
                                                          f" or STUDIO_{section.upper()}_{name.upper()}")
        raise ConfigError(f"[{section}] {name} = {value!r} is invalid: expected {expected}.",
                          hint=f"change {name} in the {where}")
