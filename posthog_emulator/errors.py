"""PostHog's error bodies: every error is `{type, code, detail, attr}`.

The store raises `ApiError`; the server turns it into exactly the JSON PostHog's exception handler
writes, so a client can be tested on the bodies it will meet in production.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error with PostHog's body fields."""

    def __init__(
        self,
        status: int,
        type_: str,
        code: str,
        detail: str,
        attr: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.type = type_
        self.code = code
        self.detail = detail
        self.attr = attr
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr, **self.extra}


def not_found(detail: str = "Not found.") -> ApiError:
    return ApiError(404, "invalid_request", "not_found", detail)


def validation(detail: str, attr: str | None = None, code: str = "invalid_input") -> ApiError:
    return ApiError(400, "validation_error", code, detail, attr)


def permission_denied(detail: str = "You do not have permission to perform this action.") -> ApiError:
    return ApiError(403, "authentication_error", "permission_denied", detail)


def not_authenticated() -> ApiError:
    return ApiError(
        401, "authentication_error", "not_authenticated", "Authentication credentials were not provided."
    )


def authentication_failed() -> ApiError:
    return ApiError(
        401,
        "authentication_error",
        "authentication_failed",
        "Personal API key found in request Authorization header is invalid.",
    )


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.')


def throttled(wait: int) -> ApiError:
    return ApiError(
        429,
        "throttled_error",
        "throttled",
        # DRF's wording, singular included: "... in 1 second." / "... in 2 seconds."
        f"Request was throttled. Expected available in {wait} second{'' if wait == 1 else 's'}.",
        headers={"Retry-After": str(wait)},
    )


def server_error() -> ApiError:
    """Django's 500 through PostHog's exception handler, e.g. when a QueryStatus cannot be built."""
    return ApiError(500, "server_error", "error", "A server error occurred.")
