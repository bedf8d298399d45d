"""Errors a user can fix. The CLI prints these as one line instead of a traceback."""

from __future__ import annotations

from moalign.core.config import ConfigError


class ModelNotFoundError(FileNotFoundError):
    """A model id is neither bundled, a local folder, nor reachable."""


class DataError(ValueError):
    """Input data is missing, empty, or lacks a required column."""


class ObjectiveError(ValueError):
    """An objective is unknown, or its scorer failed / produced NaN on a named example."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, DataError, ObjectiveError, ModelNotFoundError, FileNotFoundError,
)
