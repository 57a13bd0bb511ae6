"""The recipes' flagfiles wherever the package is installed.

A checkout's `flags/` (the fast recipe, one flagfile a split, ...) ships inside the
package as `keras_siamese/flags/`. A command given `--flagfile=flags/fast.flags`
where no such file exists (a pip install, run from any folder) reads the packaged
copy instead; so do the flagfiles it includes, which name their siblings by their
checkout paths.
"""

from __future__ import annotations

import os

from keras_siamese.errors import ConfigError

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
RECIPES_DIR = os.path.join(PACKAGE_DIR, "flags")
_DIRECTIVES = ("--flagfile=", "-flagfile=")


def packaged_path(path: str, package_dir: str = PACKAGE_DIR) -> str | None:
    """The package's copy of the checkout file `path` (`flags/NAME`, a bare `NAME` of
    `flags/`, or `keras_siamese/...`); None where the package holds no such file."""
    parts = os.path.normpath(path).split(os.sep)
    if os.path.isabs(path) or ".." in parts:
        return None
    if len(parts) == 1:
        parts = ["flags", *parts]
    if parts[0] == "keras_siamese":
        parts = parts[1:]
    candidate = os.path.join(package_dir, *parts)
    return candidate if os.path.isfile(candidate) else None


def recipe_names(package_dir: str = PACKAGE_DIR) -> list[str]:
    """The packaged recipes' names (`fast.flags`, `90_10.flags`, ...)."""
    folder = os.path.join(package_dir, "flags")
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if n.endswith(".flags"))


def resolve(argv: list[str], package_dir: str = PACKAGE_DIR) -> list[str]:
    """`argv` with each `--flagfile=PATH` that does not exist replaced by the lines of the
    package's copy of PATH, read as absl reads a flagfile (blank lines and `#` or `//`
    comments skipped, included flagfiles read in place, a circular one once).

    Raises:
        ConfigError: for a flagfile that is neither a file nor a packaged recipe.
    """
    resolved = list(argv[:1])
    rest = iter(argv[1:])
    for arg in rest:
        if arg == "--":
            resolved += [arg, *rest]
            break
        if arg in ("--flagfile", "-flagfile"):
            arg = f"--flagfile={next(rest, '')}"
        path = _directive_path(arg)
        if path is None or not path or os.path.exists(path):
            resolved.append(arg)
            continue
        packaged = packaged_path(path, package_dir)
        if packaged is None:
            raise ConfigError(_missing(path, package_dir))
        resolved += _packaged_lines(packaged, package_dir, [])
    return resolved


def _directive_path(arg: str) -> str | None:
    for prefix in _DIRECTIVES:
        if arg.startswith(prefix):
            return os.path.expanduser(arg[len(prefix) :].strip())
    return None


def _packaged_lines(path: str, package_dir: str, stack: list[str]) -> list[str]:
    if path in stack:
        return []
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.isspace() or line.startswith(("#", "//")):
                continue
            nested = _directive_path(line.strip())
            if nested is None:
                lines.append(line.strip())
                continue
            if not nested:
                continue
            # An included file is the package's copy: its sibling, not a file of the folder
            # the command runs in.
            found = packaged_path(nested, package_dir)
            if found is None:
                raise ConfigError(f"{path} includes {nested}, which the package does not hold.")
            lines += _packaged_lines(found, package_dir, [*stack, path])
    return lines


def _missing(path: str, package_dir: str) -> str:
    names = ", ".join(f"flags/{n}" for n in recipe_names(package_dir))
    return f"--flagfile={path}: no such file here, and no recipe of that name ({names})."
