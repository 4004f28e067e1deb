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


# The service's answer when no trusted chain is found; why goes to the side channel only.
UNTRUSTED = "Untrusted signing certificate"


class Rejection(ServiceError):
    """What the emulator answers instead of credentials; ``detail`` is the body's message and
    ``reason`` the precise rule broken (the ``--debug`` log and ``x-hwsigner-emulator-reason``)."""

    def __init__(
        self, status: int, error_type: str, detail: str, reason: str | None = None
    ) -> None:
        super().__init__(error_type, detail, status=status)
        self.detail = detail
        self.reason = reason or detail


def error_type_for(status: int) -> str:
    return ERROR_TYPES.get(status) or ("ValidationException" if status < 500 else "InternalFailure")


def access_denied(detail: str, reason: str | None = None) -> Rejection:
    return Rejection(403, "AccessDeniedException", detail, reason)


def untrusted(reason: str) -> Rejection:
    """A chain the service cannot trust: its generic message, the specific ``reason`` aside."""
    return Rejection(403, "AccessDeniedException", UNTRUSTED, reason)


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
