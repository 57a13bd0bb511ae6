"""How a setting is declared: a dataclass field with its flag's help text, choices and group.

The command-line flags, their parsing, `--help`'s groups, docs/flags.md and a run's
config.flags are all generated from these declarations (`keras_siamese.cli`). Each
concern declares its settings in a frozen dataclass of its own (`TITLE`, the group its
flags are listed under); the programs' settings classes (`keras_siamese.config`)
compose them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from keras_siamese.errors import ConfigError


def setting(
    default, help_text: str, choices: Sequence[str] | None = None, group: str | None = None
):
    """A declared setting: a dataclass field with its flag's help text and choices.

    `group`: the title its flag is listed under in `--help` and docs/flags.md, where it
    is not its declaring class's `TITLE`.
    """
    if isinstance(default, list):
        default = tuple(default)  # a dataclass default must be immutable
    metadata = {"help": help_text, "choices": tuple(choices) if choices else None}
    if group:
        metadata["group"] = group
    return dataclasses.field(default=default, metadata=metadata)


def group_of(settings_class: type, name: str) -> str:
    """The group of setting `name` of `settings_class`: its own, else its declaring class's
    `TITLE`."""
    field = {f.name: f for f in dataclasses.fields(settings_class)}[name]
    if "group" in field.metadata:
        return field.metadata["group"]
    for cls in settings_class.__mro__:
        if name in vars(cls).get("__annotations__", {}):
            return vars(cls).get("TITLE", "Other settings")
    return "Other settings"


def defaults_of(config) -> dict:
    """Every setting of `config`'s class at its declared default, by name."""
    return {field.name: field.default for field in dataclasses.fields(config)}


def check_choices(config) -> None:
    """Raises ConfigError when a setting of `config` is not one of its declared choices."""
    for field in dataclasses.fields(config):
        choices = field.metadata.get("choices")
        value = getattr(config, field.name)
        if choices and value is not None and value not in choices:
            raise ConfigError(
                f"--{field.name}={value} is unknown: choose one of {', '.join(choices)}."
            )


def flag_lines(config) -> list[str]:
    """The settings of `config` as flagfile lines (`--name=value`), None ones left out."""
    lines = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{field.name}" if value else f"--no{field.name}")
        elif isinstance(value, tuple):
            lines.append(f"--{field.name}={','.join(str(v) for v in value)}")
        else:
            lines.append(f"--{field.name}={value}")
    return lines
