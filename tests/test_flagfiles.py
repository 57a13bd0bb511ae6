"""The recipes' flagfiles read from the package where the checkout's are not at hand."""

import os
import subprocess
import sys

import pytest
from absl import flags

from keras_siamese import flagfiles
from keras_siamese.errors import ConfigError
from keras_siamese.programs import train
from tests.conftest import ROOT


def _train_flags(argv: list[str]) -> dict:
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    flag_values(argv)
    return {name: flag_values[name].value for name in flag_values}


def test_a_recipe_read_from_the_package_sets_what_absl_reads_from_the_checkout(
    tmp_path, monkeypatch
):
    argv = ["prog", "--flagfile=flags/fast.flags", "--split=80_20", "--epochs=3"]
    monkeypatch.chdir(ROOT)
    from_checkout = _train_flags(argv)  # absl reads the checkout's files itself
    assert _train_flags(flagfiles.resolve(argv)) == from_checkout

    monkeypatch.chdir(tmp_path)  # no flags/ here
    resolved = flagfiles.resolve(argv)
    assert flagfiles.resolve(argv) == resolved
    assert not any("flagfile" in a for a in resolved)
    # fast.flags includes common.flags (the reference's tower and data) first.
    assert resolved.index("--dataset=cifar100") < resolved.index("--objective=normsoftmax")
    assert resolved[-2:] == ["--split=80_20", "--epochs=3"]  # later flags still win
    assert _train_flags(resolved) == from_checkout
    assert from_checkout["epochs"] == 3 and from_checkout["objective"] == "normsoftmax"


def test_an_included_file_is_read_once_and_comments_are_skipped(tmp_path, monkeypatch):
    package = tmp_path / "package"
    (package / "flags").mkdir(parents=True)
    (package / "flags" / "a.flags").write_text(
        "# a comment\n\n// another\n--epochs=2\n--flagfile=flags/b.flags\n  --depth=20  \n"
    )
    (package / "flags" / "b.flags").write_text("--seed=7\n--flagfile=flags/a.flags\n")
    monkeypatch.chdir(tmp_path)
    assert flagfiles.resolve(["p", "--flagfile", "a.flags"], str(package)) == [
        "p",
        "--epochs=2",
        "--seed=7",
        "--depth=20",
    ]


def test_a_users_flagfile_may_include_a_recipe_from_the_package(tmp_path, monkeypatch):
    (tmp_path / "mine.flags").write_text("--flagfile=flags/90_10.flags\n--epochs=5\n")
    monkeypatch.chdir(tmp_path)
    resolved = flagfiles.resolve(["p", "--flagfile=mine.flags"])
    assert "--split=90_10" in resolved and resolved[-1] == "--epochs=5"
    (tmp_path / "bad.flags").write_text("--flagfile=flags/nope.flags\n")
    with pytest.raises(ConfigError, match="^bad.flags includes flags/nope.flags: no such file"):
        flagfiles.resolve(["p", "--flagfile=bad.flags"])


def test_a_flagfile_that_is_neither_here_nor_a_recipe_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        flagfiles.resolve(["p", "--flagfile=flags/fats.flags"])
    message = str(raised.value)
    assert message.startswith("--flagfile=flags/fats.flags: no such file here, and no recipe")
    assert "flags/fast.flags" in message and "flags/90_10.flags" in message
    # Paths that leave the package's folder are never looked up in it.
    assert flagfiles.packaged_path("../setup.cfg") is None
    assert flagfiles.packaged_path("keras_siamese/flagfiles.py") is None  # flagfiles only
    assert flagfiles.packaged_path(os.path.join(ROOT, "flags", "nope.flags")) is None
    assert flagfiles.packaged_path("flags/fast.flags") == os.path.join(
        flagfiles.RECIPES_DIR, "fast.flags"
    )


def test_a_program_run_outside_the_checkout_finds_its_recipe(tmp_path):
    def train_main(*args):
        return subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "train_main.py"), *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    workdir = tmp_path / "run"
    found = train_main(
        "--flagfile=flags/fast.flags", "--data_dir=/nonexistent", f"--workdir={workdir}"
    )
    missing = train_main("--flagfile=flags/fats.flags", f"--workdir={workdir}")
    found_err, missing_err = found.communicate(timeout=300)[1], missing.communicate(timeout=300)[1]
    # The recipe was read: what stops the run is the data folder, after the flags parsed.
    assert found.returncode == 1 and "/nonexistent" in found_err, found_err
    assert missing.returncode == 2
    assert missing_err.strip().startswith("error: --flagfile=flags/fats.flags: no such file")
    assert len(missing_err.strip().splitlines()) == 1
    assert not workdir.exists()
