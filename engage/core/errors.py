"""Typed errors. Everything a user can cause raises an :class:`EngageError` subclass
whose message names the thing at fault; the CLI prints it on one line."""


class EngageError(Exception):
    """Base class of every error engage raises on purpose."""


class InputFileError(EngageError):
    """A file that cannot be read as what it claims to be (names the file and the problem)."""


class ConfigError(EngageError):
    """A story, profile or option that is invalid."""
