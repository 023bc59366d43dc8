"""One exception family for the whole library.

Every error says what was expected, what was found, and how to fix it. Catch
:class:`ZslError` to handle anything zsl raises on purpose.
"""

from __future__ import annotations


class ZslError(Exception):
    """Base class of every error zsl raises on purpose."""


class ModelNotFoundError(ZslError, LookupError):
    """A model name is unknown, or its package/file is not installed."""


class ModelIntegrityError(ZslError):
    """A model file exists but its size or sha256 is not what was expected."""


class RemoteModelError(ZslError, ConnectionError):
    """A remote model (named by the user) could not be reached or refused the call."""


class InputError(ZslError, ValueError):
    """The caller passed data of the wrong shape, type or content."""


class VocabularyError(InputError):
    """A label vocabulary is empty, has duplicates, or does not match another one."""


class MissingDependencyError(ZslError, ImportError):
    """An optional package needed for this feature is not installed."""

    def __init__(self, package: str, feature: str, install: str | None = None):
        self.package = package
        cmd = install or f"pip install {package}"
        super().__init__(f"{feature} needs the package '{package}', which is not installed. Fix: {cmd}")
