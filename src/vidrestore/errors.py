"""Typed errors that the CLI maps to exit codes and one-line messages."""

from __future__ import annotations


class VidrestoreError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class UsageError(VidrestoreError):
    """Bad arguments: out-of-range values, unknown codec or container, same input and output."""

    exit_code = 2


class InputError(VidrestoreError):
    """The input cannot be read: missing, not a video, no frames, corrupt part-way."""

    exit_code = 3


class OutputError(VidrestoreError):
    """The output cannot be written: exists, directory not writable, disk full."""

    exit_code = 4


class WeightsError(VidrestoreError):
    """Weights missing, corrupt, or not matching the registry's checksum."""

    exit_code = 5


class ProcessingError(VidrestoreError):
    """A failure while running the model or the encoder (out of memory that retries could not fix, ...)."""

    exit_code = 6


class Interrupted(VidrestoreError):
    """Ctrl-C: stopped by the user, nothing was written."""

    exit_code = 130
