"""The settings of the tower: its depth, embedding and pooling; checked without Keras."""

from __future__ import annotations

import dataclasses

from keras_siamese.choices import EMBEDDINGS, NECKS, check_depth, check_pool_grid
from keras_siamese.errors import ConfigError
from keras_siamese.settings import setting


@dataclasses.dataclass(frozen=True)
class TowerSettings:
    """The embedding tower every objective trains."""

    TITLE = "Tower"

    depth: int = setting(56, "ResNet depth, 6n+2 (56, 20, 8).")
    embedding: str = setting(
        "gap",
        "gap: 64-d global average pool (the reference); dense: projection to --embedding_dim.",
        EMBEDDINGS,
    )
    embedding_dim: int = setting(64, "Size of the dense embedding.")
    pool_grid: int = setting(
        1,
        "Average-pool the last feature map over a G x G grid of cells (neighbouring cells "
        "share a row or column when G does not divide the map) and concatenate them: "
        "G*G*64 values that keep where in the image each feature is (what --embedding=dense "
        "projects); 1: the reference's global average pool.",
    )
    neck: str = setting(
        "none",
        "batchnorm: batch-normalise the embedding (no offset), so that it starts centred "
        "instead of in one narrow cone; none: the reference's embedding.",
        NECKS,
    )
    l2_normalize: bool = setting(False, "Scale embeddings to unit length.")

    def check_tower(self, image_shape: tuple[int, int, int]) -> None:
        """Raises ConfigError for a tower that cannot be built on images of `image_shape`."""
        check_depth(self.depth)
        if self.embedding_dim < 1:
            raise ConfigError(f"--embedding_dim={self.embedding_dim} must be at least 1.")
        check_pool_grid(self.pool_grid, image_shape)
