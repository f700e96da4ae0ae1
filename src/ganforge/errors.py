"""User-facing error types.

A :class:`GanforgeError` carries a one-paragraph message that names the problem and
how to fix it. The CLI prints it without a traceback (unless ``--debug``) and exits
with ``exit_code``.
"""

from __future__ import annotations


class GanforgeError(Exception):
    """An error caused by user input (bad path, config, file, shape...)."""

    exit_code: int = 2


class ConfigError(GanforgeError):
    """A configuration value or key is invalid."""


class DataError(GanforgeError):
    """A data source cannot be read or has the wrong shape or values."""


class CheckpointError(GanforgeError):
    """A model or state file is missing, corrupt, unsafe or names an unknown model."""


class NonFiniteError(GanforgeError):
    """A loss or gradient became NaN/Inf during training."""

    exit_code = 3


class StoppedError(GanforgeError):
    """Training was stopped by a signal after saving a checkpoint (resume continues it)."""

    exit_code = 130
