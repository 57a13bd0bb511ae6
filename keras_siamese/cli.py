"""What both command-line programs share: flag parsing that fails in one line."""

from __future__ import annotations

import sys

from absl import flags


def parse_flags(argv: list[str]) -> list[str]:
    """Parses the flags defined so far; a bad flag or a stray argument exits 2 in one line."""
    try:
        rest = flags.FLAGS(argv)
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
