"""What the command-line programs share: flags generated from the declared settings,
parsing that fails in one line, and the programs' one way to start."""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable

from absl import app, flags

from keras_siamese import flag_help, flagfiles, native_logs, settings
from keras_siamese.errors import ConfigError


def _flag_type(annotation) -> type:
    """The value type of a setting's annotation (`float | None` -> float)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def define_flags(config_class: type, flag_values: flags.FlagValues) -> None:
    """Defines one absl flag per field of the settings dataclass `config_class`.

    The field's `setting` declaration gives the default, the help text and the
    choices (an enum flag); bools become boolean flags (`--name`/`--noname`)
    and `tuple[int, ...]` fields comma-separated lists.
    """
    hints = typing.get_type_hints(config_class)
    # --helpfull lists the flags under the settings class that declares them.
    where = {
        "flag_values": flag_values,
        "module_name": f"{config_class.__module__}.{config_class.__name__}",
    }
    for field in dataclasses.fields(config_class):
        kind = _flag_type(hints[field.name])
        default = field.default
        help_text = field.metadata["help"]
        choices = field.metadata.get("choices")
        name = field.name
        if kind is str and default == "":
            default = None  # a required or derived path: absent unless given
        if choices:
            flags.DEFINE_enum(name, default, list(choices), help_text, **where)
        elif kind is bool:
            flags.DEFINE_boolean(name, default, help_text, **where)
        elif kind is int:
            flags.DEFINE_integer(name, default, help_text, **where)
        elif kind is float:
            flags.DEFINE_float(name, default, help_text, **where)
        elif kind is str:
            flags.DEFINE_string(name, default, help_text, **where)
        elif typing.get_origin(kind) is tuple:
            flags.DEFINE_list(name, [str(v) for v in default], help_text, **where)
        else:
            raise TypeError(f"no flag type for setting {name}: {kind}")
        # --help and docs/flags.md list the flag under its declared group.
        flag_values[name].group = settings.group_of(config_class, name)


def config_from_flags(config_class: type, flag_values: flags.FlagValues):
    """The `config_class` instance that the parsed flags describe.

    Raises:
        ConfigError: when a list flag holds something other than whole numbers.
    """
    hints = typing.get_type_hints(config_class)
    values = {}
    for field in dataclasses.fields(config_class):
        value = flag_values[field.name].value
        kind = _flag_type(hints[field.name])
        if typing.get_origin(kind) is tuple:
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise ConfigError(
                    f"--{field.name}={','.join(value)} must be whole numbers."
                ) from None
        elif kind is str and value is None and field.default == "":
            value = ""
        values[field.name] = value
    return config_class(**values)


def parse_flags(
    argv: list[str], flag_values: flags.FlagValues, commands: tuple[str, ...] = ()
) -> list[str]:
    """Parses `argv` into `flag_values`; a bad flag or a stray argument exits 2 in one line.

    Flagfiles are read by `flagfiles.resolve` (the recipes from the package where the
    folder has no such file). With `commands`, exactly one of those words must be given,
    before or among the flags.
    """
    try:
        rest = flag_values(flagfiles.resolve(argv))
    except (flags.Error, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if commands and (len(rest) != 2 or rest[1] not in commands):
        given = " ".join(rest[1:]) or "none"
        print(
            f"error: give one command of {', '.join(commands)} (given: {given}).", file=sys.stderr
        )
        sys.exit(2)
    if not commands and len(rest) > 1:
        print(
            f"error: unexpected argument(s) {' '.join(rest[1:])}; flags start with --.",
            file=sys.stderr,
        )
        sys.exit(2)
    return rest


HELP_ARGUMENTS = ("--help", "-h", "-?", "--helpshort")


def run_program(
    define_flags: Callable[[flags.FlagValues], None],
    run: Callable[..., int],
    flag_values: flags.FlagValues,
    commands: tuple[str, ...] = (),
    doc: str = "",
    argv: list[str] | None = None,
) -> None:
    """Runs a program on the program's `flag_values` (absl's global flags): defines its
    flags, parses the command line in one-line-error style, and exits with what `run`
    returns. Tests call `define_flags` and `run` in process on flags of their own.

    With `commands`, the program takes one command word, passed to `run` after the flags.
    `--help` prints `doc` and the program's own flags by group and exits 0; the native
    libraries' start-up lines are filtered out of stderr unless `--verbose` is given.
    """
    argv = list(sys.argv if argv is None else argv)
    native_logs.filter_stderr(argv)
    define_flags(flag_values)
    flags.DEFINE_boolean(
        "verbose",
        False,
        f"Show TensorFlow's native start-up lines (its C++ log before Python's logging), "
        f"as {native_logs.VERBOSE_ENV}=1 does.",
        flag_values=flag_values,
    )
    if any(arg in HELP_ARGUMENTS for arg in argv[1:]):
        print(flag_help.help_text(doc, flag_values))
        sys.exit(0)
    if "--helpfull" in argv[1:]:  # the program's flags, then absl's full list; exits 0 too
        print(flag_help.help_text(doc, flag_values))
        print(flag_values.get_help())
        sys.exit(0)

    def main(args: list[str]) -> int:
        return run(flag_values, args[1]) if commands else run(flag_values)

    app.run(main, argv=argv, flags_parser=lambda args: parse_flags(args, flag_values, commands))
