"""The tower, the training models and their losses (Keras and keras.ops only)."""
