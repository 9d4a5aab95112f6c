"""Refinery against the plain Trainer script: `make bench`."""
