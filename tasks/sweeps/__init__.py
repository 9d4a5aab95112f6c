"""Hyper-parameter sweeps: Optuna trials on the validation split, each a nested MLflow run."""
