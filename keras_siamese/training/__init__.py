"""Training runs: the trainer, callbacks, devices, multi-worker training and the search."""
