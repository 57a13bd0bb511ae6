"""What the command-line programs share: flag parsing that fails in one line."""

from __future__ import annotations

import sys

from absl import flags


def parse_flags(argv: list[str], flag_values: flags.FlagValues) -> list[str]:
    """Parses `argv` into `flag_values`; a bad flag or a stray argument exits 2 in one line.

    A program passes its own flags: `app.run(main, flags_parser=lambda argv:
    cli.parse_flags(argv, flags.FLAGS))`.
    """
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if len(rest) > 1:
        print(
            f"error: unexpected argument(s) {' '.join(rest[1:])}; flags start with --.",
            file=sys.stderr,
        )
        sys.exit(2)
    return rest
