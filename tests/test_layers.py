"""The package's layers: what each subpackage may load when it is imported."""

from __future__ import annotations

import ast
import functools
import os

import pytest

from tests.conftest import ROOT

PACKAGE = os.path.join(ROOT, "keras_siamese")

# Each layer may import, at module level, the core modules and the layers (or single
# modules) listed for it. The model sees only the data sets' descriptions; serving
# reads typed evaluation results, while evaluation loads exports to measure them.
CORE = {
    "choices",
    "settings",
    "config",
    "cli",
    "errors",
    "files",
    "workdir",
    "flag_help",
    "native_logs",
    "keras_backend",
}
ALLOWED = {
    "data": set(),
    "model": {"data.datasets"},
    "objectives": {"data", "model"},
    "serving": {"data", "model", "evaluation.results"},
    "evaluation": {"data", "model", "serving"},
    "training": {"data", "model", "objectives", "evaluation", "serving"},
    "programs": {"data", "model", "objectives", "evaluation", "serving", "training"},
}


def _module_files() -> dict[str, str]:
    """Dotted module name (without the package) -> file path, for every module."""
    modules = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), PACKAGE)[: -len(".py")]
                dotted = rel.replace(os.sep, ".").removesuffix(".__init__")
                modules[dotted] = os.path.join(folder, name)
    return modules


MODULES = _module_files()


def _imported_names(nodes) -> set[str]:
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _parsed(module: str) -> ast.Module:
    with open(MODULES[module], encoding="utf-8") as f:
        return ast.parse(f.read())


@functools.cache  # the walks below ask for each module's imports many times
def top_level_imports(module: str) -> frozenset[str]:
    """The absolute names a module imports at module level (what importing it loads)."""
    return frozenset(_imported_names(_parsed(module).body))


@functools.cache
def all_imports(module: str) -> frozenset[str]:
    """Every absolute name a module imports anywhere: at module level, inside functions
    and under `if TYPE_CHECKING:` (what its code depends on)."""
    return frozenset(_imported_names(ast.walk(_parsed(module))))


def _project_modules(names: set[str]) -> set[str]:
    found = set()
    for name in names:
        if name.startswith("keras_siamese."):
            dotted = name.removeprefix("keras_siamese.")
            if dotted in MODULES:
                found.add(dotted)
    return found


def _closure(start: list[str]) -> tuple[set[str], set[str]]:
    """The project modules and the outside modules loaded by importing `start`."""
    seen, outside, todo = set(), set(), list(start)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        names = top_level_imports(module)
        outside.update(n for n in names if not n.startswith("keras_siamese"))
        todo.extend(_project_modules(names))
    return seen, outside


def test_the_walk_finds_every_layer():
    layers = {m.split(".")[0] for m in MODULES if "." in m}
    assert layers == set(ALLOWED) | {"serving"}
    assert {"model.resnet", "data.pipeline", "evaluation.protocol", "serving.export"} <= set(
        MODULES
    )


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_a_layer_imports_only_the_core_and_its_allowed_layers(layer):
    for module in (m for m in MODULES if m.startswith(layer + ".")):
        for dep in _project_modules(top_level_imports(module)):
            allowed = ALLOWED[layer] | {layer}
            assert dep in CORE | allowed or dep.split(".")[0] in allowed, f"{module} imports {dep}"


def test_model_code_loads_no_tensorflow():
    models = [m for m in MODULES if m.startswith("model.")]
    seen, outside = _closure(models)
    assert not [n for n in outside if n.split(".")[0] in ("tensorflow", "tf")], sorted(outside)
    # The walk reached the model modules and the settings they use, and no input pipeline.
    assert {"model.resnet", "model.losses", "model.siamese", "choices"} <= seen
    assert "config" not in seen  # the model takes its vocabularies from `choices`
    assert not any(m.startswith(("data.pipeline", "training.")) for m in seen)


def _depends_on(start: str) -> set[str]:
    """The project modules `start` reaches through imports of any kind."""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_project_modules(all_imports(module)))
    return seen


def test_no_module_imports_itself_back():
    for module in MODULES:
        for dep in _project_modules(all_imports(module)) - {module}:
            assert module not in _depends_on(dep), f"{module} -> {dep} -> ... -> {module}"


def test_the_circle_check_reads_imports_inside_functions_and_for_type_checking():
    names = _imported_names(
        ast.walk(
            ast.parse(
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from keras_siamese import files\n"
                "def f():\n    from keras_siamese.data import splits\n"
            )
        )
    )
    assert {"keras_siamese.files", "keras_siamese.data.splits"} <= names


def test_the_objectives_and_settings_load_no_keras():
    settings = [m for m in MODULES if m == "settings" or m.endswith(".settings")]
    assert {"settings", "data.settings", "model.settings", "objectives.settings"} <= set(settings)
    seen, outside = _closure(["config", "objectives", "choices", *settings])
    assert {"objectives.pk_mining", "objectives.classification", "choices"} <= seen
    assert not [n for n in outside if n.split(".")[0] in ("keras", "tensorflow", "jax")], sorted(
        outside
    )


def test_the_development_guide_module_map_names_every_module():
    with open(os.path.join(ROOT, "docs", "development.md"), encoding="utf-8") as f:
        readme = f.read()
    start = readme.index("| folder | modules |")
    table = readme[start : readme.index("\n\n", start)]
    for module in MODULES:
        if module and not module.endswith("__init__"):
            name = module.split(".")[-1]
            assert f"`{name}`" in table or f"`{name}/`" in table, f"{module} is not in the map"
    for layer in ALLOWED:
        assert f"`{layer}/`" in table
