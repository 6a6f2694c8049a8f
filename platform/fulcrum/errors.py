"""Errors a user can act on.

Every error Fulcrum raises on bad input derives from FulcrumError and says what is wrong and
where (file, row, key path, field) in one message, so the CLI can print it without a traceback.
"""

from __future__ import annotations


class FulcrumError(Exception):
    """Base class: the message is meant for the user, as is. It is kept apart from `args`,
    which Ray Data extends with its retry advice when the error passes through a task."""

    def __init__(self, message: str = "", *args) -> None:
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):  # unpickled in the driver from a task's error as it was raised
        return type(self), (self.message,)


class RecipeError(FulcrumError):
    """The recipe file is missing, is not YAML, or does not validate."""


class DataError(FulcrumError):
    """A data file cannot be read, or a row in it is unusable."""


class ModelError(FulcrumError):
    """The model named in the recipe cannot be resolved or loaded."""


class ArtifactError(FulcrumError):
    """An artifact directory is missing, incomplete, or fails its integrity check."""


class ParityError(FulcrumError):
    """An exported model disagrees with its PyTorch parent beyond the recipe's tolerance."""


class TrainingError(FulcrumError):
    """A training run failed; the message carries the worker's error."""
