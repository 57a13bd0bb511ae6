"""metadata.json: written and read in one place, with a format version."""

from __future__ import annotations

import json

import pytest

from keras_siamese.errors import UserError
from keras_siamese.evaluation.results import (
    Accuracy,
    Metrics,
    SeenMetrics,
    SeenPairs,
    ThresholdAccuracy,
)
from keras_siamese.serving import metadata
from tests.conftest import sample_metadata


def _metrics(calibrated: float | None) -> Metrics:
    acc = Accuracy(0.75, 0.01, 1000)
    return Metrics(
        distance="cosine",
        evaluation_seed=0,
        seen=SeenMetrics(
            classes=90,
            triplet_accuracy=acc,
            pair=SeenPairs(
                fixed=ThresholdAccuracy(0.8, acc),
                roc_auc=0.8,
                equal_error_rate=0.25,
                calibrated=None if calibrated is None else ThresholdAccuracy(calibrated, acc),
            ),
        ),
    )


def test_written_metadata_reads_back_equal(tmp_path):
    written = sample_metadata(input_shape=[32, 32, 3], metrics=_metrics(0.17), depth=8)
    metadata.write(str(tmp_path), written)
    on_disk = json.loads((tmp_path / "metadata.json").read_text())
    assert on_disk["format"] == "keras_siamese.export/1"
    assert on_disk["metrics"]["seen"]["pair"]["calibrated"]["threshold"] == 0.17
    assert metadata.read(str(tmp_path)) == written


def test_an_export_with_test_time_options_is_written_in_format_2(tmp_path):
    written = sample_metadata(tta="flip", center="seen")
    metadata.write(str(tmp_path), written)
    on_disk = json.loads((tmp_path / "metadata.json").read_text())
    assert on_disk["format"] == "keras_siamese.export/2"
    assert (on_disk["tta"], on_disk["center"]) == ("flip", "seen")
    assert metadata.read(str(tmp_path)).has_options


def test_the_threshold_is_the_calibrated_one_else_the_reference_rule():
    assert sample_metadata(metrics=_metrics(0.17)).threshold() == (
        0.17,
        "calibrated on validation pairs",
    )
    assert sample_metadata(metrics=_metrics(None)).threshold()[0] == 0.8
    assert sample_metadata(distance="euclidean").threshold() == (1.0, "the reference's fixed rule")


def test_an_export_of_a_newer_format_is_refused_in_one_line(tmp_path):
    data = sample_metadata().to_json()
    (tmp_path / "metadata.json").write_text(
        json.dumps({**data, "format": "keras_siamese.export/3"})
    )
    with pytest.raises(UserError, match="export format 3, newer than the 2") as err:
        metadata.read(str(tmp_path))
    assert "\n" not in str(err.value)


def test_an_earlier_export_without_a_format_still_loads(tmp_path):
    data = sample_metadata().to_json()
    del data["format"]
    (tmp_path / "metadata.json").write_text(json.dumps(data))
    assert metadata.read(str(tmp_path)).split == "90_10"


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is unreadable"),
        ("[1, 2]", "holds no JSON object"),
        ('{"format": "other/1"}', "is not a keras_siamese export"),
        ('{"dataset": "cifar100"}', "'split' is missing"),
        (None, "holds no complete export"),
    ],
)
def test_damaged_metadata_is_one_clear_line(tmp_path, content, message):
    if content is not None:
        (tmp_path / "metadata.json").write_text(content)
    with pytest.raises(UserError, match=message):
        metadata.read(str(tmp_path))


def test_an_unknown_data_set_is_refused(tmp_path):
    metadata.write(str(tmp_path), sample_metadata(dataset="svhn"))
    with pytest.raises(UserError, match="'svhn', which is not one of cifar100, mnist"):
        metadata.read(str(tmp_path))


def test_a_run_folder_given_for_its_export_names_the_export(tmp_path):
    (tmp_path / "export").mkdir()
    metadata.write(str(tmp_path / "export"), sample_metadata())
    with pytest.raises(UserError) as caught:
        metadata.read(str(tmp_path))
    assert (
        str(caught.value)
        == f"{tmp_path} is a run folder, not its export: give {tmp_path / 'export'}."
    )
