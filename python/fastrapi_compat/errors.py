"""Errors a user can cause, each carrying one clear line for the terminal."""

from __future__ import annotations


class StartupError(Exception):
    """The server could not start: unimportable app, port in use, lifespan startup failed, ...

    ``str(error)`` is a single line meant to be printed as is (no traceback).
    """
