"""Metrics as local `evaluate` modules (one directory each, loaded by path: no Hub download)."""

LOWER_IS_BETTER = frozenset({"loss", "perplexity", "mse", "rmse", "mae", "hamming_loss"})
"""Metrics where smaller is better: checkpoint selection, sweeps and `auto` directions minimise them."""
