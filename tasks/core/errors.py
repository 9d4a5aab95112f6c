"""User-facing errors: each is printed as one readable line, never as a traceback."""

from __future__ import annotations


class RefineryError(Exception):
    """Base of every error caused by the user's data, params or environment."""


class ConfigError(RefineryError):
    """A user-facing configuration error: one line naming the file and key path."""


class DataError(RefineryError):
    """A data file cannot be read or mapped: names the file, row and column."""


class DataValidationError(RefineryError):
    """The Great Expectations suite failed: names the expectations and offending rows."""


class ModelSourceError(RefineryError):
    """The base model cannot be found locally or reached offline."""


class DiskFullError(RefineryError):
    """A write failed for lack of space: names the path and the setting that moves it."""
