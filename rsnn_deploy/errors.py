"""Exception types of rsnn-deploy.

Every error a user can cause derives from :class:`RsnnError` and reads
``<owner>.<field>: <problem> (got <value>); <hint>`` so that the CLI can print
it as a single line and exit with code 2, without a traceback.
"""

from __future__ import annotations


class RsnnError(Exception):
    """Base class of all errors that the CLI reports as one line (exit code 2)."""


class ValidationError(RsnnError, ValueError):
    """A value in a file, config or flag is invalid; the message names where."""


class CheckpointError(ValidationError):
    """A checkpoint or quantized-network file is missing, corrupt or inconsistent."""


class DataError(RsnnError, FileNotFoundError):
    """A dataset is missing or malformed; the message says how to get it."""


class UnsupportedError(RsnnError, NotImplementedError):
    """The target (profile, backend, exporter) cannot do what was asked; says why."""


class ParityError(RsnnError, AssertionError):
    """Two backends that must agree bit for bit do not; names the first divergence."""
