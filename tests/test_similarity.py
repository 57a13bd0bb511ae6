"""The Python API on the smoke run's export: embeddings, distances, verdicts, classes, files."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from keras_siamese.errors import UserError
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def sim(smoke_run):
    from keras_siamese import Similarity

    return Similarity.load(os.path.join(smoke_run, "export"))


@pytest.fixture(scope="module")
def test_images(data_root) -> tuple[np.ndarray, np.ndarray]:
    """The first 3 CIFAR-100 test images of the unseen classes 90-93."""
    with np.load(os.path.join(data_root, "cifar100", "cifar100_test.npz")) as data:
        images, labels = data["images"], data["fine_labels"]
    index = np.concatenate([np.flatnonzero(labels == c)[:3] for c in range(90, 94)])
    return images[index], labels[index].astype(np.int64)


def _write_png(path, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(pixels).save(path)


def test_embeddings_are_the_saved_models(sim, smoke_run, test_images):
    from keras_siamese.serving import export

    images, _ = test_images
    saved = export.load_saved_model(os.path.join(smoke_run, "export"))
    expected = saved.serve(images).numpy()
    emb = sim.embed(images)
    assert emb.dtype == np.float32 and emb.shape == expected.shape
    np.testing.assert_allclose(emb, expected, atol=1e-5)
    np.testing.assert_allclose(sim.embed(images[0]), expected[:1], atol=1e-5)


def test_distances_and_verdicts_follow_the_export_distance_and_threshold(sim, test_images):
    images, _ = test_images
    e = sim.embed(images).astype(np.float64)
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    by_hand = 1.0 - np.sum(unit[:6] * unit[6:], axis=1)  # the smoke run's cosine distance
    np.testing.assert_allclose(sim.distance(images[:6], images[6:]), by_hand, atol=1e-5)
    one_to_many = 1.0 - unit @ unit[0]
    np.testing.assert_allclose(sim.distance(images[0], images), one_to_many, atol=1e-5)
    assert sim.threshold == sim.metadata.threshold()[0]
    np.testing.assert_array_equal(sim.same(images[0], images), one_to_many <= sim.threshold)


def test_classify_gives_the_label_of_the_nearest_class_mean(sim, test_images):
    images, labels = test_images
    names = np.array([f"class {c}" for c in labels])
    # With one support per label, each support is its own class mean, at distance 0.
    one_shot = np.arange(0, len(labels), 3)
    np.testing.assert_array_equal(
        sim.classify(images[one_shot], images[one_shot], names[one_shot]), names[one_shot]
    )
    # Two shots: the class means by hand.
    e = sim.embed(images).astype(np.float64)
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    supports = np.flatnonzero(np.arange(len(labels)) % 3 != 2)  # 2 of each class's 3
    queries = np.flatnonzero(np.arange(len(labels)) % 3 == 2)
    classes = np.unique(labels)
    means = np.stack([unit[supports][labels[supports] == c].mean(axis=0) for c in classes])
    norms = np.linalg.norm(means, axis=1)
    by_hand = classes[np.argmax((unit[queries] @ means.T) / norms, axis=1)]
    predicted = sim.classify(images[queries], images[supports], labels[supports])
    np.testing.assert_array_equal(predicted, by_hand)


def test_image_files_and_folders_embed_as_their_pixels(sim, test_images, tmp_path):
    images, _ = test_images
    for i, pixels in enumerate(images[:3]):
        _write_png(tmp_path / f"{i}.png", pixels)
    expected = sim.embed(images[:3])
    np.testing.assert_allclose(sim.embed(str(tmp_path)), expected, atol=1e-5)
    files = [tmp_path / "2.png", tmp_path / "0.png"]
    np.testing.assert_allclose(sim.embed(files), expected[[2, 0]], atol=1e-5)


def test_a_tree_of_class_folders_is_a_gallery_whose_ids_keep_the_classes(
    sim, test_images, tmp_path
):
    images, _ = test_images
    for name, index in [("cats/b.png", 0), ("cats/a.png", 1), ("dogs/c.png", 2), ("z.png", 3)]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _write_png(tmp_path / name, images[index])
    # Sorted by path: cats/a, cats/b, dogs/c, then z (directly in the folder).
    np.testing.assert_allclose(sim.embed(str(tmp_path)), sim.embed(images[[1, 0, 2, 3]]), atol=1e-5)
    index = sim.index(str(tmp_path))
    assert index.ids.tolist() == [
        str(tmp_path / n) for n in ("cats/a.png", "cats/b.png", "dogs/c.png", "z.png")
    ]
    ids, _ = index.search(images[2], k=1)
    assert ids[0][0].endswith(os.path.join("dogs", "c.png"))
    (tmp_path / "dogs" / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=re.escape("notes.txt is not a PNG, JPEG, BMP or GIF")):
        sim.embed(str(tmp_path))


def test_a_gallery_index_finds_each_image_itself_and_keeps_to_its_export(
    sim, test_images, tmp_path
):
    from keras_siamese.serving.index import EmbeddingIndex

    images, labels = test_images
    index = sim.index(images, [f"img{i}" for i in range(len(images))])
    ids, distances = index.search(images[[5, 0]], k=3)
    assert ids[:, 0].tolist() == ["img5", "img0"]
    np.testing.assert_allclose(distances[:, 0], 0.0, atol=1e-4)
    assert np.all(np.diff(distances, axis=1) >= 0)
    # Exact search agrees with the API's own distances.
    np.testing.assert_allclose(
        distances[0], sim.distance(images[5], images[[int(i[3:]) for i in ids[0]]]), atol=1e-4
    )
    index.save(str(tmp_path / "gallery"))
    # A folder's images get their paths as ids; the index grows and is saved again.
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, pixels in enumerate(images[:2]):
        _write_png(folder / f"{i}.png", pixels)
    loaded = EmbeddingIndex.load(str(tmp_path / "gallery"), sim)
    loaded.add(str(folder))
    assert loaded.ids[-2:].tolist() == [str(folder / "0.png"), str(folder / "1.png")]
    assert set(loaded.search(images[1], k=2)[0][0]) == {"img1", str(folder / "1.png")}
    assert index.fingerprint == sim.fingerprint and len(sim.fingerprint) == 64


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: np.zeros((2, 28, 28, 1), np.uint8), "shape [2, 28, 28, 1]"),
        (lambda tmp: np.zeros((2, 32, 32, 3), np.float32), "type float32"),
        (lambda tmp: np.zeros((0, 32, 32, 3), np.uint8), "No images"),
        (lambda tmp: [], "No images"),
        (lambda tmp: [np.zeros((32, 32, 3), np.uint8)], "or a list of image files"),
        (lambda tmp: str(tmp / "missing.png"), "does not exist"),
        (lambda tmp: (tmp / "a.png").write_text("not an image") and str(tmp / "a.png"), "not a"),
        (lambda tmp: (tmp / "notes.txt").write_text("x") and str(tmp), "notes.txt is not a PNG"),
        (lambda tmp: str(tmp), "holds no PNG, JPEG, BMP or GIF"),
    ],
)
def test_bad_images_are_one_clear_sentence(sim, tmp_path, make, message):
    with pytest.raises(UserError, match=re.escape(message)) as err:
        sim.embed(make(tmp_path))
    assert "\n" not in str(err.value)


def test_bad_requests_are_one_clear_sentence(sim, test_images, tmp_path):
    from keras_siamese import Similarity

    images, labels = test_images
    with pytest.raises(UserError, match="12 support images were given with 3 labels"):
        sim.classify(images, images, labels[:3])
    with pytest.raises(UserError, match="3 and 2 images"):
        sim.distance(images[:3], images[:2])
    with pytest.raises(UserError, match="not an export"):
        Similarity.load(str(tmp_path))


@pytest.mark.parametrize(
    "document,heading",
    [("README.md", "## Use a trained model"), ("docs/guide.md", "## The Python API")],
)
def test_the_documented_snippet_runs_as_written(
    document, heading, smoke_run, test_images, tmp_path, monkeypatch
):
    with open(os.path.join(ROOT, document), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index(heading) :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "runs" / "90_10").mkdir(parents=True)
    os.symlink(os.path.join(smoke_run, "export"), tmp_path / "runs" / "90_10" / "export")
    (tmp_path / "photos").mkdir()
    for i, pixels in enumerate(test_images[0][:2]):
        _write_png(tmp_path / "photos" / f"{i}.jpg", pixels)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})


def test_grey_images_may_leave_out_their_channel_axis():
    from keras_siamese import Similarity

    grey = Similarity.__new__(Similarity)  # the shape rules alone, without a model
    grey.input_shape = (28, 28, 1)
    digits = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    np.testing.assert_array_equal(grey.images(digits), digits[..., None])
    assert grey.images(digits[0]).shape == (1, 28, 28, 1)
    with pytest.raises(UserError, match=r"shape \[3, 28, 27\]"):
        grey.images(digits[:, :, :27])
