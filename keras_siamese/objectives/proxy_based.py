"""The proxy-based losses on batches of labelled images: Proxy-Anchor, Proxy-NCA, ArcFace
and sub-center ArcFace (`keras_siamese.model.proxy_losses`).

A `Proxies` layer over the tower's embeddings holds a learned proxy per class
(several for sub-center ArcFace) and gives the loss their cosines; like a
classifier's weights the proxies are left out of the export, and they may learn
faster than the tower (`--proxy_lr_multiplier`).
"""

from __future__ import annotations

from typing import Any

from keras_siamese.errors import ConfigError
from keras_siamese.objectives.base import Head, Owned, RunSettings
from keras_siamese.objectives.classification import Classification

# Each objective's hyperparameters: the setting, and the loss's argument it sets.
HYPERPARAMETERS = {
    "proxy_anchor": {"proxy_anchor_margin": "margin", "proxy_anchor_alpha": "alpha"},
    "proxy_nca": {"proxy_nca_scale": "softmax_scale"},
    "arcface": {"arcface_margin": "margin", "arcface_scale": "scale"},
    "subcenter_arcface": {"arcface_margin": "margin", "arcface_scale": "scale"},
}
# The name of the proxies' variables, which the optimizer steps faster.
PROXIES = "proxies"


class ProxyBased(Classification):
    """`--objective=proxy_anchor`, `proxy_nca`, `arcface` or `subcenter_arcface`:
    --batch_size images a step."""

    names = tuple(HYPERPARAMETERS)
    loss_arguments = HYPERPARAMETERS
    owns = {
        "proxy_anchor_margin": Owned(("proxy_anchor",)),
        "proxy_anchor_alpha": Owned(("proxy_anchor",)),
        "proxy_nca_scale": Owned(("proxy_nca",)),
        "arcface_margin": Owned(("arcface", "subcenter_arcface")),
        "arcface_scale": Owned(("arcface", "subcenter_arcface")),
        "sub_centers": Owned(("subcenter_arcface",)),
        "proxy_lr_multiplier": Owned(),
    }
    tf_only = ()

    def check(self, config: RunSettings, num_seen: int | None) -> None:
        for name in ("proxy_anchor_alpha", "proxy_nca_scale", "arcface_scale"):
            if not getattr(config, name) > 0:
                raise ConfigError(f"--{name}={getattr(config, name)} must be greater than 0.")
        if not 0 <= config.proxy_anchor_margin < 1:
            raise ConfigError(
                f"--proxy_anchor_margin={config.proxy_anchor_margin} must be in [0, 1)."
            )
        if not 0 <= config.arcface_margin < 90:
            raise ConfigError(
                f"--arcface_margin={config.arcface_margin} must be in [0, 90) degrees."
            )
        if config.sub_centers < 1:
            raise ConfigError(f"--sub_centers={config.sub_centers} must be at least 1.")
        if not config.proxy_lr_multiplier > 0:
            raise ConfigError(
                f"--proxy_lr_multiplier={config.proxy_lr_multiplier} must be greater than 0."
            )

    def learning_rate_multipliers(self, config: RunSettings) -> dict[str, float]:
        if config.proxy_lr_multiplier == 1.0:
            return {}
        return {PROXIES: config.proxy_lr_multiplier}

    def head(
        self,
        config: RunSettings,
        tower: Any,
        optimizer: Any,
        num_classes: int | None = None,
        steps_per_epoch: int | None = None,
        teacher: Any = None,
    ) -> Head:
        import keras

        from keras_siamese.model import losses, proxy_losses

        if num_classes is None:
            raise ValueError(f"--objective={config.objective} needs the number of classes")
        objective = config.objective
        options = self.loss_options(config)
        loss = {
            "proxy_anchor": proxy_losses.ProxyAnchorLoss,
            "proxy_nca": proxy_losses.ProxyNCALoss,
            "arcface": proxy_losses.ArcFaceLoss,
            "subcenter_arcface": proxy_losses.SubCenterArcFaceLoss,
        }[objective](**options)
        initializer = (
            proxy_losses.PROXY_ANCHOR_INITIALIZER
            if objective == "proxy_anchor"
            else "random_normal"
        )
        sub_centers = config.sub_centers if objective == "subcenter_arcface" else 1
        proxies = proxy_losses.Proxies(
            num_classes, sub_centers, initializer=initializer, dtype="float32", name=PROXIES
        )
        images = keras.Input(shape=tower.input_shape[1:], dtype="uint8", name="images")
        model = keras.Model(images, proxies(tower(images)), name=f"siamese_{objective}")
        return Head(model, loss, metrics=[losses.ClassAccuracy(name="accuracy")])
