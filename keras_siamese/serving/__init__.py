"""What serves a trained export: the export itself, the Python API, search and the canvas."""
