"""Servers and container set-ups of the team stack; the local DVC remote lives in dvc-remote/."""
