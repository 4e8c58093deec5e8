"""Domain error categories. Services raise subclasses; the HTTP edge maps categories to statuses.

Pure: no I/O and no framework imports, so domain modules can raise these freely.
"""

from __future__ import annotations


class DomainError(Exception):
    """A business rule said no. ``code`` is the machine-readable code clients see."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Unprocessable(DomainError):
    code = "unprocessable"
