"""Errors a user can fix. The CLI prints these as one line instead of a traceback."""

from __future__ import annotations

import errno
from pathlib import Path


class ConfigError(ValueError):
    """A config value is missing, unknown or invalid; the message says how to fix it."""


class ModelNotFoundError(FileNotFoundError):
    """A model id is neither bundled, a local folder, nor reachable."""


class DataError(ValueError):
    """Input data is missing, empty, or lacks a required column."""


class ObjectiveError(ValueError):
    """An objective is unknown, or its scorer failed / produced NaN on a named example."""


class CheckpointError(RuntimeError):
    """No training checkpoint can be resumed (incomplete, corrupt, tampered, pickled by moalign
    0.1), or one cannot be written (disk full); the message says what was kept."""


class DiskFullError(OSError):
    """The disk filled up while writing `filename`; `kept` says what is still intact."""

    def __init__(self, path: str | Path, kept: str) -> None:
        super().__init__(errno.ENOSPC, f"disk full while writing {path}; {kept}", str(path))
        self.kept = kept

    def __str__(self) -> str:
        return str(self.strerror)


class HubError(ConnectionError):
    """The Hugging Face Hub cannot be reached or refuses (offline, not logged in, no access)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, DataError, ObjectiveError, ModelNotFoundError, FileNotFoundError,
    CheckpointError, DiskFullError, HubError,
)
