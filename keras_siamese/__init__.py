"""keras-siamese: one-shot image similarity with a Siamese ResNet and triplet loss."""

__version__ = "0.1.0"
