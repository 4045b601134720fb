"""Errors of the image builder; each message says what to change."""

from __future__ import annotations


class ImageBuildError(RuntimeError):
    """Base class: building or pushing an image failed."""


class DockerfileNotFound(ImageBuildError):
    """No Dockerfile (or requirements file) for the framework, variant and flavour asked for."""


class BuildFailed(ImageBuildError):
    """The build failed; `log_tail` holds the last lines of the build log (also in the message)."""

    def __init__(self, message: str, log_tail: list[str]):
        super().__init__(message)
        self.log_tail = log_tail


class CredentialsRefused(ImageBuildError):
    """The registry refused the credentials given."""


class PushRefused(ImageBuildError):
    """The registry refused the push (no or insufficient credentials, bad name)."""


class RegistryUnavailable(ImageBuildError):
    """The registry could not be reached, kept failing, or served something other than what was pushed."""
