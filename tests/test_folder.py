"""A user's own folder of images: read, split by name, trained, exported, evaluated, searched."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_siamese.data import folder, splits
from keras_siamese.data.sources import load_dataset
from keras_siamese.errors import ConfigError, DataError
from tests.conftest import ROOT, program_error, program_output

CLASSES = 6
PER_CLASS = 12


def _write_folder(
    root, data_root, per_class=PER_CLASS, classes=CLASSES, layout="flat", resized=True
):
    """Real CIFAR-100 test images of the first classes, as PNG, JPEG and BMP files of mixed
    sizes (some grey; all 32 x 32 unless `resized`), one subfolder per class named as in
    CIFAR-100."""
    with np.load(os.path.join(data_root, "cifar100", "cifar100_test.npz")) as stored:
        source = {key: stored[key] for key in ("images", "fine_labels")}  # read each once
    with open(os.path.join(data_root, "cifar100", "cifar100_labels.json")) as f:
        names = json.load(f)["fine_label_names"]
    rng = np.random.default_rng(0)
    for c in range(classes):
        for k, i in enumerate(np.flatnonzero(source["fine_labels"] == c)[:per_class]):
            part = ("train" if k < per_class - 3 else "test") if layout == "split" else ""
            target = os.path.join(root, part, names[c])
            os.makedirs(target, exist_ok=True)
            image = Image.fromarray(source["images"][i])
            side = int(rng.integers(20, 72))
            if resized:
                image = image.resize((side, side + int(rng.integers(0, 9))))
            if k % 4 == 0:
                image = image.convert("L")
            image.save(os.path.join(target, f"{k}.{('png', 'jpg', 'bmp')[k % 3]}"))
    return names[:classes]


@pytest.fixture(scope="module")
def image_folder(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("own") / "images"
    return str(root), _write_folder(str(root), data_root)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(folder.CACHE_ENV, str(tmp_path / "cache"))


def test_a_folder_reads_as_a_data_set_with_a_stratified_test_part(image_folder):
    root, names = image_folder
    options = folder.FolderOptions(image_size=24, channels=3, test_fraction=0.25, seed=1)
    dataset = load_dataset("folder", root, folder_options=options)
    assert dataset.class_names == tuple(sorted(names))
    assert dataset.train_images.shape[1:] == (24, 24, 3) and dataset.train_images.dtype == np.uint8
    assert np.bincount(dataset.test_labels).tolist() == [3] * CLASSES  # 25% of 12
    assert np.bincount(dataset.train_labels).tolist() == [9] * CLASSES
    assert dataset.info.num_classes == CLASSES and len(dataset.info.mean) == 3
    # The same folder again comes from the cache, identical; grey takes one channel.
    again = load_dataset("folder", root, folder_options=options)
    np.testing.assert_array_equal(again.train_images, dataset.train_images)
    cached = os.listdir(folder.cache_folder())
    assert len(cached) == 1 and cached[0].endswith(".npz")
    grey = load_dataset("folder", root, folder_options=folder.FolderOptions(channels=1))
    assert grey.train_images.shape[1:] == (32, 32, 1)


def test_a_resized_image_is_what_the_python_api_makes_of_the_file(image_folder):
    from keras_siamese.serving import model_inputs

    root, names = image_folder
    dataset = load_dataset("folder", root, folder_options=folder.FolderOptions(test_fraction=0.5))
    first_class = sorted(names)[0]
    path = os.path.join(root, first_class, "1.jpg")
    expected = model_inputs.model_input(model_inputs.read_image(path), "folder", (32, 32, 3))
    candidates = np.concatenate([dataset.train_images, dataset.test_images])
    assert any(np.array_equal(expected, image) for image in candidates)


def test_train_and_test_folders_are_taken_as_given(data_root, tmp_path):
    _write_folder(str(tmp_path / "d"), data_root, classes=3, layout="split", resized=False)
    dataset = load_dataset("folder", str(tmp_path / "d"))
    assert np.bincount(dataset.train_labels).tolist() == [9, 9, 9]
    assert np.bincount(dataset.test_labels).tolist() == [3, 3, 3]


def test_classes_are_held_out_by_name():
    split = splits.split_by_names(["b", "d"], ["a", "b", "c", "d", "e"])
    assert split.unseen == (1, 3) and split.seen == (0, 2, 4)
    with pytest.raises(ConfigError, match="'x', which is not a class"):
        splits.split_by_names(["x"], ["a", "b", "c"])
    with pytest.raises(ConfigError, match="leaves 1 seen class"):
        splits.split_by_names(["a", "b"], ["a", "b", "c"])


def _bad(tmp_path, kind):
    root = tmp_path / "bad"
    root.mkdir()
    ok = np.zeros((8, 8, 3), np.uint8)
    if kind == "no_classes":
        Image.fromarray(ok).save(root / "loose.png")
    if kind in ("empty_class", "damaged", "train_only", "one_side"):
        for name in ("cat", "dog"):
            (root / name).mkdir()
            for k in range(3):
                Image.fromarray(ok + k).save(root / name / f"{k}.png")
    if kind == "empty_class":
        (root / "fish").mkdir()
    if kind == "damaged":
        (root / "dog" / "broken.jpg").write_bytes(b"not a jpeg")
    if kind == "train_only":
        os.rename(root / "cat", root / "train")
    if kind == "one_side":
        for part in ("train", "test"):
            (root / part / "cat").mkdir(parents=True)
            Image.fromarray(ok).save(root / part / "cat" / "0.png")
        (root / "train" / "dog").mkdir()
        Image.fromarray(ok).save(root / "train" / "dog" / "0.png")
    return str(root)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("missing", "is not a folder of class subfolders"),
        ("no_classes", "holds no class subfolders"),
        ("empty_class", "Class folder 'fish' of"),
        ("damaged", "broken.jpg is not a readable PNG or JPEG or BMP or GIF image"),
        ("train_only", "has a train/ folder but no test/ folder"),
        ("one_side", "Class 'dog' is in"),
    ],
)
def test_a_bad_folder_is_one_line(tmp_path, kind, message):
    root = str(tmp_path / "nowhere") if kind == "missing" else _bad(tmp_path, kind)
    with pytest.raises(DataError) as caught:
        load_dataset("folder", root)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_skip_bad_images_leaves_the_damaged_file_out_and_counts_it(tmp_path, capsys):
    root = _bad(tmp_path, "damaged")
    dataset = load_dataset(
        "folder", root, folder_options=folder.FolderOptions(skip_bad_images=True)
    )
    assert len(dataset.train_labels) + len(dataset.test_labels) == 6
    assert "Skipped 1 file(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--dataset=folder", "--unseen_classes=apple,unicorn"],
            "'unicorn', which is not a class of the data",
        ),
        (["--dataset=folder", "--image_size=4"], "--image_size=4 must be from 8 to 512"),
        (["--dataset=folder", "--channels=2"], "--channels=2 must be 1 (grey) or 3 (colour)"),
        (["--dataset=folder", "--test_fraction=1"], "--test_fraction=1.0 must be between 0"),
        (["--image_size=64"], "--image_size is for --dataset=folder"),
        (["--unseen_classes=a", "--unseen_classes_file=f"], "not both"),
        (["--unseen_classes_file=/nonexistent"], "cannot be read"),
        (["--dataset=folder", "--unseen_classes=apple,baby,bear,beaver,bed"], "leaves 1 seen"),
    ],
)
def test_bad_folder_flags_are_one_line_and_write_nothing(
    capsys, tmp_path, image_folder, args, message
):
    root, _ = image_folder
    workdir = tmp_path / "run"
    line = program_error(
        capsys,
        "train_main",
        f"--data_dir={root}",
        f"--workdir={workdir}",
        "--flagfile=flags/smoke.flags",
        *args,
    )
    assert message in line
    assert not workdir.exists()


def test_own_images_train_export_evaluate_and_search(image_folder, tmp_path):
    """The README's third quickstart, on a small folder."""
    root, names = image_folder
    workdir = str(tmp_path / "run")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("## Train on your own images") :]
    assert "--dataset=folder" in section and "--unseen_classes=" in section
    out = program_output(
        "train_main",
        "--dataset=folder",
        f"--data_dir={root}",
        "--unseen_classes=baby,bear",
        "--flagfile=flags/smoke.flags",
        "--objective=normsoftmax",
        "--test_fraction=0.25",
        f"--workdir={workdir}",
    )
    assert "on folder split 4_2" in out and "Decoding 72/72 images" in out
    with open(os.path.join(workdir, "export", "metadata.json")) as f:
        metadata = json.load(f)
    assert metadata["dataset"] == "folder" and metadata["input_shape"] == [32, 32, 3]
    assert metadata["class_names"] == sorted(names)
    assert [metadata["class_names"][c] for c in metadata["unseen_classes"]] == ["baby", "bear"]

    evaluated = program_output("eval_main", f"--workdir={workdir}", "--ways=2")
    assert "2-way one-shot accuracy (unseen classes)" in evaluated

    gallery = str(tmp_path / "gallery")
    baby = os.path.join(root, "baby")
    program_output(
        "search_main", "build", f"--export={workdir}/export", f"--images={baby}", f"--out={gallery}"
    )
    found = program_output(
        "search_main", "query", f"--index={gallery}", f"--images={baby}/2.bmp", "--k=1"
    )
    assert f"{baby}/2.bmp" in found.splitlines()[-1]  # an image is its own nearest


_TFDS_BUILDERS: dict = {}


def _tiny_builder(with_test: bool):
    """A tiny tensorflow-datasets builder of arrays (no download), registered once by name."""
    import tensorflow_datasets as tfds

    name = f"keras_siamese_tiny_{'split' if with_test else 'train'}"
    if name in _TFDS_BUILDERS:
        return _TFDS_BUILDERS[name]
    rng = np.random.default_rng(0)

    def generate(per_class):
        for c in range(3):
            for i in range(per_class):
                image = np.zeros((20 + i, 24, 3), np.uint8)
                image[..., c] = rng.integers(100, 256)
                yield f"{c}_{i}", {"image": image, "label": c}

    def info(self):
        features = {
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(names=["red", "green", "blue"]),
        }
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def split_generators(self, dl_manager):
        parts = {"train": generate(12)}
        if with_test:
            parts["test"] = generate(4)
        return parts

    builder = type(
        name,
        (tfds.core.GeneratorBasedBuilder,),
        {
            "name": name,
            "VERSION": tfds.core.Version("1.0.0"),
            "_info": info,
            "_split_generators": split_generators,
            "_generate_examples": lambda self: iter(()),
        },
    )
    _TFDS_BUILDERS[name] = builder
    return builder


def _prepared_tfds_set(data_dir: str, with_test: bool) -> str:
    """A tiny image-classification set prepared for tensorflow-datasets in `data_dir`."""
    builder = _tiny_builder(with_test)
    builder(data_dir=data_dir).download_and_prepare()
    return builder.name


@pytest.mark.parametrize("with_test", [True, False])
def test_a_prepared_tfds_set_is_read_by_name(tmp_path, with_test):
    name = _prepared_tfds_set(str(tmp_path), with_test)
    options = folder.FolderOptions(image_size=16, channels=3, test_fraction=0.25)
    dataset = load_dataset(f"tfds:{name}", str(tmp_path), folder_options=options)
    assert dataset.class_names == ("red", "green", "blue")
    assert dataset.train_images.shape[1:] == (16, 16, 3)
    assert np.bincount(dataset.test_labels).tolist() == [4, 4, 4] if with_test else [3, 3, 3]
    reds = dataset.train_images[dataset.train_labels == 0]
    assert reds[..., 0].min() >= 100 and reds[..., 1:].max() == 0


def test_a_tfds_set_not_prepared_there_is_one_line(tmp_path):
    name = _prepared_tfds_set(str(tmp_path / "elsewhere"), True)
    with pytest.raises(DataError) as caught:
        load_dataset(f"tfds:{name}", str(tmp_path / "empty"))
    assert f"{name} is not prepared for tensorflow-datasets under" in str(caught.value)
    with pytest.raises(DataError, match="has no data set"):
        load_dataset("tfds:no_such_set_anywhere", str(tmp_path))


def test_an_unseen_class_without_a_support_and_a_query_is_one_line(capsys, tmp_path):
    root = tmp_path / "few"
    for name, count in (("cat", 6), ("dog", 6), ("eel", 2)):
        (root / name).mkdir(parents=True)
        for k in range(count):
            Image.fromarray(np.full((8, 8, 3), 30 * k, np.uint8)).save(root / name / f"{k}.png")
    line = program_error(
        capsys,
        "train_main",
        "--dataset=folder",
        f"--data_dir={root}",
        "--unseen_classes=eel",
        "--flagfile=flags/smoke.flags",
        f"--workdir={tmp_path / 'run'}",
    )
    assert "Unseen class 'eel' has 1 test image(s): one-shot needs a support and a query" in line
    assert not (tmp_path / "run").exists()
