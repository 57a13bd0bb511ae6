"""The package as pip installs it: a wheel that holds every module, its data and its command."""

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT

# A wheel built and installed as pip would: an end-to-end check, run by make test-slow.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            ROOT,
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("*.whl")
    return str(path)


def _package_files() -> set[str]:
    """Every file of keras_siamese/ in the checkout that belongs in the package."""
    found = set()
    for folder, dirs, files in os.walk(os.path.join(ROOT, "keras_siamese")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if not name.endswith(".pyc"):
                found.add(os.path.relpath(os.path.join(folder, name), ROOT).replace(os.sep, "/"))
    return found


def test_the_wheel_holds_every_module_static_file_and_flagfile_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        commands = archive.read(entry_points).decode()
    expected = _package_files()
    # The recipes: the checkout's flags/, which keras_siamese/flags links to.
    expected |= {f"keras_siamese/flags/{n}" for n in os.listdir(os.path.join(ROOT, "flags"))}
    assert "keras_siamese/flags/fast.flags" in expected
    assert "keras_siamese/serving/canvas/static/index.html" in expected
    assert "keras_siamese/programs/demo.flags" in expected
    assert expected <= names, sorted(expected - names)
    assert "keras-siamese = keras_siamese.programs.console:main" in commands


def test_the_installed_package_imports_and_runs_from_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            wheel,
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import keras_siamese, keras_siamese.programs.console as c, keras_siamese.serving.canvas"
        ".server, keras_siamese.training.trainer; print(keras_siamese.__file__); c.main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "eval", "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert first.startswith(str(target))
    assert any("--ways" in line for line in rest)
    # The README's recipe, read from the installed package in a folder without flags/.
    code = (
        "from keras_siamese import flagfiles; "
        "print(flagfiles.resolve(['p', '--flagfile=flags/fast.flags']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "'--dataset=cifar100'" in result.stdout and "'--objective=normsoftmax'" in result.stdout
