"""Errors that are the user's to fix: the CLI prints them as one red line and exits 2."""


class UserError(Exception):
    """A problem with the user's input, data or configuration (not a bug in coverbench)."""
