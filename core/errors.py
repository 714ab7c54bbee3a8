"""The project's own exception types: every expected failure is one of these, with a message for a person."""


class RecsysError(Exception):
    """Base class: a problem with the user's input, explained in the message."""


class ConfigError(RecsysError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class DataError(RecsysError, ValueError):
    """An input file or data set cannot be used as given."""
