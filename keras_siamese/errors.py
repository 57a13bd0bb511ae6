"""Exceptions for mistakes a user can make (bad flags, missing or corrupt data).

The entry points catch `UserError` and print its message as one line, so each
message must be a complete sentence that names the problem and the fix.
"""


class UserError(Exception):
    """A problem caused by the user's input rather than by a bug."""


class ConfigError(UserError, ValueError):
    """An invalid setting (flag value or combination of values)."""


class DataError(UserError):
    """Missing, unreadable or malformed data."""
