"""API errors: one JSON shape for both surfaces, with the request id.

``{"error": {"code", "message", "details"?, "receipt_id"?}, "request_id"}``: the
RelayOne shape (code, message, receipt_id) plus RelayPlane's ``details`` and
``request_id``. Every response, error or not, carries ``X-Request-Id``.
"""

from __future__ import annotations

from aiohttp import web


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


def error_response(
    request_id: str, status: int, code: str, message: str, details: dict | None = None, headers: dict | None = None
) -> web.Response:
    err = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return web.json_response(
        {"error": err, "request_id": request_id}, status=status, headers={"X-Request-Id": request_id, **(headers or {})}
    )


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what}.not_found", f"no {what} '{ident}'")


def bad_request(message: str, **details) -> ApiError:
    return ApiError(400, "invalid_request", message, details or None)
