"""The one error the ``civic`` command shows to a user without a traceback."""

from __future__ import annotations


class CivicError(Exception):
    """Something the user can act on (a missing service, a bad file, a bad argument).

    ``civic`` prints the message and exits with status 2. Each package's base error that a user
    can act on derives from this one, so commands need not translate errors one by one.
    """


class CliError(CivicError):
    """A command-line argument or input the command cannot use."""
