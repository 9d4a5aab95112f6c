"""The lowest layer: configuration, errors, the run directory's layout and content hashes."""
