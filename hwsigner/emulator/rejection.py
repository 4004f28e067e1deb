"""A refused request: the HTTP status, AWS error type and message the emulator answers with.

>>> err = validation("durationSeconds", 899, "Member must have value at least 900")
>>> err.status, err.error_type
(400, 'ValidationException')
>>> err.detail[:61]
"1 validation error detected: Value '899' at 'durationSeconds'"
"""

from __future__ import annotations

from ..errors import ServiceError

# The error type AWS names for a status the emulator answers with (also for injected failures).
ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


class Rejection(ServiceError):
    """What the emulator answers instead of credentials; ``detail`` is the body's message."""

    def __init__(self, status: int, error_type: str, detail: str) -> None:
        super().__init__(error_type, detail, status=status)
        self.detail = detail


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status) or ("ValidationException" if status < 500 else "InternalFailure")


def access_denied(detail: str) -> Rejection:
    return Rejection(403, "AccessDeniedException", detail)


def not_found(detail: str) -> Rejection:
    return Rejection(404, "ResourceNotFoundException", detail)


def bad_request(detail: str) -> Rejection:
    return Rejection(400, "ValidationException", detail)


def validation(field: str, value: object, constraint: str) -> Rejection:
    """AWS's wording for a parameter that breaks its model's constraint."""
    return bad_request(
        f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy "
        f"constraint: {constraint}"
    )
