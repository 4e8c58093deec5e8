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


class Unauthorized(DomainError):
    """The request carries no identity that can be trusted."""

    code = "unauthorized"


class Forbidden(DomainError):
    """The caller is known but may not do this at all (a customer on a staff-only route)."""

    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class Unprocessable(DomainError):
    code = "unprocessable"
