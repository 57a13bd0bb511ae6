"""search_main.py on the smoke run's export: build, add and query a gallery; bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, program_error, program_run


@pytest.fixture(scope="module")
def photos(data_root, tmp_path_factory):
    """Six CIFAR-100 test images as PNG files, and the same images in an .npz file."""
    from PIL import Image

    with np.load(os.path.join(data_root, "cifar100", "cifar100_test.npz")) as data:
        images = data["images"][:6]
    folder = tmp_path_factory.mktemp("photos")
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    npz = folder.parent / "more.npz"
    np.savez(npz, images=images[:2])
    return folder, npz


def _build(smoke_run, photos, out, *extra):
    folder, _ = photos
    export = os.path.join(smoke_run, "export")
    return program_run(
        "search_main", "build", f"--export={export}", f"--images={folder}", f"--out={out}", *extra
    )


@pytest.mark.parametrize("backend", ["exact", "milvus"])
def test_build_query_and_add(smoke_run, photos, tmp_path, capsys, backend):
    folder, npz = photos
    if backend == "milvus":
        pytest.importorskip("milvus_lite")
    index = tmp_path / ("gallery.db" if backend == "milvus" else "gallery")
    assert _build(smoke_run, photos, index, f"--backend={backend}") == 0
    assert "Indexed 6 images" in capsys.readouterr().out
    assert (
        program_run(
            "search_main", "query", f"--index={index}", f"--images={folder / 'p3.png'}", "--k=2"
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(folder / "p3.png") and len(lines) == 3
    rank, distance, item = lines[1].split()
    assert (rank, item) == ("1", str(folder / "p3.png")) and abs(float(distance)) < 1e-3
    # Two more from an .npz without ids: named by file and position.
    assert program_run("search_main", "add", f"--index={index}", f"--images={npz}") == 0
    capsys.readouterr()
    assert program_run("search_main", "query", f"--index={index}", f"--images={npz}", "--k=50") == 0
    captured = capsys.readouterr()
    assert "the gallery holds 8 images; showing all of them, not 50" in captured.err
    out = captured.out.splitlines()
    assert out[0] == f"{npz}[0]" and len(out) == 2 * 9
    assert {out[1].split()[2], out[2].split()[2]} == {str(folder / "p0.png"), f"{npz}[0]"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "--images=x"], "build needs --export and --out"),
        (["query", "--index=gallery"], "query needs --images"),
        (["query", "--index=gallery", "--images=x", "--k=0"], "--k=0 must be at least 1"),
        (["query", "--index=nowhere", "--images=x"], "nowhere is not an index folder"),
        (["build", "--export=nowhere", "--images=x", "--out=o"], "not an export"),
        (["search", "--index=i"], "give one command of build, add, query (given: search)"),
        (["--index=i"], "give one command of build, add, query (given: none)"),
        (
            ["build", "--export=e", "--images=x", "--out=o", "--backend=milvus"],
            "--backend=milvus writes to a Milvus database: --out=gallery.db",
        ),
        (["build", "--export=e", "--images=x", "--out=g.db"], "add --backend=milvus"),
    ],
)
def test_bad_commands_are_one_line(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in program_error(capsys, "search_main", *args)
    assert os.listdir(tmp_path) == []


def test_a_folder_with_a_stray_file_writes_nothing(smoke_run, photos, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a picture")
    export = os.path.join(smoke_run, "export")
    message = program_error(
        capsys,
        "search_main",
        "build",
        f"--export={export}",
        f"--images={folder}",
        f"--out={tmp_path / 'gallery'}",
    )
    assert "readme.txt is not a PNG" in message
    assert sorted(os.listdir(tmp_path)) == ["mixed"]
    np.savez(tmp_path / "bad.npz", pictures=np.zeros((1, 32, 32, 3), np.uint8))
    message = program_error(
        capsys,
        "search_main",
        "build",
        f"--export={export}",
        f"--images={tmp_path / 'bad.npz'}",
        f"--out={tmp_path / 'gallery'}",
    )
    assert message == f"error: {tmp_path / 'bad.npz'} has no 'images' array (it has pictures)."


def test_the_program_fails_in_one_line_without_a_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "search_main.py"),
            "query",
            f"--index={tmp_path}",
            "--images=x.png",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not an index folder (it has no index.json)."
    ]
