"""The settings of `eval_main.py`: an export's evaluation, or the results report."""

from __future__ import annotations

import dataclasses

from keras_siamese.choices import CENTERS, TTAS
from keras_siamese.data.datasets import SOURCES
from keras_siamese.errors import ConfigError
from keras_siamese.settings import check_choices, setting

REPORT = "Report (--report)"


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The settings of `eval_main.py`: an export's evaluation, or the results report."""

    TITLE = "Evaluation"

    workdir: str = setting("", "Run folder whose export/ is evaluated.")
    export: str = setting("", "Export folder to evaluate; default WORKDIR/export.")
    data_dir: str | None = setting(
        None,
        "Folder with the data set the run was trained on (or its parent); default: training's.",
    )
    data_source: str | None = setting(
        None, "Where the images come from; default: as in training.", SOURCES
    )
    seed: int = setting(0, "Seed of the sampled triplets, pairs, supports and episodes.")
    ways: int = setting(5, "Classes per episode of the episodic evaluation.")
    shots: tuple[int, ...] = setting((1, 5), "Support images per class, one result each.")
    batch_size: int = setting(500, "Images per forward pass.")
    snapshots: bool = setting(
        False,
        "Also evaluate every snapshot of the run (--snapshot_every in training): "
        "learning_curve.json.",
    )
    tta: str = setting(
        "none",
        "Also report the metrics with flip-averaged embeddings (a named extra row).",
        TTAS,
    )
    center: str = setting(
        "none",
        "Also report the metrics with embeddings centred on the seen classes' train mean "
        "(SimpleShot; a named extra row, combined with --tta when both are given).",
        CENTERS,
    )
    projector: bool = setting(
        False,
        "Also write the unseen classes' test embeddings, class names and images to "
        "WORKDIR/logs for TensorBoard's embedding projector.",
    )
    projector_seen: bool = setting(False, "With --projector: the seen classes' test images too.")
    report: bool = setting(False, "Write the results report of every run instead.", group=REPORT)
    runs_dir: str = setting(
        "runs",
        "With --report: folder searched for eval.json files and for run records "
        "(metrics.json beside config.flags, as RECIPE/RUN/ for the per-split table).",
        group=REPORT,
    )
    out: str = setting("docs/results", "With --report: folder of the report.", group=REPORT)

    def validate(self) -> None:
        """Raises ConfigError (one clear sentence) for an invalid setting."""
        check_choices(self)
        if self.report:
            return
        if not self.workdir:
            raise ConfigError("--workdir is required (or --report to collect evaluations).")
        if self.ways < 2:
            raise ConfigError(f"--ways={self.ways} must be at least 2.")
        if not self.shots or min(self.shots) < 1:
            raise ConfigError(
                f"--shots={','.join(str(s) for s in self.shots)} must be at least 1 each."
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch_size={self.batch_size} must be at least 1.")
        if self.projector_seen and not self.projector:
            raise ConfigError("--projector_seen adds to --projector: pass both.")
