"""A program's own flags, grouped: its `--help` text and the tables of docs/flags.md.

Both are generated from the flags a program defines (for the settings, from their one
declaration, group included: `keras_siamese.settings`), so they cannot drift from the
code:

    python -m keras_siamese.programs.flags_doc > docs/flags.md
"""

from __future__ import annotations

import textwrap

from absl import flags

# The group of a program's own flags, which no settings class declares (such as --mode).
PROGRAM_GROUP = "Program"


def grouped_flags(flag_values: flags.FlagValues) -> list[tuple[str, list[flags.Flag]]]:
    """A program's own flags (absl's left out) by group, in the order of each group's first
    flag; the groups are the settings' declared ones (`keras_siamese.settings.group_of`,
    set on each flag by `keras_siamese.cli.define_flags`)."""
    groups: dict[str, list[flags.Flag]] = {}
    program: list[flags.Flag] = []
    seen: set[str] = set()
    for module, module_flags in flag_values.flags_by_module_dict().items():
        if module.startswith("absl."):
            continue
        for flag in module_flags:
            if flag.name in seen:
                continue
            seen.add(flag.name)
            title = getattr(flag, "group", None)
            if title is None:
                program.append(flag)
            else:
                groups.setdefault(title, []).append(flag)
    result = list(groups.items())
    if program:
        result.append((PROGRAM_GROUP, program))
    return result


def flag_meaning(flag: flags.Flag) -> str:
    """A flag's help without the `<a|b|c>: ` that absl puts before an enum's."""
    text = flag.help
    if text.startswith("<") and ">: " in text:
        text = text.split(">: ", 1)[1]
    return text


def default_text(flag: flags.Flag) -> str:
    """A flag's default as a user types it."""
    value = flag.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def help_text(doc: str, flag_values: flags.FlagValues) -> str:
    """`--help`: the program's description, then its flags by group with defaults."""
    lines = [textwrap.dedent(doc).strip(), ""]
    for title, group in grouped_flags(flag_values):
        lines.append(f"{title}:")
        for flag in group:
            choices = getattr(flag.parser, "enum_values", None)
            kind = "|".join(choices) if choices else flag.flag_type()
            lines.append(f"  --{flag.name}  ({kind}, default: {default_text(flag)})")
            for row in textwrap.wrap(flag_meaning(flag), width=88):
                lines.append(f"      {row}")
        lines.append("")
    lines.append("absl's own flags too: --helpfull. Bool flags take --name or --noname.")
    return "\n".join(lines)


def flags_markdown(flag_values: flags.FlagValues) -> str:
    """The program's flags as Markdown: a table per group."""
    lines = []
    for title, group in grouped_flags(flag_values):
        lines += [f"### {title}", "", "| flag | default | meaning |", "| --- | --- | --- |"]
        for flag in group:
            meaning = flag_meaning(flag).replace("|", "\\|")
            lines.append(f"| `--{flag.name}` | `{default_text(flag)}` | {meaning} |")
        lines.append("")
    return "\n".join(lines)
