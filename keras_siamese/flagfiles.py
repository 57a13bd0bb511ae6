"""The recipes' flagfiles wherever the package is installed.

A checkout's `flags/` (the fast recipe, one flagfile a split, ...) ships inside the
package as `keras_siamese/flags/`. A command given `--flagfile=flags/fast.flags`
where no such file exists (a pip install, run from any folder) reads the packaged
copy instead, and so for the flagfiles it includes, which name their siblings by
their checkout paths. The programs expand flagfiles here, before absl parses the
rest, so that the same rule holds at every depth.
"""

from __future__ import annotations

import os

from keras_siamese.errors import ConfigError

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
RECIPES_DIR = os.path.join(PACKAGE_DIR, "flags")
_DIRECTIVES = ("--flagfile=", "-flagfile=")


def packaged_path(path: str, package_dir: str = PACKAGE_DIR) -> str | None:
    """The package's copy of the checkout file `path` (`flags/NAME`, a bare `NAME` of
    `flags/`, or `keras_siamese/...`); None where the package holds no such flagfile."""
    parts = os.path.normpath(path).split(os.sep)
    if os.path.isabs(path) or ".." in parts or not path.endswith(".flags"):
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
    """`argv` with each `--flagfile=PATH` replaced by the flags it holds, read as absl
    reads a flagfile (blank lines and `#` or `//` comments skipped, included flagfiles
    read in place, a circular one once): PATH as given or, where no such file exists,
    the package's copy of it.

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
        if path is None:
            resolved.append(arg)
        elif path:
            resolved += _lines(_find(path, package_dir, "--flagfile="), package_dir, [])
    return resolved


def _directive_path(arg: str) -> str | None:
    for prefix in _DIRECTIVES:
        if arg.startswith(prefix):
            return os.path.expanduser(arg[len(prefix) :].strip())
    return None


def _find(path: str, package_dir: str, named_by: str) -> str:
    if os.path.exists(path):
        return path
    packaged = packaged_path(path, package_dir)
    if packaged is None:
        names = ", ".join(f"flags/{n}" for n in recipe_names(package_dir))
        raise ConfigError(
            f"{named_by}{path}: no such file here, and no recipe of that name ({names})."
        )
    return packaged


def _lines(path: str, package_dir: str, stack: list[str]) -> list[str]:
    if path in stack:
        return []
    lines = []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--flagfile={path} cannot be read: {e}.") from None
    for line in text:
        if line.isspace() or line.startswith(("#", "//")):
            continue
        nested = _directive_path(line.strip())
        if nested is None:
            lines.append(line.strip())
        elif nested:
            found = _find(nested, package_dir, f"{path} includes ")
            lines += _lines(found, package_dir, [*stack, path])
    return lines
