"""The evaluation protocol, its reports, plots and the embedding projector."""
