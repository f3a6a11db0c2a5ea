"""Exceptions the CLI turns into one clear message and a non-zero exit code."""


class ShopflowError(Exception):
    """Base class: an expected failure with a message written for the user."""

    exit_code = 1


class ConfigError(ShopflowError):
    """params.yaml (or an override) is invalid."""

    exit_code = 2


class DataValidationError(ShopflowError):
    """A landing partition failed validation; it has been quarantined."""

    exit_code = 3


class InputError(ShopflowError):
    """A file or argument handed to a step cannot be used."""

    exit_code = 4


class StackError(ShopflowError):
    """A service or its credentials are not usable (tracking server, artifact store, DVC remote)."""

    exit_code = 7
