"""API errors and the two providers' error envelopes."""

from __future__ import annotations

from typing import Any

# OpenAI puts most client errors under invalid_request_error, rate limits under "requests".
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    """An error answered to the client with the provider's envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


def openai_type(status: int) -> str:
    if status in _OPENAI_TYPES:
        return _OPENAI_TYPES[status]
    return "server_error" if status >= 500 else "invalid_request_error"


def anthropic_type(status: int) -> str:
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def openai_envelope(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    if status == 429 and code is None:
        code = "rate_limit_exceeded"
    return {
        "error": {"message": message, "type": openai_type(status), "param": param, "code": code}
    }


def anthropic_envelope(status: int, message: str, request_id: str | None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": anthropic_type(status), "message": message},
        "request_id": request_id,
    }


def is_anthropic_path(path: str) -> bool:
    return path.startswith("/v1/messages")
