"""Framework images: build with the docker SDK, push, and record sizes from the registry's manifest.

The operator calls `build_and_push(framework, variant, flavour, registry, credentials=None, progress=cb)`
and gets an ImageRecord (to_dict() for status). Credentials: `credentials.from_secret(secret, registry)`.
"""

from startbench.images.builder import build_and_push
from startbench.images.credentials import Credentials, CredentialsError, from_secret
from startbench.images.errors import (BuildFailed, CredentialsRefused, DockerfileNotFound, ImageBuildError,
                                      PushRefused, RegistryUnavailable)
from startbench.images.records import ImageRecord

__all__ = [
    "build_and_push", "Credentials", "CredentialsError", "from_secret", "ImageRecord", "ImageBuildError",
    "DockerfileNotFound", "BuildFailed", "CredentialsRefused", "PushRefused", "RegistryUnavailable",
]
