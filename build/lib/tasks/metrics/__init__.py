"""Metrics as local `evaluate` modules (one directory each, loaded by path: no Hub download)."""
