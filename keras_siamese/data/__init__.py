"""Data sets, class splits and the tf.data pipelines of training."""
