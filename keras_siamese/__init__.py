"""keras-siamese: one-shot image similarity with a Siamese ResNet and triplet loss."""

__version__ = "0.1.0"

__all__ = ["EmbeddingIndex", "Similarity", "__version__"]


def __getattr__(name: str):
    # Imported on first use: the programs check their flags before TensorFlow loads.
    if name == "Similarity":
        from keras_siamese.serving.similarity import Similarity

        return Similarity
    if name == "EmbeddingIndex":
        from keras_siamese.serving.index import EmbeddingIndex

        return EmbeddingIndex
    raise AttributeError(f"module 'keras_siamese' has no attribute {name!r}")
